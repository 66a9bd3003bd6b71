"""Tokenisation and batching: the pair template, collate's padding and masks, the on-disk cache."""

from __future__ import annotations

import random

import pytest
import torch

from acct.data import tiny_tokenizer, tokenize
from acct.data.records import Example
from acct.data.tokenize import EncodedExamples, PairTemplate, collate, encode_examples, encode_examples_cached

TEXTS = [
    "which of these animals lives in the sea",
    "the whale the shark the dolphin the octopus",
    "pick the number that belongs one two three four five six seven eight nine ten",
    "elephant giraffe zebra lion tiger bear wolf fox",
] * 3


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer.train_tiny_tokenizer(TEXTS, vocab_size=200)


@pytest.fixture(scope="module")
def other_tokenizer():
    return tiny_tokenizer.train_tiny_tokenizer(TEXTS[:2], vocab_size=120)


def _examples(n: int = 12, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    words = " ".join(TEXTS).split()
    out = []
    for i in range(n):
        k = rng.choice([2, 3, 4])
        question = " ".join(rng.choice(words) for _ in range(rng.randint(1, 30)))
        choices = tuple(" ".join(rng.choice(words) for _ in range(rng.randint(1, 4))) for _ in range(k))
        out.append(Example(question=question, choices=choices, answer=rng.randrange(k), task=f"t{i % 3}", uid=f"u{i}"))
    return out


TASKS = {"t0": 0, "t1": 1, "t2": 2}


# -- the pair template --------------------------------------------------------------------------


def test_join_truncates_the_question_and_keeps_the_choice_whole():
    template = PairTemplate(prefix=(1,), middle=(2,), suffix=(3,))
    question, choice = list(range(100, 120)), [7, 8, 9]
    joined = template.join(question, choice, max_length=10)
    assert len(joined) == 10
    assert joined == [1, 100, 101, 102, 103, 2, 7, 8, 9, 3]
    # Enough room: nothing is cut.
    assert template.join([100, 101], choice, max_length=64) == [1, 100, 101, 2, 7, 8, 9, 3]
    # A choice longer than the budget is still never cut; the question goes entirely.
    assert template.join(question, list(range(20)), max_length=10) == [1, 2, *range(20), 3]


def test_encoding_with_a_real_tokenizer_keeps_every_choice(tokenizer):
    long_question = " ".join(["which of these animals lives in the sea"] * 20)
    ex = Example(question=long_question, choices=("the whale", "elephant giraffe zebra"), answer=0, task="t0", uid="x")
    max_length = 16
    enc = encode_examples(tokenizer, [ex], TASKS, max_length)
    template = tokenize.pair_template(tokenizer)
    for choice, seq in zip(ex.choices, enc.sequences[0]):
        choice_ids = tokenizer(choice, add_special_tokens=False)["input_ids"]
        assert len(seq) == max_length
        assert seq[: len(template.prefix)] == list(template.prefix)
        tail = [*template.middle, *choice_ids, *template.suffix]
        assert seq[-len(tail) :] == tail  # the choice, whole, right before the suffix
        question_part = seq[len(template.prefix) : -len(tail)]
        full_question = tokenizer(long_question, add_special_tokens=False)["input_ids"]
        assert question_part == full_question[: len(question_part)]  # the question's head survives
    assert enc.answers == [0] and enc.task_ids == [0]


# -- collate ------------------------------------------------------------------------------------


def _reference_batch(encoded: EncodedExamples, indices: list[int], pad_id: int):
    seqs = [s for i in indices for s in encoded.sequences[i]]
    longest = max(len(s) for s in seqs)
    ids = [s + [pad_id] * (longest - len(s)) for s in seqs]
    mask = [[1] * len(s) + [0] * (longest - len(s)) for s in seqs]
    k_max = max(len(encoded.sequences[i]) for i in indices)
    choice_mask = [[k < len(encoded.sequences[i]) for k in range(k_max)] for i in indices]
    seq_tasks = [encoded.task_ids[i] for i in indices for _ in encoded.sequences[i]]
    return ids, mask, choice_mask, seq_tasks, sum(len(s) for s in seqs)


def test_collate_pads_to_the_batch_longest_and_masks():
    encoded = EncodedExamples(
        sequences=[[[5, 6, 7], [5, 8]], [[9], [10, 11, 12, 13], [14, 15]], [[16, 17], [18, 19]]],
        answers=[1, 2, 0],
        task_ids=[0, 2, 1],
    )
    batch = collate(encoded, [1, 0], pad_id=99)
    assert batch.input_ids.tolist() == [
        [9, 99, 99, 99],
        [10, 11, 12, 13],
        [14, 15, 99, 99],
        [5, 6, 7, 99],
        [5, 8, 99, 99],
    ]
    assert batch.attention_mask.tolist() == [[1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 0, 0]]
    assert batch.choice_mask.tolist() == [[True, True, True], [True, True, False]]
    assert batch.sequence_task_ids.tolist() == [2, 2, 2, 0, 0]
    assert batch.labels.tolist() == [2, 1]
    assert batch.task_ids.tolist() == [2, 0]
    assert batch.num_tokens == 12
    assert batch.num_questions == 2
    assert batch.input_ids.dtype == batch.attention_mask.dtype == batch.labels.dtype == torch.long
    assert batch.choice_mask.dtype == torch.bool
    # Only as wide as this batch's longest sequence.
    assert collate(encoded, [2], pad_id=0).input_ids.shape == (2, 2)


def test_collate_matches_a_row_by_row_reference(tokenizer):
    encoded = encode_examples(tokenizer, _examples(30), TASKS, max_length=24)
    rng = random.Random(1)
    for _ in range(20):
        indices = [rng.randrange(len(encoded)) for _ in range(rng.randint(1, 10))]  # repeats allowed
        batch = collate(encoded, indices, pad_id=0)
        ids, mask, choice_mask, seq_tasks, num_tokens = _reference_batch(encoded, indices, 0)
        assert batch.input_ids.tolist() == ids
        assert batch.attention_mask.tolist() == mask
        assert batch.choice_mask.tolist() == choice_mask
        assert batch.sequence_task_ids.tolist() == seq_tasks
        assert batch.labels.tolist() == [encoded.answers[i] for i in indices]
        assert batch.num_tokens == num_tokens


def test_packed_form_round_trips():
    sequences = [[[1, 2], [3]], [[4, 5, 6], [], [7]]]
    packed = tokenize.PackedSequences.from_lists(sequences)
    assert packed.to_lists() == sequences
    assert tokenize.example_lengths(EncodedExamples(sequences, [0, 0], [0, 0])).tolist() == [2, 3]


def _same(a: EncodedExamples, b: EncodedExamples) -> bool:
    return (
        a.sequences == b.sequences
        and getattr(a, "questions", None) == getattr(b, "questions", None)
        and a.answers == b.answers
        and a.task_ids == b.task_ids
    )


def _forbid_encoding(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("encoded again: the cache missed")

    monkeypatch.setattr(tokenize, "encode_examples", boom)


def test_cache_hit_returns_identical_encodings(tokenizer, tmp_path, monkeypatch):
    examples = _examples(20)
    expected = encode_examples(tokenizer, examples, TASKS, 32)
    first = encode_examples_cached(tokenizer, examples, TASKS, 32, tmp_path)
    assert _same(first, expected)
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1

    _forbid_encoding(monkeypatch)
    again = encode_examples_cached(tokenizer, examples, TASKS, 32, tmp_path)
    assert _same(again, expected)
    # Batches from a cached encoding are the same tensors.
    a, b = collate(again, [3, 1, 4], 0), collate(expected, [3, 1, 4], 0)
    for name in ("input_ids", "attention_mask", "sequence_task_ids", "choice_mask", "labels", "task_ids"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    for name in ("question_ids", "question_mask"):
        x, y = getattr(a, name, None), getattr(b, name, None)
        assert (x is None and y is None) or torch.equal(x, y), name


def test_cache_key_follows_max_length_tokenizer_and_data(tokenizer, other_tokenizer, tmp_path):
    examples = _examples(20)
    encode_examples_cached(tokenizer, examples, TASKS, 32, tmp_path)

    shorter = encode_examples_cached(tokenizer, examples, TASKS, 12, tmp_path)
    assert _same(shorter, encode_examples(tokenizer, examples, TASKS, 12))
    assert len(list(tmp_path.glob("*.safetensors"))) == 2

    other = encode_examples_cached(other_tokenizer, examples, TASKS, 32, tmp_path)
    assert _same(other, encode_examples(other_tokenizer, examples, TASKS, 32))
    assert len(list(tmp_path.glob("*.safetensors"))) == 3

    edited = [examples[0].__class__(**{**examples[0].__dict__, "question": examples[0].question + " whale"}), *examples[1:]]
    encode_examples_cached(tokenizer, edited, TASKS, 32, tmp_path)
    assert len(list(tmp_path.glob("*.safetensors"))) == 4


def test_cache_labels_come_from_the_examples(tokenizer, tmp_path, monkeypatch):
    examples = _examples(10)
    encode_examples_cached(tokenizer, examples, TASKS, 32, tmp_path)
    # Same text, other answers and task order: token ids are reused, labels are not.
    relabelled = [Example(ex.question, ex.choices, 0, "t0", ex.uid) for ex in examples]
    remapped = {"t0": 2, "t1": 1, "t2": 0}
    _forbid_encoding(monkeypatch)
    hit = encode_examples_cached(tokenizer, relabelled, remapped, 32, tmp_path)
    assert hit.answers == [0] * 10 and hit.task_ids == [2] * 10


def test_tokenizer_fingerprint_ignores_truncation_state(tokenizer):
    before = tokenize.tokenizer_fingerprint(tokenizer)
    tokenizer(["which of these animals lives in the sea"], ["whale"], truncation="only_first", max_length=6)
    assert tokenizer.backend_tokenizer.truncation is not None  # the call left its mark on the backend
    assert tokenize.tokenizer_fingerprint(tokenizer) == before


def test_a_damaged_cache_file_is_a_miss(tokenizer, tmp_path):
    examples = _examples(8)
    encode_examples_cached(tokenizer, examples, TASKS, 32, tmp_path)
    (path,) = tmp_path.glob("*.safetensors")
    path.write_bytes(b"not a safetensors file")
    again = encode_examples_cached(tokenizer, examples, TASKS, 32, tmp_path)
    assert _same(again, encode_examples(tokenizer, examples, TASKS, 32))
    assert path.read_bytes() != b"not a safetensors file"  # rewritten


def test_no_cache_dir_means_no_cache(tokenizer, tmp_path):
    examples = _examples(5)
    assert _same(encode_examples_cached(tokenizer, examples, TASKS, 32, None), encode_examples(tokenizer, examples, TASKS, 32))


def test_default_cache_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ACCT_CACHE_DIR", str(tmp_path / "c"))
    assert tokenize.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("ACCT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert tokenize.default_cache_dir() == tmp_path / "x" / "acct" / "tokenized"


def test_a_tiny_tokenizer_built_again_is_an_independent_copy():
    first = tiny_tokenizer.train_tiny_tokenizer(TEXTS, vocab_size=200)
    first.model_max_length = 7  # what one run does to its tokenizer stays in that run
    second = tiny_tokenizer.train_tiny_tokenizer(iter(TEXTS), vocab_size=200)
    assert second is not first and second.model_max_length != 7
    assert second.get_vocab() == first.get_vocab()
    assert tiny_tokenizer.train_tiny_tokenizer(TEXTS[:2], vocab_size=200).get_vocab() != first.get_vocab()
    assert len(tiny_tokenizer.train_tiny_tokenizer(TEXTS, vocab_size=60).get_vocab()) < len(first.get_vocab())
