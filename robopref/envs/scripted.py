"""Scripted experts: the behaviour policies that make preference data (hence ``noise``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from robopref.envs.block_sort import BLOCK_HALF, ZONE_RADIUS
from robopref.envs.plate_placement import PLATE_HALF_HEIGHT
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
