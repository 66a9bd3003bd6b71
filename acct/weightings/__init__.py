"""acct's own task-loss weightings, one file each (the file's name is the registered name): how the
classification loss combines the questions of different tasks (`equal`, `dwa`, `uncertainty`).

Contract (docs/extending.md): a class registered with `acct.losses.register_task_weighting`, built as
`cls(tasks, **loss.task_weighting_options)`, whose `loss(obs)` returns the scalar classification
loss of a batch from `obs.loss` ([B] per-question cross-entropy, with graph). It may keep state
through optional `state_dict()` / `load_state_dict(state)`. Optional class attribute: `neutral =
True` (plain multi-task fine-tuning: the choice a study's descriptions leave unsaid).
"""
