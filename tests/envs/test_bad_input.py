"""Bad input to the envs: each case ends in an error that names the problem and the fix."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest

import robopref

ENV_IDS = list(robopref.ENV_IDS)


def test_a_goal_that_is_not_numbers_names_the_goal_form() -> None:
    with pytest.raises(ValueError, match=r"goal='nonsense' must be a table point \(x, y\)"):
        gym.make("robopref/PlatePlacement-v0", goal="nonsense")
    with pytest.raises(ValueError, match="must be a zone index"):
        gym.make("robopref/BlockSort-v0", goal="nonsense")


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize(("name", "value"), [("width", 0), ("height", -1), ("width", 320.5)])
def test_a_frame_size_that_is_not_a_positive_integer_is_refused(env_id, name, value) -> None:
    with pytest.raises(ValueError, match=f"{name}={value!r} must be a positive integer"):
        gym.make(env_id, render_mode="rgb_array", **{name: value})


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_human_rendering_says_only_rgb_array_is_supported(env_id) -> None:
    with pytest.raises(ValueError, match="render_mode='human' is not supported.*'rgb_array'"):
        gym.make(env_id, render_mode="human")


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_an_action_holding_nan_or_inf_is_refused_and_the_episode_goes_on(
    env_id, bad, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)  # MuJoCo would write MUJOCO_LOG.TXT here on a bad state
    env = gym.make(env_id, goal="random")
    env.reset(seed=0)
    obs, *_ = env.step(np.zeros(4, np.float32))
    action = np.array([0.5, bad, 0.0, 1.0], dtype=np.float32)
    with pytest.raises(ValueError, match="holds NaN or inf.*finite"):
        env.step(action)
    after, reward, *_ = env.step(np.zeros(4, np.float32))
    assert np.all(np.isfinite(after)) and np.isfinite(reward)
    assert np.linalg.norm(after[4:7] - obs[4:7]) < 0.05  # no silent reset of the simulation
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("action", [np.zeros(3), np.zeros((1, 4)), np.zeros(5)])
def test_an_action_of_the_wrong_shape_names_the_expected_shape(env_id, action) -> None:
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    expected = re.escape(f"action has shape {action.shape}, expected (4,)")
    with pytest.raises(ValueError, match=expected):
        env.step(action)


def test_a_non_numeric_action_is_refused() -> None:
    env = gym.make("robopref/PlatePlacement-v0").unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match="not numeric"):
        env.step(["up", "up", "up", "grip"])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_step_before_reset_on_the_bare_env_says_to_reset(env_id) -> None:
    env = gym.make(env_id).unwrapped
    with pytest.raises(gym.error.ResetNeeded, match=r"before reset\(\): call env.reset\(\)"):
        env.step(np.zeros(4, np.float32))
