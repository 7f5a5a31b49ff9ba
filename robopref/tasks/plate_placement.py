"""PlatePlacement: set the plate down at a table point ``(x, y)``.

The env is robopref.envs.plate_placement; this is what the rest of robopref knows of it."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robopref.data.proposals import moved_along_axes
from robopref.envs.plate_placement import (
    GOAL_HIGH,
    GOAL_LOW,
    SUCCESS_RADIUS,
    PlatePlacementEnv,
    validate_point,
)
from robopref.envs.scripted import plate_expert_action
from robopref.tasks.spec import TaskGoals, TaskReward, TaskSpec
from robopref.users.optimal_value import closeness, plate_value

ENV_ID = "robopref/PlatePlacement-v0"


def plate_reward(
    features: np.ndarray, goal: np.ndarray, norm_weight: Any, cols: dict[str, int]
) -> np.ndarray:
    """Raw per-step PlatePlacement reward for a goal point ``goal[..., 0:2]`` on the table.

    Closeness ``exp(-d / 0.1) - 2 d`` with ``d`` the distance from the plate's bottom
    centre to the goal point, +1 while it rests released, flat and on the table within 5 cm
    of the goal (the env's ``SUCCESS_RADIUS``), and the shared norms times ``norm_weight``:
    up to -1 for a release height above 1 cm (-1 at 3 cm, the interlock's limit) and -1
    while the plate is loose but not resting on the table (falling, tipped over, off the
    table).
    """
    height = features[..., cols["height"]]
    released = features[..., cols["held"]] < 0.5
    dxy = np.hypot(features[..., cols["x"]] - goal[..., 0], features[..., cols["y"]] - goal[..., 1])
    near = closeness(np.hypot(dxy, np.maximum(height, 0.0)))
    on_table = features[..., cols["on_table"]] > 0.5
    placed = released & on_table & (features[..., cols["flat"]] > 0.5) & (dxy < SUCCESS_RADIUS)
    drop = np.clip((features[..., cols["drop_height"]] - 0.01) / 0.02, 0.0, 1.0) * released
    loose = released & ~on_table
    return near + placed - norm_weight * (drop + loose)


def plate_goals(**_env_kwargs: Any) -> TaskGoals:
    """Table points in the goal box; no env kwarg shapes them."""
    space = gym.spaces.Box(GOAL_LOW, GOAL_HIGH, dtype=np.float64)
    return TaskGoals(ENV_ID, PlatePlacementEnv.feature_names, space, validate_point)


def plate_expert(task: Any, point: np.ndarray, hold_height: float | None):
    """The plate carried to ``point`` and set down (or held ``hold_height`` above it)."""
    low_z = float(task.WORKSPACE_LOW[2])
    return lambda obs: plate_expert_action(obs, point, low_z, hold_height)


def plate_proposals(
    ends: np.ndarray, rng: np.random.Generator, goals: TaskGoals
) -> tuple[np.ndarray, list[str]]:
    """End spots ``(U, 2)`` moved along x, or along y (robopref.data.proposals)."""
    return moved_along_axes(ends, rng, ("spot along x", "spot along y"))


SPEC = TaskSpec(
    env_id=ENV_ID,
    entry_point="robopref.envs.plate_placement:PlatePlacementEnv",
    max_episode_steps=60,
    reward=TaskReward(
        plate_reward,
        goal_dim=2,
        offset=-0.53,
        scale=0.50,
        required=("x", "y", "height", "held", "flat", "on_table", "drop_height"),
        value=plate_value,
    ),
    goals=plate_goals,
    populations={
        "two-modes": {"modes": [{"goal": [0.20, 0.15]}, {"goal": [0.20, -0.15]}]},
        "modes": {
            "modes": [
                {"goal": [0.20, 0.15], "weight": 0.3},
                {"goal": [0.20, -0.15], "weight": 0.3},
                {"goal": [-0.10, 0.20], "weight": 0.2},
                {"goal": [-0.10, -0.20], "weight": 0.2},
            ]
        },
        "continuous": {"continuous": {"low": [-0.25, -0.25], "high": [0.25, 0.25]}},
        "norms-and-goals": {
            "continuous": {"low": [-0.25, -0.25], "high": [0.25, 0.25]},
            "norm_weight": 3.0,
        },
    },
    expert=plate_expert,
    success_radius=SUCCESS_RADIUS,
    one_part_proposals=plate_proposals,
)
