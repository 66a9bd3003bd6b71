"""How settings resolve: defaults < preset < YAML file < ``ACCT_*`` environment variables (nested
with ``__``, e.g. ``ACCT_OPTIM__LR``) < command-line flags, and validation errors worded as one
line that names the flag, the YAML key or the variable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ValidationError,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
)

from acct.config.environment import check_no_trust_granted, env_trusts_remote_code
from acct.config.fields import CHECK_REGISTRIES, checking_registries, section_model
from acct.config.flags import SETTINGS_FLAGS
from acct.config.layers import PRESETS, deep_merge, read_yaml
from acct.config.train import TrainSettings
from acct.errors import UsageError


def flag_names() -> dict[str, str]:
    """Dotted field path -> the `acct train` flag that sets it, for error messages: the CLI's flag table."""
    return {entry.path: flag for flag, entry in SETTINGS_FLAGS.items()}


# Flags spelled otherwise than their setting, by (settings class name, field): --eval-batch-size
# sets `acct evaluate`'s batch_size.
_FLAG_SPELLINGS = {("EvaluateSettings", "batch_size"): "--eval-batch-size"}


def _flag_of(cls: type[BaseModel] | None, path: str) -> str:
    if cls is not None and (cls.__name__, path) in _FLAG_SPELLINGS:
        return _FLAG_SPELLINGS[(cls.__name__, path)]
    if cls is None or cls.__name__ == "TrainSettings" or "." in path:
        return flag_names().get(path) or "--" + path.rsplit(".", 1)[-1].replace("_", "-")
    return "--" + path.replace("_", "-")


def _dotted_keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in tree.items():
        out.add(prefix + key)
        if isinstance(value, dict):
            out |= _dotted_keys(value, f"{prefix}{key}.")
    return out


def format_validation_error(
    exc: ValidationError, *, flags: set[str] | None = None, cls: type[BaseModel] | None = None
) -> str:
    """One line per problem: the field path, the flag or variable that sets it, the message.

    `flags` are the dotted settings the user gave as command-line flags (of settings class `cls`):
    a problem there names the flag the user typed, not the variable that could also set it."""
    parts = []
    whole = True  # every problem is about the settings as a whole (a check across fields)
    for err in exc.errors():
        msg = err["msg"]
        if err["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting"
        path = ".".join(str(p) for p in err["loc"] if not isinstance(p, int))
        if not path or (err["type"] == "value_error" and path in _sections()):
            parts.append(msg)  # a check across the fields of the settings or of one section
            continue
        whole = False
        env = "ACCT_" + path.upper().replace(".", "__")
        if flags is not None and path in flags:
            where = _flag_of(cls, path)
        else:
            flag = flag_names().get(path)
            where = f"{flag} / {env}" if flag and (cls is None or cls.__name__ == "TrainSettings") else env
        parts.append(f"{path} ({where}): {msg}")
    return "; ".join(parts) if whole else "invalid settings: " + "; ".join(parts)


def _sections() -> set[str]:
    return {name for name in _dotted_fields(TrainSettings) if any(f.startswith(name + ".") for f in _dotted_fields(TrainSettings))}


def _dotted_fields(model: Any, prefix: str = "") -> list[str]:
    names = []
    for name, info in model.model_fields.items():
        names.append(prefix + name)
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            names.extend(_dotted_fields(info.annotation, f"{prefix}{name}."))
    return names


def check_yaml_keys(data: dict[str, Any], path: Path) -> None:
    """Refuse an unknown key of a settings file, naming the file and the closest known key."""
    import difflib

    known = _dotted_fields(TrainSettings)

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            if dotted not in known:
                close = difflib.get_close_matches(dotted, known, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise UsageError(f"{path}: unknown setting {dotted}{hint}")
            if isinstance(value, dict) and any(k.startswith(dotted + ".") for k in known):
                walk(value, dotted + ".")

    walk(data, "")


def resolve(cls: type[BaseSettings], flags: dict[str, Any], *, layers: list[dict[str, Any]] = ()) -> Any:
    """Build `cls` from lower layers (preset, YAML), the environment and the flags, in that order."""
    base = deep_merge(*layers)

    def sources(_cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        return (init_settings, env_settings, InitSettingsSource(settings_cls, base))

    layered = type(cls.__name__, (cls,), {"settings_customise_sources": classmethod(sources)})
    try:
        resolved = layered(**flags)
        # Re-validating as the plain class does not read the environment again.
        token = checking_registries.set(True)
        try:
            return cls.model_validate(resolved.model_dump(), context=CHECK_REGISTRIES)
        finally:
            checking_registries.reset(token)
    except ValidationError as exc:
        raise UsageError(format_validation_error(exc, flags=_dotted_keys(flags), cls=cls)) from None


def validate_checked(cls: type[BaseModel], data: dict[str, Any]) -> Any:
    """`cls` validated from `data` with registered names checked; one UsageError line if invalid."""
    token = checking_registries.set(True)
    try:
        return cls.model_validate(data, context=CHECK_REGISTRIES)
    except ValidationError as exc:
        raise UsageError(format_validation_error(exc)) from None
    finally:
        checking_registries.reset(token)


def resolve_train(
    flags: dict[str, Any], *, preset: str | None = None, config_file: Path | None = None
) -> TrainSettings:
    layers: list[dict[str, Any]] = []
    if preset is not None:
        if preset not in PRESETS:
            raise UsageError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        layers.append(PRESETS[preset])
    if config_file is not None:
        layer = read_yaml(config_file)
        check_sections(TrainSettings, layer, where=str(config_file))
        check_yaml_keys(layer, config_file)
        given = flags.get("model", {}).get("trust_remote_code") if isinstance(flags.get("model"), dict) else None
        check_no_trust_granted(layer, str(config_file), trusted=bool(given) or env_trusts_remote_code())
        layers.append(layer)
    settings = resolve(TrainSettings, flags, layers=layers)
    if settings.init_from is not None and not settings.resume:
        check_one_encoder(flags, layers[-1] if config_file is not None else {}, config_file)
    if settings.output_dir is None and preset not in (None, "default"):
        # `acct train --preset tiny` writes runs/tiny-seed0, the path the docs use.
        settings = settings.model_copy(update={"output_dir": Path("runs") / f"{preset}-seed{settings.seed}"})
    return settings


def check_one_encoder(flags: dict[str, Any], layer: dict[str, Any], config_file: Path | None) -> None:
    """Refuse --init-from together with an encoder the user named (--model, model.name_or_path in the
    YAML file, ACCT_MODEL__NAME_OR_PATH): the run takes the encoder from the source, and the other
    would be ignored without a word. A preset's model does not count: it is not the user's choice."""
    named = []
    if isinstance(flags.get("model"), dict) and flags["model"].get("name_or_path") is not None:
        named.append(flag_names().get("model.name_or_path", "--model"))
    if isinstance(layer.get("model"), dict) and layer["model"].get("name_or_path") is not None:
        named.append(f"model.name_or_path in {config_file}")
    if any(var.upper() == "ACCT_MODEL__NAME_OR_PATH" for var in os.environ):
        named.append("ACCT_MODEL__NAME_OR_PATH")
    if named:
        raise UsageError(
            f"--init-from takes the encoder (and its tokenizer) from its source, so {named[0]} would be ignored; "
            "give one of them: --init-from SOURCE to start from another run's or an encoder's weights, or the "
            "encoder alone"
        )


def check_sections(cls: type[BaseModel], layer: dict[str, Any], *, where: str, prefix: str = "") -> None:
    """Refuse a section (e.g. `optim:`) given as anything but a mapping.

    Checked on the file itself: once merged with flags that set a field of the section, a list
    or a scalar would be replaced by the flags' mapping, silently dropping the file's values.
    """
    for key, value in layer.items():
        info = cls.model_fields.get(key)
        section = section_model(info.annotation) if info is not None else None
        if section is None:
            continue
        path = f"{prefix}{key}"
        if not isinstance(value, dict):
            kind = "nothing" if value is None else f"a {type(value).__name__}"
            raise UsageError(
                f"invalid settings: {path} (in {where}): a section must be a mapping of settings "
                f"(e.g. {key}: {{name: value}}), got {kind}"
            )
        check_sections(section, value, where=where, prefix=f"{path}.")


def resolve_flags(cls: type[BaseSettings], flags: dict[str, Any]) -> Any:
    """Resolve a command's settings from its flags, leaving unset (None) flags to env and defaults."""
    return resolve(cls, {k: v for k, v in flags.items() if v is not None})
