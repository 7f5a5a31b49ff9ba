"""Bad input to the envs: each case ends in an error that names the problem and the fix."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest

import robopref
from robopref.tasks import scripted_policy

ENV_IDS = list(robopref.ENV_IDS)


def test_a_goal_that_is_not_numbers_names_the_goal_form() -> None:
    with pytest.raises(ValueError, match=r"goal='nonsense' must be a table point \(x, y\)"):
        gym.make("robopref/PlatePlacement-v0", goal="nonsense")
    with pytest.raises(ValueError, match="is a string: pass the zone index as an int"):
        gym.make("robopref/BlockSort-v0", goal="nonsense")


@pytest.mark.parametrize("goal", ["1", np.str_("0")])
def test_a_zone_given_as_a_string_is_named_a_string(goal) -> None:
    with pytest.raises(ValueError, match=r"is a string: pass the zone index as an int, e\.g\."):
        gym.make("robopref/BlockSort-v0", goal=goal)


@pytest.mark.parametrize("goal", [True, False, np.True_])
def test_a_bool_is_not_a_zone(goal) -> None:
    with pytest.raises(ValueError, match="is a bool, not a zone index"):
        gym.make("robopref/BlockSort-v0", goal=goal)
    with pytest.raises(ValueError, match="is a bool"):
        gym.make("robopref/BlockSort-v0").reset(seed=0, options={"goal": goal})


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("options", [{"gaol": 1}, {"goal": None, "z": 0}])
def test_an_unknown_reset_option_names_the_valid_keys(env_id, options) -> None:
    env = gym.make(env_id)
    with pytest.raises(ValueError, match=r"unknown key\(s\).*the valid keys are \['goal'\]"):
        env.reset(seed=0, options=options)


def test_the_place_interface_refuses_a_point_off_its_table_region() -> None:
    env = gym.make("robopref/TableSetting-v0", control="place")
    raw = env.unwrapped
    region = re.escape("x in [-0.1, 0.32] m, y in [-0.3, 0.3] m")
    with pytest.raises(ValueError, match=r"place_action\(3, -7\) lies outside.*" + region):
        raw.place_action(3, -7)
    np.testing.assert_array_equal(raw.place_action(3, -7, clip=True), [1.0, -1.0])
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"outside the place action space \[-1, 1\].*" + region):
        env.step(np.array([5.0, 5.0], np.float32))
    env.step(raw.place_action(0.1, 0.0))  # the refused step changed nothing: the plate's next


def test_the_place_interface_refuses_a_step_after_the_episode_ended() -> None:
    env = gym.make("robopref/TableSetting-v0", control="place").unwrapped
    env.reset(seed=0)
    terminated = [env.step(env.place_action(0.1, y))[2] for y in (-0.2, 0.0, 0.2)]
    assert terminated == [False, False, True]
    with pytest.raises(gym.error.ResetNeeded, match=r"after the episode terminated.*env.reset"):
        env.step(env.place_action(0.1, 0.0))
    env.reset(seed=1)
    assert not env.step(env.place_action(0.1, 0.0))[2]


@pytest.mark.parametrize("noise", [-1.0, np.nan, np.inf, "0.1"])
def test_scripted_policy_refuses_a_noise_that_is_not_a_finite_non_negative_number(noise) -> None:
    env = gym.make("robopref/PlatePlacement-v0")
    with pytest.raises(ValueError, match="must be a"):
        scripted_policy(env, (0.1, 0.1), noise=noise)


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
