"""The arms of a study as settings layers over one base `TrainSettings`, each with the grid it is
tuned over, and the digest and differences of the settings a run was trained with.

- baseline:    lambda_contrastive = 0, tasks drawn from the prior (plain multi-task fine-tuning)
- contrastive: lambda_contrastive from the base settings (0.3 by default), tasks from the prior
- full:        lambda_contrastive as above, uncertainty_gradient curriculum

The first arm is the reference of every comparison.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acct.config.commands import DEFAULT_ARMS, AblateSettings
from acct.config.layers import deep_merge, flatten
from acct.config.resolve import validate_checked
from acct.config.train import TrainSettings, field_defaults
from acct.errors import UsageError
from acct.registry import (
    ablation_arms,
    anchor_weightings,
    task_weightings,
)
from acct.study.study_file import read_study_file
from acct.study.sweep import combine, grid
from acct.study.sweep import layer as point_layer

# a finished run is reused even if they changed. (Nor is the provenance block saved beside them.)
_NOT_COMPARED = ("output_dir", "overwrite", "resume", "device", "log_every_n_steps", "save_every_n_steps", "provenance",
                 "report_to")

def describe(settings: TrainSettings) -> str:
    """What a configuration's run trains with, in the study's own terms."""
    loss = settings.loss
    text = f"lambda_con = {loss.lambda_contrastive:g}, {settings.curriculum.strategy} sampling"
    text += f" over the {settings.curriculum.prior} prior"
    if not getattr(task_weightings.get(loss.task_weighting), "neutral", False):
        text += f", {loss.task_weighting} task-loss weighting"
    if loss.lambda_contrastive > 0 and not getattr(anchor_weightings.get(loss.anchor_weighting), "neutral", False):
        text += f", {loss.anchor_weighting} anchor weighting"
    return text


def registered_layer(name: str, base: TrainSettings) -> dict[str, Any]:
    """The settings layer that turns the base settings into the registered arm `name`."""
    if name not in ablation_arms:
        raise UsageError(f"unknown ablation arm {name!r}; choose from {', '.join(ablation_arms.names())}")
    return ablation_arms.get(name)(base)


@dataclass(frozen=True)
class Arm:
    """One arm of a study: its name, the settings layer that turns the base settings into it, and the
    grid it is tuned over (`acct.study.sweep`; empty: one point, the layer as it is)."""

    name: str
    overrides: dict[str, Any]
    sweep: dict[str, list[Any]] = field(default_factory=dict)

    def points(self) -> list[tuple[tuple[str, Any], ...]]:
        return grid(self.sweep) if self.sweep else [()]


def default_arms(base: TrainSettings, names: Sequence[str] = DEFAULT_ARMS) -> list[Arm]:
    """Registered arms by name (by default the method's baseline / contrastive / full), in that order."""
    return [Arm(name, registered_layer(name, base)) for name in names]


def study_arms(settings: AblateSettings, base: TrainSettings) -> list[Arm]:
    """The study's arms, the reference first: a study file's (`--study`) or registered ones (`--arms`).

    Each arm's settings are validated here, before anything trains, so that a wrong value in
    one arm is one line naming the arm.
    """
    if settings.study is not None:
        study = read_study_file(settings.study)
        study_wide = combine(study.sweep, settings.sweep)
        # An arm named like a registered arm starts from it; any other name from the base settings.
        arms = [Arm(name, deep_merge(registered_layer(name, base), layer) if name in ablation_arms else layer,
                    combine(study_wide, study.arm_sweeps.get(name, {})))
                for name, layer in study.arms]
        file_reference, where = study.reference, f"{settings.study}: "
    else:
        arms = [Arm(a.name, a.overrides, dict(settings.sweep)) for a in default_arms(base, settings.arms)]
        file_reference, where = None, ""
    names = [a.name for a in arms]
    reference = settings.reference or file_reference or names[0]
    if reference not in names:
        raise UsageError(f"--reference {reference}: not one of the study's arms ({', '.join(names)})")
    arms.sort(key=lambda a: a.name != reference)  # stable: the others keep their order
    for arm in arms:
        for point in arm.points():
            try:
                arm_settings(base, arm, base.seed, Path(settings.output_dir) / arm.name, point)
            except UsageError as exc:
                at = f" at {pairs_text(point)}" if point else ""
                raise UsageError(f"{where}arm {arm.name}{at}: {exc}") from None
    return arms


def pairs_text(point: Sequence[tuple[str, Any]]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point)


def arm_settings(base: TrainSettings, arm: Arm, seed: int, run_dir: Path,
                 point: Sequence[tuple[str, Any]] = ()) -> TrainSettings:
    """Base settings with the arm's overrides at one point of its grid, the seed and the run directory."""

    layer = deep_merge(deep_merge(arm.overrides, point_layer(tuple(point))),
                       {"seed": seed, "output_dir": str(run_dir), "resume": False, "overwrite": False})
    merged = deep_merge(json.loads(base.model_dump_json()), layer)
    return validate_checked(TrainSettings, merged)


def registered_arm_settings(base: TrainSettings, name: str, seed: int, run_dir: Path) -> TrainSettings:
    """Base settings with the registered arm `name`'s layer, the seed and the run directory."""
    return arm_settings(base, Arm(name, registered_layer(name, base)), seed, run_dir)


def comparable(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k not in _NOT_COMPARED}


def settings_digest(settings: TrainSettings) -> str:
    text = json.dumps(comparable(json.loads(settings.model_dump_json())), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()




def settings_differences(saved: dict[str, Any], wanted: TrainSettings) -> list[str]:
    """Dotted names of the training settings that differ between a saved run and the wanted one.

    A setting added to acct after the run was saved is absent from its config.json: it counts as
    unchanged while it has the value that means the behaviour of then (as on --resume).
    """
    from acct.run.rundir import LEGACY_DEFAULTS

    a = flatten(comparable(saved))
    b = flatten(comparable(json.loads(wanted.model_dump_json())))
    defaults = field_defaults()
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k)
                  and not (k not in a and b.get(k) == LEGACY_DEFAULTS.get(k, defaults.get(k, object()))))
