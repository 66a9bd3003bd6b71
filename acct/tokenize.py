"""Tokenizers and batching: turning multiple-choice examples into padded per-choice tensors.

Each (question, choice) pair is one sequence. The question is truncated to fit the token
budget and the choice is never cut. Examples are tokenised once per run; batches are padded
only to their own longest sequence.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from acct.data import Example
from acct.errors import UsageError

TINY_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_tiny_tokenizer(texts: Iterable[str], vocab_size: int):
    """A small lower-cased WordPiece tokenizer trained on the given text, fully offline."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=TINY_SPECIAL_TOKENS, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]"
    )


def example_texts(examples: Iterable[Example]) -> Iterable[str]:
    for ex in examples:
        yield ex.question
        yield from ex.choices


def load_tokenizer(name_or_path: str, *, trust_remote_code: bool = False):
    """Load a tokenizer from the hub or a local directory, with one clear error when it cannot be had."""
    from transformers import AutoTokenizer

    local = Path(name_or_path)
    if local.exists() and not local.is_dir():
        raise UsageError(f"tokenizer path {name_or_path} is a file; give its directory")
    try:
        return AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except Exception as exc:  # transformers raises OSError, ValueError or hub errors depending on the cause
        if local.is_dir():
            raise UsageError(f"cannot load a tokenizer from {name_or_path}: {str(exc).splitlines()[0]}") from None
        raise UsageError(
            f"cannot load tokenizer {name_or_path!r} from the hub (no network, or no such repository); "
            "use --preset tiny, or --tokenizer with a local directory"
        ) from None


@dataclass(frozen=True)
class PairTemplate:
    """Special tokens around a (question, choice) pair: prefix + Q + middle + C + suffix."""

    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]

    @property
    def overhead(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)

    def join(self, question: Sequence[int], choice: Sequence[int], max_length: int) -> list[int]:
        budget = max(0, max_length - self.overhead - len(choice))
        return [*self.prefix, *question[:budget], *self.middle, *choice, *self.suffix]


def pair_template(tokenizer) -> PairTemplate:
    """Find where the tokenizer puts its special tokens by encoding one probe pair."""
    q = tokenizer("alpha beta", add_special_tokens=False)["input_ids"]
    c = tokenizer("gamma", add_special_tokens=False)["input_ids"]
    full = tokenizer("alpha beta", "gamma")["input_ids"]
    for start in range(len(full) - len(q) + 1):
        if full[start : start + len(q)] != q:
            continue
        rest = full[start + len(q) :]
        for mid in range(len(rest) - len(c) + 1):
            if rest[mid : mid + len(c)] == c:
                return PairTemplate(tuple(full[:start]), tuple(rest[:mid]), tuple(rest[mid + len(c) :]))
    raise UsageError("this tokenizer's pair template is not prefix + question + middle + choice + suffix")


@dataclass
class EncodedExamples:
    """Token ids of every (question, choice) pair, plus the per-example labels and task ids."""

    sequences: list[list[list[int]]]  # example -> choice -> token ids
    answers: list[int]
    task_ids: list[int]

    def __len__(self) -> int:
        return len(self.answers)


def encode_examples(tokenizer, examples: Sequence[Example], task_index: dict[str, int], max_length: int) -> EncodedExamples:
    """Tokenise each question and each choice once, then join them with the tokenizer's own template."""
    template = pair_template(tokenizer)
    questions = [ex.question for ex in examples]
    flat_choices = [c for ex in examples for c in ex.choices]
    # Silence "sequence longer than the model maximum" warnings: we truncate ourselves below.
    logging.getLogger("transformers.tokenization_utils_base").setLevel(logging.ERROR)
    q_ids = tokenizer(questions, add_special_tokens=False)["input_ids"] if questions else []
    c_ids = tokenizer(flat_choices, add_special_tokens=False)["input_ids"] if flat_choices else []
    sequences, pos = [], 0
    for ex, q in zip(examples, q_ids):
        k = len(ex.choices)
        sequences.append([template.join(q, c, max_length) for c in c_ids[pos : pos + k]])
        pos += k
    return EncodedExamples(
        sequences=sequences,
        answers=[ex.answer for ex in examples],
        task_ids=[task_index[ex.task] for ex in examples],
    )


@dataclass
class Batch:
    """Tensors of one batch of questions; sequences are question-major, choices padded to K_max."""

    input_ids: torch.Tensor  # [N, L] N = total choices in the batch
    attention_mask: torch.Tensor  # [N, L]
    sequence_task_ids: torch.Tensor  # [N]
    choice_mask: torch.Tensor  # [B, K_max] bool
    labels: torch.Tensor  # [B]
    task_ids: torch.Tensor  # [B]
    num_tokens: int  # non-pad tokens, for throughput

    def to(self, device: torch.device) -> Batch:
        non_blocking = device.type == "cuda"
        moved = {
            name: getattr(self, name).to(device, non_blocking=non_blocking)
            for name in ("input_ids", "attention_mask", "sequence_task_ids", "choice_mask", "labels", "task_ids")
        }
        return Batch(**moved, num_tokens=self.num_tokens)

    def pin_memory(self) -> Batch:
        pinned = {
            name: getattr(self, name).pin_memory()
            for name in ("input_ids", "attention_mask", "sequence_task_ids", "choice_mask", "labels", "task_ids")
        }
        return Batch(**pinned, num_tokens=self.num_tokens)

    @property
    def num_questions(self) -> int:
        return int(self.labels.shape[0])


def collate(encoded: EncodedExamples, indices: Sequence[int], pad_id: int) -> Batch:
    """Pad the chosen examples' sequences to the batch's own longest one."""
    seqs = [s for i in indices for s in encoded.sequences[i]]
    counts = [len(encoded.sequences[i]) for i in indices]
    longest = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), longest), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(seqs), longest), dtype=torch.long)
    for row, s in enumerate(seqs):
        input_ids[row, : len(s)] = torch.tensor(s, dtype=torch.long)
        attention_mask[row, : len(s)] = 1
    k_max = max(counts)
    counts_t = torch.tensor(counts)
    choice_mask = torch.arange(k_max)[None, :] < counts_t[:, None]
    task_ids = torch.tensor([encoded.task_ids[i] for i in indices], dtype=torch.long)
    return Batch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        sequence_task_ids=task_ids.repeat_interleave(counts_t),
        choice_mask=choice_mask,
        labels=torch.tensor([encoded.answers[i] for i in indices], dtype=torch.long),
        task_ids=task_ids,
        num_tokens=sum(len(s) for s in seqs),
    )
