"""The model card of an exported folder: what the encoder was trained on and from, the protocol and
how its accuracies compare, the evaluations the run recorded, and how to load it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from acct.config.fields import TINY
from acct.data.sources import hub_dataset
from acct.model.encoder import WEIGHT_FILES
from acct.registry import data_sources
from acct.run.exported import CONFIG_FILE, SPLIT_FILE


def read_evaluations(run_dir: Path) -> dict[str, Any]:
    """The results `acct evaluate` wrote to the run directory (eval-val.json, eval-test.json)."""
    found: dict[str, Any] = {}
    for split in ("val", "test"):
        path = Path(run_dir) / f"eval-{split}.json"
        try:
            found[split] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return found


def encoder_origin(settings: dict[str, Any], depth: int = 0) -> tuple[str | None, bool | None, str]:
    """(base model hub id or None, random init? (None: unknown), one sentence) for a run's encoder."""
    model = settings.get("model", {})
    init_from = settings.get("init_from")
    if init_from:
        source = Path(str(init_from).rsplit(":", 1)[0] if str(init_from).endswith((":best", ":last")) else str(init_from))
        inner = None
        if depth < 5:
            for cfg, key in ((source / CONFIG_FILE, "settings"), (source / "config.json", None)):
                try:
                    data = json.loads(cfg.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                inner = data.get(key) if key else (data if "model" in data else None)
                break
        if inner is None:
            if any((source / f).exists() for f in WEIGHT_FILES):
                return None, False, f"The encoder was initialised from the Hugging Face encoder in `{source}`."
            return None, None, f"The run started from the weights of `{init_from}`, which is no longer readable: its origin is unknown."
        base, random, sentence = encoder_origin(inner, depth + 1)
        return base, random, f"The run started from the weights of `{init_from}`. {sentence}"
    name = str(model.get("name_or_path", ""))
    if name == TINY:
        return None, True, ("The encoder is a tiny DebertaV2 initialised with **random weights**: it was not "
                            "pretrained, and everything it knows comes from this run's training data.")
    local = Path(name)
    if local.is_dir() and (local / "config.json").is_file() and not any((local / f).exists() for f in WEIGHT_FILES):
        return None, True, (f"The encoder was built from the configuration in `{name}` with **random weights**: "
                            "it was not pretrained.")
    if local.is_absolute() or local.exists() or name.startswith("."):
        return None, False, f"The encoder was loaded from the local directory `{name}`."
    return name, False, f"The encoder was fine-tuned from [{name}](https://huggingface.co/{name})."


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * float(x):.2f}%"


def _protocol_text(settings: dict[str, Any]) -> str:
    data = settings.get("data", {})
    source, protocol = data.get("source"), data.get("protocol")
    # What the card says of the data is asked of the source's class (a plugin's may not be loaded).
    cls = data_sources.find(source)
    if getattr(cls, "card_data", None) is not None:
        return cls.card_data(settings)
    mmlu = bool(getattr(cls, "is_mmlu", lambda data: False)(data))
    where = cls.card_where(data) if getattr(cls, "card_where", None) is not None else f"the data source {source!r}"
    if protocol == "standard":
        if mmlu:
            return (f"Data: {where}, standard protocol: trained on auxiliary_train + dev, validated on val, tested on "
                    "MMLU's own test split.")
        return f"Data: {where}, standard protocol: trained on its train split, validated on validation, tested on test."
    if not mmlu:
        return (f"Data: {where}, subject-split protocol: pooled, shuffled with seed {settings.get('seed')} and split "
                f"{data.get('split_fractions')} per task. **These accuracies are not comparable to results on the "
                f"dataset's own test split** (different test items); the split manifest is `{SPLIT_FILE}`.")
    return (f"Data: {where}, subject-split protocol: dev + val + test of each subject pooled, shuffled with seed "
            f"{settings.get('seed')} and split {data.get('split_fractions')} per subject. **These accuracies are not "
            "comparable to the MMLU leaderboard** (different test items, fewer of them); the split manifest is "
            f"`{SPLIT_FILE}`.")


# How to load the exported folder: the same for every card.
USE_LINES = [
    "The encoder alone, with transformers (task embedding and heads are acct's):",
    "",
    "```python",
    "from transformers import AutoModel, AutoTokenizer",
    'encoder = AutoModel.from_pretrained("PATH_OR_REPO", subfolder="encoder")',
    'tokenizer = AutoTokenizer.from_pretrained("PATH_OR_REPO", subfolder="encoder")',
    "```",
    "",
    "The whole model, with acct (a local folder):",
    "",
    "```bash",
    "acct predict OUT_DIR --question \"...\" --choices A B C D --task TASK",
    "acct evaluate OUT_DIR --split test   # where the run's data can be read",
    "```",
]


def model_card(config: dict[str, Any]) -> str:
    """The README.md of an exported folder, written from the folder's config (`config`)."""
    import yaml

    settings = config["settings"]
    base, random, origin = encoder_origin(settings)
    src = config["source"]
    lines = [
        "---",
        yaml.safe_dump(_card_metadata(settings, base), sort_keys=False).rstrip(),
        "---",
        "",
        "# acct multiple-choice model",
        "",
        f"Exported by acct {config['acct_version']} from checkpoint `{src['checkpoint']}` (step {src['step']}) "
        f"of the run `{Path(src['run_dir']).name}`.",
        "",
        "## Encoder",
        "",
        origin,
    ]
    if random:
        lines += ["", "> **Random-init encoder.** Do not read these results as those of a pretrained model."]
    lines += _tasks_section(config)
    lines += _evaluation_section(config)
    lines += [
        "",
        "## Use",
        "",
        *USE_LINES,
        "",
        "## Settings",
        "",
        "```yaml",
        yaml.safe_dump(settings, sort_keys=False).rstrip(),
        "```",
    ]
    prov = config.get("provenance")
    if prov:
        lines += ["", "## Provenance", "", "```yaml", yaml.safe_dump(prov, sort_keys=False).rstrip(), "```"]
    return "\n".join(lines) + "\n"


def _card_metadata(settings: dict[str, Any], base: str | None) -> dict[str, Any]:
    """The card's YAML front matter: library, tags, base model and dataset where known, metric."""
    data = settings.get("data", {})
    meta: dict[str, Any] = {"library_name": "transformers", "tags": ["acct", "multiple-choice"]}
    if base:
        meta["base_model"] = base
    hub = hub_dataset(data)
    if hub is not None and hub[0]:
        meta["datasets"] = [hub[0]]
    meta["metrics"] = ["accuracy"]
    return meta


def _tasks_section(config: dict[str, Any]) -> list[str]:
    """The table of tasks in the order of the task embedding's rows."""
    tasks = list(config["tasks"])
    categories = config.get("task_categories", {})
    return [
        "",
        "## Tasks",
        "",
        f"{len(tasks)} tasks (the order of the rows of the task embedding):",
        "",
        "| # | task | category |",
        "|---:|---|---|",
        *[f"| {i} | {t} | {categories.get(t, 'other')} |" for i, t in enumerate(tasks)],
    ]


def _evaluation_section(config: dict[str, Any]) -> list[str]:
    """The protocol, then the accuracies `acct evaluate` recorded and the one at the exported step."""
    src = config["source"]
    lines = [
        "",
        "## Evaluation",
        "",
        _protocol_text(config["settings"]),
        "",
        "| split | questions | accuracy | macro accuracy | chance | majority baseline |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    evaluations = config.get("evaluations") or {}
    for split, r in evaluations.items():
        lines.append(f"| {split} | {r.get('n', '-')} | {_pct(r.get('accuracy'))} | {_pct(r.get('macro_accuracy'))} | "
                     f"{_pct(r.get('chance'))} | {_pct(r.get('majority_baseline'))} |")
    if src.get("val_accuracy") is not None:
        lines.append(f"| val (at the exported step) | - | {_pct(src['val_accuracy'])} | - | - | - |")
    if not evaluations and src.get("val_accuracy") is None:
        lines.append("| - | - | - | - | - | - |")
    lines += [
        "",
        "Rows `val` and `test` are the results `acct evaluate` wrote to the run directory before the export "
        "(with the checkpoint it was asked for); none are listed when it was not run.",
    ]
    return lines
