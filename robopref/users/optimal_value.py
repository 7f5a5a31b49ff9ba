"""The optimal value a synthetic user sees from a state: what the *regret* label model needs.

Knox et al. 2022 (arXiv 2206.02231) find that people judge a segment by its regret: how much
of the best achievable it gives up, ``return + V*(s_end) - V*(s_start)``, rather than by its
partial return alone. robopref's tasks let ``V*`` be written in closed form from a state's
features, without an oracle critic: every object the user cares about travels straight to
its goal at the hand's top speed (:data:`APPROACH_SPEED`, ``MAX_HAND_STEP`` metres per
step), earning the user's per-step closeness ``exp(-d / 0.1) - 2 d`` on the way and the
"placed" bonus once within the task's placement radius, with the shared norms never broken
(an optimal robot does not drop things). BlockSort's block first waits while the hand
reaches it (``reach / speed`` steps, paying the reach norm). TableSetting's three objects
move in parallel: an optimistic bound (one hand moves them in turn), the same for every
state, so it cancels in the value *differences* regret uses more than its size suggests.

The value counts the ``horizon`` steps after the state (the segment's own length: a
segment is judged against what the best robot would have done in as many steps), in the
users' raw reward units; :func:`robopref.users.synthetic.segment_scores` normalises it like the
rewards. For one-state items (end states) the difference is zero and regret equals the
state's reward.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robopref.envs.block_sort import ZONE_RADIUS
from robopref.envs.plate_placement import SUCCESS_RADIUS as PLATE_PLACED_RADIUS
from robopref.envs.table_setting import OBJECT_NAMES as TABLE_OBJECTS
from robopref.envs.table_setting import SUCCESS_RADIUS as TABLE_PLACED_RADIUS
from robopref.envs.table_setting import spots as table_spots
from robopref.envs.tabletop import MAX_HAND_STEP

#: distance scale (m) of the near-field closeness term exp(-d / CLOSENESS_SCALE).
CLOSENESS_SCALE = 0.1
#: slope (per metre) of the far-field closeness term -FAR_SLOPE * d: "closer is better"
#: still matters when both segments are far from the goal (the near term is ~0 there).
FAR_SLOPE = 2.0
#: BlockSort's shared "go and get it" norm: reward per metre from the tip to a loose block.
REACH_SLOPE = 2.0
#: metres an object (or the hand) moves per step on the optimal path.
APPROACH_SPEED = MAX_HAND_STEP


def closeness(distance: np.ndarray) -> np.ndarray:
    """The users' closeness reward ``exp(-d / 0.1) - 2 d`` of a distance ``d`` (m)."""
    return np.exp(-distance / CLOSENESS_SCALE) - FAR_SLOPE * distance


def approach_value(
    distance: np.ndarray, horizon: int, radius: float, delay: np.ndarray | float = 0.0
) -> np.ndarray:
    """Raw value ``(...)`` of the ``horizon`` steps in which an object at ``distance`` (m)
    from its goal waits ``delay`` steps and then moves straight to it at
    :data:`APPROACH_SPEED`: closeness on the way, +1 per step within ``radius``."""
    distance = np.asarray(distance, dtype=np.float64)[..., None]
    steps = np.arange(1, horizon + 1, dtype=np.float64)
    moving = np.maximum(steps - np.asarray(delay, dtype=np.float64)[..., None], 0.0)
    left = np.maximum(distance - APPROACH_SPEED * moving, 0.0)
    return (closeness(left) + (left <= radius)).sum(-1)


def plate_value(
    features: np.ndarray, goal: np.ndarray, norm_weight: Any, cols: dict[str, int], horizon: int
) -> np.ndarray:
    """PlatePlacement's optimal value from states ``(..., F)`` for goal points ``(..., 2)``."""
    dxy = np.hypot(features[..., cols["x"]] - goal[..., 0], features[..., cols["y"]] - goal[..., 1])
    distance = np.hypot(dxy, np.maximum(features[..., cols["height"]], 0.0))
    return approach_value(distance, horizon, PLATE_PLACED_RADIUS)


def block_value(
    features: np.ndarray, goal: np.ndarray, norm_weight: Any, cols: dict[str, int], horizon: int
) -> np.ndarray:
    """BlockSort's optimal value from states ``(..., F)`` for zone indices ``(..., 1)``: the
    hand reaches a loose block first (paying the reach norm), then carries it."""
    zone_index = np.asarray(goal[..., 0]).astype(np.int64)
    n_zones = sum(1 for name in cols if name.startswith("zone_"))
    zones = features[..., [cols[f"zone_{i}"] for i in range(n_zones)]]
    shape = np.broadcast_shapes(zones.shape[:-1], zone_index.shape)
    zone_d = np.take_along_axis(
        np.broadcast_to(zones, (*shape, n_zones)), np.broadcast_to(zone_index, shape)[..., None], -1
    )[..., 0]
    distance = np.hypot(zone_d, np.maximum(features[..., cols["height"]], 0.0))
    held = features[..., cols["held"]] > 0.5
    reach = np.where(held, 0.0, np.abs(features[..., cols["reach"]]))
    delay = reach / APPROACH_SPEED
    steps = np.arange(1, horizon + 1, dtype=np.float64)
    reaching = np.maximum(reach[..., None] - APPROACH_SPEED * steps, 0.0)
    reach_cost = REACH_SLOPE * np.asarray(norm_weight) * reaching.sum(-1)
    return approach_value(distance, horizon, ZONE_RADIUS, delay) - reach_cost


def table_value(
    features: np.ndarray, goal: np.ndarray, norm_weight: Any, cols: dict[str, int], horizon: int
) -> np.ndarray:
    """TableSetting's optimal value from states ``(..., F)`` for arrangements ``(..., 6)``:
    the three objects' approaches summed (in parallel: an optimistic bound)."""
    points = table_spots(goal)
    total = 0.0
    for i, name in enumerate(TABLE_OBJECTS):
        dxy = np.hypot(
            features[..., cols[f"{name}_x"]] - points[..., i, 0],
            features[..., cols[f"{name}_y"]] - points[..., i, 1],
        )
        distance = np.hypot(dxy, np.maximum(features[..., cols[f"{name}_height"]], 0.0))
        total = total + approach_value(distance, horizon, TABLE_PLACED_RADIUS)
    return np.asarray(total)
