"""Wrappers over the tabletop tasks."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robopref.envs.tabletop import RESTING_HEIGHT


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


#: an object held higher than this (m, its bottom above the table) counts as lifted.
LIFTED_HEIGHT = 0.02
#: after a set-down the suction stays off until the tip is this far above the object (m).
RETREAT_HEIGHT = 0.05


class SetDownOnContact(gym.Wrapper):
    """A set-down primitive: the suction lets go once a lifted object rests on the table.

    While the object is held, has been lifted more than ``LIFTED_HEIGHT`` since it was
    taken, and its bottom is back within ``RESTING_HEIGHT`` of the table top, the action's
    grip is turned off (``grip = -1``), and it stays off until the suction tip has moved
    ``RETREAT_HEIGHT`` above the object (so that a policy that keeps asking for suction
    does not take the object straight back; it can still lift the hand and take it again).
    Otherwise actions pass unchanged, and the policy may still let go itself.

    Why: learned rewards rank "set down at the goal" barely above "held down at the goal"
    (few answers compare the two), and a policy trained on them learns to hold on. With
    this primitive it decides *where* to set the object down, which is what the users
    disagree about (as with the pick-and-place primitives of VPL's Ravens tasks).
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._lifted = False
        self._set_down = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the env and the lifted flag."""
        out = self.env.reset(seed=seed, options=options)
        self._set_down = False
        self._update()
        return out

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Let go if the lifted object rests on the table, then step."""
        task = self.env.unwrapped
        if self._lifted and task.held and task.object_bottom_height() < RESTING_HEIGHT:
            self._set_down = True
        if self._set_down and not task.held and task.tip_above_object() > RETREAT_HEIGHT:
            self._set_down = False
        if self._set_down:
            action = np.array(action, dtype=np.float32, copy=True)
            action[3] = -1.0
        out = self.env.step(action)
        self._update()
        return out

    def _update(self) -> None:
        task = self.env.unwrapped
        if not task.held:
            self._lifted = False
        elif task.object_bottom_height() > LIFTED_HEIGHT:
            self._lifted = True
