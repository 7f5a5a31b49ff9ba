"""Scripted experts: the behaviour policies that make preference data (hence ``noise``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from robopref.envs.block_sort import BLOCK_HALF, ZONE_RADIUS, BlockSortEnv
from robopref.envs.plate_placement import PLATE_HALF_HEIGHT, PlatePlacementEnv
from robopref.envs.table_setting import (
    HALF_HEIGHT,
    N_OBJECTS,
    OBJECT_NAMES,
    TableSettingEnv,
    arrangement_action,
    place_action,
    spots,
)
from robopref.envs.tabletop import MAX_HAND_STEP, SHARED_OBSERVATION_LAYOUT

_TIP, _HOLDING, _OBJECT = (SHARED_OBSERVATION_LAYOUT[n] for n in ("tip", "holding", "object"))

CARRY_HEIGHT = 0.12
Policy = Callable[[np.ndarray], np.ndarray]


def _move(tip: np.ndarray, target: np.ndarray, grip: float) -> np.ndarray:
    action = np.empty(4, dtype=np.float32)
    action[:3] = np.clip((target - tip) / MAX_HAND_STEP, -1.0, 1.0)
    action[3] = grip
    return action


def _lowered(tip: np.ndarray, bottom: float, low_z: float, hold_height: float | None) -> float:
    """The tip's target height when lowering: the table (``low_z``), or, to hold the object
    with its bottom ``hold_height`` above the table, the tip moved by the bottom's excess."""
    return low_z if hold_height is None else float(tip[2] - (bottom - hold_height))


def plate_expert_action(
    obs: np.ndarray, goal: np.ndarray, low_z: float, hold_height: float | None = None
) -> np.ndarray:
    """Carry the plate above the goal, lower it, let go on the table, lift the hand away
    (or, with ``hold_height``, lower it to that height above the table and hold it there)."""
    tip, held, plate = obs[_TIP], obs[_HOLDING][0] > 0.5, obs[_OBJECT]
    if not held:
        return _move(tip, np.array([tip[0], tip[1], CARRY_HEIGHT]), -1.0)
    offset = goal - plate[:2]
    distance = float(np.hypot(*offset))
    target = np.array([tip[0] + offset[0], tip[1] + offset[1], CARRY_HEIGHT])
    if distance < 0.03:
        target[2] = _lowered(tip, float(plate[2] - PLATE_HALF_HEIGHT), low_z, hold_height)
    on_table = plate[2] - PLATE_HALF_HEIGHT < 0.004
    let_go = hold_height is None and distance < 0.02 and on_table
    return _move(tip, target, -1.0 if let_go else 1.0)


def block_expert_action(
    obs: np.ndarray, zone: np.ndarray, low_z: float, hold_height: float | None = None
) -> np.ndarray:
    """Go above the block, take it, carry it over the zone, set it down, lift away (or,
    with ``hold_height``, lower it to that height above the table and hold it there)."""
    tip, held, block = obs[_TIP], obs[_HOLDING][0] > 0.5, obs[_OBJECT]
    block_offset = zone - block[:2]
    in_zone = float(np.hypot(*block_offset)) < ZONE_RADIUS * 0.5
    if not held:
        if in_zone and block[2] - BLOCK_HALF < 0.01:
            return _move(tip, np.array([tip[0], tip[1], CARRY_HEIGHT]), -1.0)
        above = np.array([block[0], block[1], CARRY_HEIGHT])
        aligned = float(np.hypot(*(tip[:2] - block[:2]))) < 0.01
        if aligned:
            above[2] = block[2] + BLOCK_HALF + 0.002
        touching = aligned and tip[2] - (block[2] + BLOCK_HALF) < 0.015
        return _move(tip, above, 1.0 if touching else -1.0)
    distance = float(np.hypot(*block_offset))
    target = np.array([tip[0] + block_offset[0], tip[1] + block_offset[1], CARRY_HEIGHT])
    if tip[2] < CARRY_HEIGHT - 0.03 and distance > 0.03:
        target[:2] = tip[:2]  # lift first, then carry
    if distance < 0.015:
        target[2] = _lowered(tip, float(block[2] - BLOCK_HALF), low_z, hold_height)
    resting = block[2] - BLOCK_HALF < 0.004
    let_go = hold_height is None and distance < 0.02 and resting
    return _move(tip, target, -1.0 if let_go else 1.0)


def table_expert_action(obs: np.ndarray, arrangement: np.ndarray, low_z: float) -> np.ndarray:
    """Motion control: set the table for ``arrangement`` (6,), object by object in the
    order, each the scripted pick-and-place of :func:`arrangement_action`; skip an object
    already resting at its spot."""
    layout = TableSettingEnv.observation_layout
    tip = obs[_TIP].astype(np.float64)
    centres = np.stack([obs[layout[name]] for name in OBJECT_NAMES]).astype(np.float64)
    held_flags = obs[layout["held_object"]]
    held = int(np.argmax(held_flags)) if held_flags.max() > 0.5 else None
    points = spots(arrangement)
    target = None
    for i in range(N_OBJECTS):
        off = float(np.hypot(*(centres[i, :2] - points[i])))
        resting = centres[i, 2] - HALF_HEIGHT[OBJECT_NAMES[i]] < 0.004
        if not (off < 0.015 and resting):
            target = i
            break
    spot = points[held if held is not None else (target if target is not None else 0)]
    return arrangement_action(tip, held, centres, target, spot, low_z)


def table_place_action(obs: np.ndarray, arrangement: np.ndarray) -> np.ndarray:
    """Place control: the place action of the next object's spot in ``arrangement``."""
    layout = TableSettingEnv.observation_layout
    flags = obs[layout["next_object"]]
    i = int(np.argmax(flags)) if flags.max() > 0.5 else 0
    return place_action(*spots(arrangement)[i], clip=True)  # some spots lie past its reach


def goal_point(task: PlatePlacementEnv | BlockSortEnv | TableSettingEnv, goal: Any) -> np.ndarray:
    """The table point (x, y) of a validated ``goal``: the plate's goal, the zone's centre;
    for TableSetting the arrangement itself (6,), where every object goes."""
    if isinstance(task, TableSettingEnv):
        return np.asarray(goal, dtype=np.float64)
    if isinstance(task, BlockSortEnv):
        return np.asarray(task.zone_centers[goal], dtype=np.float64)
    return np.asarray(goal, dtype=np.float64)


def scripted_policy(
    env: gym.Env,
    goal: Any,
    noise: float = 0.0,
    seed: int | np.random.Generator | None = None,
    aim: np.ndarray | None = None,
    hold_height: float | None = None,
) -> Policy:
    """An ``obs -> action`` expert for ``env``'s task aimed at ``goal``.

    ``noise`` is the standard deviation of Gaussian noise added to every action (then
    clipped to [-1, 1]), drawn from ``seed``; 0 gives the deterministic expert. ``aim``, a
    table point (x, y), is where the expert puts the object down instead of the goal's own
    point (the plate's goal, the zone's centre): data that misses the goal on purpose.
    ``hold_height`` (m, above the table) makes it lower the object there and hold it at that
    height instead of setting it down: "held low here" beside "set down here".
    TableSetting's expert aims at an arrangement (``aim`` is one too) and has no
    ``hold_height``.
    """
    task = env.unwrapped
    if isinstance(noise, bool) or not isinstance(noise, int | float | np.number):
        raise ValueError(f"noise={noise!r} must be a number >= 0 (the action noise's std)")
    if not math.isfinite(noise) or noise < 0:
        raise ValueError(
            f"noise={noise} must be a finite number >= 0 (the std of the Gaussian action "
            "noise; 0 gives the deterministic expert)"
        )
    if not isinstance(task, PlatePlacementEnv | BlockSortEnv | TableSettingEnv):
        raise TypeError(f"no scripted expert for {type(task).__name__}")
    goal = task.validate_goal(goal)
    rng = np.random.default_rng(seed)
    low_z = float(task.WORKSPACE_LOW[2])
    point = goal_point(task, goal) if aim is None else np.asarray(aim, dtype=np.float64)
    size = int(np.prod(task.action_space.shape))
    if isinstance(task, TableSettingEnv) and task.control == "place":

        def expert(obs: np.ndarray) -> np.ndarray:
            return table_place_action(obs, point)
    elif isinstance(task, TableSettingEnv):

        def expert(obs: np.ndarray) -> np.ndarray:
            return table_expert_action(obs, point, low_z)
    elif isinstance(task, PlatePlacementEnv):

        def expert(obs: np.ndarray) -> np.ndarray:
            return plate_expert_action(obs, point, low_z, hold_height)
    else:

        def expert(obs: np.ndarray) -> np.ndarray:
            return block_expert_action(obs, point, low_z, hold_height)

    def policy(obs: np.ndarray) -> np.ndarray:
        action = expert(np.asarray(obs))
        if noise > 0.0:
            noisy = action + rng.normal(0.0, noise, size=size)
            action = np.clip(noisy, -1.0, 1.0).astype(np.float32)
        return action

    return policy
