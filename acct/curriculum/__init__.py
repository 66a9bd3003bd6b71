"""The task curriculum: tracking inter-task confusion and per-task statistics (`signals`), the pieces
task weights are made of (`weights`), and the `Curriculum` that turns a strategy's weights into
task-sampling probabilities (`curriculum`). The built-in strategies are acct/strategies/, one per
file; the batches are drawn by acct/data/batching.py.

A strategy plugin imports `register_strategy` from here (docs/extending.md).
"""

from acct.registry import register_strategy

__all__ = ["register_strategy"]
