"""The training flags `acct train` and `acct ablate` share, declared once.

SETTINGS_FLAGS maps each flag to the dotted TrainSettings field it sets. `settings_flags` turns the
table into Typer options on a command: the command declares one parameter, `overrides`, where the
options go in --help, and receives {dotted path: value or None} in it. A flag added to the table
reaches every command built from it, with the field's description as its help.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer

from acct.cli._common import escape
from acct.config import FLAG_NAMES, TrainSettings


@dataclass(frozen=True)
class Flag:
    """One training flag: the settings field it sets and, for a boolean, the flag that sets it to False.

    A `many` flag is a list of strings: repeatable, and each value may itself be a comma-separated list.
    """

    path: str
    off: str | None = None
    many: bool = False


# flag -> setting; the order is the order of --help.
SETTINGS_FLAGS: dict[str, Flag] = {
    "--strategy": Flag("curriculum.strategy"),
    "--model": Flag("model.name_or_path"),
    "--tokenizer": Flag("model.tokenizer"),
    "--data-source": Flag("data.source"),
    "--data-dir": Flag("data.data_dir"),
    "--data-files": Flag("data.files", many=True),
    "--data-format": Flag("data.files_format"),
    "--hub-dataset": Flag("data.hub_dataset"),
    "--hub-config": Flag("data.hub_config"),
    "--question-column": Flag("data.question_column"),
    "--choices-column": Flag("data.choices_column"),
    "--choice-columns": Flag("data.choice_columns", many=True),
    "--answer-column": Flag("data.answer_column"),
    "--task-column": Flag("data.task_column"),
    "--category-column": Flag("data.category_column"),
    "--protocol": Flag("data.protocol"),
    "--allow-overlap": Flag("data.allow_overlap"),
    "--output-dir": Flag("output_dir"),
    "--init-from": Flag("init_from"),
    "--max-steps": Flag("optim.max_steps"),
    "--epochs": Flag("optim.epochs"),
    "--lr": Flag("optim.lr"),
    "--batch-size": Flag("batch.batch_size"),
    "--grad-accum-steps": Flag("batch.grad_accum_steps"),
    "--tasks-per-batch": Flag("batch.tasks_per_batch"),
    "--examples-per-task": Flag("batch.examples_per_task"),
    "--group-by-length": Flag("batch.group_by_length", off="--no-group-by-length"),
    "--max-length": Flag("model.max_length"),
    "--lambda-contrastive": Flag("loss.lambda_contrastive"),
    "--gather-negatives": Flag("loss.gather_negatives"),
    "--seed": Flag("seed"),
    "--device": Flag("device"),
    "--precision": Flag("precision"),
    "--eval-every-n-steps": Flag("eval_every_n_steps"),
    "--patience": Flag("patience"),
    "--save-every-n-steps": Flag("save_every_n_steps"),
    "--report-to": Flag("report_to", many=True),
    "--deterministic": Flag("deterministic"),
    "--tf32": Flag("tf32", off="--no-tf32"),
}


# Settings whose value is a registered name: their help lists the names (plugins' too, once imported).
REGISTERED = {"curriculum.strategy": "strategies", "data.source": "data_sources", "report_to": "trackers"}


def _field(path: str) -> Any:
    model: Any = TrainSettings
    *parents, leaf = path.split(".")
    for p in parents:
        model = model.model_fields[p].annotation
    return model.model_fields[leaf]


def field_help(path: str) -> str:
    """The description of a (dotted) TrainSettings field, with its allowed values and default.

    Flags and settings share one text; the default is the field's own (a preset may change it).
    """
    info = _field(path)
    text = info.description or ""
    extra = []
    literal = [a for a in (info.annotation, *typing.get_args(info.annotation)) if typing.get_origin(a) is typing.Literal]
    if literal:
        extra.append("one of: " + ", ".join(str(v) for v in typing.get_args(literal[0])))
    elif path in REGISTERED:
        from acct import registry

        extra.append("one of: " + ", ".join(getattr(registry, REGISTERED[path]).names()))
    default = info.get_default(call_default_factory=True)
    if isinstance(default, list):  # a `many` flag: its default as it would be typed
        default = ",".join(map(str, default)) or "none"
    if default is not None and not isinstance(default, bool):
        extra.append(f"default: {default}")
    if extra:
        text += f" [{'; '.join(extra)}]"
    return escape(text)


def field_type(path: str) -> type:
    """The type a flag parses to: the field's type without None; a Literal's values' type."""
    annotation = _field(path).annotation
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


def settings_option(flag: str, table: dict[str, Flag] | None = None) -> Any:
    """A Typer option for one flag of the table, unset by default, with the setting's own description."""
    entry = (SETTINGS_FLAGS if table is None else table)[flag]
    decl = flag if entry.off is None else f"{flag}/{entry.off}"
    text = field_help(entry.path) + (" Repeatable, or a comma-separated list." if entry.many else "")
    return typer.Option(None, decl, help=text, show_default=False)


def flag_annotation(entry: Flag) -> Any:
    """The type Typer parses a flag to: a list of strings for a `many` flag, else the field's own type."""
    return Optional[list[str]] if entry.many else Optional[field_type(entry.path)]


def flag_value(entry: Flag, value: Any) -> Any:
    """A flag's value as the settings take it: a `many` flag's values split at commas (None when not given)."""
    if not entry.many or value is None:
        return value
    items = [part.strip() for item in value for part in str(item).split(",") if part.strip()]
    return items or None


def settings_flags(exclude: Iterable[str] = (), table: dict[str, Flag] | None = None) -> Callable[[Callable[..., Any]], Any]:
    """Give a command every flag of the table (but `exclude`) as options, in place of its `overrides` parameter.

    The command is called with overrides={dotted path: value, None where the flag was not given}.
    """
    table = SETTINGS_FLAGS if table is None else table
    excluded = set(exclude)
    unknown = excluded - set(table)
    if unknown:
        raise ValueError(f"not in the flag table: {', '.join(sorted(unknown))}")
    chosen = {flag: entry for flag, entry in table.items() if flag not in excluded}
    FLAG_NAMES.update({entry.path: flag for flag, entry in table.items()})

    def decorate(fn: Callable[..., Any]) -> Any:
        signature = inspect.signature(fn, eval_str=True)
        if "overrides" not in signature.parameters:
            raise TypeError(f"{fn.__name__} needs an `overrides` parameter where the training flags go")
        names = {param_name(flag): flag for flag in chosen}
        clash = set(names) & (set(signature.parameters) - {"overrides"})
        if clash:
            raise TypeError(f"{fn.__name__} already has parameters {', '.join(sorted(clash))}")
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=settings_option(flag, table),
                              annotation=flag_annotation(chosen[flag]))
            for name, flag in names.items()
        ]
        params: list[inspect.Parameter] = []
        for p in signature.parameters.values():
            if p.name == "overrides":
                params.extend(added)
            else:
                params.append(p.replace(kind=inspect.Parameter.KEYWORD_ONLY))

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            overrides = {chosen[flag].path: flag_value(chosen[flag], kwargs.pop(name, None)) for name, flag in names.items()}
            return fn(**kwargs, overrides=overrides)

        command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        if signature.return_annotation is not inspect.Signature.empty:
            command.__annotations__["return"] = signature.return_annotation
        return command

    return decorate
