"""The multiple-choice model: per-choice scoring and where the task embedding enters."""

from __future__ import annotations

import torch

from acct.config.train import ModelSettings
from acct.model.encoder import HeadConfig, MultipleChoiceModel, build_encoder


def tiny_model(num_tasks=2, seed=0):
    torch.manual_seed(seed)
    encoder, notices = build_encoder(ModelSettings(name_or_path="tiny"), vocab_size=50)
    assert any("RANDOM" in n for n in notices)
    return MultipleChoiceModel(encoder, HeadConfig(num_tasks=num_tasks, projection_dim=16, pooling="cls")).eval()


def test_scores_are_masked_per_question_and_embeddings_unit_norm():
    model = tiny_model()
    ids = torch.randint(5, 50, (5, 7))
    choice_mask = torch.tensor([[True, True, True], [True, True, False]])
    questions = torch.randint(5, 50, (2, 4))
    q_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    out = model(ids, torch.ones_like(ids), torch.tensor([0, 0, 0, 1, 1]), choice_mask, questions, q_mask)
    assert out.scores.shape == (2, 3)
    assert torch.isinf(out.scores[1, 2]) and torch.isfinite(out.scores[choice_mask]).all()
    assert torch.allclose(out.embeddings.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert model(ids, torch.ones_like(ids), torch.tensor([0, 0, 0, 1, 1]), choice_mask).embeddings is None


def test_the_contrastive_embedding_sees_the_question_text_only():
    # z comes from the question-only sequence without a task vector: the same question text
    # gets the same z whatever the tasks of its choices, and padding does not change it.
    model = tiny_model()
    ids = torch.randint(5, 50, (4, 6))
    mask = torch.ones(2, 2, dtype=torch.bool)
    q = torch.randint(5, 50, (1, 5))
    # Row 1: the first four tokens of q, right-padded to width 5.
    questions = torch.cat([q, torch.cat([q[:, :4], torch.zeros(1, 1, dtype=torch.long)], 1)])
    q_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    with torch.no_grad():
        a = model(ids, torch.ones_like(ids), torch.tensor([0, 0, 1, 1]), mask, q.expand(2, -1), torch.ones(2, 5, dtype=torch.long))
        b = model(ids, torch.ones_like(ids), torch.tensor([1, 1, 0, 0]), mask, questions, q_mask)
    assert torch.allclose(a.embeddings[0], a.embeddings[1], atol=1e-6)
    assert torch.allclose(a.embeddings[0], b.embeddings[0], atol=1e-6)
    with torch.no_grad():  # the same four tokens without padding of their own
        c = model(ids, torch.ones_like(ids), torch.tensor([0, 0, 1, 1]), mask, q[:, :4].expand(2, -1), torch.ones(2, 4, dtype=torch.long))
    assert torch.allclose(b.embeddings[1], c.embeddings[0], atol=1e-5)


def test_task_embedding_changes_the_relative_scores_of_choices():
    # Injected at the input, the task vector changes how the choices compare; a vector added
    # only to the score head would shift every choice equally and vanish in the softmax.
    model = tiny_model()
    ids = torch.randint(5, 50, (4, 6))
    mask = torch.ones(1, 4, dtype=torch.bool)
    with torch.no_grad():
        p0 = model(ids, torch.ones_like(ids), torch.zeros(4, dtype=torch.long), mask).scores.softmax(-1)
        p1 = model(ids, torch.ones_like(ids), torch.ones(4, dtype=torch.long), mask).scores.softmax(-1)
    assert (p0 - p1).abs().max() > 1e-4


def test_unknown_task_uses_the_mean_task_embedding():
    model = tiny_model(num_tasks=3)
    v = model.task_vectors(torch.tensor([-1, 2]))
    assert torch.allclose(v[0], model.task_embedding.weight.mean(0))
    assert torch.equal(v[1], model.task_embedding.weight[2])


def test_fast_attention_is_on_by_default_and_scores_like_the_library_attention():
    torch.manual_seed(0)
    encoder, _ = build_encoder(ModelSettings(name_or_path="tiny"), vocab_size=50)
    state = encoder.state_dict()
    head = HeadConfig(num_tasks=2, projection_dim=16, pooling="mean")
    fast = MultipleChoiceModel(encoder, head).eval()
    torch.manual_seed(1)
    slow_encoder, _ = build_encoder(ModelSettings(name_or_path="tiny"), vocab_size=50)
    slow_encoder.load_state_dict(state)
    slow = MultipleChoiceModel(slow_encoder, head, attention_backend="hf").eval()
    slow.load_state_dict(fast.state_dict())
    assert fast.attention_backend == "acct" and slow.attention_backend == "hf"

    ids = torch.randint(5, 50, (4, 9))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    choice_mask = torch.ones(2, 2, dtype=torch.bool)
    tasks = torch.tensor([0, 0, 1, 1])
    torch.testing.assert_close(fast(ids, mask, tasks, choice_mask).scores, slow(ids, mask, tasks, choice_mask).scores,
                               atol=1e-5, rtol=1e-4)
