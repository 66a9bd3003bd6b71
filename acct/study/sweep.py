"""Equal-budget tuning in a study: each arm's grid of settings points, and the point its validation picks.

A sweep is a mapping from a dotted training setting (`optim.lr`, `curriculum.alpha`, ...) to the
values to try; the grid is the product of the sweeps. An arm trains at every point of its grid and
every seed, and the point with the best mean validation accuracy over seeds is the arm's selected
point: the test comparison uses that point only, so the test split never chooses anything.
No torch.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from acct.errors import UsageError

# Settings a study decides for every run, which no sweep may vary.
NOT_SWEPT = ("seed", "output_dir", "resume", "overwrite", "init_from", "device", "plugins", "report_to")

Point = tuple[tuple[str, Any], ...]


def parse_flag(text: str) -> tuple[str, list[Any]]:
    """`KEY=V1,V2,...` -> (KEY, [V1, V2, ...]); each value read as YAML (numbers, booleans, words)."""
    import yaml

    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not key or not values.strip():
        raise UsageError(f"--sweep {text!r}: give KEY=V1,V2,... (for example --sweep optim.lr=1e-5,3e-5)")
    parsed = []
    for raw in values.split(","):
        raw = raw.strip()
        if not raw:
            raise UsageError(f"--sweep {text!r}: an empty value")
        parsed.append(_value(raw, yaml))
    return key, parsed


def _value(raw: str, yaml: Any) -> Any:
    """A number where the text is one (1e-4 included, which YAML 1.1 reads as a word), else what YAML reads."""
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def check(sweep: Mapping[str, Any], where: str) -> dict[str, list[Any]]:
    """A sweep as {dotted key: [distinct values]}, refused with one line when it cannot be a grid."""
    out: dict[str, list[Any]] = {}
    for key, values in sweep.items():
        if not isinstance(key, str) or not key:
            raise UsageError(f"{where}: a sweep key must be a dotted setting name, got {key!r}")
        if key.split(".")[0] in NOT_SWEPT:
            raise UsageError(f"{where}: {key} cannot be swept; the study decides it for every run")
        if not isinstance(values, list) or not values:
            raise UsageError(f"{where}: sweep {key} needs a list of values, got {values!r}")
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise UsageError(f"{where}: sweep {key} has the non-finite value {v}")
            if isinstance(v, (dict, list)):
                raise UsageError(f"{where}: sweep {key} values must be single values, got {v!r}")
        if len({json.dumps(v) for v in values}) != len(values):
            raise UsageError(f"{where}: sweep {key} lists a value twice")
        out[key] = list(values)
    return out


def combine(study_wide: Mapping[str, list[Any]], arm: Mapping[str, list[Any]]) -> dict[str, list[Any]]:
    """An arm's sweep: the study-wide one, with the arm's own keys added or replacing the same keys."""
    return {**study_wide, **arm}


def grid(sweep: Mapping[str, list[Any]]) -> list[Point]:
    """Every point of the sweep's grid, in the order given (the first value of the first key varies slowest)."""
    keys = list(sweep)
    return [tuple(zip(keys, values)) for values in itertools.product(*(sweep[k] for k in keys))]


def layer(point: Point) -> dict[str, Any]:
    """A point as a nested settings layer."""
    out: dict[str, Any] = {}
    for key, value in point:
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def label(point: Point) -> str:
    """A point as a run-directory fragment: `optim.lr=3e-05-loss.tau=0.1` (empty for no sweep)."""
    parts = []
    for key, value in point:
        text = value if isinstance(value, str) else json.dumps(value)
        parts.append(f"{key}={text}".replace("/", "_").replace(" ", "_"))
    return "-".join(parts)


def as_dict(point: Point) -> dict[str, Any]:
    return dict(point)


def select(validation: Mapping[Point, Sequence[float | None]], *, where: str) -> Point:
    """The point with the best mean validation accuracy over seeds; ties go to the earlier point in the grid.

    Every point must have a validation accuracy on every seed: selecting on part of the seeds would
    favour the points that happened to finish.
    """
    best: tuple[float, Point] | None = None
    for point, values in validation.items():
        if not values or any(v is None for v in values):
            raise UsageError(f"{where}: point {label(point) or '(base)'} has no validation accuracy on every seed; "
                             "it cannot be compared with the others")
        mean = math.fsum(values) / len(values)
        if best is None or mean > best[0]:
            best = (mean, point)
    if best is None:
        raise UsageError(f"{where}: no point to select from")
    return best[1]
