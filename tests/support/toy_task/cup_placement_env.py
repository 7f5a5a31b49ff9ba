"""The toy task's env file: PlatePlacement's scene, goals only on the robot's left half.

A real task would build its own scene (robopref.envs.tabletop.TabletopEnv's hooks); this
one changes the goal space only, so that the test is about the plumbing, not the physics.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robopref.envs.plate_placement import PlatePlacementEnv, validate_point

GOAL_LOW = np.array([-0.2, 0.0])
GOAL_HIGH = np.array([0.2, 0.2])


def validate_left_point(goal: Any) -> np.ndarray:
    """A table point on the robot's left half (y >= 0) inside the goal box."""
    point = validate_point(goal)
    if np.any(point < GOAL_LOW - 1e-9) or np.any(point > GOAL_HIGH + 1e-9):
        raise ValueError(f"goal={tuple(point.tolist())} is off the left half's goal box")
    return point


class CupPlacementEnv(PlatePlacementEnv):
    """Set the object down at a point on the robot's left half of the table."""

    def _make_goal_space(self) -> gym.Space:
        return gym.spaces.Box(GOAL_LOW, GOAL_HIGH, dtype=np.float64)

    def validate_goal(self, goal: Any) -> np.ndarray:
        """A point of the left half's goal box."""
        return validate_left_point(goal)
