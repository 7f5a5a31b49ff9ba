"""``render_mode="rgb_array_list"``: Gymnasium's convention, on every task."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import robopref
from robopref.envs import episode_steps, sample_goal
from robopref.envs.rendering import step_frames
from robopref.tasks import scripted_policy

ENV_IDS = list(robopref.ENV_IDS)
SMALL = {"width": 64, "height": 48}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_passes_without_warnings_under_rgb_array_list(env_id: str) -> None:
    env = gym.make(env_id, goal="random", render_mode="rgb_array_list", **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_render_returns_the_frames_since_the_last_render_or_reset(env_id: str) -> None:
    env = gym.make(env_id, render_mode="rgb_array_list", **SMALL)
    env.reset(seed=0)
    zero = np.zeros(env.action_space.shape, np.float32)
    for _ in range(3):
        env.step(zero)
    frames = env.render()
    assert len(frames) == 4  # the reset's and three steps'
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in frames)
    assert env.render() == []  # taken: the list starts afresh
    env.step(zero)
    assert len(env.render()) == 1
    env.reset(seed=1)
    assert len(env.render()) == 1  # a reset forgets the frames not taken
    env.close()


def test_a_table_setting_place_episode_renders_its_whole_motion() -> None:
    """One place step is a whole pick-and-place: every control step of it is a frame."""
    env = gym.make("robopref/TableSetting-v0", control="place", render_mode="rgb_array_list",
                   **SMALL)  # fmt: skip
    goal = sample_goal(env.unwrapped.goal_space, np.random.default_rng(0))
    policy = scripted_policy(env, goal)
    obs, _ = env.reset(seed=0, options={"goal": goal})
    motion = 0
    for _ in range(episode_steps(env)):
        obs, *_ = env.step(policy(obs))
        motion += len(env.unwrapped.motion_frames)
    frames = env.render()
    assert motion > 30 and len(frames) == 1 + motion  # not the 4 frames of one per step
    assert not np.array_equal(frames[1], frames[len(frames) // 2])
    env.close()


def test_step_frames_reads_the_collected_frames() -> None:
    env = gym.make("robopref/TableSetting-v0", control="place", render_mode="rgb_array_list",
                   **SMALL)  # fmt: skip
    env.reset(seed=0)
    assert len(step_frames(env)) == 1
    env.step(np.zeros(2, np.float32))
    assert len(step_frames(env)) == len(env.unwrapped.motion_frames) > 5
    env.close()
