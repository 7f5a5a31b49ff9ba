"""Synthetic users: the labelling model's properties and the per-task rewards."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robopref.data.rollouts import collect_rollouts, make_env
from robopref.envs import sample_goal
from robopref.tasks import task_spec
from robopref.users.synthetic import (
    LabelModel,
    SyntheticUser,
    label_pairs,
    reward_moments,
)

PLATE = "robopref/PlatePlacement-v0"
BLOCK = "robopref/BlockSort-v0"
TABLE = "robopref/TableSetting-v0"
PLATE_NAMES = ("x", "y", "height", "held", "flat", "on_table", "drop_height", "speed")
BLOCK_NAMES = ("x", "y", "height", "held", "drop_height", "speed", "reach", "zone_0", "zone_1")

returns = st.floats(-5.0, 5.0, allow_nan=False)
models = st.builds(
    LabelModel,
    beta=st.floats(0.1, 100.0),
    gamma=st.floats(0.5, 1.0),
    mistake=st.floats(0.0, 0.3),
    equal_threshold=st.floats(0.0, 0.2),
    soft=st.booleans(),
    both_orders=st.booleans(),
)


def plate_state(x: float, y: float, height: float = 0.0, held: bool = False, drop: float = 0.001):
    """Features of a plate (flat, on the table when released and low)."""
    on_table = (not held) and abs(height) < 0.004
    return np.array([x, y, height, held, 1.0, on_table, drop, 0.0], dtype=np.float32)


@settings(max_examples=60, deadline=None)
@given(ret_a=returns, ret_b=returns, mistake=st.floats(0.0, 0.3))
def test_answers_converge_to_noise_free_as_beta_grows(ret_a, ret_b, mistake):
    """P(answer = noise-free answer) grows with beta and reaches 1 (without mistakes)."""
    true = LabelModel(equal_threshold=0.01).true_label(ret_a, ret_b)
    if true == 0.5:
        return
    agreement = []
    for beta in (0.1, 1.0, 10.0, 100.0, 1e4, 1e9):
        p = LabelModel(beta=beta, mistake=mistake, equal_threshold=0.01).answer_prob(ret_a, ret_b)
        agreement.append(float(p if true == 1.0 else 1.0 - p))
    assert all(b >= a - 1e-12 for a, b in zip(agreement, agreement[1:], strict=False))
    assert agreement[-1] == pytest.approx(1.0 - mistake, abs=1e-6)
    exact = LabelModel(beta=np.inf, mistake=0.0, equal_threshold=0.01)
    labels = exact.sample(np.full(50, ret_a), np.full(50, ret_b), np.random.default_rng(0))
    assert np.all(labels == true)


@settings(max_examples=60, deadline=None)
@given(ret_a=returns, ret_b=returns, model=models)
def test_swapping_complements_without_position_bias(ret_a, ret_b, model):
    p_ab = model.answer_prob(ret_a, ret_b)
    p_ba = model.answer_prob(ret_b, ret_a)
    assert p_ab + p_ba == pytest.approx(1.0, abs=1e-9)
    assert model.true_label(ret_a, ret_b) + model.true_label(ret_b, ret_a) == 1.0


@settings(max_examples=25, deadline=None)
@given(
    ret_a=returns,
    ret_b=returns,
    bias=st.floats(0.1, 0.6),
    beta=st.floats(0.5, 50.0),
    soft=st.booleans(),
)
def test_position_bias_shows_up_and_both_orders_cancels_it(ret_a, ret_b, bias, beta, soft):
    if abs(ret_a - ret_b) <= 0.01:
        return
    rng = np.random.default_rng(1)
    n = 20_000
    a, b = np.full(n, ret_a), np.full(n, ret_b)
    biased = LabelModel(beta=beta, position_bias=bias, soft=soft)
    excess = biased.sample(a, b, rng).mean() + biased.sample(b, a, rng).mean() - 1.0
    assert excess == pytest.approx(bias, abs=0.03)  # the first-shown option gains ``bias``
    assert biased.answer_prob(ret_a, ret_b) + biased.answer_prob(ret_b, ret_a) == pytest.approx(
        1.0 + bias
    )
    twice = LabelModel(beta=beta, position_bias=bias, soft=soft, both_orders=True)
    assert twice.answer_prob(ret_a, ret_b) + twice.answer_prob(ret_b, ret_a) == pytest.approx(1.0)
    balance = twice.sample(a, b, rng).mean() + twice.sample(b, a, rng).mean() - 1.0
    assert balance == pytest.approx(0.0, abs=0.03)


@settings(max_examples=40, deadline=None)
@given(
    ret_a=st.lists(returns, min_size=30, max_size=30),
    ret_b=st.lists(returns, min_size=30, max_size=30),
    equal=st.floats(0.0, 2.0),
    skip=st.one_of(st.none(), st.floats(-3.0, 3.0)),
    soft=st.booleans(),
    both=st.booleans(),
)
def test_ties_and_skips_exactly_where_the_thresholds_put_them(
    ret_a, ret_b, equal, skip, soft, both
):
    model = LabelModel(beta=3.0, equal_threshold=equal, skip_threshold=skip, soft=soft)
    a, b = np.array(ret_a), np.array(ret_b)
    labels = model.sample(a, b, np.random.default_rng(0))
    skipped = np.zeros(30, bool) if skip is None else np.maximum(a, b) < skip
    tie = ~skipped & (np.abs(a - b) <= equal)
    assert np.array_equal(np.isnan(labels), skipped)
    assert np.all(labels[tie] == 0.5)
    if not soft:  # hard single answers are never 0.5 outside ties
        assert not np.any(labels[~skipped & ~tie] == 0.5)
    assert np.array_equal(np.isnan(model.answer_prob(a, b)), skipped)
    assert np.all(model.answer_prob(a, b)[tie] == 0.5)
    both_model = LabelModel(beta=3.0, equal_threshold=equal, skip_threshold=skip, both_orders=both)
    assert np.array_equal(np.isnan(both_model.sample(a, b, np.random.default_rng(0))), skipped)


def test_myopia_weighs_later_steps_more():
    model = LabelModel(gamma=0.5)
    w = model.weights(4)
    assert w.sum() == pytest.approx(1.0) and np.all(np.diff(w) > 0)
    early, late = np.array([1.0, 0, 0, 0]), np.array([0, 0, 0, 1.0])
    assert model.segment_return(late) > model.segment_return(early)
    assert LabelModel().segment_return(late) == LabelModel().segment_return(early)


def test_label_model_refuses_bad_values():
    for bad in ({"beta": 0.0}, {"gamma": 1.5}, {"mistake": 0.7}, {"position_bias": 1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            LabelModel(**bad)
    nan, inf = float("nan"), float("inf")
    for bad in (
        {"beta": nan}, {"gamma": nan}, {"mistake": nan}, {"position_bias": nan},
        {"equal_threshold": nan}, {"equal_threshold": inf}, {"skip_threshold": nan},
    ):  # fmt: skip
        with pytest.raises(ValueError, match=next(iter(bad))):
            LabelModel(**bad)
    assert LabelModel(beta=inf).beta == inf  # documented: a perfectly rational user


def test_plate_reward_prefers_setting_down_at_the_goal_and_keeps_the_norms():
    user = SyntheticUser(PLATE, PLATE_NAMES, (0.2, 0.15))
    at_goal = user.reward(plate_state(0.2, 0.15))
    near = user.reward(plate_state(0.2, 0.05))
    far = user.reward(plate_state(-0.2, -0.15))
    held_above = user.reward(plate_state(0.2, 0.15, height=0.1, held=True))
    dropped = user.reward(plate_state(0.2, 0.15, drop=0.03))
    assert at_goal > near > far and at_goal > held_above > far
    assert at_goal - dropped == pytest.approx(1.0 / task_spec(PLATE).reward.scale, rel=1e-5)
    other = SyntheticUser(PLATE, PLATE_NAMES, (0.2, -0.15))
    assert other.reward(plate_state(0.2, -0.15)) > other.reward(plate_state(0.2, 0.15))


def test_block_reward_prefers_the_goal_zone():
    zones = np.array([[0.15, 0.18], [0.15, -0.18]])

    def state(x, y, height=0.0, held=0.0, drop=0.0):
        dist = np.hypot(zones[:, 0] - x, zones[:, 1] - y)
        return np.array([x, y, height, held, drop, 0.0, 0.1, *dist], dtype=np.float32)

    zone0 = SyntheticUser(BLOCK, BLOCK_NAMES, [0])
    zone1 = SyntheticUser(BLOCK, BLOCK_NAMES, [1])
    in0, in1 = state(0.15, 0.18), state(0.15, -0.18)
    assert zone0.reward(in0) > zone0.reward(in1) and zone1.reward(in1) > zone1.reward(in0)
    assert zone0.reward(in0) > zone0.reward(state(0.15, 0.18, drop=0.1))


def test_reward_and_batch_labelling_are_vectorized_consistently():
    rng = np.random.default_rng(3)
    feats = np.stack([plate_state(*rng.uniform(-0.25, 0.25, 2)) for _ in range(40)])
    feat_a, feat_b = feats[:20].reshape(4, 5, 8), feats[20:].reshape(4, 5, 8)
    users = [
        SyntheticUser(PLATE, PLATE_NAMES, (0.2, 0.15), LabelModel(beta=5.0)),
        SyntheticUser(PLATE, PLATE_NAMES, (0.2, -0.15), LabelModel(mistake=0.2)),
    ]
    per_step = users[0].reward(feat_a)
    assert per_step.shape == (4, 5)
    assert per_step[2, 3] == pytest.approx(users[0].reward(feat_a[2, 3]))
    which = np.array([0, 1, 1, 0])
    labels = label_pairs(users, which, feat_a, feat_b, np.random.default_rng(0))
    for i, u in enumerate(which):
        assert labels.answer_prob[i] == pytest.approx(users[u].answer_prob(feat_a[i], feat_b[i]))
        assert labels.true_label[i] == users[u].true_label(feat_a[i], feat_b[i])
    answer = users[0].answer((feat_a[0], feat_b[0]), np.random.default_rng(0))
    assert answer in (0.0, 1.0)


def test_user_goal_and_env_errors_name_the_fix():
    with pytest.raises(ValueError, match="table point"):
        SyntheticUser(PLATE, PLATE_NAMES, (0.1, 0.2, 0.3))
    with pytest.raises(ValueError, match="register_task"):
        SyntheticUser("robopref/Nope-v0", PLATE_NAMES, (0.1, 0.2))
    with pytest.raises(ValueError, match="feature_names"):
        SyntheticUser(PLATE, ("x", "y"), (0.1, 0.2))


@pytest.mark.parametrize(
    ("env_id", "env_kwargs"),
    [(PLATE, {}), (BLOCK, {}), (TABLE, {}), (TABLE, {"control": "place"})],
    ids=["plate", "block", "table-motion", "table-place"],
)
def test_normalisation_constants_match_their_calibration(env_id, env_kwargs):
    """The table's offset/scale are the reward's mean/std under the default behaviour mix."""
    rollouts = collect_rollouts(env_id, 40, np.random.default_rng(0), env_kwargs=env_kwargs)
    env, _ = make_env(env_id, env_kwargs)
    rng = np.random.default_rng(1)
    goals = np.array([np.atleast_1d(sample_goal(env.goal_space, rng)) for _ in range(64)], float)
    feats = rollouts.feat.reshape(-1, rollouts.feat.shape[-1])
    mean, std = reward_moments(env_id, rollouts.feature_names, feats, goals)
    entry = task_spec(env_id).reward
    assert std == pytest.approx(entry.scale, rel=0.25)
    assert abs(mean - entry.offset) < 0.25 * entry.scale


def test_a_user_answers_every_question_type_by_its_own_returns():
    """End states nearer the user's goal rank higher (noise-free), and a noisy user's
    rankings put the best end state first more often than chance."""
    from robopref.users.question_types import question_type

    goal = (0.2, 0.15)
    ends = np.stack([plate_state(0.2, 0.15), plate_state(0.1, 0.1), plate_state(-0.2, -0.2)])
    sharp = SyntheticUser(PLATE, PLATE_NAMES, goal, LabelModel(beta=np.inf, mistake=0.0))
    rng = np.random.default_rng(0)
    assert sharp.answer_question(question_type("ranking", items=3), ends, rng).tolist() == [0, 1, 2]
    assert sharp.answer_question(question_type("best-of", items=3), ends[::-1], rng) == 2
    assert sharp.answer_question(question_type("pair"), ends[[2, 0]], rng) == 0.0
    rating = question_type("rating")
    assert sharp.answer_question(rating, ends[:1], rng) >= sharp.answer_question(
        rating, ends[2:], rng
    )
    noisy = SyntheticUser(PLATE, PLATE_NAMES, goal, LabelModel(beta=5.0))
    firsts = [
        noisy.answer_question(question_type("ranking", items=3), ends, rng)[0] for _ in range(300)
    ]
    assert np.mean(np.array(firsts) == 0) > 0.5
    with pytest.raises(ValueError, match="shows 3 item"):
        noisy.answer_question(question_type("ranking", items=3), ends[:2], rng)
