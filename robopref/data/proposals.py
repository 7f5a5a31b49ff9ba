"""Proposals that change one part of what the robot did, to ask a user about.

A whole-episode answer mixes every part of a task (on TableSetting the plate's, the cup's and
the utensil's terms), so each part's bit is diluted. A question that shows the robot's own
end state beside the same end state with **one part changed** turns on that part alone.
Each task's spec says how its end states change (``TaskSpec.one_part_proposals``), from the
robot's end state only, never from a goal:

* PlatePlacement, an end point ``(x, y)``: the spot moved along x, or along y, by
  ``MOVE_MIN..MOVE_MAX`` in either direction (:func:`moved_along_axes`);
* TableSetting, an arrangement ``(plate_x, plate_y, cup_dx, cup_dy, utensil_dx,
  utensil_dy)`` (x away from the robot, y to its left): the cup on the other side (its
  offset's y mirrored), the utensil on the other side, the plate nearer or further (its x
  moved), the cup moved, the utensil moved (by ``MOVE_MIN..MOVE_MAX`` in a random direction);
* BlockSort, a zone index: every other zone.

:func:`robopref.tasks.one_part_proposals` returns the proposals and, for each, which part it
changed, so that a question's part is known to whoever asks it (a study's report, a
per-part accuracy). This module holds the moves the tasks share.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: how far a moved part goes (m), drawn uniformly in this range
MOVE_MIN, MOVE_MAX = 0.04, 0.10


def signed_moves(rng: np.random.Generator, n: int) -> np.ndarray:
    """``(n,)`` signed moves: ``MOVE_MIN..MOVE_MAX`` in either direction."""
    return rng.uniform(MOVE_MIN, MOVE_MAX, n) * rng.choice([-1.0, 1.0], n)


def moves_in_the_plane(rng: np.random.Generator, n: int) -> np.ndarray:
    """``(n, 2)`` moves of ``MOVE_MIN..MOVE_MAX`` in a random direction."""
    angle = rng.uniform(0.0, 2.0 * np.pi, n)
    length = rng.uniform(MOVE_MIN, MOVE_MAX, n)
    return np.stack([length * np.cos(angle), length * np.sin(angle)], axis=1)


def moved_along_axes(
    ends: np.ndarray, rng: np.random.Generator, names: Sequence[str]
) -> tuple[np.ndarray, list[str]]:
    """End points ``(U, D)`` with coordinate ``k`` moved (:func:`signed_moves`) in the
    ``k``-th proposal, one per name: ``(U, D, D)`` and the names."""
    ends = check_ends(ends, len(names), "table points")
    proposals = np.repeat(ends[:, None, :], len(names), axis=1)
    for axis in range(len(names)):
        proposals[:, axis, axis] += signed_moves(rng, len(ends))
    return proposals, list(names)


def check_ends(ends: np.ndarray, width: int, what: str) -> np.ndarray:
    """``ends`` as floats ``(U, width)``, or a ``ValueError`` naming the shape expected."""
    ends = np.asarray(ends, dtype=np.float64)
    if ends.ndim != 2 or ends.shape[1] != width:
        raise ValueError(f"end states of shape {ends.shape}: give (U, {width}) {what}")
    return ends
