"""Wrappers over the tabletop tasks."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class GoalObservation(gym.ObservationWrapper):
    """Append the env's current goal to the observation: the oracle's view of the task.

    Appended: the goal (a Box goal as is, a Discrete goal, a zone index, as a one-hot
    vector), then the vector from the object to the goal's table point (2). The relative
    vector is redundant but makes goal-conditioned RL far easier to learn. Use it with
    ``goal="random"`` to train an oracle policy over all goals.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.unwrapped.goal_space
        if isinstance(space, gym.spaces.Discrete):
            self._goal_size = int(space.n)
        elif isinstance(space, gym.spaces.Box):
            self._goal_size = int(np.prod(space.shape))
        else:
            raise TypeError(f"GoalObservation cannot encode goals of {space}")
        base = env.observation_space
        self.observation_space = gym.spaces.Box(
            -np.inf, np.inf, shape=(base.shape[0] + self._goal_size + 2,), dtype=np.float32
        )

    def encode_goal(self, goal: Any) -> np.ndarray:
        """The goal as the float32 vector appended to observations."""
        if goal is None:
            raise ValueError("GoalObservation needs an env with a goal: pass goal=... or 'random'")
        if isinstance(self.env.unwrapped.goal_space, gym.spaces.Discrete):
            one_hot = np.zeros(self._goal_size, dtype=np.float32)
            one_hot[int(goal)] = 1.0
            return one_hot
        return np.asarray(goal, dtype=np.float32).reshape(-1)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """``observation`` followed by the encoded goal."""
        task = self.env.unwrapped
        goal = self.encode_goal(task.goal)
        to_goal = task.goal_xy(task.goal) - task.features()[:2]
        return np.concatenate([observation, goal, to_goal]).astype(np.float32, copy=False)
