"""The layers settings resolve from besides flags and the environment: the tiny preset, YAML files
(duplicate keys refused), deep merges and dotted keys.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from acct.config.fields import TINY
from acct.errors import UsageError


def tiny_preset() -> dict[str, Any]:
    """Offline, CPU-sized: a random-init tiny DebertaV2 learning the synthetic suite in about a minute."""
    return {
        "model": {"name_or_path": TINY, "tokenizer": TINY, "max_length": 64, "projection_dim": 64},
        "data": {"source": "synthetic"},
        "curriculum": {"update_every_n_steps": 20, "warmup_epochs": 1.0},
        "optim": {"lr": 3e-3, "weight_decay": 0.01, "warmup_ratio": 0.05, "epochs": 6},
        "batch": {"eval_batch_size": 128},
        "patience": 4,
    }


PRESETS: dict[str, dict[str, Any]] = {
    "default": {},  # the field defaults are the real job: DeBERTa-v3-base on cais/mmlu
    "tiny": tiny_preset(),
}


def deep_merge(*layers: dict[str, Any]) -> dict[str, Any]:
    """Merge nested dicts; later layers win key by key."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = deep_merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping of a YAML file names one key twice (PyYAML would keep the last silently)."""


class UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping: a study's arm or a setting
    written twice would otherwise run only its second definition, without a word."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *base` merges another mapping; its keys may be overridden
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = first_line.get(key)
                except TypeError:  # an unhashable key: the base loader says so
                    continue
                line = key_node.start_mark.line + 1
                if seen is not None:
                    raise DuplicateKeyError(None, None, f"key {key!r} is given twice (lines {seen} and {line})",
                                            key_node.start_mark)
                first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a settings or study file with the safe loader (keys given twice refused); one clear error
    for every way it can be wrong. Every YAML file a user hands acct is read here."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read config file {path}: {exc}") from None
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506  a SafeLoader subclass
    except DuplicateKeyError as exc:
        raise UsageError(f"{path}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise UsageError(f"malformed YAML in {path}{where}: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"config file {path} must hold a mapping of settings, not {type(data).__name__}")
    return data


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Turn {'optim.lr': 1e-3} into {'optim': {'lr': 1e-3}}, dropping unset (None) values."""
    out: dict[str, Any] = {}
    for dotted, value in flat.items():
        if value is None:
            continue
        node = out
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """The inverse of `nest`: {'optim': {'lr': 1e-3}} -> {'optim.lr': 1e-3} (a leaf keeps its dotted path)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else k))
    return out
