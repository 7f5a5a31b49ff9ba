"""BlockSort: put the block down in the preferred zone, a zone index (robopref.envs.block_sort)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robopref.envs.block_sort import (
    ZONE_RADIUS,
    checked_n_zones,
    feature_names,
    validate_zone,
)
from robopref.envs.scripted import block_expert_action
from robopref.envs.tabletop import RESTING_HEIGHT
from robopref.tasks.spec import TaskGoals, TaskReward, TaskSpec, distance_caption
from robopref.users.optimal_value import REACH_SLOPE, block_value, closeness

ENV_ID = "robopref/BlockSort-v0"


def block_reward(
    features: np.ndarray, goal: np.ndarray, norm_weight: Any, cols: dict[str, int]
) -> np.ndarray:
    """Raw per-step BlockSort reward for a zone index ``goal[..., 0]``.

    Closeness ``exp(-d / 0.1) - 2 d`` with ``d`` the distance from the block's bottom to the
    preferred zone's centre on the table, +1 while it rests released inside that zone, and
    the shared norms times ``norm_weight``: -1 per 2 cm of release height above 2 cm (at
    most -2), -1 while the block is below the table top (fallen off), and ``-REACH_SLOPE``
    per metre from the suction tip to the block while the block is neither held nor in
    place (go and get it: without this, nobody's answers reward reaching for the block,
    and a policy trained on them never learns to pick it up).
    """
    zone_cols = np.array([cols[f"zone_{i}"] for i in range(_count_zones(cols))])
    zone_index = np.asarray(goal[..., 0]).astype(np.int64)
    shape = np.broadcast_shapes(features.shape[:-1], zone_index.shape)
    zones = np.broadcast_to(features[..., zone_cols], (*shape, len(zone_cols)))
    zone_d = np.take_along_axis(zones, np.broadcast_to(zone_index, shape)[..., None], -1)[..., 0]
    height = features[..., cols["height"]]
    released = features[..., cols["held"]] < 0.5
    near = closeness(np.hypot(zone_d, np.maximum(height, 0.0)))
    placed = released & (height < RESTING_HEIGHT) & (zone_d < ZONE_RADIUS)
    drop = np.clip((features[..., cols["drop_height"]] - 0.02) / 0.02, 0.0, 2.0) * released
    fallen = height < -0.01
    reach = REACH_SLOPE * features[..., cols["reach"]] * (released & ~placed)
    return near + placed - norm_weight * (drop + fallen + reach)


def _count_zones(cols: dict[str, int]) -> int:
    n = 0
    while f"zone_{n}" in cols:
        n += 1
    return n


def block_goals(n_zones: Any = 2, **_env_kwargs: Any) -> TaskGoals:
    """Zone indices ``0..n_zones - 1`` (the env kwarg ``n_zones``, 2 by default)."""
    zones = checked_n_zones(n_zones)
    return TaskGoals(
        ENV_ID,
        feature_names(zones),
        gym.spaces.Discrete(zones),
        lambda goal: validate_zone(goal, zones),
    )


def every_zone(goals: TaskGoals, norm_weight: float | None = None) -> dict[str, Any]:
    """One mode per zone, equally weighted (and the norms weighted ``norm_weight``)."""
    data: dict[str, Any] = {"modes": [{"goal": i} for i in range(int(goals.goal_space.n))]}
    if norm_weight is not None:
        data["norm_weight"] = norm_weight
    return data


def zone_centre(task: Any, goal: Any) -> np.ndarray:
    """Where the block goes for zone ``goal``: the zone's centre."""
    return np.asarray(task.zone_centers[goal], dtype=np.float64)


def block_expert(task: Any, point: np.ndarray, hold_height: float | None):
    """The block picked up, carried to ``point`` and set down (or held ``hold_height``)."""
    low_z = float(task.WORKSPACE_LOW[2])
    return lambda obs: block_expert_action(obs, point, low_z, hold_height)


def zone_caption(task: Any, goal: Any) -> str:
    """``"block 1.0 cm from zone 1's centre"``."""
    return distance_caption(task, goal, f"zone {goal}'s centre")


def zone_proposals(
    ends: np.ndarray, rng: np.random.Generator, goals: TaskGoals
) -> tuple[np.ndarray, list[str]]:
    """Every other zone than each end zone ``(U,)``: ``(U, n_zones - 1)``."""
    n_zones = int(goals.goal_space.n)
    zones = np.asarray(ends, dtype=np.float64).astype(int).reshape(-1)
    if np.any((zones < 0) | (zones >= n_zones)):
        raise ValueError(f"zone indices must lie in 0..{n_zones - 1}")
    others = np.array([[z for z in range(n_zones) if z != own] for own in zones])
    return others.astype(np.float64), [f"another zone ({k + 1})" for k in range(n_zones - 1)]


SPEC = TaskSpec(
    env_id=ENV_ID,
    entry_point="robopref.envs.block_sort:BlockSortEnv",
    max_episode_steps=80,
    reward=TaskReward(
        block_reward,
        goal_dim=1,
        offset=-0.47,
        scale=1.24,
        required=("x", "y", "height", "held", "drop_height", "reach", "zone_0"),
        value=block_value,
    ),
    goals=block_goals,
    populations={
        "two-modes": {"modes": [{"goal": 0}, {"goal": 1}]},
        "modes": every_zone,
        "continuous": None,
        "norms-and-goals": lambda goals: every_zone(goals, norm_weight=3.0),
    },
    expert=block_expert,
    goal_point=zone_centre,
    caption=zone_caption,
    one_part_proposals=zone_proposals,
)
