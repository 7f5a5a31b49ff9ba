"""The arrangement peak: coordinate ascent finds the set table a reward prefers."""

from __future__ import annotations

import numpy as np
import pytest

from robopref.envs.table_setting import FEATURE_NAMES, spots
from robopref.reward.arrangement_peak import (
    ArrangementPeakFinder,
    arrangement_of,
    set_table_features,
)
from robopref.reward.base import RewardModel

#: the tables a hand-built user prefers: the cup and the utensil switch sides with z's sign
TARGET = np.array([0.06, 0.0, -0.09, 0.12, 0.03, -0.11])


class TableModel(RewardModel):
    """r(s, z) = minus the squared distance of each object to its spot; z mirrors the cup
    and utensil offsets (z > 0: the target; z < 0: the other sides)."""

    kind = "table"

    def __init__(self) -> None:
        super().__init__(len(FEATURE_NAMES), None)
        self.meta = {"feature_names": list(FEATURE_NAMES)}

    @property
    def latent_dim(self) -> int:
        return 1

    def step_reward(self, obs_n, z):
        import torch

        side = torch.sign(z[..., 0])
        goal = torch.as_tensor(TARGET, dtype=obs_n.dtype).expand(*obs_n.shape[:-1], 6).clone()
        goal[..., 3] = goal[..., 3] * side
        goal[..., 5] = goal[..., 5] * side
        plate = goal[..., 0:2]
        points = torch.stack([plate, plate + goal[..., 2:4], plate + goal[..., 4:6]], -2)
        where = obs_n.reshape(*obs_n.shape[:-1], 3, 6)[..., 0:2]
        return -((where - points) ** 2).sum((-1, -2))


def test_set_tables_and_arrangements_round_trip() -> None:
    points = spots(TARGET)
    features = set_table_features(points)
    assert features.shape == (18,) and features[4] == 1.0 and features[3] == 0.0
    np.testing.assert_allclose(arrangement_of(points), TARGET, atol=1e-12)


@pytest.mark.parametrize("z", [1.0, -1.0])
def test_the_peak_is_the_preferred_table_within_the_grid(z: float) -> None:
    finder = ArrangementPeakFinder(TableModel(), starts=256, seed=0)
    peak = finder.peak(np.array([z]))
    want = TARGET.copy()
    want[[3, 5]] *= np.sign(z)
    assert np.abs(spots(peak) - spots(want)).max() <= 0.006  # half the 1 cm grid, plus slack
