"""The goal-conditioned view of a task: Gymnasium-Robotics' ``GoalEnv`` contract, for HER.

>>> env = GoalDictObservation(gym.make("robopref/PlatePlacement-v0", goal="random"))
>>> obs, info = env.reset(seed=0)
>>> sorted(obs)
['achieved_goal', 'desired_goal', 'observation']
>>> reward = env.compute_reward(obs["achieved_goal"], obs["desired_goal"], info)

The observation is a ``Dict``: ``observation`` (the task's own, which never holds the goal),
``achieved_goal`` (where the object is: a table point, TableSetting's three) and
``desired_goal`` (where the oracle's goal wants it: the plate's goal point, the goal zone's
centre, the arrangement's three spots). The goal is the env's: ``goal=...`` or
``goal="random"`` at ``gym.make``, or ``reset(options={"goal": g})``. The reward is
``compute_reward(achieved_goal, desired_goal, info)``, vectorized over a batch, as
Stable-Baselines3's ``HerReplayBuffer`` calls it to relabel stored transitions with goals
reached later: the reward reads each state's ``info["features"]`` (the object's height,
whether it rests), so give the buffer the infos, ``replay_buffer_kwargs={"copy_info_dict":
True}``. For a real goal it is the oracle's reward (``info["reward_terms"]`` summed)
up to float32 rounding of the goal points; for a relabelled goal it is the reward the oracle
would give for a goal at that point (BlockSort: a zone of ``ZONE_RADIUS`` centred there).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robopref.envs.tabletop import OBS_BOUND, sample_goal


class GoalDictObservation(gym.Wrapper):
    """A robopref task as a ``GoalEnv``: Dict observations and a vectorized
    ``compute_reward`` (see the module doc). Wrap the env ``gym.make`` returns."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        task = env.unwrapped
        if not hasattr(task, "goal_point_reward"):
            raise ValueError(
                f"{type(task).__name__} has no goal-conditioned view: wrap a robopref task "
                "(PlatePlacement, BlockSort or TableSetting)"
            )
        some_goal = task.validate_goal(sample_goal(task.goal_space, np.random.default_rng(0)))
        size = int(np.asarray(task.desired_goal(some_goal)).size)
        goal_box = gym.spaces.Box(-OBS_BOUND, OBS_BOUND, shape=(size,), dtype=np.float32)
        self.observation_space = gym.spaces.Dict(
            {
                "observation": env.observation_space,
                "achieved_goal": goal_box,
                "desired_goal": goal_box,
            }
        )

    def _dict(self, observation: np.ndarray) -> dict[str, np.ndarray]:
        task = self.env.unwrapped
        if task.goal is None:
            raise ValueError(
                "GoalDictObservation needs a goal: make the env with goal=... (or "
                "goal='random', a new one each reset) or reset(options={'goal': g})"
            )
        return {
            "observation": np.asarray(observation, dtype=np.float32),
            "achieved_goal": task.achieved_goal().astype(np.float32),
            "desired_goal": task.desired_goal(task.goal).astype(np.float32),
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset the task; the Dict observation of its first state."""
        observation, info = self.env.reset(seed=seed, options=options)
        return self._dict(observation), info

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Step the task; the reward is :meth:`compute_reward` of the new state."""
        observation, _, terminated, truncated, info = self.env.step(action)
        obs = self._dict(observation)
        reward = float(self.compute_reward(obs["achieved_goal"], obs["desired_goal"], info))
        return obs, reward, terminated, truncated, info

    def compute_reward(
        self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any
    ) -> np.ndarray | float:
        """The reward of reaching ``achieved_goal`` when ``desired_goal`` is wanted.

        One state (``achieved_goal (G,)``, ``info`` a dict) gives a float; a batch
        (``(N, G)`` goals and ``info`` a sequence of N step infos, as ``HerReplayBuffer``
        passes) gives ``(N,)``. Each info must be a step's info of the wrapped task (its
        ``features`` and ``reward_terms``; HerReplayBuffer passes them with
        ``copy_info_dict=True``, else empty dicts, refused with that fix).
        """
        task = self.env.unwrapped
        achieved = np.asarray(achieved_goal, dtype=np.float64)
        single = achieved.ndim == 1
        infos = [info] if isinstance(info, dict) else list(np.asarray(info, dtype=object).ravel())
        size = self.observation_space["desired_goal"].shape[0]
        achieved = achieved.reshape(-1, size)
        desired = np.asarray(desired_goal, dtype=np.float64).reshape(-1, size)
        if not len(infos) == len(achieved) == len(desired):
            raise ValueError(
                f"compute_reward got {len(achieved)} achieved goals, {len(desired)} desired "
                f"goals and {len(infos)} infos: pass one of each per state"
            )
        if not all(isinstance(i, dict) and "features" in i for i in infos):
            raise ValueError(
                "compute_reward needs each state's step info (its features: the reward reads "
                "the object's height and whether it rests, not only where it is): with SB3's "
                "HerReplayBuffer pass replay_buffer_kwargs={'copy_info_dict': True}"
            )
        features = np.stack([np.asarray(i["features"], dtype=np.float64) for i in infos])
        free = np.array(
            [sum(i.get("reward_terms", {}).get(t, 0.0) for t in task.GOAL_FREE_TERMS)
             for i in infos],
            dtype=np.float64,
        )  # fmt: skip
        reward = task.goal_point_reward(features, achieved, desired) + free
        return float(reward[0]) if single else reward
