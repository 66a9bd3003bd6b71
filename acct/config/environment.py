"""The ``ACCT_*`` environment: the variables acct reads outside the settings models, the warning for
one that matches no setting, and trust in remote code, which only the environment or a flag grants.
"""

from __future__ import annotations

import difflib
import os
from typing import Any

from pydantic import (
    BaseModel,
)

from acct.config.commands import (
    AblateSettings,
    EvaluateSettings,
    InspectSettings,
    PredictSettings,
)
from acct.config.fields import section_model
from acct.config.train import TrainSettings
from acct.errors import UsageError

TRUST_ENV = "ACCT_MODEL__TRUST_REMOTE_CODE"


def env_trusts_remote_code() -> bool:
    """Whether the person running the command set ACCT_MODEL__TRUST_REMOTE_CODE to a true value."""
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes", "on", "y", "t")


def check_no_trust_granted(layer: dict[str, Any], where: str, *, trusted: bool = False) -> None:
    """Refuse a file that grants `model.trust_remote_code`: trust comes only from the person running
    the command (--trust-remote-code or ACCT_MODEL__TRUST_REMOTE_CODE), never from a file someone
    may have handed them. A file may repeat trust the user gave (`trusted`), or say false."""
    model = layer.get("model")
    value = model.get("trust_remote_code") if isinstance(model, dict) else None
    if value is None or value is False or trusted:
        return
    raise UsageError(
        f"{where}: model.trust_remote_code is set in a file, which cannot grant trust: trust comes only from the "
        f"person running the command; remove it and pass --trust-remote-code (or set {TRUST_ENV}=1)"
    )


# ACCT_* variables read outside the settings models.
OTHER_ENV_VARS = ("ACCT_DEBUG", "ACCT_CACHE_DIR", "ACCT_DEBUG_RANK_DIR", "ACCT_DIST_TIMEOUT_S", "ACCT_CODE")


def known_env_vars() -> set[str]:
    """Every ACCT_* variable some command reads: each settings field (and section) of every command."""
    names = set(OTHER_ENV_VARS)

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            var = f"{prefix}{name.upper()}"
            names.add(var)
            section = section_model(info.annotation)
            if section is not None:
                walk(section, var + "__")

    for cls in (TrainSettings, EvaluateSettings, PredictSettings, AblateSettings, InspectSettings):
        walk(cls, "ACCT_")
    return names


def unknown_env_warnings(environ: dict[str, str] | None = None) -> list[str]:
    """One warning per ACCT_* variable that no command reads, naming the closest real one."""
    environ = dict(os.environ) if environ is None else environ
    known = known_env_vars()
    warnings = []
    for var in sorted(environ):
        upper = var.upper()  # pydantic-settings matches names case-insensitively
        if not upper.startswith("ACCT_") or upper in known:
            continue
        squashed = upper.replace("_", "")
        same = sorted(k for k in known if k.replace("_", "") == squashed)
        close = same or difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.75)
        hint = f"did you mean {close[0]}?" if close else "settings are ACCT_SECTION__FIELD, e.g. ACCT_OPTIM__LR"
        warnings.append(f"environment variable {var} matches no setting and is ignored; {hint}")
    return warnings


def debug_enabled() -> bool:
    return os.environ.get("ACCT_DEBUG", "") not in ("", "0", "false", "False")
