"""`acct train --init-from SOURCE`: start a new run from the weights of another.

SOURCE is one of:

- a run directory, `RUN_DIR` or `RUN_DIR:best|last` (default best): its encoder, tokenizer and heads;
- a folder written by `acct export`: the same;
- a Hugging Face encoder directory (config.json with weights): the encoder, and its tokenizer
  when the directory holds one.

The new run has its own settings, data and run directory; only weights are taken. Task
embedding rows are copied by task name: a task of the new run that the source also trained
starts from its row, a new task from a fresh row, and the run's notices name both groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from acct.config.fields import TINY
from acct.config.train import ModelSettings
from acct.data.tokenize import load_tokenizer
from acct.errors import CheckpointError, UsageError
from acct.model.encoder import WEIGHT_FILES, MultipleChoiceModel, quiet_loading
from acct.run import checkpoint as ckpt_io
from acct.run import exported as export

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "spm.model", "vocab.json", "sentencepiece.bpe.model")


def parse(spec: str) -> tuple[Path, str | None]:
    """`PATH[:best|last]` -> (path, checkpoint name or None when not given)."""
    for which in ("best", "last"):
        if spec.endswith(f":{which}"):
            return Path(spec[: -len(which) - 1]), which
    return Path(spec), None


@dataclass
class InitSource:
    spec: str
    kind: str  # "run", "export" or "encoder"
    encoder_dir: Path  # holds the encoder's config.json
    tokenizer_dir: Path | None
    encoder_state: dict[str, torch.Tensor] | None  # None: from_pretrained(encoder_dir)
    heads: dict[str, torch.Tensor]  # task_embedding.weight, scorer.*, projector.* (empty for an encoder)
    tasks: list[str]

    def describe(self) -> str:
        return {"run": "run checkpoint", "export": "exported model", "encoder": "Hugging Face encoder"}[self.kind]

    def build_encoder(self, model: ModelSettings, vocab_size: int) -> tuple[torch.nn.Module, list[str]]:
        """The source's encoder, its weights loaded. Remote code never runs from an acct run or export; from a
        Hugging Face encoder directory only with --trust-remote-code."""
        from transformers import AutoModel

        overrides = {} if model.dropout is None else {
            "hidden_dropout_prob": model.dropout, "attention_probs_dropout_prob": model.dropout}
        if self.encoder_state is None:
            try:
                with quiet_loading():
                    encoder = AutoModel.from_pretrained(
                        str(self.encoder_dir), dtype=torch.float32,
                        trust_remote_code=self.kind == "encoder" and model.trust_remote_code, **overrides,
                    )
            except Exception as exc:
                raise UsageError(f"--init-from {self.spec}: cannot load the encoder: {str(exc).splitlines()[0]}") from None
        else:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(str(self.encoder_dir), trust_remote_code=False, **overrides)
            encoder = AutoModel.from_config(config, trust_remote_code=False, dtype=torch.float32)
            ckpt_io.load_state_strict(encoder, self.encoder_state, self.encoder_dir.parent)
        notices = [f"init-from: encoder from the {self.describe()} {self.spec}"]
        current = encoder.get_input_embeddings().num_embeddings
        if vocab_size > current:
            encoder.resize_token_embeddings(vocab_size)
            notices.append(f"model: token embeddings resized from {current} to {vocab_size} to fit the tokenizer")
        return encoder, notices

    def apply_heads(self, model: MultipleChoiceModel, tasks: list[str]) -> list[str]:
        """Copy the heads and the task rows of tasks the source knows by name; say which tasks are new."""
        if self.kind == "encoder":
            return ["init-from: the task embedding and heads start fresh (the source is an encoder only)"]
        notices = []
        for name in ("scorer", "projector"):
            module = getattr(model, name)
            wanted = {k: v for k, v in self.heads.items() if k.startswith(f"{name}.")}
            stripped = {k[len(name) + 1:]: v for k, v in wanted.items()}
            own = module.state_dict()
            if stripped.keys() == own.keys() and all(own[k].shape == stripped[k].shape for k in own):
                module.load_state_dict(stripped)
            else:
                notices.append(f"init-from: the {name} head differs in shape from the source's and starts fresh")
        table = self.heads.get("task_embedding.weight")
        if table is None or table.shape[1] != model.task_embedding.embedding_dim or table.shape[0] != len(self.tasks):
            notices.append("init-from: the source's task embedding does not fit this encoder; every task starts fresh")
            return notices
        source_row = {t: i for i, t in enumerate(self.tasks)}
        matched = [t for t in tasks if t in source_row]
        new = [t for t in tasks if t not in source_row]
        with torch.no_grad():
            for i, task in enumerate(tasks):
                if task in source_row:
                    model.task_embedding.weight[i] = table[source_row[task]]
        notices.append(f"init-from: task embedding of {len(matched)} task(s) copied by name from the source"
                       + (f" ({_names(matched)})" if matched else ""))
        if new:
            notices.append(f"init-from: {len(new)} new task(s) initialised fresh: {_names(new)}")
        return notices


def _names(tasks: list[str], limit: int = 8) -> str:
    return ", ".join(tasks[:limit]) + (f" and {len(tasks) - limit} more" if len(tasks) > limit else "")


def open_source(spec: str, *, output_dir: Path | None = None) -> InitSource:
    """Read what `--init-from spec` names; one clear error when it is none of the accepted kinds."""
    path, which = parse(spec)
    if not path.exists():
        raise UsageError(f"--init-from {spec}: {path} not found")
    if output_dir is not None and Path(output_dir).resolve() == path.resolve():
        raise UsageError(f"--init-from {spec} is the output directory of the new run; give the new run its own --output-dir")
    if not path.is_dir():
        raise UsageError(f"--init-from {spec}: {path} is a file; give a run directory, an exported folder or an encoder directory")
    if export.is_export_dir(path):
        if which is not None:
            raise UsageError(f"--init-from {spec}: an exported folder holds one checkpoint; drop :{which}")
        config = export.read_config(path)
        encoder_dir = path / config.get("encoder", export.ENCODER_DIR)
        return InitSource(spec, "export", encoder_dir, path / config.get("tokenizer", export.ENCODER_DIR), None,
                          ckpt_io.read_tensors(path / export.HEADS_FILE), list(config["tasks"]))
    if (path / "checkpoints").is_dir() and ckpt_io.is_run_dir(path):
        ckpt = ckpt_io.checkpoint_dir(path, which or "best")
        meta = ckpt_io.read_meta(ckpt)
        tensors = ckpt_io.read_tensors(ckpt / "model.safetensors")
        encoder_state = {k[len("encoder."):]: v for k, v in tensors.items() if k.startswith("encoder.")}
        heads = {k: v for k, v in tensors.items() if not k.startswith("encoder.")}
        if not (ckpt / "encoder" / "config.json").is_file():
            raise CheckpointError(f"{ckpt} has no encoder/config.json")
        return InitSource(spec, "run", ckpt / "encoder", ckpt / "tokenizer", encoder_state, heads, list(meta["tasks"]))
    if (path / "config.json").is_file() and any((path / f).exists() for f in WEIGHT_FILES):
        if which is not None:
            raise UsageError(f"--init-from {spec}: an encoder directory has no checkpoints; drop :{which}")
        tokenizer = path if any((path / f).exists() for f in TOKENIZER_FILES) else None
        return InitSource(spec, "encoder", path, tokenizer, None, {}, [])
    raise UsageError(
        f"--init-from {spec}: {path} is neither an acct run directory (config.json + checkpoints/), a folder "
        "written by `acct export`, nor a Hugging Face encoder directory (config.json + weights)"
    )


def tokenizer_for(source: InitSource, model: ModelSettings) -> tuple[Any, list[str]]:
    """The tokenizer the source's encoder was trained with (its vocabulary fixes the embedding rows)."""
    if source.tokenizer_dir is not None:
        return load_tokenizer(str(source.tokenizer_dir)), [f"init-from: tokenizer from {source.tokenizer_dir}"]
    if model.tokenizer in (None, TINY):
        raise UsageError(f"--init-from {source.spec}: the encoder directory holds no tokenizer; give one with --tokenizer")
    return load_tokenizer(model.tokenizer, trust_remote_code=model.trust_remote_code), []
