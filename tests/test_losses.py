"""Tests for acct.losses against small hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from acct.errors import UsageError
from acct.losses import (
    choice_log_probs,
    classification_loss,
    normalized_entropy,
    total_loss,
    weighted_info_nce,
)


def _unit(angle: float) -> list[float]:
    return [math.cos(angle), math.sin(angle)]


def _reference_info_nce(
    z: list[list[float]], tasks: list[int], weights: list[float], tau: float
) -> float:
    """The loss formula (README.md, "What it does") written out with plain floats."""
    n = len(z)
    dot = [[sum(a * b for a, b in zip(z[i], z[j])) for j in range(n)] for i in range(n)]
    total, valid = 0.0, 0
    for i in range(n):
        positives = [p for p in range(n) if p != i and tasks[p] == tasks[i]]
        if not positives:
            continue
        denom = sum(math.exp(dot[i][a] / tau) for a in range(n) if a != i)
        terms = [math.log(math.exp(dot[i][p] / tau) / denom) for p in positives]
        total += weights[i] * (-sum(terms) / len(positives))
        valid += 1
    return total / valid


def test_choice_log_probs_masks_padding() -> None:
    scores = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.5, 100.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    log_p = choice_log_probs(scores, mask)
    assert torch.isneginf(log_p[1, 2])
    assert torch.allclose(log_p[1, :2].exp(), torch.tensor([0.5, 0.5]))
    assert torch.allclose(log_p[0], torch.log_softmax(scores[0], dim=0))


def test_normalized_entropy_extremes_and_padding() -> None:
    scores = torch.tensor(
        [
            [0.0, 0.0, 0.0, 0.0],  # uniform over 4
            [0.0, -1e4, -1e4, -1e4],  # one-hot
            [2.0, 2.0, 50.0, -50.0],  # uniform over the 2 valid choices
            [1.0, 0.0, 0.0, 9.0],  # 3 valid choices, known distribution
        ]
    )
    mask = torch.tensor(
        [
            [True, True, True, True],
            [True, True, True, True],
            [True, True, False, False],
            [True, True, True, False],
        ],
        dtype=torch.bool,
    )
    scores.requires_grad_(True)
    u = normalized_entropy(scores, mask)
    e = math.e
    p = [e / (e + 2), 1 / (e + 2), 1 / (e + 2)]
    expected_last = -sum(q * math.log(q) for q in p) / math.log(3)
    assert u.shape == (4,)
    assert u[0].item() == pytest.approx(1.0, abs=1e-6)
    assert u[1].item() == pytest.approx(0.0, abs=1e-6)
    assert u[2].item() == pytest.approx(1.0, abs=1e-6)
    assert u[3].item() == pytest.approx(expected_last, abs=1e-6)
    u.sum().backward()
    assert torch.isfinite(scores.grad).all()
    assert (scores.grad[~mask] == 0).all()


def test_classification_loss_matches_cross_entropy() -> None:
    torch.manual_seed(0)
    scores = torch.randn(5, 4)
    labels = torch.tensor([0, 3, 1, 2, 1])
    full = torch.ones(5, 4, dtype=torch.bool)
    expected = torch.nn.functional.cross_entropy(scores, labels)
    got = classification_loss(scores, full, labels)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)

    # Padded choices must behave as if they were not there at all.
    mask = full.clone()
    mask[1, 2] = False
    mask[4, 3] = False
    padded = scores.clone()
    padded[1, 2] = 1e3
    padded[4, 3] = 1e3
    rows = []
    for r in range(5):
        valid = [float(scores[r, c]) for c in range(4) if mask[r, c]]
        lse = math.log(sum(math.exp(v) for v in valid))
        rows.append(lse - float(scores[r, labels[r]]))
    expected_padded = torch.tensor(sum(rows) / len(rows))
    assert classification_loss(padded, mask, labels).item() == pytest.approx(
        expected_padded.item(), rel=1e-6
    )


def test_info_nce_matches_hand_computation() -> None:
    tau = 0.5
    z_list = [_unit(0.0), _unit(math.pi / 3), _unit(math.pi / 2), _unit(math.pi), _unit(2.0)]
    tasks = [0, 0, 1, 1, 1]
    weights = [0.2, 1.0, 0.5, 0.7, 0.9]
    expected = _reference_info_nce(z_list, tasks, weights, tau)
    got = weighted_info_nce(
        torch.tensor(z_list), torch.tensor(tasks), torch.tensor(weights), tau=tau
    )
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_info_nce_two_items_closed_form() -> None:
    # Two same-task items: the only other item is the positive, so each L_i = 0.
    z = torch.tensor([_unit(0.0), _unit(1.0)])
    loss = weighted_info_nce(z, torch.tensor([3, 3]), torch.ones(2))
    assert loss.item() == pytest.approx(0.0, abs=1e-6)

    # Three items, anchor 0 has positive 1 (cos 0.5) and negative 2 (cos 0): by hand.
    tau = 0.07
    z = torch.tensor([_unit(0.0), _unit(math.pi / 3), _unit(math.pi / 2)])
    loss_0 = -(0.5 / tau - math.log(math.exp(0.5 / tau) + math.exp(0.0)))
    # Anchor 1: positive 0 (cos 0.5), negative 2 (cos(pi/6)).
    c = math.cos(math.pi / 6)
    loss_1 = -(0.5 / tau - math.log(math.exp(0.5 / tau) + math.exp(c / tau)))
    expected = (1.0 * loss_0 + 2.0 * loss_1) / 2  # anchor 2 has no positive
    got = weighted_info_nce(z, torch.tensor([0, 0, 1]), torch.tensor([1.0, 2.0, 5.0]), tau=tau)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_anchor_without_positive_is_excluded() -> None:
    torch.manual_seed(1)
    z = torch.nn.functional.normalize(torch.randn(5, 3), dim=-1)
    tasks = torch.tensor([0, 0, 1, 1, 2])  # item 4 is alone in its task
    base = weighted_info_nce(z, tasks, torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0]))
    changed = weighted_info_nce(z, tasks, torch.tensor([1.0, 1.0, 1.0, 1.0, 100.0]))
    assert changed.item() == base.item()
    # ...but it still acts as a negative: dropping it changes the loss.
    dropped = weighted_info_nce(z[:4], tasks[:4], torch.ones(4))
    assert dropped.item() != pytest.approx(base.item())


def test_info_nce_detaches_weights_and_backprops_to_z() -> None:
    torch.manual_seed(2)
    z = torch.nn.functional.normalize(torch.randn(6, 4), dim=-1).requires_grad_(True)
    weights = torch.rand(6, requires_grad=True)
    loss = weighted_info_nce(z, torch.tensor([0, 0, 1, 1, 2, 2]), weights)
    loss.backward()
    assert weights.grad is None
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_info_nce_no_valid_anchor_is_attached_zero() -> None:
    for n in (1, 3):
        z = torch.nn.functional.normalize(torch.randn(n, 4), dim=-1).requires_grad_(True)
        loss = weighted_info_nce(z, torch.arange(n), torch.ones(n))
        assert loss.item() == 0.0
        loss.backward()
        assert z.grad is not None and torch.isfinite(z.grad).all()
        assert (z.grad == 0).all()


def test_info_nce_bf16_is_finite_and_close_to_fp32() -> None:
    torch.manual_seed(3)
    z = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    tasks = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    w = torch.rand(8)
    ref = weighted_info_nce(z, tasks, w)
    zb = z.to(torch.bfloat16).requires_grad_(True)
    got = weighted_info_nce(zb, tasks, w.to(torch.bfloat16))
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(ref.item(), rel=2e-2)
    got.backward()
    assert torch.isfinite(zb.grad.float()).all()


def test_info_nce_rejects_bad_tau() -> None:
    with pytest.raises(UsageError):
        weighted_info_nce(torch.eye(2), torch.tensor([0, 0]), torch.ones(2), tau=0.0)


def test_total_loss() -> None:
    assert total_loss(torch.tensor(2.0), torch.tensor(4.0), 0.7, 0.3).item() == pytest.approx(2.6)
