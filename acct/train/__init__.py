"""The training loop in pieces, in the order a run uses them:

- `events`: what `train` yields (RunStarted, StepLogged, CurriculumUpdated, Validated, CheckpointSaved, Finished);
- `device`: device, precision, kernel settings and seeds;
- `data`: the data source, split and task categories;
- `setup`: everything built before the first step (tokenizer, model, optimizer, sampler, curriculum) -> `Run`;
- `step`: the forward pass and losses, the gather of the global batch, one optimizer step;
- `state`: `TrainState` and the checkpoint's training state (save and restore as one pair);
- `loop`: `train` and `fit`, the loop itself.

`acct.engine` re-exports the public names; import from there. This package imports nothing on
its own, so that `acct.run.rundir` can use `acct.train.data` without loading the loop.
"""
