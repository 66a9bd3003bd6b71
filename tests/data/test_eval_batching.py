"""Evaluation batches bounded by padded tokens: what they hold, and that scores do not depend on them."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from acct.data import tokenize
from acct.config.train import ModelSettings
from acct.data.records import Example
from acct.scoring.score import predict_encoded
from acct.model.encoder import HeadConfig, MultipleChoiceModel, build_encoder
from acct.data.synthetic import generate_suite
from acct.data.tiny_tokenizer import train_tiny_tokenizer
from acct.data.tokenize import EncodedExamples, encode_examples, evaluation_batches

MAX_LENGTH = 96


def varied_examples(n: int = 60, seed: int = 0) -> list[Example]:
    """Synthetic questions padded out to very different lengths, with 2 to 5 choices each."""
    rng = random.Random(seed)
    suite = generate_suite(examples_per_task=10, seed=seed)["all"]
    out = []
    for i, ex in enumerate(rng.sample(suite, n)):
        k = rng.randint(2, 5)
        choices = (*ex.choices, "none of these")[:k]
        answer = min(ex.answer, k - 1)
        # Some questions run past max_length, so truncation and full-width batches are both exercised.
        question = " ".join([ex.question] * rng.choice([1, 1, 2, 4, 8, 16]))
        out.append(Example(question, choices, answer, ex.task, f"v{i}"))
    return out


@pytest.fixture(scope="module")
def scored_setup():
    examples = varied_examples()
    tokenizer = train_tiny_tokenizer(tokenize.example_texts(examples), vocab_size=300)
    tasks = sorted({ex.task for ex in examples})
    encoded = encode_examples(tokenizer, examples, {t: i for i, t in enumerate(tasks)}, MAX_LENGTH)
    torch.manual_seed(0)
    encoder, _ = build_encoder(ModelSettings(name_or_path="tiny", max_length=MAX_LENGTH), vocab_size=len(tokenizer))
    model = MultipleChoiceModel(encoder, HeadConfig(num_tasks=len(tasks), projection_dim=16, pooling="mean"))
    # An untrained scorer gives every choice almost the same score, which would let a misplaced
    # row pass for a right one; scaled up, its probabilities spread like a trained model's.
    with torch.no_grad():
        model.scorer[-1].weight.mul_(200.0)
    return model, encoded, tokenize.pad_id(tokenizer)


def predict(setup, batch_size, max_tokens):
    model, encoded, pad = setup
    return predict_encoded(model, encoded, device=torch.device("cpu"), precision="fp32", batch_size=batch_size,
                           pad_id=pad, max_tokens=max_tokens)


def test_scores_do_not_depend_on_the_token_budget(scored_setup):
    _, encoded, _ = scored_setup
    lengths = tokenize.example_lengths(encoded)
    assert lengths.max() == MAX_LENGTH and lengths.min() < MAX_LENGTH // 3  # the lengths really vary
    one_batch = predict(scored_setup, batch_size=10_000, max_tokens=None)
    # A budget below one long question's tokens: many batches, the long questions one per batch.
    tight_budget = 2 * MAX_LENGTH
    assert len(evaluation_batches(encoded, 10_000, tight_budget)) > len(encoded) // 2
    for batch_size, max_tokens in [(10_000, tight_budget), (7, 1000), (10_000, 10**9), (64, tokenize.EVAL_TOKENS_PER_BATCH)]:
        preds, probs = predict(scored_setup, batch_size, max_tokens)
        assert probs.shape == one_batch[1].shape == (len(encoded), 5)
        torch.testing.assert_close(probs, one_batch[1], atol=5e-5, rtol=0)
        assert preds == one_batch[0]
    # The probabilities are a real, example-specific output: rows sum to one over the example's
    # own choices, padded choices are 0, and the untrained model does not score every row alike.
    probs = one_batch[1]
    counts = torch.tensor([len(s) for s in encoded.sequences])
    torch.testing.assert_close(probs.sum(-1), torch.ones(len(encoded)))
    assert all(float(probs[i, k:].abs().sum()) == 0.0 for i, k in enumerate(counts.tolist()))
    assert probs.max(-1).values.mean() > 0.5
    assert len(set(one_batch[0])) == 5


def test_padded_tensors_stay_within_the_budget(scored_setup, monkeypatch):
    from acct.scoring import score as evaluation

    shapes = []
    real_collate = evaluation.collate

    def recording(encoded, indices, pad_id):
        batch = real_collate(encoded, indices, pad_id)
        shapes.append((len(indices), *batch.input_ids.shape))
        return batch

    monkeypatch.setattr(evaluation, "collate", recording)
    _, encoded, _ = scored_setup
    budget = 4 * MAX_LENGTH
    predict(scored_setup, batch_size=6, max_tokens=budget)
    assert sum(q for q, _, _ in shapes) == len(encoded)
    assert all(q <= 6 for q, _, _ in shapes)
    # Over budget only when one question alone is (5 choices x 96 tokens = 480 > 384).
    assert all(seqs * width <= budget or q == 1 for q, seqs, width in shapes)
    assert max(seqs * width for _, seqs, width in shapes) > budget // 2  # the budget is used, not undershot
    shapes.clear()
    predict(scored_setup, batch_size=6, max_tokens=None)  # the question bound alone pads long batches wider
    assert max(seqs * width for _, seqs, width in shapes) > budget


def test_batches_cover_every_example_once_in_length_order():
    rng = np.random.default_rng(0)
    sequences = [[[1] * int(rng.integers(2, 60)) for _ in range(int(rng.integers(2, 6)))] for _ in range(200)]
    encoded = EncodedExamples(sequences, [0] * 200, [0] * 200)
    lengths = tokenize.example_lengths(encoded)
    counts = np.array([len(s) for s in sequences])
    for max_questions, max_tokens in [(16, 300), (1000, 150), (5, None), (3, 1)]:
        batches = evaluation_batches(encoded, max_questions, max_tokens)
        flat = np.concatenate(batches)
        assert sorted(flat.tolist()) == list(range(200))
        assert np.all(np.diff(lengths[flat]) >= 0)
        for b in batches:
            assert 1 <= len(b) <= max_questions
            if max_tokens is not None and len(b) > 1:
                assert counts[b].sum() * lengths[b].max() <= max_tokens
        # Greedy: a batch is cut only when the next example would break a limit.
        for b, nxt in zip(batches, batches[1:]):
            grown = np.append(b, nxt[0])
            too_many = len(grown) > max_questions
            assert too_many or (max_tokens is not None and counts[grown].sum() * lengths[grown].max() > max_tokens)


def test_an_example_over_the_budget_is_a_batch_of_its_own():
    # Examples of 2 choices with longest sequences 2, 2, 3, 10 tokens, budget 12 padded tokens:
    # [0, 1] is 4 x 2 = 8 (adding #2 would be 6 x 3 = 18); [2] alone is 6 (with #3, 4 x 10 = 40);
    # #3 alone is 20, over the budget, and still scored.
    sequences = [[[1, 1], [1]], [[1], [1, 1]], [[1, 1, 1], [1]], [[1] * 10, [1] * 4]]
    encoded = EncodedExamples(sequences, [0] * 4, [0] * 4)
    assert [b.tolist() for b in evaluation_batches(encoded, 64, 12)] == [[0, 1], [2], [3]]
    assert [b.tolist() for b in evaluation_batches(encoded, 64, None)] == [[0, 1, 2, 3]]
    assert [b.tolist() for b in evaluation_batches(encoded, 3, None)] == [[0, 1, 2], [3]]
    assert evaluation_batches(EncodedExamples([], [], []), 64, 12) == []
    with pytest.raises(ValueError):
        evaluation_batches(encoded, 0, 12)
