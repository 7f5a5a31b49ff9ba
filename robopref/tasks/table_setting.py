"""TableSetting: set plate, cup and utensil out in an arrangement (robopref.envs.table_setting)."""

from __future__ import annotations

from typing import Any

import numpy as np

from robopref.data.proposals import check_ends, moves_in_the_plane, signed_moves
from robopref.envs.scripted import table_expert_action, table_place_action
from robopref.envs.table_setting import (
    FEATURE_NAMES,
    OBJECT_NAMES,
    SUCCESS_RADIUS,
    ArrangementSpace,
    spots,
    validate_arrangement,
)
from robopref.tasks.spec import TaskGoals, TaskReward, TaskSpec
from robopref.users.optimal_value import closeness, table_value

ENV_ID = "robopref/TableSetting-v0"

#: the 8 arrangement types by name: (plate_x, plate_y, cup_dx, cup_dy, utensil_dx,
#: utensil_dy) in metres; "left" is +y (the robot's left), "edge" the far edge.
ARRANGEMENT_TYPES: dict[str, tuple[float, ...]] = {
    f"cup {cup}, utensil {utensil}, plate {plate}": (
        0.22 if plate == "at the edge" else 0.06,
        0.0,
        -0.09,
        0.12 if cup == "left" else -0.12,
        0.03,
        0.11 if utensil == "left" else -0.11,
    )  # fmt: skip
    for cup in ("left", "right")
    for utensil in ("left", "right")
    for plate in ("at the edge", "further in")
}
#: the box ``arrangements-continuous`` draws from (low, high), less overlapping arrangements
CONTINUOUS_ARRANGEMENTS = (
    [0.04, -0.10, -0.12, -0.15, -0.02, -0.14],
    [0.24, 0.10, -0.06, 0.15, 0.06, 0.14],
)
#: the changes of an arrangement's one-part proposals, in order
ARRANGEMENT_CHANGES = (
    "cup on the other side", "utensil on the other side", "plate nearer or further",
    "cup moved", "utensil moved",
)  # fmt: skip
#: the coordinates of each part of an arrangement (the plate's spot, the cup's and the
#: utensil's offsets from it)
ARRANGEMENT_PARTS = {"plate": (0, 1), "cup": (2, 3), "utensil": (4, 5)}
#: the part each arrangement change touches
ARRANGEMENT_CHANGED_PART = ("cup", "utensil", "plate", "cup", "utensil")


def table_reward(
    features: np.ndarray, goal: np.ndarray, norm_weight: Any, cols: dict[str, int]
) -> np.ndarray:
    """Raw per-step TableSetting reward for an arrangement ``goal[..., 0:6]``.

    Summed over plate, cup and utensil: closeness ``exp(-d / 0.1) - 2 d`` with ``d`` the
    distance from the object's bottom centre to its spot, +1 while it rests within
    ``SUCCESS_RADIUS`` (4 cm) of its spot, and the shared norms times ``norm_weight``: up to
    -1 for a release height above 1 cm (-1 at 3 cm) and -1 while it is loose but not resting
    (falling, tipped over, off the table).
    """
    points = spots(goal)
    total = np.zeros(np.broadcast_shapes(features.shape[:-1], points.shape[:-2]))
    for i, name in enumerate(OBJECT_NAMES):
        col = {q: cols[f"{name}_{q}"] for q in ("x", "y", "height", "held", "resting")}
        height = features[..., col["height"]]
        released = features[..., col["held"]] < 0.5
        resting = features[..., col["resting"]] > 0.5
        dxy = np.hypot(
            features[..., col["x"]] - points[..., i, 0], features[..., col["y"]] - points[..., i, 1]
        )
        near = closeness(np.hypot(dxy, np.maximum(height, 0.0)))
        placed = resting & (dxy < SUCCESS_RADIUS)
        drop_height = features[..., cols[f"{name}_drop_height"]]
        drop = np.clip((drop_height - 0.01) / 0.02, 0.0, 1.0) * released
        loose = released & ~resting
        total = total + near + placed - norm_weight * (drop + loose)
    return total


def table_goals(**_env_kwargs: Any) -> TaskGoals:
    """Feasible arrangements in the arrangement box; no env kwarg shapes them."""
    return TaskGoals(ENV_ID, FEATURE_NAMES, ArrangementSpace(), validate_arrangement)


def arrangement_error(estimate: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """The largest distance between the objects' spots of two arrangements (m)."""
    return np.linalg.norm(spots(goals) - spots(estimate), axis=-1).max(-1)


def table_expert(task: Any, arrangement: np.ndarray, hold_height: float | None):
    """Every object set at its spot of ``arrangement``: one place action each on the place
    interface, the scripted pick-and-place on motion control (no ``hold_height``)."""
    if task.control == "place":
        return lambda obs: table_place_action(obs, arrangement)
    low_z = float(task.WORKSPACE_LOW[2])
    return lambda obs: table_expert_action(obs, arrangement, low_z)


def arrangement_caption(task: Any, goal: Any) -> str:
    """``"cm from spots: plate 1.2, cup 0.8, utensil 3.0"``."""
    offsets = task.centres()[:, :2] - spots(goal)
    parts = [
        f"{name} {100 * float(np.hypot(*offset)):.1f}"
        for name, offset in zip(OBJECT_NAMES, offsets, strict=True)
    ]
    return f"cm from spots: {', '.join(parts)}"


def arrangement_proposals(
    ends: np.ndarray, rng: np.random.Generator, goals: TaskGoals
) -> tuple[np.ndarray, list[str]]:
    """End arrangements ``(U, 6)``, each with one part changed (:data:`ARRANGEMENT_CHANGES`)."""
    ends = check_ends(ends, 6, "arrangements")
    count = len(ends)
    proposals = np.repeat(ends[:, None, :], len(ARRANGEMENT_CHANGES), axis=1)
    proposals[:, 0, 3] *= -1.0  # the cup's offset mirrored across the plate's x axis
    proposals[:, 1, 5] *= -1.0
    proposals[:, 2, 0] += signed_moves(rng, count)
    for change, (dx, dy) in ((3, (2, 3)), (4, (4, 5))):
        proposals[:, change, [dx, dy]] += moves_in_the_plane(rng, count)
    return proposals, list(ARRANGEMENT_CHANGES)


def arrangement_aims(
    points: np.ndarray,
    rng: np.random.Generator,
    proposals: int,
    offset_min: float,
    offset_max: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The loop's proposals around arrangements ``(U, 6)``: every proposal sets the table as
    the policy did with one part moved ``offset_min..offset_max`` m in a random direction:
    the whole setting (the plate's spot), then the cup's, then the utensil's (heights NaN:
    the place interface sets every object down)."""
    n, parts = len(points), points.shape[1] // 2
    aims = np.repeat(points, proposals, axis=0)
    angle = rng.uniform(0.0, 2.0 * np.pi, len(aims))
    distance = rng.uniform(offset_min, offset_max, len(aims))
    moved = np.tile(np.arange(proposals) % parts, n)
    shift = distance[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    rows = np.arange(len(aims))
    for axis in range(2):
        aims[rows, 2 * moved + axis] += shift[:, axis]
    return aims, np.full(len(aims), np.nan)


_ARRANGEMENTS = {"modes": [{"goal": list(g)} for g in ARRANGEMENT_TYPES.values()]}
_ARRANGEMENTS_CONTINUOUS = {
    "continuous": {"low": CONTINUOUS_ARRANGEMENTS[0], "high": CONTINUOUS_ARRANGEMENTS[1]}
}

SPEC = TaskSpec(
    env_id=ENV_ID,
    entry_point="robopref.envs.table_setting:TableSettingEnv",
    # control="place" episodes end (terminate) after their third step, one per object.
    max_episode_steps=150,
    reward=TaskReward(
        table_reward,
        goal_dim=6,
        offset=-1.55,  # between place (-1.43, std 0.94) and motion control (-1.71, 0.91)
        scale=0.92,
        required=tuple(
            f"{o}_{q}"
            for o in OBJECT_NAMES
            for q in ("x", "y", "height", "held", "resting", "drop_height")
        ),  # fmt: skip
        value=table_value,
    ),
    goals=table_goals,
    populations={
        "two-modes": {
            "modes": [
                {"goal": list(ARRANGEMENT_TYPES["cup left, utensil left, plate at the edge"])},
                {"goal": list(ARRANGEMENT_TYPES["cup right, utensil right, plate at the edge"])},
            ]
        },
        "modes": _ARRANGEMENTS,
        "arrangements": _ARRANGEMENTS,
        "continuous": _ARRANGEMENTS_CONTINUOUS,
        "arrangements-continuous": _ARRANGEMENTS_CONTINUOUS,
        "norms-and-goals": {**_ARRANGEMENTS_CONTINUOUS, "norm_weight": 3.0},
    },
    expert=table_expert,
    success_radius=SUCCESS_RADIUS,
    goal_error=arrangement_error,
    caption=arrangement_caption,
    # TableSetting on its place interface (one action per object: RL on it is quick, as
    # VPL's own rearrangement tasks), segments of a whole 3-step episode (4 states), the MLP
    # decoder (the bilinear one collapses there: every user gets one z) and PPO budgets for
    # 3-step episodes (the oracle reached 1.00 at 40k steps; see the README)
    demo_defaults={
        "env_kwargs": ["control=place"],
        "population": "arrangements",
        "segment": 4,
        "decoder": "mlp",
        "steps": 100_000,
        "scout_steps": 60_000,
    },
    one_part_proposals=arrangement_proposals,
    proposal_aims=arrangement_aims,
)
