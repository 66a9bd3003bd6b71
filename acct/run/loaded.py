"""`LoadedRun`: a checkpoint (of a run or an exported folder) rebuilt for inference."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acct.config.train import TrainSettings
from acct.data.tokenize import pad_id as tokenizer_pad_id
from acct.model.encoder import MultipleChoiceModel


@dataclass
class LoadedRun:
    """A checkpoint rebuilt for inference, with what is needed to read its data."""

    run_dir: Path
    checkpoint: Path
    settings: TrainSettings
    meta: dict[str, Any]
    tasks: list[str]
    categories: dict[str, str]
    tokenizer: Any
    model: MultipleChoiceModel
    split_manifest: Path | None = None  # default: RUN_DIR/split.json

    @property
    def pad_id(self) -> int:
        return tokenizer_pad_id(self.tokenizer)
