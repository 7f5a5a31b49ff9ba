"""Choosing queries: BALD picks the pair that splits the posterior; random is nested."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robopref.reward.active import (
    EXACT_ANSWERS,
    answers_posterior,
    bald_scores,
    infer_user,
    set_information,
)
from robopref.reward.base import RewardModel


class LineModel(RewardModel):
    """Hand-built: r(s, z) = z * s[0] + s[1]; each answer about s[0] moves the posterior."""

    kind = "line"

    def __init__(self) -> None:
        super().__init__(2, None)

    @property
    def latent_dim(self) -> int:
        return 1

    def step_reward(self, obs_n, z):
        return z[..., 0] * obs_n[..., 0] + obs_n[..., 1]

    def posterior(self, context):
        label = torch.as_tensor(np.asarray(context[2]), dtype=torch.float32)
        votes = torch.nan_to_num(2 * label - 1).sum()
        return votes.reshape(1) / (1 + len(label)), torch.full((1,), 1 / (1 + len(label)) ** 0.5)


def _pair(a, b):
    return np.array([a], np.float32), np.array([b], np.float32)


def _candidates():
    pairs = [
        _pair([0.0, 0.0], [0.0, 0.0]),  # 0: identical segments, nothing to learn
        _pair([0.0, 5.0], [0.0, -5.0]),  # 1: everyone prefers A whatever z
        _pair([1.0, 0.0], [-1.0, 0.0]),  # 2: A iff z > 0: splits the posterior in half
        _pair([0.2, 3.0], [-0.2, 0.0]),  # 3: splits only far in the tail
    ]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def test_active_asks_the_pair_that_splits_the_posterior() -> None:
    obs_a, obs_b = _candidates()
    asked: list[int] = []
    result = infer_user(
        LineModel(), lambda i: asked.append(i) or 1.0, 1, "active", (obs_a, obs_b), 0
    )
    assert result.asked == asked == [2]
    assert result.means.shape == (2, 1) and result.mean[0] > 0  # the answer moved z


def test_bald_scores() -> None:
    logits = torch.tensor([[5.0, 0.0, -4.0], [5.0, 0.0, 4.0]])
    scores = bald_scores(logits)
    # agreeing samples (0, 1) score ~0; disagreeing confident samples (2) score highest
    assert scores[2] > 0.5 and scores[0] < 1e-6 and scores[1] < 1e-6


def test_random_is_seeded_nested_and_distinct() -> None:
    obs_a, obs_b = _candidates()
    model = LineModel()
    short = infer_user(model, lambda i: 1.0, 2, "random", (obs_a, obs_b), 7)
    long = infer_user(model, lambda i: 1.0, 4, "random", (obs_a, obs_b), 7)
    assert long.asked[:2] == short.asked and sorted(long.asked) == [0, 1, 2, 3]
    assert infer_user(model, lambda i: 1.0, 4, "random", (obs_a, obs_b), 7).asked == long.asked


def test_active_never_repeats_and_skips_cost_a_query() -> None:
    obs_a, obs_b = _candidates()
    result = infer_user(LineModel(), lambda i: np.nan, 4, "active", (obs_a, obs_b), 0)
    assert sorted(result.asked) == [0, 1, 2, 3] and np.isnan(result.answers).all()
    np.testing.assert_array_equal(result.mean, [0.0])


def test_infer_user_errors() -> None:
    obs_a, obs_b = _candidates()
    with pytest.raises(ValueError, match="strategy"):
        infer_user(LineModel(), lambda i: 1.0, 1, "greedy", (obs_a, obs_b))
    with pytest.raises(ValueError, match="5 queries asked for but there are 4"):
        infer_user(LineModel(), lambda i: 1.0, 5, "active", (obs_a, obs_b))
    with pytest.raises(ValueError, match="needs candidates"):
        infer_user(LineModel(), lambda i: 1.0, 1, "active")


def test_trained_vpl_active_inference_finds_the_group(toy_split, toy_vpl) -> None:
    test = toy_split["test"]
    signs = []
    for user in range(test.n_users):
        idx = test.user_indices(user)
        result = infer_user(
            toy_vpl, lambda i, idx=idx: float(test.label[idx[i]]), 4, "active",
            (test.obs_a[idx], test.obs_b[idx]), np.random.default_rng(user),
        )  # fmt: skip
        assert len(set(result.asked)) == 4 and np.all(result.stds[-1] < result.stds[0])
        signs.append(result.mean)
    means = np.array(signs)
    groups = test.user_group
    gap = np.linalg.norm(means[groups == 0].mean(0) - means[groups == 1].mean(0))
    assert gap > 1.0


def test_likelihood_posterior_is_the_models_bayes_posterior() -> None:
    obs_a, obs_b = _candidates()
    answers = {2: 1.0, 3: 0.0}
    # logit of pair 2 is 2z, of pair 3 is 0.4z + 3: the exact posterior on a fine grid
    grid = np.linspace(-6, 6, 20001)
    log_post = -0.5 * grid**2 + np.log(_sigmoid(2 * grid)) + np.log(1 - _sigmoid(0.4 * grid + 3))
    weight = np.exp(log_post - log_post.max())
    weight /= weight.sum()
    exact_mean = float((weight * grid).sum())
    exact_std = float(np.sqrt((weight * (grid - exact_mean) ** 2).sum()))
    for strategy in ("active", "random"):
        result = infer_user(
            LineModel(), lambda i: answers[i + 2], 2, strategy, (obs_a[2:], obs_b[2:]), 0
        )
        assert abs(float(result.mean[0]) - exact_mean) < 0.05
        assert abs(float(result.std[0]) - exact_std) < 0.05
    encoder = infer_user(
        LineModel(), lambda i: answers[i + 2], 2, "random", (obs_a[2:], obs_b[2:]), 0,
        posterior="encoder",
    )  # fmt: skip
    assert abs(float(encoder.mean[0])) < 1e-6  # LineModel's own q: one vote each way
    with pytest.raises(ValueError, match="posterior"):
        infer_user(LineModel(), lambda i: 1.0, 1, "active", (obs_a, obs_b), posterior="exact")
    # all the answers at once, as the loop infers its training users (a skip adds nothing)
    context = (obs_a[2:], obs_b[2:], np.array([1.0, 0.0], np.float32))
    mean, std = answers_posterior(LineModel(), context, "likelihood")
    assert abs(float(mean[0]) - exact_mean) < 0.05 and abs(float(std[0]) - exact_std) < 0.05
    skipped = (obs_a[1:], obs_b[1:], np.array([np.nan, 1.0, 0.0], np.float32))
    np.testing.assert_allclose(answers_posterior(LineModel(), skipped, "likelihood")[0], mean)
    none = (obs_a[:0], obs_b[:0], np.zeros(0, np.float32))
    np.testing.assert_array_equal(answers_posterior(LineModel(), none, "likelihood")[1], [1.0])
    assert abs(float(answers_posterior(LineModel(), context, "encoder")[0][0])) < 1e-6


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def test_set_information_counts_a_repeated_question_once() -> None:
    generator = torch.Generator().manual_seed(0)
    split = torch.tensor([10.0, -10.0]).repeat_interleave(32)[:, None, None]  # (64, 1, 1)
    settled = torch.full((64, 1, 1), 10.0)  # everyone answers A
    one = set_information(split, generator)
    assert one.item() == pytest.approx(np.log(2), abs=1e-3)  # one bit about z
    assert set_information(settled, generator).item() == pytest.approx(0.0, abs=1e-3)
    # the same splitting question asked twice tells no more than once (BALD's sum would say 2)
    twice = set_information(split.expand(64, 1, 2), generator)
    assert twice.item() == pytest.approx(np.log(2), abs=1e-3)
    # beyond EXACT_ANSWERS questions the Monte Carlo estimate says the same
    many = set_information(split.expand(64, 1, EXACT_ANSWERS + 2), generator)
    assert many.item() == pytest.approx(np.log(2), abs=0.05)


def test_sets_ask_the_informative_pair_once_chosen_up_front() -> None:
    obs_a, obs_b = _candidates()
    asked: list[int] = []
    result = infer_user(LineModel(), lambda i: asked.append(i) or 1.0, 2, "sets", (obs_a, obs_b), 3)
    assert 2 in result.asked and len(set(result.asked)) == 2 and result.asked == asked
    again = infer_user(LineModel(), lambda i: 0.0, 2, "sets", (obs_a, obs_b), 3)
    assert again.asked == result.asked  # chosen before any answer: the answers change nothing
