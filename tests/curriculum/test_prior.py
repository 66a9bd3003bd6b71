"""The task-sampling prior of the Curriculum: warm-up samples from it, adaptive strategies
reweight it, the floor mixes it in, and with the uniform prior nothing changes."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import observation

from acct.config.train import CurriculumSettings
from acct.curriculum.curriculum import Curriculum
from acct.curriculum.weights import mix_with_floor, prior_weights, uniform_weights
from acct.errors import UsageError

SIZES = [60, 30, 10]


def test_prior_weights_by_hand() -> None:
    assert prior_weights("uniform", SIZES).tolist() == uniform_weights(3).tolist()
    assert prior_weights("proportional", SIZES).tolist() == pytest.approx([0.6, 0.3, 0.1])
    root = [60**0.5, 30**0.5, 10**0.5]
    assert prior_weights("temperature", SIZES, 0.5).tolist() == pytest.approx([r / sum(root) for r in root])
    assert prior_weights("temperature", SIZES, 1.0).tolist() == pytest.approx([0.6, 0.3, 0.1])
    with pytest.raises(UsageError, match="prior"):
        prior_weights("zipf", SIZES)
    with pytest.raises(UsageError, match="training questions"):
        prior_weights("proportional", [0, 0, 0])


def _feed(curriculum: Curriculum, errors: list[bool]) -> None:
    tasks = torch.arange(len(errors))
    curriculum.observe(observation(torch.randn(len(errors), 4), tasks, torch.full((len(errors),), 0.5), ~torch.tensor(errors)))


def test_warmup_samples_from_the_prior_and_flat_statistic_gives_it_back() -> None:
    c = Curriculum("difficulty", 3, warmup_steps=2, update_every_n_steps=1, floor=0.2, prior="proportional",
                   task_sizes=SIZES)
    assert c.weights.tolist() == pytest.approx([0.6, 0.3, 0.1])
    _feed(c, [True, True, True])
    assert c.step(1).tolist() == pytest.approx([0.6, 0.3, 0.1])  # warm-up
    _feed(c, [True, True, True])
    # Past warm-up, every task equally wrong: the flat statistic gives back the prior.
    assert c.step(2).tolist() == pytest.approx([0.6, 0.3, 0.1], abs=1e-12)


def test_adaptive_weights_multiply_the_prior_and_the_floor_mixes_the_prior() -> None:
    floor = 0.2
    c = Curriculum("difficulty", 3, warmup_steps=0, update_every_n_steps=1, floor=floor, temperature=1.0,
                   prior="proportional", task_sizes=SIZES)
    _feed(c, [False, False, True])  # task 2 always wrong
    w = c.step(1)
    z = torch.tensor([0.0, 0.0, 1.0])
    z = (z - z.mean()) / z.std(correction=0)
    soft = torch.softmax(z.double(), 0)
    prior = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    expected = (1 - floor) * (soft * prior) / (soft * prior).sum() + floor * prior
    assert w.tolist() == pytest.approx(expected.tolist(), rel=1e-6)
    assert bool((w >= floor * prior - 1e-15).all())
    # Mixed with uniform instead, the smallest task would get floor/3 > floor*0.1.
    assert w[2].item() != pytest.approx(((1 - floor) * (soft * prior) / (soft * prior).sum() + floor / 3)[2].item())


def test_uniform_prior_keeps_every_number() -> None:
    """With the uniform prior the weights are exactly those of the formula before the prior existed."""
    c = Curriculum("difficulty", 3, warmup_steps=0, update_every_n_steps=1, floor=0.1, temperature=2.0,
                   task_sizes=SIZES)
    _feed(c, [False, True, True])
    w = c.step(1)
    from acct.curriculum.weights import difficulty_weights, impute_unseen

    stats = c.stats()
    expected = mix_with_floor(difficulty_weights(impute_unseen(stats.error_rate, stats.seen), 2.0), 0.1)
    assert torch.equal(w, expected)


def test_settings_default_to_the_proportional_prior_and_describe_their_fields() -> None:
    # Proportional: the default study's baseline samples like plain multi-task fine-tuning.
    settings = CurriculumSettings()
    assert settings.prior == "proportional" and settings.alpha == 0.5
    for name in ("prior", "alpha"):
        assert CurriculumSettings.model_fields[name].description
    with pytest.raises(ValueError, match="prior"):
        CurriculumSettings(prior="zipf")
