"""`uniform`, the former name of the `fixed` strategy, kept so that saved runs and configs still work."""

from __future__ import annotations

from acct.registry import register_strategy
from acct.strategies.fixed import Fixed


@register_strategy("uniform")
class Uniform(Fixed):
    """Deprecated name of fixed: samples from curriculum.prior (proportional by default), not equal task probabilities."""

    renamed_to = "fixed"
    # Shown once when a run or study chooses it. A run saved under this name keeps it (its settings
    # digest is unchanged), so it still loads, resumes and is reused by ablate.
    notice = ("strategy uniform is now called fixed: it samples from the prior (proportional by default); "
              "for equal task probabilities use prior uniform or the uniform_tasks arm")
