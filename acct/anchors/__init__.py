"""acct's own anchor weightings, one file each (the file's name is the registered name): how much
each anchor counts in the contrastive InfoNCE (`entropy`, `uniform`).

Contract (docs/extending.md): a class registered with `acct.losses.register_anchor_weighting`, built
as `cls(tasks, **loss.anchor_weighting_options)`, whose `weights(obs)` returns [B] non-negative
per-anchor weights (detached by the loss). Optional: `state_dict()` / `load_state_dict(state)`,
`neutral = True`, and `anchor_text` (what an anchor's weight is, in a study's report).
"""
