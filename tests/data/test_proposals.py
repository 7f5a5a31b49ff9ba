"""One-part proposals: each changes exactly one part of the robot's end state."""

from __future__ import annotations

import numpy as np
import pytest

from robopref.data.proposals import MOVE_MAX, MOVE_MIN
from robopref.tasks import one_part_proposals
from robopref.tasks.table_setting import (
    ARRANGEMENT_CHANGED_PART,
    ARRANGEMENT_CHANGES,
    ARRANGEMENT_PARTS,
)

PLATE = "robopref/PlatePlacement-v0"
BLOCK = "robopref/BlockSort-v0"
TABLE = "robopref/TableSetting-v0"


def test_each_arrangement_proposal_changes_exactly_its_one_part():
    rng = np.random.default_rng(0)
    ends = np.array([[0.05, 0.0, 0.02, 0.15, 0.0, -0.12], [0.1, -0.05, -0.03, -0.14, 0.01, 0.1]])
    proposals, changes = one_part_proposals(TABLE, ends, rng)
    assert changes == list(ARRANGEMENT_CHANGES)
    assert proposals.shape == (2, len(ARRANGEMENT_CHANGES), 6)
    for user in range(2):
        for change, part in enumerate(ARRANGEMENT_CHANGED_PART):
            moved = [
                name for name, columns in ARRANGEMENT_PARTS.items()
                if not np.allclose(proposals[user, change, [*columns]], ends[user, [*columns]])
            ]  # fmt: skip
            assert moved == [part], (user, changes[change], moved)
    # the other side: the offset's y mirrored, its x kept
    assert np.allclose(proposals[:, 0, 3], -ends[:, 3]) and np.allclose(
        proposals[:, 0, 2], ends[:, 2]
    )
    shift = np.linalg.norm(proposals[:, 3, 2:4] - ends[:, 2:4], axis=1)
    assert np.all((shift >= MOVE_MIN - 1e-9) & (shift <= MOVE_MAX + 1e-9))


def test_each_plate_proposal_moves_one_coordinate():
    ends = np.random.default_rng(1).uniform(-0.2, 0.2, (50, 2))
    proposals, changes = one_part_proposals(PLATE, ends, np.random.default_rng(2))
    assert changes == ["spot along x", "spot along y"]
    for axis in range(2):
        delta = proposals[:, axis] - ends
        assert np.allclose(delta[:, 1 - axis], 0.0)
        assert np.all((np.abs(delta[:, axis]) >= MOVE_MIN) & (np.abs(delta[:, axis]) <= MOVE_MAX))
    assert (proposals[:, 0, 0] > ends[:, 0]).any() and (proposals[:, 0, 0] < ends[:, 0]).any()


def test_zones_are_proposed_every_other_zone():
    proposals, changes = one_part_proposals(
        BLOCK, np.array([0, 3]), np.random.default_rng(0), n_zones=4
    )
    assert proposals.tolist() == [[1, 2, 3], [0, 1, 2]] and len(changes) == 3
    with pytest.raises(ValueError, match="0..3"):
        one_part_proposals(BLOCK, np.array([4]), np.random.default_rng(0), n_zones=4)


def test_an_end_state_of_another_shape_is_refused():
    with pytest.raises(ValueError, match=r"give \(U, 2\) table points"):
        one_part_proposals(PLATE, np.zeros((3, 4)), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"give \(U, 6\) arrangements"):
        one_part_proposals(TABLE, np.zeros((3, 2)), np.random.default_rng(0))
