"""A study file: the named arms of an `acct ablate` study, each a settings layer over the base settings.

    # study.yaml
    arms:
      plain: {loss: {lambda_contrastive: 0.0}}
      lp_t1:
        curriculum: {strategy: learning_progress, options: {temperature: 1.0}}
        sweep: {curriculum.floor: [0.1, 0.3]}      # this arm's own grid (optional)
      full: {}                                     # a registered arm's name: starts from that arm
    sweep: {optim.lr: [1.0e-5, 3.0e-5]}            # every arm's grid (optional)
    reference: plain                               # optional; default the first arm

An arm's layer has the shape of a `--config` file and is merged over the base settings (preset,
`--config`, ACCT_* variables and flags). An arm named like a registered arm (`acct list`: baseline,
full, ...) starts from that arm's settings and adds its own layer on top, so `baseline: {}` means
plain multi-task fine-tuning, as `--arms baseline` does; any other name starts from the base
settings. The study decides where each run is written and with which seed, so an arm may not set
those. `sweep` (study-wide, and per arm) lists values of dotted settings to tune each arm over; an
arm's own sweep adds keys to the study-wide one or replaces the same keys (see acct/study/sweep.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acct.config.layers import read_yaml
from acct.config.resolve import check_sections, check_yaml_keys
from acct.config.train import TrainSettings
from acct.errors import UsageError
from acct.study.sweep import check

STUDY_KEYS = ("arms", "reference", "sweep")
# Settings a study decides for every run: an arm that set them would not be a comparison.
STUDY_OWNED = ("seed", "output_dir", "resume", "overwrite", "init_from")


@dataclass(frozen=True)
class StudyFile:
    """What a study file declares: its arms' settings layers in file order, reference and sweeps."""

    arms: list[tuple[str, dict[str, Any]]]
    reference: str | None = None
    sweep: dict[str, list[Any]] = field(default_factory=dict)  # study-wide
    arm_sweeps: dict[str, dict[str, list[Any]]] = field(default_factory=dict)


def read_study(path: Path) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
    """(name, settings layer) of each arm in file order, and the file's reference arm (or None)."""
    study = read_study_file(path)
    return study.arms, study.reference


def _sweep(value: Any, where: str) -> dict[str, list[Any]]:
    if not isinstance(value, dict):
        raise UsageError(f"{where}: sweep must be a mapping of dotted settings to lists of values, got {value!r}")
    return check(value, where)


def read_study_file(path: Path) -> StudyFile:
    """Every arm's settings layer (file order), the reference arm (or None), and the sweeps."""
    data = read_yaml(path)
    unknown = sorted(set(data) - set(STUDY_KEYS))
    if unknown:
        raise UsageError(f"{path}: unknown key {unknown[0]!r} in a study file (it takes {', '.join(STUDY_KEYS)})")
    arms = data.get("arms")
    if not isinstance(arms, dict) or not arms:
        raise UsageError(f"{path}: a study file needs `arms:`, a mapping of arm names to settings overrides")
    if len(arms) < 2:
        raise UsageError(f"{path}: a study compares at least two arms, got {', '.join(map(str, arms))}")
    out: list[tuple[str, dict[str, Any]]] = []
    arm_sweeps: dict[str, dict[str, list[Any]]] = {}
    for name, layer in arms.items():
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise UsageError(f"{path}: arm name {name!r} must be a word (letters, digits, _ or -): it names a run directory")
        layer = {} if layer is None else layer
        if not isinstance(layer, dict):
            raise UsageError(f"{path}: arm {name}: overrides must be a mapping of settings, got {type(layer).__name__}")
        layer = dict(layer)
        if "sweep" in layer:
            arm_sweeps[name] = _sweep(layer.pop("sweep"), f"{path}: arm {name}")
        owned = [key for key in STUDY_OWNED if key in layer]
        if owned:
            raise UsageError(f"{path}: arm {name} sets {owned[0]}, which the study decides for every run "
                             "(use --seed / --seeds / --output-dir)")
        model = layer.get("model")
        if isinstance(model, dict) and "trust_remote_code" in model:
            raise UsageError(f"{path}: arm {name} sets model.trust_remote_code; a study file cannot grant trust, and "
                             "every arm runs with the same: it comes only from the person running the command "
                             "(acct ablate --trust-remote-code, or ACCT_MODEL__TRUST_REMOTE_CODE=1)")
        check_yaml_keys(layer, Path(f"{path} (arm {name})"))

        check_sections(TrainSettings, layer, where=f"{path}, arm {name}")
        out.append((name, layer))
    reference = data.get("reference")
    if reference is not None and reference not in arms:
        raise UsageError(f"{path}: reference {reference!r} is not one of its arms ({', '.join(arms)})")
    sweep = _sweep(data["sweep"], str(path)) if data.get("sweep") is not None else {}
    return StudyFile(out, reference, sweep, arm_sweeps)
