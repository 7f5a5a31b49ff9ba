"""The regret label model (Knox et al. 2022): return plus the optimal value's change."""

from __future__ import annotations

import numpy as np
import pytest

from robopref.data.rollouts import make_env
from robopref.tasks import task_spec
from robopref.users.ceiling import answer_probs
from robopref.users.optimal_value import APPROACH_SPEED, approach_value, closeness
from robopref.users.population import population_from_dict
from robopref.users.synthetic import LabelModel, SyntheticUser, label_pairs

PLATE = "robopref/PlatePlacement-v0"
PLATE_NAMES = ("x", "y", "height", "held", "flat", "on_table", "drop_height", "speed")
GOAL = (0.2, 0.15)
REGRET = LabelModel(beta=np.inf, label="regret")


def resting(x: float, y: float) -> np.ndarray:
    return np.array([x, y, 0.0, 0.0, 1.0, 1.0, 0.001, 0.0], dtype=np.float32)


def carried(x: float, y: float) -> np.ndarray:
    return np.array([x, y, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0], dtype=np.float32)


def idle_near_goal() -> np.ndarray:
    """Ten steps of the plate lying 10 cm from the goal: a good state, but nothing done."""
    return np.stack([resting(GOAL[0], GOAL[1] - 0.10)] * 10)


def hurrying_from_afar() -> np.ndarray:
    """Ten steps carrying the plate towards the goal at full speed, from 40 cm to 13 cm."""
    return np.stack([carried(GOAL[0], GOAL[1] - 0.40 + APPROACH_SPEED * t) for t in range(10)])


def test_partial_return_and_regret_disagree_where_they_should():
    """Idling near the goal has the higher partial return; hurrying towards it from afar
    gives up nothing of the best achievable, so regret prefers it."""
    a, b = idle_near_goal(), hurrying_from_afar()
    by_return = SyntheticUser(PLATE, PLATE_NAMES, GOAL, LabelModel(beta=np.inf))
    by_regret = SyntheticUser(PLATE, PLATE_NAMES, GOAL, REGRET)
    assert by_return.true_label(a, b) == 1.0
    assert by_regret.true_label(a, b) == 0.0


def test_regret_is_return_plus_the_value_change_by_hand():
    user = SyntheticUser(PLATE, PLATE_NAMES, GOAL, REGRET)
    segment = hurrying_from_afar()
    entry = task_spec(PLATE).reward
    steps = len(segment)

    def value(distance: float) -> float:  # the closed form, summed by hand
        total = 0.0
        for t in range(1, steps + 1):
            left = max(distance - APPROACH_SPEED * t, 0.0)
            total += float(closeness(np.array(left))) + (left <= 0.05)
        return total

    start, end = 0.40, 0.40 - APPROACH_SPEED * (steps - 1)
    partial = float(np.mean(user.reward(segment)))
    expected = partial + (value(end) - value(start)) / (entry.scale * steps)
    assert float(user.segment_return(segment)) == pytest.approx(expected, rel=1e-6)
    assert float(approach_value(np.array(start), steps, 0.05)) == pytest.approx(value(start))


def test_one_state_items_are_judged_alike_by_both_models():
    states = np.stack([resting(0.1, 0.1), resting(-0.2, 0.0)])[:, None, :]
    by_return = SyntheticUser(PLATE, PLATE_NAMES, GOAL)
    by_regret = SyntheticUser(PLATE, PLATE_NAMES, GOAL, LabelModel(label="regret"))
    assert np.allclose(by_return.segment_return(states), by_regret.segment_return(states))


def test_batch_labels_and_ceilings_use_the_same_regret():
    rng = np.random.default_rng(0)
    feat_a = np.stack([hurrying_from_afar(), idle_near_goal()])
    feat_b = feat_a[::-1].copy()
    users = [SyntheticUser(PLATE, PLATE_NAMES, GOAL, REGRET)]
    labels = label_pairs(users, np.array([0, 0]), feat_a, feat_b, rng)
    assert labels.true_label.tolist() == [1.0, 0.0]
    env, _ = make_env(PLATE)
    try:
        assert tuple(env.unwrapped.feature_names) == PLATE_NAMES
        population = population_from_dict(
            {"modes": [{"goal": list(GOAL)}], "label": "regret", "beta": 20.0}, env
        )
    finally:
        env.close()
    assert population.label_model.label == "regret"
    user = SyntheticUser(PLATE, PLATE_NAMES, GOAL, population.label_model)
    probs = answer_probs(population, population.label_model, np.array([GOAL]), feat_a, feat_b)
    assert probs[0] == pytest.approx(user.answer_prob(feat_a, feat_b), rel=1e-6)


def test_a_label_kind_that_does_not_exist_is_refused_by_name():
    with pytest.raises(ValueError, match="partial-return, regret"):
        LabelModel(label="advantage")


def test_a_population_file_names_its_label_model_or_is_refused():
    env, _ = make_env(PLATE)
    try:
        with pytest.raises(ValueError, match="label is 3"):
            population_from_dict({"modes": [{"goal": list(GOAL)}], "label": 3}, env)
        with pytest.raises(ValueError, match="label must be one of"):
            population_from_dict({"modes": [{"goal": list(GOAL)}], "label": "advantage"}, env)
    finally:
        env.close()
