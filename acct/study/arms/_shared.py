"""What several built-in arms share: the check that the base settings have a contrastive loss, and
the baseline layer with sections merged over it.
"""

from __future__ import annotations

from typing import Any

from acct.errors import UsageError
from acct.study.arms.baseline import baseline


def needs_contrastive(base: Any) -> None:
    if base.loss.lambda_contrastive <= 0:
        raise UsageError(
            "the contrastive and full configurations need lambda_contrastive > 0 in the base settings "
            "(it is 0 here, which would make them the baseline)"
        )


def plus_baseline(base: Any, **sections: dict[str, Any]) -> dict[str, Any]:
    """The baseline layer with `sections` merged over it, section by section."""
    layer = baseline(base)
    for section, values in sections.items():
        layer[section] = {**layer.get(section, {}), **values}
    return layer
