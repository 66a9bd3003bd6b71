"""Tokenizers and batching: turning multiple-choice examples into padded per-choice tensors.

Each (question, choice) pair is one sequence. The question is truncated to fit the token
budget and the choice is never cut. Each question is also kept as one question-only sequence
(the tokenizer's single-text template): the text-only view from which the contrastive
embedding z is computed. Examples are tokenised once per run; batches are padded
only to their own longest sequence.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from acct.data.records import Example
from acct.errors import UsageError

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


@dataclass(frozen=True)
class SingleTemplate:
    """Special tokens around a single text: prefix + Q + suffix."""

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]

    def wrap(self, question: Sequence[int], max_length: int) -> list[int]:
        budget = max(0, max_length - len(self.prefix) - len(self.suffix))
        return [*self.prefix, *question[:budget], *self.suffix]


def single_template(tokenizer) -> SingleTemplate:
    """Find where the tokenizer puts its special tokens around one text by encoding a probe."""
    q = tokenizer("alpha beta", add_special_tokens=False)["input_ids"]
    full = tokenizer("alpha beta")["input_ids"]
    for start in range(len(full) - len(q) + 1):
        if full[start : start + len(q)] == q:
            return SingleTemplate(tuple(full[:start]), tuple(full[start + len(q) :]))
    raise UsageError("this tokenizer's single-text template is not prefix + text + suffix")


@dataclass(frozen=True, eq=False)
class PackedSequences:
    """Every sequence of an `EncodedExamples` in flat arrays, so a batch is gathered without Python loops."""

    tokens: np.ndarray  # [total tokens] int64, sequences back to back
    starts: np.ndarray  # [S] int64, offset of each sequence in `tokens`
    lengths: np.ndarray  # [S] int64
    first: np.ndarray  # [E] int64, index of each example's first sequence
    counts: np.ndarray  # [E] int64, choices of each example

    @classmethod
    def from_lists(cls, sequences: Sequence[Sequence[Sequence[int]]]) -> PackedSequences:
        counts = np.fromiter((len(choices) for choices in sequences), dtype=np.int64, count=len(sequences))
        lengths = np.fromiter((len(s) for choices in sequences for s in choices), dtype=np.int64, count=int(counts.sum()))
        tokens = np.fromiter(
            itertools.chain.from_iterable(itertools.chain.from_iterable(sequences)), dtype=np.int64, count=int(lengths.sum())
        )
        return cls.from_arrays(tokens, lengths, counts)

    @classmethod
    def from_arrays(cls, tokens: np.ndarray, lengths: np.ndarray, counts: np.ndarray) -> PackedSequences:
        lengths = lengths.astype(np.int64, copy=False)
        counts = counts.astype(np.int64, copy=False)
        return cls(
            tokens=tokens.astype(np.int64, copy=False),
            starts=_exclusive_cumsum(lengths),
            lengths=lengths,
            first=_exclusive_cumsum(counts),
            counts=counts,
        )

    def to_lists(self) -> list[list[list[int]]]:
        flat = self.tokens.tolist()
        bounds = (self.starts + self.lengths).tolist()
        per_seq = [flat[a:b] for a, b in zip(self.starts.tolist(), bounds)]
        return [per_seq[f : f + k] for f, k in zip(self.first.tolist(), self.counts.tolist())]


def _exclusive_cumsum(x: np.ndarray) -> np.ndarray:
    out = np.zeros(len(x), dtype=np.int64)
    np.cumsum(x[:-1], out=out[1:])
    return out


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + n) for every (s, n), without a Python loop."""
    total = int(lengths.sum())
    return np.repeat(starts - _exclusive_cumsum(lengths), lengths) + np.arange(total, dtype=np.int64)


@dataclass
class EncodedExamples:
    """Token ids of every (question, choice) pair, plus the per-example labels and task ids.

    `questions` holds one question-only sequence per example (special tokens included), the
    input of the contrastive embedding; None when the caller needs only choice scores.
    Treat an instance as read-only once built: `collate` keeps a packed copy of `sequences`.
    """

    sequences: list[list[list[int]]]  # example -> choice -> token ids
    answers: list[int]
    task_ids: list[int]
    questions: list[list[int]] | None = None  # example -> question-only token ids
    _packed: PackedSequences | None = field(default=None, init=False, repr=False, compare=False)
    _packed_questions: PackedSequences | None = field(default=None, init=False, repr=False, compare=False)
    _labels: tuple[np.ndarray, np.ndarray] | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.answers)

    def packed(self) -> PackedSequences:
        """The flat-array form of `sequences`, built on first use."""
        if self._packed is None or len(self._packed.counts) != len(self.sequences):
            self._packed = PackedSequences.from_lists(self.sequences)
        return self._packed

    def packed_questions(self) -> PackedSequences | None:
        """The flat-array form of `questions` (one sequence per example), built on first use."""
        if self.questions is None:
            return None
        if self._packed_questions is None or len(self._packed_questions.counts) != len(self.questions):
            self._packed_questions = PackedSequences.from_lists([[q] for q in self.questions])
        return self._packed_questions

    def label_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(answers, task_ids) as int64 arrays, built on first use."""
        if self._labels is None or len(self._labels[0]) != len(self.answers):
            self._labels = (np.asarray(self.answers, dtype=np.int64), np.asarray(self.task_ids, dtype=np.int64))
        return self._labels


def encode_examples(tokenizer, examples: Sequence[Example], task_index: dict[str, int], max_length: int) -> EncodedExamples:
    """Tokenise each question and each choice once, then join them with the tokenizer's own templates.

    Besides the (question, choice) pairs, each question is wrapped on its own (single-text
    template, truncated to `max_length`): the question-only sequence of `EncodedExamples.questions`.
    """
    template = pair_template(tokenizer)
    single = single_template(tokenizer)
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
        questions=[single.wrap(q, max_length) for q in q_ids],
    )


# -- the tokenisation cache -----------------------------------------------------------------------

# Bump when the encoding itself changes (template join, truncation rule, file layout).
CACHE_FORMAT = 2  # 2: question-only sequences stored beside the pairs


def pad_id(tokenizer) -> int:
    """The id batches are padded with (0 for a tokenizer without a pad token; the mask hides it)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def default_cache_dir() -> Path:
    """$ACCT_CACHE_DIR, else $XDG_CACHE_HOME/acct/tokenized, else ~/.cache/acct/tokenized."""
    explicit = os.environ.get("ACCT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "acct" / "tokenized"


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 identifying what a tokenizer does to text: its class, rules, vocabulary and special tokens.

    A fast tokenizer is identified by its serialised pipeline (normaliser, pre-tokeniser, model
    with vocabulary, added tokens); a slow one by its vocabulary files and vocabulary. The
    backend's truncation and padding state is left out: it changes with every call that asks
    for truncation, and encode_examples never uses it.
    """
    digest = hashlib.sha256()

    def add(part: str | bytes) -> None:
        data = part.encode("utf-8") if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)

    add(f"{type(tokenizer).__module__}.{type(tokenizer).__qualname__}")
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        text = backend.to_str()
        # tokenizers serialises fields in a fixed order: version, truncation, padding, added_tokens, ...
        cut = text.find('"added_tokens":')
        add(text[cut:] if cut >= 0 else text)
    else:
        for attr in sorted(getattr(tokenizer, "vocab_files_names", {}) or {}):
            path = getattr(tokenizer, attr, None)
            if isinstance(path, (str, Path)) and Path(path).is_file():
                add(Path(path).read_bytes())
        add(json.dumps(sorted(tokenizer.get_vocab().items())))
        add(json.dumps({k: str(v) for k, v in sorted(tokenizer.init_kwargs.items()) if k != "name_or_path"}))
    add(json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str))
    add(json.dumps(sorted(tokenizer.get_added_vocab().items())))
    template = pair_template(tokenizer)
    add(json.dumps([template.prefix, template.middle, template.suffix]))
    single = single_template(tokenizer)
    add(json.dumps([single.prefix, single.suffix]))
    return digest.hexdigest()


def examples_fingerprint(examples: Sequence[Example]) -> str:
    """sha256 of the text the encoding depends on: every question and choice, in order."""
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(json.dumps([ex.question, list(ex.choices)], ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def encoding_cache_key(tokenizer, examples: Sequence[Example], max_length: int) -> str:
    parts = [f"acct-tokenized-v{CACHE_FORMAT}", tokenizer_fingerprint(tokenizer), examples_fingerprint(examples), str(max_length)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def encode_examples_cached(
    tokenizer,
    examples: Sequence[Example],
    task_index: dict[str, int],
    max_length: int,
    cache_dir: Path | None,
) -> EncodedExamples:
    """`encode_examples`, read from `cache_dir` when the same tokenizer already encoded the same text.

    The cache file is named by a hash of the tokenizer's identity (`tokenizer_fingerprint`),
    the questions and choices, and `max_length`; it holds only token ids (safetensors, no
    pickle) and is written atomically. Labels and task ids are taken from `examples` every
    time, so a cache can never disagree with them. A missing, unreadable or inconsistent
    file is a miss: the examples are encoded and the file rewritten. `cache_dir=None`
    disables the cache.
    """
    if cache_dir is None or not examples:
        return encode_examples(tokenizer, examples, task_index, max_length)
    cache_dir = Path(cache_dir)
    path = cache_dir / f"{encoding_cache_key(tokenizer, examples, max_length)}.safetensors"
    answers = [ex.answer for ex in examples]
    task_ids = [task_index[ex.task] for ex in examples]
    cached = _read_cache(path, examples)
    if cached is not None:
        packed, packed_questions = cached
        questions = [seqs[0] for seqs in packed_questions.to_lists()]
        encoded = EncodedExamples(sequences=packed.to_lists(), answers=answers, task_ids=task_ids, questions=questions)
        encoded._packed = packed
        encoded._packed_questions = packed_questions
        return encoded
    encoded = encode_examples(tokenizer, examples, task_index, max_length)
    _write_cache(path, encoded.packed(), encoded.packed_questions(), tokenizer, len(examples), max_length)
    return encoded


def _read_cache(path: Path, examples: Sequence[Example]) -> tuple[PackedSequences, PackedSequences] | None:
    if not path.is_file():
        return None
    try:
        from safetensors.numpy import load_file

        arrays = load_file(str(path))
        tokens, lengths, counts = arrays["tokens"], arrays["lengths"], arrays["counts"]
        q_tokens, q_lengths = arrays["question_tokens"], arrays["question_lengths"]
    except Exception:  # a truncated or foreign file is a miss, never an error
        return None
    expected = np.fromiter((len(ex.choices) for ex in examples), dtype=np.int64, count=len(examples))
    if (
        tokens.ndim != 1
        or counts.shape != expected.shape
        or not np.array_equal(counts, expected)
        or lengths.shape != (int(counts.sum()),)
        or int(lengths.sum()) != tokens.shape[0]
        or (lengths < 0).any()
        or q_tokens.ndim != 1
        or q_lengths.shape != (len(examples),)
        or int(q_lengths.sum()) != q_tokens.shape[0]
        or (q_lengths < 0).any()
    ):
        return None
    questions = PackedSequences.from_arrays(q_tokens, q_lengths, np.ones(len(examples), dtype=np.int64))
    return PackedSequences.from_arrays(tokens, lengths, counts), questions


def _write_cache(
    path: Path, packed: PackedSequences, questions: PackedSequences, tokenizer, num_examples: int, max_length: int
) -> None:
    from safetensors.numpy import save_file

    # int32 halves the file; every vocabulary fits.
    arrays = {
        "tokens": packed.tokens.astype(np.int32),
        "lengths": packed.lengths.astype(np.int32),
        "counts": packed.counts.astype(np.int32),
        "question_tokens": questions.tokens.astype(np.int32),
        "question_lengths": questions.lengths.astype(np.int32),
    }
    meta = {
        "format": str(CACHE_FORMAT),
        "tokenizer": f"{type(tokenizer).__qualname__} {getattr(tokenizer, 'name_or_path', '')}",
        "examples": str(num_examples),
        "max_length": str(max_length),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        os.close(fd)
        try:
            save_file(arrays, tmp, metadata=meta)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass  # a read-only or full cache directory costs speed, not correctness


# -- batches --------------------------------------------------------------------------------------


@dataclass
class Batch:
    """Tensors of one batch of questions; sequences are question-major, choices padded to K_max."""

    input_ids: torch.Tensor  # [N, L] N = total choices in the batch
    attention_mask: torch.Tensor  # [N, L]
    sequence_task_ids: torch.Tensor  # [N]
    choice_mask: torch.Tensor  # [B, K_max] bool
    labels: torch.Tensor  # [B]
    task_ids: torch.Tensor  # [B]
    num_tokens: int  # non-pad tokens of the (question, choice) sequences, for throughput
    question_ids: torch.Tensor | None = None  # [B, Lq] question-only sequences, one per question
    question_mask: torch.Tensor | None = None  # [B, Lq]
    choice_index: torch.Tensor | None = None  # [N] flat position of each sequence in the [B, K_max] grid

    _TENSORS = ("input_ids", "attention_mask", "sequence_task_ids", "choice_mask", "labels", "task_ids", "question_ids",
                "question_mask", "choice_index")
    _MODEL_INPUTS = ("input_ids", "attention_mask", "sequence_task_ids", "choice_mask", "question_ids", "question_mask",
                     "choice_index")

    def to(self, device: torch.device) -> Batch:
        non_blocking = device.type == "cuda"
        moved = {
            name: None if getattr(self, name) is None else getattr(self, name).to(device, non_blocking=non_blocking)
            for name in self._TENSORS
        }
        return Batch(**moved, num_tokens=self.num_tokens)

    def pin_memory(self) -> Batch:
        pinned = {name: None if getattr(self, name) is None else getattr(self, name).pin_memory() for name in self._TENSORS}
        return Batch(**pinned, num_tokens=self.num_tokens)

    @property
    def num_questions(self) -> int:
        return int(self.labels.shape[0])

    def model_inputs(self, *, questions: bool = True) -> dict[str, torch.Tensor | None]:
        """The keyword arguments of `MultipleChoiceModel.forward`; without `questions`, no embeddings are computed."""
        names = self._MODEL_INPUTS if questions else [n for n in self._MODEL_INPUTS if not n.startswith("question_")]
        return {name: getattr(self, name) for name in names}


def collate(encoded: EncodedExamples, indices: Sequence[int], pad_id: int) -> Batch:
    """Pad the chosen examples' sequences to the batch's own longest one.

    Works on the packed arrays: one gather and one masked assignment, no per-row tensor. The
    question-only sequences, when `encoded` has them, are padded the same way on their own.
    """
    packed = encoded.packed()
    answers, task_ids_all = encoded.label_arrays()
    idx = np.asarray(indices, dtype=np.int64)
    counts = packed.counts[idx]
    seq = _ranges(packed.first[idx], counts)  # the batch's sequences, question-major
    input_ids, mask = _pad(packed, seq, pad_id)
    lengths = packed.lengths[seq]
    question_ids = question_mask = None
    packed_questions = encoded.packed_questions()
    if packed_questions is not None:
        q_ids, q_mask = _pad(packed_questions, idx, pad_id)
        question_ids, question_mask = torch.from_numpy(q_ids), torch.from_numpy(q_mask.astype(np.int64))
    k_max = int(counts.max()) if counts.size else 0
    choice_mask = np.arange(k_max, dtype=np.int64)[None, :] < counts[:, None]
    task_ids = task_ids_all[idx]
    # All in numpy: small torch ops can enter a parallel region, which costs milliseconds on a
    # CPU whose other cores are busy (measured: repeat_interleave alone 7.5 ms per batch).
    return Batch(
        input_ids=torch.from_numpy(input_ids),
        attention_mask=torch.from_numpy(mask.astype(np.int64)),
        sequence_task_ids=torch.from_numpy(np.repeat(task_ids, counts)),
        choice_mask=torch.from_numpy(choice_mask),
        labels=torch.from_numpy(answers[idx]),
        task_ids=torch.from_numpy(task_ids),
        num_tokens=int(lengths.sum()),
        question_ids=question_ids,
        question_mask=question_mask,
        choice_index=torch.from_numpy(np.flatnonzero(choice_mask)),
    )


def _pad(packed: PackedSequences, seq: np.ndarray, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """([S, L] token ids padded with pad_id, [S, L] bool mask) of the packed sequences `seq`."""
    lengths = packed.lengths[seq]
    longest = int(lengths.max()) if lengths.size else 0
    mask = np.arange(longest, dtype=np.int64)[None, :] < lengths[:, None]
    input_ids = np.full((len(seq), longest), pad_id, dtype=np.int64)
    # Boolean assignment fills row by row, left to right: exactly the sequences' token order.
    input_ids[mask] = packed.tokens[_ranges(packed.starts[seq], lengths)]
    return input_ids, mask


# -- lengths --------------------------------------------------------------------------------------


def example_lengths(encoded: EncodedExamples) -> np.ndarray:
    """[E] the longest sequence of each example: the width it forces on any batch it joins."""
    packed = encoded.packed()
    if not len(packed.counts):
        return np.zeros(0, dtype=np.int64)
    longest = np.zeros(len(packed.counts), dtype=np.int64)
    owner = np.repeat(np.arange(len(packed.counts)), packed.counts)
    np.maximum.at(longest, owner, packed.lengths)
    return longest


# -- evaluation batches ---------------------------------------------------------------------------

# Padded tokens ((question, choice) sequences x their padded length) of one evaluation batch.
# A layer's activations grow with the tokens, its attention scores with tokens x length x heads;
# the length never exceeds max_length, at most the 512 positions the BERT and DeBERTa families
# were trained on, so one token budget bounds both terms: at 16384 tokens and length
# 512 the scores of a 12-head layer are 16384 x 512 x 12 x 4 B = 384 MiB in fp32, against 3 GiB
# for the 64 questions x 4 choices x 512 of fixed 64-question batches. A second budget on
# sequences x length^2 would only bind above length 512, beyond what these encoders were trained
# for. Up to length 64 the budget still admits 64 four-choice questions: short batches are
# unchanged. Measured (BENCHMARKS.md): all-MiniLM-L6-v2 at length 512 peaks at 1.1 GiB, not 2.8.
EVAL_TOKENS_PER_BATCH = 16_384


def evaluation_batches(encoded: EncodedExamples, max_questions: int, max_tokens: int | None) -> list[np.ndarray]:
    """Every example once, in ascending order of its longest sequence, cut into batches.

    A batch holds at most `max_questions` examples and, when `max_tokens` is given, at most
    `max_tokens` padded tokens: its sequences times its longest sequence (sorting makes that
    the last example's). An example that alone exceeds the budget is a batch of its own: its
    choices are scored together, so a question is never split.
    """
    if max_questions < 1 or (max_tokens is not None and max_tokens < 1):
        raise ValueError(f"evaluation batches need positive limits, got {max_questions} questions, {max_tokens} tokens")
    lengths = example_lengths(encoded)
    order = np.argsort(lengths, kind="stable")
    if max_tokens is None:
        return [order[start : start + max_questions] for start in range(0, len(order), max_questions)]
    counts = encoded.packed().counts
    batches: list[np.ndarray] = []
    start, sequences = 0, 0
    for pos, (width, k) in enumerate(zip(lengths[order].tolist(), counts[order].tolist())):
        full = pos - start == max_questions or (sequences + k) * width > max_tokens
        if full and pos > start:
            batches.append(order[start:pos])
            start, sequences = pos, 0
        sequences += k
    if start < len(order):
        batches.append(order[start:])
    return batches
