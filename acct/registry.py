"""Named extension points: one `Registry` per kind of component a run is assembled from.

A registry maps a name to a component (a class or a function). acct's own components are
declared here by import path and imported only when one is looked up, so that resolving
settings or printing `--help` imports no torch (nor a tracker's library); a plugin registers
with the kind's decorator (`acct.curriculum.register_strategy`, `acct.losses.register_task_weighting`,
`acct.trackers.register_tracker`, ...), which is the same `Registry.register` as below. The
contracts of the kinds are in docs/extending.md.

This module imports nothing heavy.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from acct.errors import UsageError


class Registry:
    """Names of one kind of component, each with its one-line description."""

    def __init__(self, kind: str, builtins: dict[str, str]) -> None:
        self.kind = kind
        # name -> "module:attribute" of a built-in not imported yet
        self._lazy: dict[str, str] = dict(builtins)
        self._items: dict[str, Any] = {}

    def register(self, name: str, obj: Any = None) -> Any:
        """Register `obj` under `name`; without `obj`, return a decorator that does."""
        if obj is None:
            return lambda target: self.register(name, target)
        if not isinstance(name, str) or not name or not name.replace("_", "").replace("-", "").isalnum():
            raise UsageError(f"{self.kind} name {name!r} must be a non-empty word (letters, digits, _ or -)")
        current = self._items.get(name)
        builtin = self._lazy.get(name)
        if builtin is not None and f"{obj.__module__}:{obj.__name__}" != builtin:
            raise UsageError(f"{self.kind} {name!r} is one of acct's own; register yours under another name")
        if current is not None and current is not obj and _qualname(current) != _qualname(obj):
            raise UsageError(f"{self.kind} {name!r} is already registered (by {_qualname(current)})")
        self._items[name] = obj
        try:
            obj.registry_name = name
        except (AttributeError, TypeError):
            pass
        return obj

    def names(self) -> list[str]:
        """Every registered name: acct's own first (in declaration order), then plugins'."""
        return list(self._lazy) + [n for n in self._items if n not in self._lazy]

    def __contains__(self, name: object) -> bool:
        return name in self._lazy or name in self._items

    def get(self, name: str) -> Any:
        """The component registered as `name`, importing a built-in on first use."""
        if name not in self._items:
            path = self._lazy.get(name)
            if path is None:
                raise UsageError(self.unknown(name))
            module, _, attr = path.partition(":")
            importlib.import_module(module)  # the module registers itself
            if name not in self._items:
                self.register(name, getattr(importlib.import_module(module), attr))
        return self._items[name]

    def find(self, name: Any) -> Any:
        """The component registered as `name`, or None for a name not registered (or not imported, a plugin's)."""
        return self.get(name) if isinstance(name, str) and name in self else None

    def unknown(self, name: str) -> str:
        return f"unknown {self.kind} {name!r}; registered: {', '.join(self.names())}"

    def check(self, name: str) -> str:
        """`name` when it is registered; otherwise a ValueError that lists the registered names."""
        if name not in self:
            raise ValueError(self.unknown(name))
        return name

    def describe(self, name: str) -> str:
        """The first line of the component's docstring."""
        doc = (getattr(self.get(name), "__doc__", None) or "").strip()
        return doc.splitlines()[0].strip() if doc else ""


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


strategies = Registry(
    "strategy",
    {
        "fixed": "acct.strategies.fixed:Fixed",
        "difficulty": "acct.strategies.difficulty:Difficulty",
        "uncertainty_gradient": "acct.strategies.uncertainty_gradient:UncertaintyGradient",
        "proportional": "acct.strategies.proportional:Proportional",
        "temperature": "acct.strategies.temperature:Temperature",
        "learning_progress": "acct.strategies.learning_progress:LearningProgress",
        "phased": "acct.strategies.phased:Phased",
        "uniform": "acct.strategies.uniform:Uniform",  # the former name of fixed
    },
)
task_weightings = Registry(
    "task loss weighting",
    {
        "equal": "acct.weightings:EqualTaskWeighting",
        "dwa": "acct.weightings_dwa:DynamicWeightAverage",
        "uncertainty": "acct.weightings_uncertainty:UncertaintyWeighting",
    },
)
gradients = Registry(
    "gradient aggregation",
    {
        "mean": "acct.gradients:MeanGradient",
        "pcgrad": "acct.gradients:PCGradGradient",
        "upgrad": "acct.gradients:UPGradGradient",
    },
)
anchor_weightings = Registry(
    "anchor weighting",
    {"entropy": "acct.weightings:EntropyAnchorWeighting", "uniform": "acct.weightings:UniformAnchorWeighting"},
)
data_sources = Registry(
    "data source",
    {
        "hub": "acct.data.sources:HubSource",
        "csv": "acct.data.sources:CsvSource",
        "files": "acct.data.files:FilesSource",
        "synthetic": "acct.data.sources:SyntheticSource",
    },
)
ablation_arms = Registry(
    "ablation arm",
    {
        "baseline": "acct.study.builtin_arms:baseline",
        "contrastive": "acct.study.builtin_arms:contrastive",
        "full": "acct.study.builtin_arms:full",
        "uniform_tasks": "acct.study.builtin_arms:uniform_tasks",
        "temperature": "acct.study.builtin_arms:temperature",
        "learning_progress": "acct.study.builtin_arms:learning_progress",
        "phased": "acct.study.builtin_arms:phased",
        "dwa": "acct.study.builtin_arms:dwa",
        "infonce_unweighted": "acct.study.builtin_arms:infonce_unweighted",
        "uncertainty_weighting": "acct.study.builtin_arms:uncertainty_weighting",
        "pcgrad": "acct.study.builtin_arms:pcgrad",
        "upgrad": "acct.study.builtin_arms:upgrad",
    },
)

trackers = Registry(
    "tracker",
    {
        "tensorboard": "acct.trackers.tensorboard:TensorBoardTracker",
        "trackio": "acct.trackers.trackio:TrackioTracker",
        "wandb": "acct.trackers.wandb:WandbTracker",
        "mlflow": "acct.trackers.mlflow:MlflowTracker",
    },
)

REGISTRIES: dict[str, Registry] = {
    "strategies": strategies,
    "task_weightings": task_weightings,
    "anchor_weightings": anchor_weightings,
    "gradients": gradients,
    "data_sources": data_sources,
    "ablation_arms": ablation_arms,
    "trackers": trackers,
}

register_strategy: Callable[..., Any] = strategies.register
register_task_weighting: Callable[..., Any] = task_weightings.register
register_anchor_weighting: Callable[..., Any] = anchor_weightings.register
register_gradient: Callable[..., Any] = gradients.register
register_data_source: Callable[..., Any] = data_sources.register
register_ablation_arm: Callable[..., Any] = ablation_arms.register
register_tracker: Callable[..., Any] = trackers.register
