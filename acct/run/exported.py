"""The folder `acct export` writes, read back: its file names and format, and `load_export`, which
rebuilds it as a `LoadedRun` so that evaluate and predict take an exported folder like a run.

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

from pathlib import Path
from typing import Any

from acct.config.train import TrainSettings
from acct.data.tokenize import load_tokenizer
from acct.errors import CheckpointError
from acct.model.encoder import HeadConfig, MultipleChoiceModel, encoder_from_config_dir
from acct.run.loaded import LoadedRun
from acct.train.data import task_categories

FORMAT = "acct-export"
FORMAT_VERSION = 1
ENCODER_DIR = "encoder"
HEADS_FILE = "acct_heads.safetensors"
CONFIG_FILE = "acct_config.json"
SPLIT_FILE = "acct_split.json"


def is_export_dir(path: Path) -> bool:
    return (Path(path) / CONFIG_FILE).is_file()


def read_config(path: Path) -> dict[str, Any]:
    from acct.run import checkpoint as ckpt_io

    return ckpt_io.read_described(path, CONFIG_FILE, "exported model description", fmt=FORMAT,
                                  version=FORMAT_VERSION, kind="export", required=("tasks", "head", "settings"))


def load_export(path: Path, device: Any = None) -> Any:
    """An exported folder rebuilt as an `LoadedRun` (its own directory stands for the run's)."""
    from acct.run import checkpoint as ckpt_io

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
    return LoadedRun(
        run_dir=path,
        checkpoint=path,
        settings=settings,
        meta={"step": config.get("source", {}).get("step"), **config},
        tasks=tasks,
        categories=config.get("task_categories") or task_categories(tasks),
        tokenizer=tokenizer,
        model=model,
        split_manifest=path / SPLIT_FILE,
    )
