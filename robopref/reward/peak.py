"""Where a learned reward peaks for a user: the table point it would most like the object at.

For tasks whose goal is a table point (PlatePlacement), the learned reward r(s, z) of the
object set down at rest at each point of a grid (the env's ``placed_features``) is
compared, and the best point is the reward's peak for that z. Evaluation compares it with
the user's goal: a reward whose peak is off the goal teaches the policy to put the object
in the wrong place however well the policy optimises it.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from robopref.reward.base import RewardModel
from robopref.reward.inputs import reward_input

#: grid spacing (m) of the peak search
PEAK_STEP = 0.01


def box_grid(low: np.ndarray, high: np.ndarray, step: float) -> np.ndarray:
    """The points ``(G, D)`` of a grid of spacing ``step`` over the box ``[low, high]``."""
    axes = [np.arange(lo, hi + step / 2, step) for lo, hi in zip(low, high, strict=True)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes))


class PeakFinder:
    """The grid of served states of one task, scored by a reward model for many z."""

    def __init__(self, model: RewardModel, env: gym.Env, step: float = PEAK_STEP) -> None:
        raw = env.unwrapped
        self.points = box_grid(raw.goal_space.low, raw.goal_space.high, step)
        self.states = type(raw).placed_features(self.points)
        self.model = model

    @staticmethod
    def supports(model: RewardModel, env: gym.Env) -> bool:
        """A latent model on features, on a task whose goals are table points."""
        raw = env.unwrapped
        return (
            model.latent_dim > 0
            and reward_input(model) == "features"
            and hasattr(type(raw), "placed_features")
            and isinstance(raw.goal_space, gym.spaces.Box)
        )

    def peaks(self, z: np.ndarray) -> np.ndarray:
        """The peak point ``(N, 2)`` of the learned reward under each z ``(N, Z)``."""
        z = np.asarray(z, dtype=np.float32).reshape(-1, self.model.latent_dim)
        rewards = self.model.reward(self.states[None], z[:, None, :])  # (N, G)
        return self.points[np.argmax(rewards, axis=-1)]
