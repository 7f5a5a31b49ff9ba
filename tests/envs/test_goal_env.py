"""GoalDictObservation: Gymnasium-Robotics' GoalEnv contract, and SB3's HER trains on it."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import robopref
from robopref.envs import GoalDictObservation
from robopref.tasks import scripted_policy

ENV_IDS = list(robopref.ENV_IDS)
CASES = [
    ("robopref/PlatePlacement-v0", {}),
    ("robopref/BlockSort-v0", {}),
    ("robopref/BlockSort-v0", {"n_zones": 4}),
    ("robopref/TableSetting-v0", {}),
    ("robopref/TableSetting-v0", {"control": "place"}),
]


def rollout(env: gym.Env, seed: int, steps: int) -> tuple[list, list, list, list]:
    """A noisy expert's episode: observations, wrapper rewards, the task's own rewards, infos."""
    obs, _ = env.reset(seed=seed)
    task = env.unwrapped
    policy = scripted_policy(env, task.goal, noise=0.3, seed=seed)
    observations, rewards, own, infos = [], [], [], []
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(policy(obs["observation"]))
        observations.append(obs)
        rewards.append(reward)
        own.append(sum(info["reward_terms"].values()))
        infos.append(info)
        if terminated or truncated:
            break
    return observations, rewards, own, infos


@pytest.mark.parametrize(("env_id", "kwargs"), CASES)
def test_the_goal_env_contract_holds(env_id, kwargs) -> None:
    env = GoalDictObservation(gym.make(env_id, goal="random", **kwargs))
    obs, info = env.reset(seed=0)
    assert set(obs) == {"observation", "achieved_goal", "desired_goal"}
    assert env.observation_space.contains(obs)
    task = env.unwrapped
    np.testing.assert_allclose(obs["desired_goal"], task.desired_goal(task.goal), atol=1e-6)
    observations, rewards, own, infos = rollout(env, seed=0, steps=60)
    for o, r, i in zip(observations, rewards, infos, strict=True):
        assert env.observation_space.contains(o)
        assert r == env.compute_reward(o["achieved_goal"], o["desired_goal"], i)
    achieved = np.stack([o["achieved_goal"] for o in observations])
    desired = np.stack([o["desired_goal"] for o in observations])
    batch = env.compute_reward(achieved, desired, np.array(infos, dtype=object))
    assert batch.shape == (len(infos),)
    np.testing.assert_array_equal(batch, rewards)  # vectorized = one at a time
    np.testing.assert_allclose(rewards, own, atol=1e-4)  # = the oracle's own reward


def test_a_relabelled_goal_pays_the_goal_reached() -> None:
    """HER's relabelling: the point the plate reached, as the goal, is a success."""
    env = GoalDictObservation(gym.make("robopref/PlatePlacement-v0", goal=(0.2, 0.15)))
    observations, rewards, _, infos = rollout(env, seed=1, steps=60)
    final = observations[-1]["achieved_goal"]
    assert infos[-1]["is_success"] and rewards[-1] > 1.5
    far = final + np.float32(0.2)
    assert env.compute_reward(final, final, infos[-1]) > env.compute_reward(final, far, infos[-1])


def test_sb3_check_env_passes_on_the_goal_env() -> None:
    from stable_baselines3.common.env_checker import check_env

    for env_id in ENV_IDS:
        env = GoalDictObservation(gym.make(env_id, goal="random"))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_env(env, warn=True)


def test_compute_reward_without_the_step_infos_names_the_her_option() -> None:
    env = GoalDictObservation(gym.make("robopref/PlatePlacement-v0", goal=(0.1, 0.1)))
    obs, _ = env.reset(seed=0)
    goals = np.stack([obs["achieved_goal"]] * 2)
    with pytest.raises(ValueError, match="copy_info_dict"):
        env.compute_reward(goals, goals, [{}, {}])


def test_a_goal_env_without_a_goal_says_how_to_give_one() -> None:
    env = GoalDictObservation(gym.make("robopref/BlockSort-v0"))
    with pytest.raises(ValueError, match="needs a goal: make the env with goal="):
        env.reset(seed=0)


@pytest.mark.parametrize("env_id", ["robopref/PlatePlacement-v0", "robopref/BlockSort-v0"])
def test_sac_with_her_trains_a_few_hundred_steps(env_id: str) -> None:
    from stable_baselines3 import SAC, HerReplayBuffer

    env = GoalDictObservation(gym.make(env_id, goal="random"))
    model = SAC(
        "MultiInputPolicy",
        env,
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs={
            "n_sampled_goal": 4,
            "goal_selection_strategy": "future",
            "copy_info_dict": True,  # the reward reads each state's features
        },
        learning_starts=160,
        batch_size=32,
        policy_kwargs={"net_arch": [32, 32]},
        seed=0,
        device="cpu",
    )
    model.learn(300)
    assert model.num_timesteps == 300 and model.replay_buffer.size() > 0
    obs, _ = env.reset(seed=3)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action)
