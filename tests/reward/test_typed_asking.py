"""Asking typed questions: the posterior of a ranking is the model's Bayes posterior, BALD
prefers the question that tells more, and a menu refuses what a model cannot score."""

from __future__ import annotations

import numpy as np
import pytest

from robopref.reward.typed_asking import (
    QuestionMenu,
    TypedCandidates,
    infer_user_typed,
    parse_menu,
)
from robopref.users.question_types import QuestionType
from tests.reward.test_active import LineModel

# items on a line: r(s, z) = z * s[0] + s[1], one-step segments
_POSITIONS = np.array([-1.5, -0.5, 0.5, 1.5, 1.0, -1.0], np.float32)


def _candidates(menu: QuestionMenu) -> TypedCandidates:
    items = np.stack([_POSITIONS, np.zeros_like(_POSITIONS)], -1)[:, None, :]
    half = len(items) // 2
    return TypedCandidates.from_pool(
        menu, (items[:half], items[half:]), (items[:half], items[half:]), 0
    )


def _noise_free(z: float):
    def ask(kind: QuestionType, rows: np.ndarray):
        returns = z * _POSITIONS[rows]
        return kind.sample(returns, np.inf, np.random.default_rng(0)).tolist()

    return ask


def test_a_ranking_posterior_is_the_models_bayes_posterior() -> None:
    menu = QuestionMenu((QuestionType("ranking", 3),), per_type=8)
    candidates = _candidates(menu)
    result = infer_user_typed(LineModel(), _noise_free(0.7), 1, candidates, "random", 0)
    kind, rows = candidates.question(result.asked[0])
    order = rows[np.asarray(result.answers[0])]
    # Plackett-Luce of three: two softmax choices, on a fine grid of z
    grid = np.linspace(-6, 6, 20001)
    utility = grid[:, None] * _POSITIONS[order][None, :]
    log_pl = (utility[:, 0] - np.logaddexp.reduce(utility, 1)) + (
        utility[:, 1] - np.logaddexp(utility[:, 1], utility[:, 2])
    )
    log_post = -0.5 * grid**2 + log_pl
    weight = np.exp(log_post - log_post.max())
    weight /= weight.sum()
    mean = float((weight * grid).sum())
    assert abs(float(result.mean[0]) - mean) < 0.05
    assert mean > 0  # the answer says z > 0, as it is


def test_a_ranking_of_four_narrows_the_posterior_more_than_a_pair() -> None:
    stds = {}
    for kind in (QuestionType("pair", 2), QuestionType("ranking", 4)):
        menu = QuestionMenu((kind,), per_type=16)
        result = infer_user_typed(LineModel(), _noise_free(0.7), 2, _candidates(menu), "active", 0)
        stds[kind.kind] = float(result.std[0])
        assert len(set(result.asked)) == 2
    assert stds["ranking"] < stds["pair"]


def test_bald_prefers_a_ranking_to_a_pair_at_equal_cost() -> None:
    menu = QuestionMenu((QuestionType("pair", 2), QuestionType("ranking", 4)), per_type=16)
    result = infer_user_typed(LineModel(), _noise_free(0.7), 1, _candidates(menu), "active", 0)
    assert menu.type_of(result.asked[0]).kind == "ranking"
    assert menu.seconds(result.asked) == QuestionType("ranking", 4).seconds()


def test_the_encoder_posterior_reads_the_pairs_an_answer_implies() -> None:
    menu = QuestionMenu((QuestionType("best-of", 3),), per_type=8)
    result = infer_user_typed(
        LineModel(), _noise_free(0.7), 2, _candidates(menu), "random", 0, posterior="encoder"
    )
    # LineModel's q counts votes: every implied pair says "the chosen one", label 1
    assert float(result.mean[0]) > 0 and result.stds.shape == (3, 1)


def test_menus_refuse_what_cannot_be_asked() -> None:
    with pytest.raises(ValueError, match="absolute scale"):
        parse_menu("rating")
    with pytest.raises(ValueError, match="TYPE:ITEMS"):
        parse_menu("ranking:four")
    with pytest.raises(ValueError, match="unknown"):
        parse_menu("poll")
    with pytest.raises(ValueError, match="end-states"):
        parse_menu("pair", items="tables")
    assert parse_menu("pair").pairs_only and not parse_menu("pair", "end-states").pairs_only
    menu = parse_menu("pair,ranking:3", "end-states")
    assert menu.describe() == "pair-2, ranking-3 of end-states"
    long_items = np.zeros((4, 5, 2), np.float32)
    candidates = TypedCandidates.from_pool(
        menu, (long_items, long_items), (long_items, long_items), 1
    )
    assert candidates.model_items.shape == (8, 1, 2)  # each segment's last state
    assert all(len(set(row)) == len(row) for rows in candidates.questions for row in rows)


def test_a_shipped_policys_new_user_answers_rankings() -> None:
    import robopref
    from robopref.policies.personalize import new_user_inference, new_user_pool

    policy = robopref.load_policy("vpl")
    user = robopref.synthetic_users(policy, n=1, seed=5)[0]
    pool = new_user_pool(policy.reward_model, 5, 64)
    menu = parse_menu("ranking:4")
    runs = [
        new_user_inference(policy.loaded, policy.reward_model, user, 0, pool, 3, "active", 5,
                           menu=menu)
        for _ in range(2)
    ]  # fmt: skip
    first = runs[0]
    assert first is not None and runs[1] is not None
    assert first.asked == runs[1].asked and first.answers == runs[1].answers  # seeded
    assert all(sorted(answer) == [0, 1, 2, 3] for answer in first.answers)
    assert first.means.shape == (4, policy.reward_model.latent_dim)
    assert menu.seconds(first.asked) == 3 * 16.0


def test_the_api_serves_a_user_who_ranks_and_refuses_a_function_that_cannot() -> None:
    import robopref
    from robopref.policies.personalize import new_user_inference, new_user_pool

    policy = robopref.load_policy("vpl")
    user = robopref.synthetic_users(policy, n=2, seed=5)[1]
    pool = new_user_pool(policy.reward_model, 5, 64)
    served = robopref.personalize(policy, user, k=2, seed=5, index=1, pool=pool,
                                  question="ranking:4")  # fmt: skip
    same = new_user_inference(policy.loaded, policy.reward_model, user, 1, pool, 2, "active", 5,
                              menu=parse_menu("ranking:4"))  # fmt: skip
    assert same is not None and served.answers == same.answers
    assert all(len(answer) == 4 for answer in served.answers)
    with pytest.raises(ValueError, match="a function user answers pairs only"):
        robopref.personalize(policy, lambda query: 1.0, k=2, pool=pool, question="ranking:4")


def test_typed_posterior_counts_a_ranking_once_and_scales_long_items() -> None:
    """The study's posterior: one Plackett-Luce term per ranking (its Bayes posterior, as
    infer_user_typed's), a pair as the pair posterior, and ``scale`` as utilities times it."""
    from robopref.reward.active import answers_posterior
    from robopref.reward.typed_asking import logit_scale, typed_posterior

    model = LineModel()
    items = np.stack([_POSITIONS[:3], np.zeros(3, np.float32)], -1)[:, None, :]  # (3, 1, 2)
    order = [2, 1, 0]  # best first: the item at 0.5, then -0.5, then -1.5 (z > 0)
    mean, std = typed_posterior(model, [(QuestionType("ranking", 3), items, order)])
    grid = np.linspace(-6, 6, 20001)
    utility = grid[:, None] * _POSITIONS[:3][order][None, :]
    log_pl = (utility[:, 0] - np.logaddexp.reduce(utility, 1)) + (
        utility[:, 1] - np.logaddexp(utility[:, 1], utility[:, 2])
    )
    weight = np.exp(-0.5 * grid**2 + log_pl - (-0.5 * grid**2 + log_pl).max())
    assert abs(float(mean[0]) - float((weight * grid).sum() / weight.sum())) < 0.05
    # its three implied pairs, as independent answers, claim more: a narrower posterior
    pairs = [(items[a], items[b]) for a, b in ((2, 1), (2, 0), (1, 0))]
    a, b = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    _, pair_std = answers_posterior(model, (a, b, np.ones(3, np.float32)))
    assert float(std[0]) > float(pair_std[0])
    # a pair answer: the pair posterior; scale 2: the pair posterior of doubled items
    pair = (QuestionType("pair"), items[[2, 0]], 1.0)
    assert np.allclose(typed_posterior(model, [pair])[0], answers_posterior(
        model, (items[[2]], items[[0]], np.ones(1, np.float32)))[0], atol=1e-5)  # fmt: skip
    doubled = items * np.array([2.0, 1.0], np.float32)
    assert np.allclose(typed_posterior(model, [pair], scale=2.0)[0], answers_posterior(
        model, (doubled[[2]], doubled[[0]], np.ones(1, np.float32)))[0], atol=1e-5)  # fmt: skip
    model.meta = {"segment_length": 10}
    assert logit_scale(model, 61) == pytest.approx(10 / 61)
    model.meta = {}
    assert logit_scale(model, 61) == 1.0
