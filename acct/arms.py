"""acct's own ablation arms: the three configurations of the study behind its claim.

Contract of an arm (docs/extending.md): a function registered with
`acct.ablation.register_ablation_arm`, called as `arm(base)` with the study's base
`TrainSettings`, returning the settings layer (a nested mapping) that turns the base into the
arm's configuration; its docstring's first line describes it. `baseline` is the reference
every other arm is compared with. Arms run in registration order: acct's own first.
"""

from __future__ import annotations

from typing import Any

from acct.errors import UsageError
from acct.registry import register_ablation_arm


def _needs_contrastive(base: Any) -> None:
    if base.loss.lambda_contrastive <= 0:
        raise UsageError(
            "the contrastive and full configurations need lambda_contrastive > 0 in the base settings "
            "(it is 0 here, which would make them the baseline)"
        )


@register_ablation_arm("baseline")
def baseline(base: Any) -> dict[str, Any]:
    """lambda_contrastive = 0, uniform task sampling: plain multi-task fine-tuning (the reference)."""
    return {"loss": {"lambda_contrastive": 0.0}, "curriculum": {"strategy": "uniform"}}


@register_ablation_arm("contrastive")
def contrastive(base: Any) -> dict[str, Any]:
    """The base settings' InfoNCE weight, uniform task sampling: the auxiliary loss alone."""
    _needs_contrastive(base)
    return {"curriculum": {"strategy": "uniform"}}


@register_ablation_arm("full")
def full(base: Any) -> dict[str, Any]:
    """The base settings' InfoNCE weight with the uncertainty_gradient curriculum: the whole method."""
    _needs_contrastive(base)
    return {"curriculum": {"strategy": "uncertainty_gradient"}}
