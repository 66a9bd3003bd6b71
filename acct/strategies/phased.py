"""The `phased` strategy: task phases in a fixed order, as in task-phased fine-tuning curricula."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from acct.curriculum.curriculum import CurriculumStats
from acct.errors import UsageError
from acct.registry import register_strategy


def _phase_error(message: str) -> UsageError:
    return UsageError(f"phased: {message}")


@register_strategy("phased")
class Phased:
    """Ordered task phases (options.phases: [{tasks|categories, fraction}]), prior within a phase, options.replay on earlier ones."""

    # A fixed function of the step: used as given from the first batch, no warm-up or floor.
    schedule = True

    def __init__(self, tasks: Sequence[str], phases: Any = None, replay: float = 0.0) -> None:
        self.tasks = list(tasks)
        if not isinstance(phases, Sequence) or isinstance(phases, str) or not phases:
            raise _phase_error("options.phases must be a non-empty list of {tasks: [...] or categories: [...], fraction: F}")
        if isinstance(replay, bool) or not isinstance(replay, (int, float)) or not 0 <= replay < 1:
            raise _phase_error(f"replay must be a number in [0, 1), got {replay!r}")
        self.replay = float(replay)
        self.phases: list[tuple[str, list[str], float]] = []
        for i, phase in enumerate(phases):
            if not isinstance(phase, Mapping):
                raise _phase_error(f"phase {i + 1} must be a mapping, got {phase!r}")
            keys = set(phase)
            kinds = keys & {"tasks", "categories"}
            if len(kinds) != 1 or keys - {"tasks", "categories", "fraction"}:
                raise _phase_error(f"phase {i + 1} must have exactly one of 'tasks' or 'categories', and 'fraction'")
            kind = kinds.pop()
            names = phase[kind]
            if isinstance(names, str) or not isinstance(names, Sequence) or not names:
                raise _phase_error(f"phase {i + 1}: {kind} must be a non-empty list of names")
            fraction = phase.get("fraction")
            if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not fraction > 0:
                raise _phase_error(f"phase {i + 1}: fraction must be a positive number, got {fraction!r}")
            if kind == "tasks":
                unknown = sorted(set(map(str, names)) - set(self.tasks))
                if unknown:
                    raise _phase_error(f"phase {i + 1} names unknown task {unknown[0]!r}")
            self.phases.append((kind, [str(n) for n in names], float(fraction)))
        total = sum(f for _, _, f in self.phases)
        if abs(total - 1.0) > 1e-6:
            raise _phase_error(f"the phase fractions must sum to 1, got {total:g}")
        self._members: list[torch.Tensor] | None = None

    def members(self, categories: Sequence[str]) -> list[torch.Tensor]:
        """[T] bool mask of each phase's tasks; every task must be in some phase."""
        if self._members is None:
            masks = []
            for i, (kind, names, _) in enumerate(self.phases):
                labels = self.tasks if kind == "tasks" else list(categories)
                if kind == "categories":
                    unknown = sorted(set(names) - set(labels))
                    if unknown:
                        raise _phase_error(
                            f"phase {i + 1} names category {unknown[0]!r}, which no task has "
                            f"(categories: {', '.join(sorted(set(labels)))})"
                        )
                masks.append(torch.tensor([label in names for label in labels], dtype=torch.bool))
            covered = torch.stack(masks).any(dim=0)
            if not bool(covered.all()):
                missing = [t for t, c in zip(self.tasks, covered.tolist()) if not c]
                raise _phase_error(f"task {missing[0]!r} is in no phase ({len(missing)} tasks are); every task needs one")
            self._members = masks
        return self._members

    def boundaries(self, total_steps: int) -> list[int]:
        """The step at which each phase ends: round(cumulative fraction * total_steps); the last is total_steps."""
        ends, cumulative = [], 0.0
        for _, _, fraction in self.phases:
            cumulative += fraction
            ends.append(round(cumulative * total_steps))
        ends[-1] = total_steps
        return ends

    def phase_at(self, step: int, total_steps: int) -> int:
        """The phase of the batch drawn after `step` optimizer steps."""
        for index, end in enumerate(self.boundaries(total_steps)):
            if step < end:
                return index
        return len(self.phases) - 1

    def weights(self, stats: CurriculumStats) -> torch.Tensor:
        masks = self.members(stats.categories)
        k = self.phase_at(stats.step, stats.total_steps)
        prior = stats.prior_weights()
        current = masks[k]
        earlier = torch.zeros_like(current)
        for mask in masks[:k]:
            earlier |= mask
        earlier &= ~current
        w = torch.where(current, prior, torch.zeros_like(prior))
        if not float(w.sum()) > 0:
            raise _phase_error(f"phase {k + 1} has no task with training questions")
        w = w / w.sum()
        back = torch.where(earlier, prior, torch.zeros_like(prior))
        if self.replay > 0 and float(back.sum()) > 0:
            w = (1.0 - self.replay) * w + self.replay * back / back.sum()
        return w
