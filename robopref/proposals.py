"""Proposals that change one part of what the robot did, to ask a user about.

A whole-episode answer mixes every part of a task (on TableSetting the plate's, the cup's and
the utensil's terms), so each part's bit is diluted. A question that shows the robot's own
end state beside the same end state with **one part changed** turns on that part alone.
The changes are made per task from the robot's end state only, never from a goal:

* PlatePlacement, an end point ``(x, y)``: the spot moved along x, or along y, by
  ``MOVE_MIN..MOVE_MAX`` in either direction;
* TableSetting, an arrangement ``(plate_x, plate_y, cup_dx, cup_dy, utensil_dx,
  utensil_dy)`` (x away from the robot, y to its left): the cup on the other side (its
  offset's y mirrored), the utensil on the other side, the plate nearer or further (its x
  moved), the cup moved, the utensil moved (by ``MOVE_MIN..MOVE_MAX`` in a random direction);
* BlockSort, a zone index: every other zone.

:func:`one_part_proposals` returns the proposals and, for each, which part it changed, so
that a question's part is known to whoever asks it (a study's report, a per-part accuracy).
"""

from __future__ import annotations

import numpy as np

#: how far a moved part goes (m), drawn uniformly in this range
MOVE_MIN, MOVE_MAX = 0.04, 0.10
#: the changes of each kind of end state, in the order :func:`one_part_proposals` returns them
PLATE_CHANGES = ("spot along x", "spot along y")
ARRANGEMENT_CHANGES = (
    "cup on the other side", "utensil on the other side", "plate nearer or further",
    "cup moved", "utensil moved",
)  # fmt: skip
#: the coordinates of each part of an arrangement (the plate's spot, the cup's and the
#: utensil's offsets from it)
ARRANGEMENT_PARTS = {"plate": (0, 1), "cup": (2, 3), "utensil": (4, 5)}
#: the part each arrangement change touches
ARRANGEMENT_CHANGED_PART = ("cup", "utensil", "plate", "cup", "utensil")


def _distance(rng: np.random.Generator, n: int) -> np.ndarray:
    """``(n,)`` signed moves: ``MOVE_MIN..MOVE_MAX`` in either direction."""
    return rng.uniform(MOVE_MIN, MOVE_MAX, n) * rng.choice([-1.0, 1.0], n)


def one_part_proposals(
    ends: np.ndarray, rng: np.random.Generator, n_zones: int | None = None
) -> tuple[np.ndarray, list[str]]:
    """Proposals for end states ``ends``: ``(U, 2)`` plate spots, ``(U, 6)`` arrangements or
    ``(U,)`` zone indices (with ``n_zones``). Returns ``(proposals, changes)``:
    ``proposals (U, C, ...)`` (``C`` changes per end state, same layout as ``ends``) and the
    ``C`` changes' names, in order."""
    ends = np.asarray(ends, dtype=np.float64)
    if n_zones is not None:
        zones = ends.astype(int).reshape(-1)
        if np.any((zones < 0) | (zones >= n_zones)):
            raise ValueError(f"zone indices must lie in 0..{n_zones - 1}")
        others = np.array([[z for z in range(n_zones) if z != own] for own in zones])
        return others.astype(np.float64), [f"another zone ({k + 1})" for k in range(n_zones - 1)]
    if ends.ndim != 2 or ends.shape[1] not in (2, 6):
        raise ValueError(
            f"end states of shape {ends.shape}: give (U, 2) plate spots, (U, 6) arrangements "
            "or zone indices with n_zones"
        )
    count = len(ends)
    if ends.shape[1] == 2:
        proposals = np.repeat(ends[:, None, :], len(PLATE_CHANGES), axis=1)
        for axis in range(2):
            proposals[:, axis, axis] += _distance(rng, count)
        return proposals, list(PLATE_CHANGES)
    proposals = np.repeat(ends[:, None, :], len(ARRANGEMENT_CHANGES), axis=1)
    proposals[:, 0, 3] *= -1.0  # the cup's offset mirrored across the plate's x axis
    proposals[:, 1, 5] *= -1.0
    proposals[:, 2, 0] += _distance(rng, count)
    for change, (dx, dy) in ((3, (2, 3)), (4, (4, 5))):
        angle = rng.uniform(0.0, 2.0 * np.pi, count)
        length = rng.uniform(MOVE_MIN, MOVE_MAX, count)
        proposals[:, change, dx] += length * np.cos(angle)
        proposals[:, change, dy] += length * np.sin(angle)
    return proposals, list(ARRANGEMENT_CHANGES)
