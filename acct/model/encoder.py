"""The multiple-choice model: a pretrained encoder, a task embedding at its input, and two heads.

Each (question, choice) pair is encoded on its own and pooled to h_k. The task embedding
e_t is added to the encoder's input embeddings: a task vector that only joined the score
head would add the same constant to every choice of a question, and the softmax over
choices would erase it. The score head maps h_k to one logit.

The unit-norm embedding z used by InfoNCE and the confusion matrix is computed from a
question-only sequence encoded WITHOUT the task vector: z = normalize(proj(h_q)). It is the
text-only view of a question, the one the curriculum must judge: an embedding of the
task-conditioned pairs would carry the task vector in every token, so InfoNCE would separate
tasks by their id alone and the confusion matrix would measure the task embeddings rather
than how alike the tasks' questions are. Tasks whose questions cannot be told apart by their
text stay close in this view, which is what "confusable" means.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from acct.config.fields import TINY
from acct.config.train import ModelSettings
from acct.errors import UsageError
from acct.model import attention

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "tf_model.h5", "model.safetensors.index.json", "pytorch_model.bin.index.json")


@dataclass(frozen=True)
class HeadConfig:
    """Everything besides the encoder config needed to rebuild the model from a checkpoint."""

    num_tasks: int
    projection_dim: int
    pooling: str

    def to_dict(self) -> dict:
        return asdict(self)


class ModelOutput(NamedTuple):
    scores: torch.Tensor  # [B, K_max], -inf at padded choices
    embeddings: torch.Tensor | None  # [B, P], unit norm; None when no question-only sequences were given


def _mlp(n_in: int, n_hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.GELU(), nn.Linear(n_hidden, n_out))


class MultipleChoiceModel(nn.Module):
    def __init__(
        self, encoder: nn.Module, head: HeadConfig, *, attention_backend: str = "acct", device: torch.device | None = None,
    ):
        super().__init__()
        if head.pooling not in ("cls", "mean"):
            raise UsageError(f"unknown pooling {head.pooling!r}")
        self.encoder = encoder
        # Same weights and results, less work (see acct.model.attention). The backend in use and why
        # another was not are kept for the run's notices.
        self.attention_backend, self.notices = attention.use_backend(
            encoder, attention_backend, device or torch.device("cpu")
        )
        self.head = head
        hidden = encoder.config.hidden_size
        embed_dim = encoder.get_input_embeddings().embedding_dim
        self.task_embedding = nn.Embedding(head.num_tasks, embed_dim)
        nn.init.normal_(self.task_embedding.weight, std=getattr(encoder.config, "initializer_range", 0.02))
        self.scorer = _mlp(hidden, hidden, 1)
        self.projector = _mlp(hidden, hidden, head.projection_dim)

    def task_vectors(self, task_ids: torch.Tensor) -> torch.Tensor:
        """Rows of the task embedding; id -1 means "no task given" and uses the mean task embedding."""
        table = self.task_embedding.weight
        known = table[task_ids.clamp(min=0)]
        return torch.where((task_ids < 0)[:, None], table.mean(0, keepdim=True), known)

    def _pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.head.pooling == "cls":
            return hidden[:, 0]
        m = attention_mask[..., None].to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1)

    def _pool_z(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Mean pooling always: a sentence embedding of the question text (a pretrained
        # DeBERTa's [CLS] is not trained to summarise a sentence; a random one barely varies).
        m = mask[..., None].to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        return F.normalize(self.projector(pooled), dim=-1)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        sequence_task_ids: torch.Tensor,
        choice_mask: torch.Tensor,
        question_ids: torch.Tensor | None = None,
        question_mask: torch.Tensor | None = None,
        choice_index: torch.Tensor | None = None,
    ) -> ModelOutput:
        """Choice scores from the task-conditioned pairs; z from the question-only sequences when given.

        `choice_index` ([N]) is the flat position in the [B, K_max] score grid of each sequence
        (`Batch.choice_index`); without it, it is derived from `choice_mask`.

        Pairs and questions go through the encoder in one call (questions get no task vector):
        one larger batch keeps the hardware busier than two small ones.
        """
        word = self.encoder.get_input_embeddings()
        embeds = word(input_ids) + self.task_vectors(sequence_task_ids)[:, None, :].to(word.weight.dtype)
        n_pairs = input_ids.shape[0]
        if question_ids is not None:
            width = max(input_ids.shape[1], question_ids.shape[1])
            embeds = torch.cat([_pad_to(embeds, width), _pad_to(word(question_ids), width)])
            attention_mask = torch.cat([_pad_to(attention_mask, width), _pad_to(question_mask, width)])
        hidden = self.encoder(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state
        # The two small heads run in fp32 whatever the autocast: near-tied choices and the entropy
        # weights need more than bf16's three significant digits, and the heads cost little.
        with torch.autocast(hidden.device.type, enabled=False):
            logits = self.scorer(self._pool(hidden[:n_pairs].float(), attention_mask[:n_pairs])).squeeze(-1)
            z = None if question_ids is None else self._pool_z(hidden[n_pairs:].float(), attention_mask[n_pairs:])
        b, k = choice_mask.shape
        if choice_index is None:
            choice_index = choice_mask.flatten().nonzero().squeeze(1)  # waits for the device; collate gives it
        # An indexed copy, whose backward is a gather: masked_scatter's backward would call
        # masked_select, whose data-dependent size makes the host wait for the device.
        scores = logits.new_full((b * k,), float("-inf")).index_copy(0, choice_index, logits).view(b, k)
        return ModelOutput(scores=scores, embeddings=z)


def _pad_to(x: torch.Tensor, width: int) -> torch.Tensor:
    """Right-pad dimension 1 with zeros (a zero embedding under a zero attention mask is inert)."""
    missing = width - x.shape[1]
    if missing == 0:
        return x
    return torch.cat([x, x.new_zeros((x.shape[0], missing, *x.shape[2:]))], dim=1)


def tiny_encoder_config(settings: ModelSettings, vocab_size: int):
    """A small DebertaV2 with DeBERTa-v3's relative attention (no absolute positions)."""
    from transformers import DebertaV2Config

    t = settings.tiny
    return DebertaV2Config(
        vocab_size=vocab_size,
        hidden_size=t.hidden_size,
        num_hidden_layers=t.num_hidden_layers,
        num_attention_heads=t.num_attention_heads,
        intermediate_size=t.intermediate_size,
        max_position_embeddings=512,
        relative_attention=True,
        position_buckets=t.position_buckets,
        max_relative_positions=-1,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        share_att_key=True,
        norm_rel_ebd="layer_norm",
        type_vocab_size=0,
        layer_norm_eps=1e-7,
        hidden_dropout_prob=0.1 if settings.dropout is None else settings.dropout,
        attention_probs_dropout_prob=0.1 if settings.dropout is None else settings.dropout,
    )


def _dropout_overrides(settings: ModelSettings) -> dict:
    if settings.dropout is None:
        return {}
    return {"hidden_dropout_prob": settings.dropout, "attention_probs_dropout_prob": settings.dropout}


def is_config_only_dir(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file() and not any((path / f).exists() for f in WEIGHT_FILES)


@contextlib.contextmanager
def quiet_loading():
    """Hide the progress bars transformers and the hub client draw while loading: acct draws its own."""
    import huggingface_hub.utils as hub_utils
    from transformers.utils import logging as hf_logging

    bars_on = hf_logging.is_progress_bar_enabled()
    hub_off = hub_utils.are_progress_bars_disabled()
    hf_logging.disable_progress_bar()
    hub_utils.disable_progress_bars()
    try:
        yield
    finally:
        if bars_on:
            hf_logging.enable_progress_bar()
        if not hub_off:
            hub_utils.enable_progress_bars()


def build_encoder(settings: ModelSettings, vocab_size: int) -> tuple[nn.Module, list[str]]:
    """Create the encoder named by the settings; returns it with notices the user must see."""
    from transformers import AutoConfig, AutoModel

    notices: list[str] = []
    name = settings.name_or_path
    local = Path(name)
    if name == TINY:
        encoder = AutoModel.from_config(tiny_encoder_config(settings, vocab_size), dtype=torch.float32)
        notices.append("model: tiny DebertaV2 with RANDOM weights (offline preset)")
    elif local.exists() and not local.is_dir():
        raise UsageError(f"model path {name} is a file; give the directory that holds config.json")
    elif is_config_only_dir(local):
        config = AutoConfig.from_pretrained(name, trust_remote_code=settings.trust_remote_code, **_dropout_overrides(settings))
        encoder = AutoModel.from_config(config, trust_remote_code=settings.trust_remote_code, dtype=torch.float32)
        notices.append(f"model: {name} holds only config.json: the encoder has RANDOM weights, not pretrained ones")
    elif local.is_dir() and not (local / "config.json").is_file():
        raise UsageError(f"model directory {name} has no config.json")
    else:
        try:
            with quiet_loading():
                # fp32 master weights whatever the checkpoint stores (microsoft/deberta-v3-base
                # stores fp16, which transformers would keep): autocast sets the compute precision.
                encoder = AutoModel.from_pretrained(
                    name, trust_remote_code=settings.trust_remote_code, dtype=torch.float32, **_dropout_overrides(settings)
                )
        except Exception as exc:  # hub, network and format errors all arrive as different types
            if local.is_dir():
                raise UsageError(f"cannot load the model in {name}: {str(exc).splitlines()[0]}") from None
            raise UsageError(
                f"cannot download model {name!r} (no network, or no such repository); "
                "use --preset tiny, or --model with a local directory"
            ) from None
    current = encoder.get_input_embeddings().num_embeddings
    if vocab_size > current:
        encoder.resize_token_embeddings(vocab_size)
        notices.append(f"model: token embeddings resized from {current} to {vocab_size} to fit the tokenizer")
    return encoder, notices


def encoder_from_config_dir(config_dir: Path, *, trust_remote_code: bool = False) -> nn.Module:
    """An encoder with the saved architecture and uninitialised weights, to be filled from a checkpoint."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(str(config_dir), trust_remote_code=trust_remote_code)
    return AutoModel.from_config(config, trust_remote_code=trust_remote_code, dtype=torch.float32)
