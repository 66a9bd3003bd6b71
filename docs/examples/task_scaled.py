"""A task-loss weighting plugin: scale the cross-entropy of chosen tasks.

    acct train --preset tiny --code docs/examples/task_scaled.py \
        --config scaled.yaml --output-dir runs/task_scaled   # loss: {task_weighting: task_scaled, task_weighting_options: {scales: {even_number: 3.0}}}
"""

from acct.losses import register_task_weighting


@register_task_weighting("task_scaled")
class TaskScaled:
    """Cross-entropy with a fixed weight per task (options.scales: task -> weight, others 1)."""

    def __init__(self, tasks, scales=None):
        import torch

        scales = dict(scales or {})
        unknown = sorted(set(scales) - set(tasks))
        if unknown:
            raise ValueError(f"task_scaled: no task named {unknown[0]!r}")
        self.scales = torch.tensor([float(scales.get(t, 1.0)) for t in tasks])

    def loss(self, obs):
        # obs.loss: [B] cross-entropy of each question (train through it); obs.task_ids: [B];
        # obs.correct, obs.uncertainty: [B]; obs.mean_loss: what the `equal` weighting returns.
        w = self.scales.to(obs.loss.device)[obs.task_ids]
        return (w * obs.loss).sum() / w.sum()
