"""Named extension points: one `Registry` per kind of component a run is assembled from.

A registry maps a name to a component (a class or a function). acct's own components live one per
file in the kind's package (`acct/strategies/`, `acct/weightings/`, `acct/anchors/`,
`acct/gradients/`, `acct/data/sources/`, `acct/study/arms/`, `acct/trackers/`): the file's name is
the registered name, and the file registers it with the kind's decorator. That file is the one
place a built-in is declared: the registry lists the package's modules without importing them, and
imports one only when its component is looked up, so that resolving settings or printing `--help`
imports no torch (nor a tracker's library). A plugin registers with the same decorator
(`acct.curriculum.register_strategy`, `acct.losses.register_task_weighting`,
`acct.trackers.register_tracker`, ...). The contracts of the kinds are in docs/extending.md.

This module imports nothing heavy.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Callable
from typing import Any

from acct.errors import UsageError


class Registry:
    """Names of one kind of component, each with its one-line description."""

    def __init__(self, kind: str, package: str) -> None:
        self.kind = kind
        self.package = package  # acct's own components: one module per name in this package
        self._builtins: dict[str, str] | None = None
        self._items: dict[str, Any] = {}

    @property
    def _lazy(self) -> dict[str, str]:
        """Built-in name -> its module, listed once from the package's files (nothing is imported but the parents)."""
        if self._builtins is None:
            spec = importlib.util.find_spec(self.package)
            paths = list(spec.submodule_search_locations or []) if spec is not None else []
            names = sorted(m.name for m in pkgutil.iter_modules(paths) if not m.name.startswith("_"))
            self._builtins = {name: f"{self.package}.{name}" for name in names}
        return self._builtins

    def register(self, name: str, obj: Any = None) -> Any:
        """Register `obj` under `name`; without `obj`, return a decorator that does."""
        if obj is None:
            return lambda target: self.register(name, target)
        if not isinstance(name, str) or not name or not name.replace("_", "").replace("-", "").isalnum():
            raise UsageError(f"{self.kind} name {name!r} must be a non-empty word (letters, digits, _ or -)")
        current = self._items.get(name)
        builtin = self._lazy.get(name)
        if builtin is not None and getattr(obj, "__module__", None) != builtin:
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
        """Every registered name: acct's own first (alphabetically), then plugins' (in registration order)."""
        return list(self._lazy) + [n for n in self._items if n not in self._lazy]

    def __contains__(self, name: object) -> bool:
        return name in self._lazy or name in self._items

    def get(self, name: str) -> Any:
        """The component registered as `name`, importing a built-in's module on first use."""
        if name not in self._items:
            module = self._lazy.get(name)
            if module is None:
                raise UsageError(self.unknown(name))
            importlib.import_module(module)  # the module registers itself
            if name not in self._items:
                raise UsageError(f"{module} registers no {self.kind} named {name!r}")
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


strategies = Registry("strategy", "acct.strategies")
task_weightings = Registry("task loss weighting", "acct.weightings")
gradients = Registry("gradient aggregation", "acct.gradients")
anchor_weightings = Registry("anchor weighting", "acct.anchors")
data_sources = Registry("data source", "acct.data.sources")
ablation_arms = Registry("ablation arm", "acct.study.arms")
trackers = Registry("tracker", "acct.trackers")

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
