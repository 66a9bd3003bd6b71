"""A task-sampling strategy plugin: favour one task over all the others.

    acct train --preset tiny --code docs/examples/favour_first.py --strategy favour_first --output-dir runs/favour_first
    ACCT_CURRICULUM__OPTIONS='{"favourite": "odd_number"}' acct train --preset tiny --code docs/examples/favour_first.py --strategy favour_first --output-dir runs/favour_first
"""

from acct.curriculum import register_strategy


@register_strategy("favour_first")
class FavourFirst:
    """Ten times more weight on one task (the first, or options.favourite) than on any other."""

    def __init__(self, tasks, favourite=None, ratio=10.0):
        # `tasks` are the task names in task-id order; the keyword arguments are the
        # strategy's options, from curriculum.options.
        self.index = tasks.index(favourite) if favourite is not None else 0
        self.ratio = float(ratio)

    def weights(self, stats):
        # stats.tasks, stats.task_sizes (training questions per task), stats.categories,
        # stats.step, stats.total_steps, stats.error_rate, stats.uncertainty, stats.loss
        # (per-task EMAs, [T]), stats.confusion ([T, T]); return T non-negative numbers:
        # acct normalises them, mixes in the floor, and logs them with the questions drawn.
        w = [1.0] * len(stats.tasks)
        w[self.index] = self.ratio
        return w

    # Optional, saved in checkpoints for an exact resume (this strategy keeps no state).
    def state_dict(self):
        return {"index": self.index}

    def load_state_dict(self, state):
        self.index = int(state["index"])
