"""The `temperature` strategy: p_t ∝ n_t^alpha, never reweighted."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import observation

from acct.curriculum.curriculum import Curriculum
from acct.errors import UsageError

SIZES = [64, 16, 4]


def test_weights_by_hand_with_the_default_and_a_given_alpha() -> None:
    c = Curriculum("temperature", 3, warmup_steps=50, update_every_n_steps=1, floor=0.3, task_sizes=SIZES)
    assert c.weights.tolist() == pytest.approx([8 / 14, 4 / 14, 2 / 14])  # sqrt: 8, 4, 2
    c.observe(observation(torch.randn(3, 4), torch.arange(3), torch.rand(3), torch.tensor([False, True, True])))
    assert c.step(1).tolist() == pytest.approx([8 / 14, 4 / 14, 2 / 14])
    flat = Curriculum("temperature", 3, warmup_steps=0, update_every_n_steps=1, task_sizes=SIZES, alpha=0.0 + 1e-300)
    assert flat.weights.tolist() == pytest.approx([1 / 3] * 3)
    given = Curriculum("temperature", 3, warmup_steps=0, update_every_n_steps=1, task_sizes=SIZES,
                       options={"alpha": 1.0})
    assert given.weights.tolist() == pytest.approx([64 / 84, 16 / 84, 4 / 84])


def test_bad_alpha_is_one_line() -> None:
    with pytest.raises(UsageError, match="alpha"):
        Curriculum("temperature", 3, warmup_steps=0, update_every_n_steps=1, task_sizes=SIZES, options={"alpha": -1})
