"""The `learning_progress` strategy: a non-stationary bandit over tasks rewarded by learning progress.

The teacher-student curriculum of Graves et al. 2017 and Matiisen et al. (TSCL), in the bandit
form of Self-Evolving Curriculum (2025): every curriculum update is one round of the bandit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from acct.curriculum.curriculum import CurriculumStats
from acct.curriculum.weights import check_temperature, zscore
from acct.errors import CheckpointError, UsageError
from acct.registry import register_strategy


@register_strategy("learning_progress")
class LearningProgress:
    """Bandit rewarded by absolute learning progress |change of the task's loss EMA|, Boltzmann policy over its Q-values (TSCL)."""

    # Its first update past warm-up records the loss EMAs; rewards, and so weights other than the
    # prior, come from the second on.
    rounds_to_act = 2

    def __init__(self, tasks: Sequence[str], temperature: float = 2.0, step_size: float = 0.3) -> None:
        check_temperature(temperature)
        if isinstance(step_size, bool) or not isinstance(step_size, (int, float)) or not 0 < step_size <= 1:
            raise UsageError(f"learning_progress: step_size must be in (0, 1], got {step_size!r}")
        self.num_tasks = len(tasks)
        self.temperature = float(temperature)
        self.step_size = float(step_size)
        self.q = [0.0] * self.num_tasks  # value of each arm: smoothed absolute learning progress
        self.rewarded = [False] * self.num_tasks  # the arm has received at least one reward
        self.last_loss = [0.0] * self.num_tasks  # loss EMA at the previous update
        self.has_last = [False] * self.num_tasks  # last_loss holds an observation

    def update(self, stats: CurriculumStats) -> None:
        """One bandit round: reward every task whose loss EMA moved since the previous update.

        The reward is |loss EMA now - loss EMA at the previous update|; Q <- Q + step_size * (reward - Q),
        and a task's first reward starts its Q. A task not drawn since the previous update (its
        EMA did not move) was not pulled and keeps its Q.
        """
        loss = stats.loss.detach().to(device="cpu", dtype=torch.float64).tolist()
        seen = stats.seen.detach().cpu().tolist()
        for t in range(self.num_tasks):
            if not seen[t]:
                continue
            if self.has_last[t] and loss[t] != self.last_loss[t]:
                reward = abs(loss[t] - self.last_loss[t])
                if self.rewarded[t]:
                    self.q[t] += self.step_size * (reward - self.q[t])
                else:
                    self.q[t], self.rewarded[t] = reward, True
            self.last_loss[t], self.has_last[t] = loss[t], True

    def policy(self) -> torch.Tensor:
        """softmax(zscore(Q) / temperature); a task not rewarded yet counts as the mean of the rewarded."""
        q = torch.tensor(self.q, dtype=torch.float64)
        rewarded = torch.tensor(self.rewarded, dtype=torch.bool)
        if not bool(rewarded.any()):
            return torch.full((self.num_tasks,), 1.0 / self.num_tasks, dtype=torch.float64)
        q = torch.where(rewarded, q, q[rewarded].mean())
        return torch.softmax(zscore(q) / self.temperature, dim=0)

    def weights(self, stats: CurriculumStats) -> torch.Tensor:
        if len(stats.tasks) != self.num_tasks:
            raise UsageError(f"learning_progress was built for {self.num_tasks} tasks, got {len(stats.tasks)}")
        self.update(stats)
        return self.policy()

    def state_dict(self) -> dict[str, Any]:
        return {
            "q": list(self.q),
            "rewarded": list(self.rewarded),
            "last_loss": list(self.last_loss),
            "has_last": list(self.has_last),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("q", "rewarded", "last_loss", "has_last"):
            if key not in state or len(state[key]) != self.num_tasks:
                raise CheckpointError(f"learning_progress state needs '{key}' for {self.num_tasks} tasks")
        self.q = [float(v) for v in state["q"]]
        self.rewarded = [bool(v) for v in state["rewarded"]]
        self.last_loss = [float(v) for v in state["last_loss"]]
        self.has_last = [bool(v) for v in state["has_last"]]
