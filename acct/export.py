"""`acct export`: a run's checkpoint as a Hugging Face-native folder, with a model card.

An exported folder holds::

    encoder/                  the encoder, written by save_pretrained (config.json, model.safetensors)
                              and the tokenizer: AutoModel/AutoTokenizer.from_pretrained(OUT_DIR/encoder)
    acct_heads.safetensors    task embedding, score head and projection head
    acct_config.json          format, task list, categories, head configuration, tokenizer location,
                              the run's settings and provenance, where it was exported from
    acct_split.json           the run's split manifest, so `acct evaluate` can rebuild its held-out split
    README.md                 the model card

Only safetensors and JSON: nothing in the folder is executed or unpickled when acct loads it,
and remote code is never trusted, whatever the exported settings say.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acct import __version__
from acct.config import TINY, TrainSettings
from acct.errors import AcctError, CheckpointError, UsageError

FORMAT = "acct-export"
FORMAT_VERSION = 1
ENCODER_DIR = "encoder"
HEADS_FILE = "acct_heads.safetensors"
CONFIG_FILE = "acct_config.json"
SPLIT_FILE = "acct_split.json"


def is_export_dir(path: Path) -> bool:
    return (Path(path) / CONFIG_FILE).is_file()


@dataclass
class Exported:
    out_dir: Path
    checkpoint: Path
    step: int
    files: list[str]


# -- writing --------------------------------------------------------------------------------------


def export_run(run_dir: Path, out_dir: Path, which: str = "best") -> Exported:
    """Write checkpoint `which` of `run_dir` to `out_dir` (which must not exist or be empty)."""
    import torch

    from acct import checkpoint as ckpt_io
    from acct import engine

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if is_export_dir(run_dir):
        raise UsageError(f"{run_dir} is already an exported folder; export a run directory")
    run = engine.load_run(run_dir, which, torch.device("cpu"))
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UsageError(f"{out_dir} already exists and is not an empty directory; choose a new OUT_DIR")
    if out_dir.resolve().is_relative_to(run_dir.resolve()):
        raise UsageError(f"{out_dir} is inside the run directory {run_dir}; choose an OUT_DIR outside it")
    saved = ckpt_io.read_json(run_dir / "config.json", "run settings")
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    with terminated_as_error(), _removed_at_exit(tmp):
        _write_export(run, run_dir, out_dir, tmp, which, saved)
    files = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file())
    return Exported(out_dir, run.checkpoint, int(run.meta["step"]), files)


class Terminated(AcctError):
    """SIGTERM arrived while acct wrote something it must not leave half-written."""

    exit_code = 143  # 128 + SIGTERM, what a shell reports for a process it terminated


@contextlib.contextmanager
def terminated_as_error() -> Iterator[None]:
    """SIGTERM raises `Terminated` in the main thread while the block runs, so that its cleanup
    (`finally`) runs: the default action would end the process at once, leaving the temporary folder."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        raise Terminated("terminated (SIGTERM) during the export; no partial folder is left behind")

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _removed_at_exit(tmp: Path) -> Iterator[None]:
    try:
        yield
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_export(run: Any, run_dir: Path, out_dir: Path, tmp: Path, which: str, saved: Any) -> None:
    """Write the export into `tmp`, then move it to `out_dir` in one rename."""
    from safetensors.torch import save_file

    from acct import checkpoint as ckpt_io
    from acct.model import quiet_loading
    from acct.provenance import KEY

    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        with quiet_loading():
            run.model.encoder.save_pretrained(str(tmp / ENCODER_DIR), safe_serialization=True)
        run.tokenizer.save_pretrained(str(tmp / ENCODER_DIR))
        heads = {k: v for k, v in ckpt_io.model_state(run.model).items() if not k.startswith("encoder.")}
        save_file(heads, str(tmp / HEADS_FILE), metadata={"format": "pt"})
        shutil.copyfile(run_dir / "split.json", tmp / SPLIT_FILE)
        evaluations = read_evaluations(run_dir)
        config = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "acct_version": __version__,
            "tasks": run.tasks,
            "task_categories": run.categories,
            "head": run.meta["head"],
            "encoder": ENCODER_DIR,
            "tokenizer": ENCODER_DIR,
            "max_length": run.settings.model.max_length,
            "source": {
                "run_dir": str(run_dir.resolve()),
                "checkpoint": which,
                "step": run.meta["step"],
                "val_accuracy": run.meta.get("val_accuracy"),
            },
            "evaluations": evaluations,
            "settings": json.loads(run.settings.model_dump_json()),
            "provenance": saved.get(KEY) if isinstance(saved, dict) else None,
        }
        ckpt_io.write_json(tmp / CONFIG_FILE, config)
        (tmp / "README.md").write_text(model_card(config), encoding="utf-8")
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except OSError as exc:
        raise UsageError(f"cannot write {out_dir}: {exc.strerror or exc}") from None


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


# -- the model card -------------------------------------------------------------------------------


def encoder_origin(settings: dict[str, Any], depth: int = 0) -> tuple[str | None, bool | None, str]:
    """(base model hub id or None, random init? (None: unknown), one sentence) for a run's encoder."""
    from acct.model import WEIGHT_FILES

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
    from acct.registry import data_sources

    data = settings.get("data", {})
    source, protocol = data.get("source"), data.get("protocol")
    # What the card says of the data is asked of the source's class (a plugin's may not be loaded).
    cls = data_sources.get(source) if isinstance(source, str) and source in data_sources else None
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


def model_card(config: dict[str, Any]) -> str:
    import yaml

    settings = config["settings"]
    data = settings.get("data", {})
    base, random, origin = encoder_origin(settings)
    meta: dict[str, Any] = {"library_name": "transformers", "tags": ["acct", "multiple-choice"]}
    if base:
        meta["base_model"] = base
    if data.get("source") == "hub" and data.get("hub_dataset"):
        meta["datasets"] = [data["hub_dataset"]]
    meta["metrics"] = ["accuracy"]
    tasks = list(config["tasks"])
    categories = config.get("task_categories", {})
    src = config["source"]
    lines = [
        "---",
        yaml.safe_dump(meta, sort_keys=False).rstrip(),
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
    lines += [
        "",
        "## Tasks",
        "",
        f"{len(tasks)} tasks (the order of the rows of the task embedding):",
        "",
        "| # | task | category |",
        "|---:|---|---|",
        *[f"| {i} | {t} | {categories.get(t, 'other')} |" for i, t in enumerate(tasks)],
        "",
        "## Evaluation",
        "",
        _protocol_text(settings),
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
    lines += [
        "",
        "## Use",
        "",
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


# -- reading --------------------------------------------------------------------------------------


def read_config(path: Path) -> dict[str, Any]:
    from acct import checkpoint as ckpt_io

    return ckpt_io.read_described(path, CONFIG_FILE, "exported model description", fmt=FORMAT,
                                  version=FORMAT_VERSION, kind="export", required=("tasks", "head", "settings"))


def load_export(path: Path, device: Any = None) -> Any:
    """An exported folder rebuilt as an `engine.LoadedRun` (its own directory stands for the run's)."""
    from acct import checkpoint as ckpt_io
    from acct import engine
    from acct.model import HeadConfig, MultipleChoiceModel, encoder_from_config_dir
    from acct.tokenize import load_tokenizer

    path = Path(path)
    config = read_config(path)
    try:
        settings = TrainSettings.model_validate(config["settings"])
        head = HeadConfig(**config["head"])
    except Exception as exc:
        raise CheckpointError(f"{path}/{CONFIG_FILE} holds unreadable settings: {str(exc).splitlines()[0]}") from None
    # Remote code is never run from an artifact, whatever its settings say.
    settings = settings.model_copy(update={"model": settings.model.model_copy(update={"trust_remote_code": False})})
    tasks = list(config["tasks"])
    if head.num_tasks != len(tasks):
        raise CheckpointError(f"{path}: head has {head.num_tasks} tasks but the task list has {len(tasks)}")
    encoder_dir = path / config.get("encoder", ENCODER_DIR)
    if not (encoder_dir / "config.json").is_file():
        raise CheckpointError(f"{path} has no {ENCODER_DIR}/config.json")
    tokenizer = load_tokenizer(str(path / config.get("tokenizer", ENCODER_DIR)))
    encoder = encoder_from_config_dir(encoder_dir, trust_remote_code=False)
    model = MultipleChoiceModel(encoder, head, attention_backend=settings.model.attention, device=device)
    tensors = {f"encoder.{k}": v for k, v in ckpt_io.read_tensors(encoder_dir / "model.safetensors").items()}
    tensors.update(ckpt_io.read_tensors(path / HEADS_FILE))
    ckpt_io.load_state_strict(model, tensors, path)
    if device is not None:
        model.to(device)
    model.eval()
    return engine.LoadedRun(
        run_dir=path,
        checkpoint=path,
        settings=settings,
        meta={"step": config.get("source", {}).get("step"), **config},
        tasks=tasks,
        categories=config.get("task_categories") or engine.task_categories(tasks),
        tokenizer=tokenizer,
        model=model,
        split_manifest=path / SPLIT_FILE,
    )


# -- the hub --------------------------------------------------------------------------------------


def push_to_hub(folder: Path, repo_id: str, *, private: bool = False) -> str:
    """Upload an exported folder to a model repository on the hub (created if needed); returns its URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(folder),
                          commit_message=f"acct export of {folder.name}")
    except Exception as exc:  # network, authentication and hub errors all arrive as different types
        raise AcctError(f"cannot push {folder} to the hub repository {repo_id}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; "
                        "the exported folder is complete, push it again later") from None
    return str(url)
