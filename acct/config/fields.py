"""What every settings model shares: the value types, the tiny-preset marker, the check of registered
names, and the refusal of non-finite numbers.
"""

from __future__ import annotations

import contextvars
import math
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationInfo,
    field_validator,
)

from acct import registry

Strategy = str  # a name registered in acct.registry.strategies
Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "bf16", "fp16", "fp32"]
CheckpointName = Literal["best", "last"]
EvalSplit = Literal["val", "test"]

TINY = "tiny"  # model / tokenizer value meaning "build the small offline one"

# Passed as validation context by `resolve`: names are checked against their registries when
# settings are resolved for a command, not when a saved run's config.json is read back (a run
# may name a plugin that the reading command does not need and so has not imported).
# (pydantic-settings' own __init__ drops a validation context on the way to nested sections, so
# `resolve` also sets this flag while it validates.)
CHECK_REGISTRIES = {"check_registries": True}
checking_registries: contextvars.ContextVar[bool] = contextvars.ContextVar("acct_check_registries", default=False)


def registered(reg: registry.Registry, value: Any, info: ValidationInfo) -> Any:
    if checking_registries.get() or (info.context and info.context.get("check_registries")):
        for name in value if isinstance(value, list) else [value]:
            reg.check(name)
    return value


def _non_finite(value: Any) -> bool:
    """Whether `value` holds a float that is inf or nan, however deep in lists and mappings."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_non_finite(v) for v in value)
    return False


class Finite:
    """Refuses inf and nan in every setting: config.json stores them as null, and the run could not be read back.

    Float fields refuse them through `allow_inf_nan=False` (every settings model's config); this
    validator covers what a float field does not: numbers inside options mappings and lists.
    """

    @field_validator("*", mode="after")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        if not isinstance(value, (float, BaseModel)) and _non_finite(value):
            raise ValueError("holds a number that is not finite (inf or nan); settings must be finite numbers")
        return value


class Section(Finite, BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

def section_model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
