"""Question types: each likelihood against a hand computation, and synthetic answers that
follow their own model."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from robopref.users.question_types import QUESTION_TYPES, QuestionType, question_type


def _softmax(values: list[float]) -> np.ndarray:
    exp = np.exp(values)
    return exp / exp.sum()


def test_a_ranking_of_three_is_the_product_of_its_two_softmax_choices():
    returns = [0.3, -0.2, 1.1]
    beta = 2.0
    order = [2, 0, 1]
    utility = [beta * r for r in returns]
    first = _softmax(utility)[2]
    second = _softmax([utility[0], utility[1]])[0]
    got = question_type("ranking", items=3).log_likelihood(
        torch.tensor(returns), torch.tensor(order), beta
    )
    assert float(got) == pytest.approx(math.log(first * second), abs=1e-6)


def test_the_pair_is_bradley_terry_and_best_of_a_softmax():
    returns = torch.tensor([0.4, -0.1])
    pair = question_type("pair").log_likelihood(returns, torch.tensor(1.0), 3.0)
    assert float(pair) == pytest.approx(math.log(1 / (1 + math.exp(-1.5))), abs=1e-6)
    best = question_type("best-of", items=3).log_likelihood(
        torch.tensor([0.0, 1.0, 0.5]), torch.tensor(1), 2.0
    )
    assert float(best) == pytest.approx(math.log(_softmax([0.0, 2.0, 1.0])[1]), abs=1e-6)


def _all_answers(kind: QuestionType) -> list:
    if kind.kind == "pair":
        return [1.0, 0.0]
    if kind.kind == "weak-pair":
        return [1.0, 0.0, 0.5]
    if kind.kind == "best-of":
        return list(range(kind.items))
    if kind.kind == "ranking":
        return [list(p) for p in itertools.permutations(range(kind.items))]
    return list(range(1, kind.levels + 1))


@pytest.mark.parametrize("name", QUESTION_TYPES)
def test_every_answer_model_is_a_distribution_and_draws_follow_it(name):
    kind = question_type(name, items=3 if name in ("ranking", "best-of") else None)
    returns = np.array([0.5, -0.3, 0.1][: kind.items])
    beta = 1.5
    answers = _all_answers(kind)
    probs = np.array([
        math.exp(float(kind.log_likelihood(torch.tensor(returns), torch.tensor(a), beta)))
        for a in answers
    ])  # fmt: skip
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    draws = kind.sample(np.tile(returns, (20000, 1)), beta, np.random.default_rng(0))
    keys = [tuple(a) if isinstance(a, list) else a for a in answers]
    seen = [tuple(d) if np.ndim(d) else float(d) for d in draws]
    freq = np.array([sum(1 for s in seen if s == k) for k in keys]) / len(seen)
    assert np.abs(freq - probs).max() < 0.015, (freq, probs)


def test_a_wider_margin_means_more_about_equal_answers():
    returns = np.tile([0.2, 0.0], (5000, 1))
    rng = np.random.default_rng(1)
    narrow = QuestionType("weak-pair", tie_margin=0.2).sample(returns, 2.0, rng)
    wide = QuestionType("weak-pair", tie_margin=2.0).sample(returns, 2.0, rng)
    assert np.mean(wide == 0.5) > np.mean(narrow == 0.5) + 0.2


def test_noise_free_answers_order_by_return():
    ranking = question_type("ranking", items=3).sample(np.array([0.1, 0.9, -0.5]), math.inf, None)
    assert ranking.tolist() == [1, 0, 2]
    rating = question_type("rating")
    assert [rating.sample(np.array([r]), math.inf, None) for r in (-5.0, 0.0, 5.0)] == [1, 4, 7]
    assert question_type("pair").sample(np.array([0.0, 1.0]), math.inf, None) == 0.0


def test_likelihoods_are_differentiable_in_the_returns():
    returns = torch.tensor([[0.1, 0.4, -0.2, 0.0]], requires_grad=True)
    kind = question_type("ranking")
    kind.log_likelihood(returns, torch.tensor([[1, 0, 3, 2]]), 2.0).sum().backward()
    assert returns.grad is not None and torch.all(torch.isfinite(returns.grad))
    assert float(returns.grad[0, 1]) > 0  # the item ranked first gains by a higher return


def test_implied_pairs_and_costs():
    assert question_type("ranking", items=4).implied_pairs() == 6
    assert question_type("best-of", items=4).implied_pairs() == 3
    assert question_type("pair").implied_pairs() == 1
    assert question_type("rating").implied_pairs() == 0
    assert question_type("ranking", items=4).seconds() > question_type("pair").seconds()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"kind": "poll"}, "unknown"),
        ({"kind": "pair", "items": 3}, "shows 2-2 items"),
        ({"kind": "ranking", "items": 1}, "shows 2-8 items"),
        ({"kind": "weak-pair", "tie_margin": -1.0}, "tie_margin"),
        ({"kind": "rating", "items": 1, "levels": 1}, "levels"),
    ],
)
def test_bad_question_types_are_refused_by_name(settings, message):
    with pytest.raises(ValueError, match=message):
        QuestionType(**settings)


def test_bald_prefers_a_ranking_to_a_pair_when_costs_are_equal():
    """Posterior samples that disagree about four items: one ranking of the four tells more
    about the user than one pair of two of them; the information is zero where every sample
    agrees on the returns."""
    rng = np.random.default_rng(0)
    samples = torch.tensor(rng.normal(size=(64, 4)))
    ranking = question_type("ranking", items=4).information(samples, 3.0)
    pair = question_type("pair").information(samples[:, :2], 3.0)
    assert float(ranking) > float(pair) > 0.0
    agreed = torch.tensor([[0.5, -0.5, 0.1, 0.0]]).repeat(16, 1)
    assert float(question_type("ranking", items=4).information(agreed, 3.0)) == pytest.approx(
        0.0, abs=1e-6
    )


@pytest.mark.parametrize("name", QUESTION_TYPES)
def test_information_is_bounded_by_the_answers_entropy(name):
    kind = question_type(name, items=3 if name in ("ranking", "best-of") else None)
    samples = torch.tensor(np.random.default_rng(1).normal(size=(5, 32, kind.items)))
    info = kind.information(samples, 2.0)
    assert info.shape == (5,)
    assert torch.all(info >= -1e-9) and torch.all(info <= math.log(len(kind.all_answers())) + 1e-9)
