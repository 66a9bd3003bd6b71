"""Options built from the settings models, and the command class that adds them when first asked for.

SETTINGS_FLAGS (acct/config/flags.py) maps each training flag to the dotted TrainSettings field it
sets; the options take the field's description as their help: `acct train` and `acct ablate` take them (`TrainingFlags`) and read what
was given with `overrides(ctx)`, {dotted path: value or None}. `ScoringOptions` are the options
`acct evaluate`, `acct predict` and `acct inspect-confusion` share (checkpoint, batch size, device,
precision, data directory, --json, --code, --trust-remote-code), described and defaulted by the
command's own settings model; the command reads them with `scoring(ctx)`.

Typer builds each of these options from a plain declaration (name, type, typer.Option) exactly as
it builds a command's own parameters. `OptionsCommand` builds them the first time the command's
parameters are asked for, that is when the command runs or shows its --help: `acct --help` never
imports the settings models (pydantic) and stays fast.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer
from typer.core import TyperCommand

from acct import registry
from acct.cli._common import CODE_HELP, escape, eval_batch_alias
from acct.config.flags import SETTINGS_FLAGS, Flag

# Settings whose value is a registered name: their help lists the names (plugins' too, once imported).
REGISTERED = {"curriculum.strategy": "strategies", "data.source": "data_sources", "report_to": "trackers"}


def settings_model(name: str = "TrainSettings") -> Any:
    """A settings class of acct.config by name, imported only now (the import builds every settings model)."""
    from acct.config import commands, train

    return getattr(train, name, None) or getattr(commands, name)


def _field(path: str, model: Any = None) -> Any:
    model = settings_model() if model is None else model
    *parents, leaf = path.split(".")
    for p in parents:
        model = model.model_fields[p].annotation
    return model.model_fields[leaf]


def field_help(path: str, model: Any = None) -> str:
    """The description of a (dotted) field of `model` (TrainSettings by default), with its allowed values and default.

    Flags and settings share one text; the default is the field's own (a preset may change it).
    """
    model = settings_model() if model is None else model
    info = _field(path, model)
    text = info.description or ""
    extra = []
    literal = [a for a in (info.annotation, *typing.get_args(info.annotation)) if typing.get_origin(a) is typing.Literal]
    if literal:
        extra.append("one of: " + ", ".join(str(v) for v in typing.get_args(literal[0])))
    elif path in REGISTERED and model.__name__ == "TrainSettings":
        extra.append("one of: " + ", ".join(getattr(registry, REGISTERED[path]).names()))
    default = info.get_default(call_default_factory=True)
    if isinstance(default, list):  # a `many` flag: its default as it would be typed
        default = ",".join(map(str, default)) or "none"
    if default is not None and not isinstance(default, bool):
        extra.append(f"default: {default}")
    if extra:
        text += f" [{'; '.join(extra)}]"
    return escape(text)


def field_type(path: str, model: Any = None) -> type:
    """The type a flag parses to: the field's type without None; a Literal's values' type."""
    annotation = _field(path, model).annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            annotation = args[0]
    if typing.get_origin(annotation) is typing.Literal:
        return type(typing.get_args(annotation)[0])
    if annotation in (str, int, float, bool) or (isinstance(annotation, type) and issubclass(annotation, Path)):
        return annotation
    raise TypeError(f"setting {path} ({annotation}) cannot be a flag: give it a str, int, float, bool or Path type")


def param_name(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def typer_option(name: str, annotation: Any, info: Any) -> Any:
    """The option Typer makes of a command parameter declared as `name: annotation = info` (a typer.Option).

    Typer's own conversion, so that these options parse, coerce and show in --help exactly like the
    parameters a command declares itself.
    """
    from typer import main
    from typer.models import ParamMeta

    meta = ParamMeta(name=name, default=info, annotation=annotation)
    if hasattr(main, "_get_param"):  # recent Typer (0.29): the option coerces its own values
        return main._get_param(meta)
    # Older Typer (0.16): a click option and a convertor, which the settings models make unneeded
    # (pydantic coerces text to paths; Scoring does the same for --data-dir and --code).
    param, _convertor = main.get_click_param(meta)
    return param


class OptionSet:
    """Options a command gets from a table: their declarations, built only when the command asks."""

    def declarations(self) -> list[tuple[str, Any, Any]]:
        """(parameter name, annotation, typer.Option) of each option, in --help order."""
        raise NotImplementedError


class TrainingFlags(OptionSet):
    """The flags of SETTINGS_FLAGS (but `exclude`), each unset (None) by default, helped by its setting's description."""

    def __init__(self, exclude: Iterable[str] = (), table: dict[str, Flag] | None = None) -> None:
        table = SETTINGS_FLAGS if table is None else table
        unknown = set(exclude) - set(table)
        if unknown:
            raise ValueError(f"not in the flag table: {', '.join(sorted(unknown))}")
        self.chosen = {flag: entry for flag, entry in table.items() if flag not in set(exclude)}

    def declarations(self) -> list[tuple[str, Any, Any]]:
        out = []
        for flag, entry in self.chosen.items():
            decl = flag if entry.off is None else f"{flag}/{entry.off}"
            text = field_help(entry.path) + (" Repeatable, or a comma-separated list." if entry.many else "")
            annotation = Optional[list[str]] if entry.many else Optional[field_type(entry.path)]
            out.append((param_name(flag), annotation, typer.Option(None, decl, help=text, show_default=False)))
        return out

    def values(self, params: dict[str, Any]) -> dict[str, Any]:
        """{dotted path: value, None where the flag was not given} from the parsed parameters."""
        return {entry.path: flag_value(entry, params.get(param_name(flag))) for flag, entry in self.chosen.items()}


def flag_value(entry: Flag, value: Any) -> Any:
    """A flag's value as the settings take it: a `many` flag's values split at commas (None when not given)."""
    if not entry.many or value is None:
        return value
    items = [part.strip() for item in value for part in str(item).split(",") if part.strip()]
    return items or None


TRUST_HELP = ("Allow the checkpoint's encoder or tokenizer to run code it names (auto_map); off by default, never read "
              "from the run directory.")


@dataclass(frozen=True)
class Scoring:
    """What was given to the options a scoring command shares (None: not given, left to ACCT_* and the defaults)."""

    checkpoint: str | None
    batch_size: int | None  # --eval-batch-size, or its deprecated spelling --batch-size
    device: str | None
    precision: str | None
    data_dir: Path | None
    as_json: bool
    code: list[Path] | None
    trust_remote_code: bool
    takes_data_dir: bool = True

    def settings(self) -> dict[str, Any]:
        """The values as the command's settings model names them."""
        out = {"checkpoint": self.checkpoint, "batch_size": self.batch_size, "device": self.device,
               "precision": self.precision}
        if self.takes_data_dir:
            out["data_dir"] = self.data_dir
        return out


class ScoringOptions(OptionSet):
    """The options of a command that scores with a saved run, described and defaulted by its settings model.

    `settings` names the model in acct.config (EvaluateSettings, PredictSettings, InspectSettings);
    `data_dir` whether the command reads the run's data again (predict does not).
    """

    def __init__(self, settings: str, *, data_dir: bool = True) -> None:
        self.settings = settings
        self.data_dir = data_dir

    def declarations(self) -> list[tuple[str, Any, Any]]:
        model = settings_model(self.settings)

        def setting(name: str, flag: str) -> tuple[str, Any, Any]:
            return (param_name(flag), Optional[field_type(name, model)],
                    typer.Option(None, flag, help=field_help(name, model), show_default=False))

        out = [setting("checkpoint", "--checkpoint"), setting("batch_size", "--eval-batch-size"),
               ("batch_size", Optional[int],
                typer.Option(None, "--batch-size", hidden=True, help="Deprecated spelling of --eval-batch-size.")),
               setting("device", "--device"), setting("precision", "--precision")]
        if self.data_dir:
            out.append(setting("data_dir", "--data-dir"))
        out += [("as_json", bool, typer.Option(False, "--json", help="Print one JSON object on stdout and nothing else.")),
                ("code", Optional[list[Path]], typer.Option(None, "--code", help=CODE_HELP, show_default=False)),
                ("trust_remote_code", bool, typer.Option(False, "--trust-remote-code", help=TRUST_HELP))]
        return out

    def values(self, params: dict[str, Any]) -> Scoring:
        """The given values; the deprecated --batch-size is checked against --eval-batch-size here, with its notice."""
        data_dir, code = params.get("data_dir"), params.get("code")
        return Scoring(
            checkpoint=params.get("checkpoint"),
            batch_size=eval_batch_alias(params.get("eval_batch_size"), params.get("batch_size")),
            device=params.get("device"), precision=params.get("precision"),
            data_dir=None if data_dir is None else Path(data_dir),  # older Typer hands paths over as text
            as_json=bool(params.get("as_json")), code=[Path(p) for p in code] if code else None,
            trust_remote_code=bool(params.get("trust_remote_code")), takes_data_dir=self.data_dir,
        )


class OptionsCommand(TyperCommand):
    """A Typer command that also takes the options of its `option_sets`, built the first time they are needed.

    Typer and click ask a command for its parameters through `get_params` (to parse, to show --help);
    the added options come after the declared parameter named `after` (None: after the last one).
    The command function is called with its own parameters only and reads the added ones from its
    context: `overrides(ctx)`, `scoring(ctx)`.
    """

    option_sets: tuple[OptionSet, ...] = ()
    after: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._added: list[Any] | None = None

    def added_params(self) -> list[Any]:
        """The options of `option_sets`, built once (the same objects each time: click compares them)."""
        if self._added is None:
            added = [typer_option(*declared) for s in self.option_sets for declared in s.declarations()]
            names = [p.name for p in added]
            clash = (set(names) & {p.name for p in self.params}) | {n for n in names if names.count(n) > 1}
            if clash:
                raise TypeError(f"{self.name}: parameters declared twice: {', '.join(sorted(clash))}")
            self._added = added
        return self._added

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # the declared ones, then --help
        names = [p.name for p in self.params]
        at = names.index(self.after) + 1 if self.after is not None else len(self.params)
        return [*params[:at], *self.added_params(), *params[at:]]

    def invoke(self, ctx: Any) -> Any:
        # The added values stay in ctx.params (for the command to read); the function takes its own.
        added = {p.name for p in self.added_params()}
        if self.callback is None:
            return None
        return ctx.invoke(self.callback, **{k: v for k, v in ctx.params.items() if k not in added})


def _option_set(ctx: Any, kind: type) -> Any:
    for option_set in getattr(ctx.command, "option_sets", ()):
        if isinstance(option_set, kind):
            return option_set
    raise TypeError(f"{ctx.command.name} takes no {kind.__name__}: give its command class them in option_sets")


def overrides(ctx: Any) -> dict[str, Any]:
    """The training flags given to this command, as {dotted path: value, None where not given}."""
    return _option_set(ctx, TrainingFlags).values(ctx.params)


def scoring(ctx: Any) -> Scoring:
    """The shared scoring options given to this command (evaluate, predict, inspect-confusion)."""
    return _option_set(ctx, ScoringOptions).values(ctx.params)
