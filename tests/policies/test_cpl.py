"""The CPL loss: its value on a hand-built case, and a gradient step that raises the
preferred segment's log-probability and lowers the other's."""

from __future__ import annotations

import math

import pytest
import torch

from robopref.policies.cpl import CPLSettings, cpl_loss, cpl_ranking_loss, segment_scores


def test_the_loss_matches_a_hand_computation():
    settings = CPLSettings(alpha=0.5, gamma=0.9, conservative=0.8)
    log_a = torch.tensor([[-1.0, -2.0]])
    log_b = torch.tensor([[-0.5, -3.0]])
    score_a = 0.5 * (-1.0 + 0.9 * -2.0)
    score_b = 0.5 * (-0.5 + 0.9 * -3.0)
    assert segment_scores(log_a, settings).item() == pytest.approx(score_a)
    y = 0.7
    expected = y * math.log1p(math.exp(-(score_a - 0.8 * score_b))) + (1 - y) * math.log1p(
        math.exp(-(score_b - 0.8 * score_a))
    )
    loss = cpl_loss(log_a, log_b, torch.tensor([y]), settings)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_skipped_answers_count_for_nothing():
    log_a, log_b = torch.zeros(2, 3), -torch.ones(2, 3)
    both = cpl_loss(log_a, log_b, torch.tensor([1.0, float("nan")]))
    one = cpl_loss(log_a[:1], log_b[:1], torch.tensor([1.0]))
    assert both.item() == pytest.approx(one.item())
    assert cpl_loss(log_a, log_b, torch.tensor([float("nan")] * 2)).item() == 0.0


def test_a_gradient_step_raises_the_preferred_segments_log_probability():
    torch.manual_seed(0)
    states = torch.randn(2, 5, 3)  # segment A, segment B: 5 steps of a 3-D state
    actions = torch.randn(2, 5, 2)
    mean = torch.nn.Linear(3, 2)
    log_std = torch.zeros(2, requires_grad=True)
    optimiser = torch.optim.SGD([*mean.parameters(), log_std], lr=0.05)

    def log_probs() -> torch.Tensor:
        dist = torch.distributions.Normal(mean(states), log_std.exp())
        return dist.log_prob(actions).sum(-1)  # (2, 5)

    before = log_probs().detach()
    for _ in range(20):
        lp = log_probs()
        loss = cpl_loss(lp[:1], lp[1:], torch.tensor([1.0]), CPLSettings(alpha=1.0))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    after = log_probs().detach()
    assert after[0].sum() > before[0].sum()  # A, preferred: more likely
    assert after[1].sum() < before[1].sum()  # B: less likely
    gap_before = before[0].sum() - before[1].sum()
    assert after[0].sum() - after[1].sum() > gap_before + 1.0


@pytest.mark.parametrize(
    "kwargs", [{"alpha": 0.0}, {"gamma": 1.5}, {"conservative": 0.0}, {"bc_weight": -1.0}]
)
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        CPLSettings(**kwargs)


def test_the_ranking_loss_matches_a_hand_computation():
    scores = torch.tensor([[2.0, 1.0, 0.0]])  # best first
    lam = 0.5
    first = math.exp(2.0) / (math.exp(2.0) + math.exp(lam * 1.0) + math.exp(lam * 0.0))
    second = math.exp(1.0) / (math.exp(1.0) + math.exp(lam * 0.0))
    loss = cpl_ranking_loss(scores, CPLSettings(conservative=lam))
    assert math.isclose(float(loss), -(math.log(first) + math.log(second)), rel_tol=1e-6)
    # the wrong order costs more
    assert float(cpl_ranking_loss(scores.flip(-1), CPLSettings(conservative=lam))) > float(loss)


def test_a_ranking_of_two_is_the_pair_loss():
    settings = CPLSettings(conservative=0.5)
    log_probs_a, log_probs_b = torch.randn(6, 3), torch.randn(6, 3)
    pair = cpl_loss(log_probs_a, log_probs_b, torch.ones(6), settings)
    scores = torch.stack(
        [segment_scores(log_probs_a, settings), segment_scores(log_probs_b, settings)], 1
    )
    assert torch.allclose(cpl_ranking_loss(scores, settings), pair)
