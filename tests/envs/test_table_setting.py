"""TableSetting's own contracts, beside the battery every env passes (test_envs.py)."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import robopref  # noqa: F401  (registers the envs)
from robopref.envs import episode_steps, sample_goal
from robopref.envs.table_setting import (
    FEATURE_NAMES,
    OBJECT_NAMES,
    feasible,
    place_point,
    spots,
)
from robopref.tasks import scripted_policy
from robopref.tasks.table_setting import ARRANGEMENT_TYPES
from robopref.users.population import named_population

ENV_ID = "robopref/TableSetting-v0"


def run(env: gym.Env, goal: np.ndarray, seed: int, policy=None) -> dict:  # type: ignore[no-untyped-def]
    """One episode of ``policy`` (default: the scripted expert); the last info."""
    policy = policy or scripted_policy(env, goal)
    obs, info = env.reset(seed=seed, options={"goal": goal})
    for _ in range(episode_steps(env)):
        obs, _, terminated, truncated, info = env.step(policy(obs))
        if terminated or truncated:
            break
    return info


@pytest.mark.parametrize("control", ["motion", "place"])
def test_the_expert_sets_every_arrangement_type(control: str) -> None:
    env = gym.make(ENV_ID, control=control)
    for k, goal in enumerate(ARRANGEMENT_TYPES.values()):
        info = run(env, np.array(goal), seed=k)
        assert info["is_success"], (control, goal)
    env.close()


@pytest.mark.parametrize("control", ["motion", "place"])
def test_the_expert_sets_random_arrangements(control: str) -> None:
    env = gym.make(ENV_ID, control=control)
    rng = np.random.default_rng(7)
    goals = [sample_goal(env.unwrapped.goal_space, rng) for _ in range(20)]
    successes = [run(env, g, seed=100 + k)["is_success"] for k, g in enumerate(goals)]
    assert np.mean(successes) >= 0.95
    env.close()


def test_place_puts_the_object_within_a_centimetre_of_the_commanded_point() -> None:
    env = gym.make(ENV_ID, control="place")
    raw = env.unwrapped
    rng = np.random.default_rng(3)
    for episode in range(4):
        env.reset(seed=episode)
        for i in range(3):
            # points far apart so that the objects never land on one another
            point = np.array([rng.uniform(-0.05, 0.25), (-0.22, 0.0, 0.22)[i]])
            _, _, terminated, _, info = env.step(raw.place_action(*point))
            f = dict(zip(FEATURE_NAMES, info["features"], strict=True))
            name = OBJECT_NAMES[i]
            error = np.hypot(f[f"{name}_x"] - point[0], f[f"{name}_y"] - point[1])
            assert error < 0.01, (episode, name, error)
            assert f[f"{name}_resting"] == 1.0 and f[f"{name}_drop_height"] < 0.01
            assert terminated == (i == 2)
    env.close()


def test_place_point_and_place_action_invert_each_other() -> None:
    point = np.array([0.12, -0.07])
    env = gym.make(ENV_ID, control="place")
    np.testing.assert_allclose(place_point(env.unwrapped.place_action(*point)), point, atol=1e-6)
    env.close()


def test_the_place_interface_passes_check_env_and_pickles() -> None:
    env = gym.make(ENV_ID, control="place", goal="random", render_mode="rgb_array")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    env.reset(seed=1)
    env.step(np.zeros(2, np.float32))
    frames = env.unwrapped.motion_frames
    assert len(frames) > 5 and frames[0].shape == (240, 320, 3)
    assert not np.array_equal(frames[0], frames[-1])  # the arm moved in the frames
    clone = pickle.loads(pickle.dumps(env.unwrapped))
    a = env.step(np.array([0.5, -0.5], np.float32))
    b = clone.step(np.array([0.5, -0.5], np.float32))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]
    env.close()


def test_reward_terms_sum_to_the_reward_under_both_controls() -> None:
    for control in ("motion", "place"):
        env = gym.make(ENV_ID, control=control, goal="random")
        obs, _ = env.reset(seed=0)
        policy = scripted_policy(env, env.unwrapped.goal, noise=0.3, seed=0)
        for _ in range(min(episode_steps(env), 60)):
            obs, reward, terminated, _, info = env.step(policy(obs))
            assert reward == pytest.approx(sum(info["reward_terms"].values()))
            if terminated:
                break
        env.close()


def test_bad_control_and_overlapping_goals_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="'motion'.*'place'"):
        gym.make(ENV_ID, control="teleport")
    env = gym.make(ENV_ID)
    with pytest.raises(ValueError, match="on each other"):
        env.unwrapped.validate_goal((0.1, 0.0, 0.0, 0.0, 0.03, 0.11))  # the cup on the plate
    with pytest.raises(ValueError, match="6 numbers"):
        env.unwrapped.validate_goal((0.1, 0.0))
    place = gym.make(ENV_ID, control="place")
    place.reset(seed=0)
    with pytest.raises(ValueError, match="2 finite numbers"):
        place.step(np.zeros(4, np.float32))


def test_the_eight_type_preset_has_the_documented_arrangements() -> None:
    env = gym.make(ENV_ID)
    population = named_population("arrangements", env)
    assert population.n_groups == 8
    goals = np.stack([g for g, _ in population.modes])
    np.testing.assert_allclose(goals, np.array(list(ARRANGEMENT_TYPES.values())))
    assert feasible(goals).all()
    points = spots(goals)  # (8, 3, 2): plate, cup, utensil
    cup_left = points[:, 1, 1] > points[:, 0, 1]
    utensil_left = points[:, 2, 1] > points[:, 0, 1]
    at_edge = points[:, 0, 0] > 0.15
    combos = set(zip(cup_left.tolist(), utensil_left.tolist(), at_edge.tolist(), strict=True))
    assert len(combos) == 8  # every combination once
    for name, goal in ARRANGEMENT_TYPES.items():
        p = spots(np.array(goal))
        assert ("cup left" in name) == (p[1, 1] > p[0, 1])
        assert ("utensil left" in name) == (p[2, 1] > p[0, 1])
        assert ("at the edge" in name) == (p[0, 0] > 0.15)
    users = population.sample_users(80, np.random.default_rng(0))
    assert np.bincount([u.group for u in users], minlength=8).tolist() == [10] * 8


def test_the_continuous_preset_draws_feasible_arrangements_on_both_sides() -> None:
    env = gym.make(ENV_ID)
    population = named_population("arrangements-continuous", env)
    goals, groups = population.sample_goals(400, np.random.default_rng(1))
    assert feasible(goals).all() and (groups == -1).all()
    assert (goals >= population.low).all() and (goals <= population.high).all()
    cup_sides = np.sign(goals[:, 3])
    assert 0.3 < (cup_sides > 0).mean() < 0.7
    assert len(np.unique(goals[:, 0].round(3))) > 100  # plates at many depths, not 2


def test_a_user_with_an_arrangement_prefers_its_own_table() -> None:
    from robopref.users.synthetic import SyntheticUser

    env = gym.make(ENV_ID, control="place")
    left = np.array(ARRANGEMENT_TYPES["cup left, utensil left, plate at the edge"])
    right = np.array(ARRANGEMENT_TYPES["cup right, utensil right, plate at the edge"])
    feats = []
    for goal in (left, right):
        policy = scripted_policy(env, goal)
        obs, info = env.reset(seed=0)
        seg = [info["features"]]
        for _ in range(3):
            obs, _, _, _, info = env.step(policy(obs))
            seg.append(info["features"])
        feats.append(np.stack(seg))
    user = SyntheticUser(ENV_ID, FEATURE_NAMES, left)
    assert user.true_label(feats[0], feats[1]) == 1.0
    assert user.reward(feats[0][-1]) > user.reward(feats[1][-1])
