"""Where a learned reward peaks for a user: the goal it would most like the task to reach.

Each candidate goal of the task is paired with the state that serves it (the env's
``placed_features``: the object set down at rest at the goal's table point): for a task
whose goals are table points (PlatePlacement) a grid over the goal space, for one whose
goals are zones (BlockSort) every zone at its centre. The learned reward r(s, z) of those
states is compared, and the best goal is the reward's peak for that z. Evaluation compares
it with the user's goal (a reward whose peak is off the goal teaches the policy the wrong
place however well the policy optimises it); a guided policy
(:mod:`robopref.policies.guided`) commands a goal-conditioned skill to reach it.
"""

from __future__ import annotations

from typing import Any

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


def candidate_goals(env: gym.Env, step: float = PEAK_STEP) -> np.ndarray | None:
    """The goals a peak is searched among: a grid of spacing ``step`` over a 2-D table-point
    goal space, every zone of a discrete one; None for a task without served states (its
    ``placed_features``), or whose goals are neither (TableSetting's arrangements)."""
    raw = env.unwrapped
    if not hasattr(raw, "placed_features"):
        return None
    space = raw.goal_space
    if isinstance(space, gym.spaces.Discrete):
        return np.arange(int(space.n))
    if isinstance(space, gym.spaces.Box) and space.shape == (2,):
        return box_grid(space.low, space.high, step)
    return None


class PeakFinder:
    """The candidate goals of one task and the states serving them, scored by a reward model
    for many z."""

    def __init__(self, model: RewardModel, env: gym.Env, step: float = PEAK_STEP) -> None:
        raw = env.unwrapped
        goals = candidate_goals(env, step)
        if goals is None:
            raise ValueError(f"{raw.spec.id if raw.spec else type(raw).__name__} has no served "
                             "states to search a reward's peak among")  # fmt: skip
        self.goals = goals
        self.raw = raw
        self.points = np.stack([raw.goal_xy(g) for g in goals]).astype(np.float32)
        self.states = raw.placed_features(self.points)
        self.model = model

    @staticmethod
    def supports(model: RewardModel, env: gym.Env) -> bool:
        """A latent model on features, on a task whose goals are table points or zones."""
        return (
            model.latent_dim > 0
            and reward_input(model) == "features"
            and candidate_goals(env) is not None
        )

    def peak_indices(self, z: np.ndarray) -> np.ndarray:
        """The index ``(N,)`` into :attr:`goals` of the learned reward's peak under each z."""
        z = np.asarray(z, dtype=np.float32).reshape(-1, self.model.latent_dim)
        rewards = self.model.reward(self.states[None], z[:, None, :])  # (N, G)
        return np.argmax(rewards, axis=-1)

    def peak_goals(self, z: np.ndarray) -> np.ndarray:
        """The goal the learned reward prefers under each z ``(N, Z)``: points ``(N, 2)`` or
        zone indices ``(N,)``."""
        return self.goals[self.peak_indices(z)]

    def delivery(self, z: np.ndarray, goal: Any) -> tuple[float, bool]:
        """For one user's z and hidden goal (evaluation only): the distance (m) from the
        learned reward's peak to the goal's table point, and whether the peak serves the
        goal (within the task's success radius: a policy that reaches the peak succeeds)."""
        point = self.raw.goal_xy(self.raw.validate_goal(goal))
        distance = float(np.linalg.norm(self.peaks(z)[0] - point))
        return distance, distance < float(self.raw.success_radius)

    def peaks(self, z: np.ndarray) -> np.ndarray:
        """The table point ``(N, 2)`` of the learned reward's peak under each z ``(N, Z)``
        (a zone's centre for zones)."""
        return self.points[self.peak_indices(z)]
