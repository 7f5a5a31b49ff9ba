"""Where a learned reward peaks over TableSetting's arrangements: the table a user would like.

An arrangement is six numbers (the plate's spot and the cup's and the utensil's offsets from
it), too many for the grid :class:`robopref.reward.peak.PeakFinder` searches. The learned
reward r(s, z) is scored on the *set table* of each candidate (every object resting at its
spot, released from the drop height typical of the model's training states, its
normalisation mean: a drop the answers never showed would be an extrapolation, and the
peak would follow it; :func:`set_table_features`), and the search is coordinate ascent
over the objects' spots: the best of ``starts`` arrangements drawn uniformly from the goal
space, then, ``rounds`` times, each object moved to the best point of a grid of spacing
``step`` over the place region with the others held. No user's goal is read: only the
reward model and the task's geometry.
"""

from __future__ import annotations

import numpy as np
import torch

from robopref.envs.table_setting import (
    FEATURE_NAMES,
    N_OBJECTS,
    PLACE_HIGH,
    PLACE_LOW,
    ArrangementSpace,
    spots,
)
from robopref.reward.base import RewardModel
from robopref.reward.peak import box_grid

#: per object: x, y, height, held, resting, drop height (the order of FEATURE_NAMES)
_QUANTITIES = len(FEATURE_NAMES) // N_OBJECTS


def set_table_features(points: np.ndarray, drop: np.ndarray | None = None) -> np.ndarray:
    """Features ``(..., 18)`` of tables whose objects rest at ``points (..., 3, 2)``,
    released from ``drop (3,)`` (the height each object fell when let go; default 0)."""
    points = np.asarray(points, dtype=np.float32)
    out = np.zeros((*points.shape[:-2], N_OBJECTS, _QUANTITIES), dtype=np.float32)
    out[..., 0:2] = points
    out[..., 4] = 1.0  # resting on the table, released
    if drop is not None:
        out[..., 5] = drop
    return out.reshape(*points.shape[:-2], N_OBJECTS * _QUANTITIES)


def arrangement_of(points: np.ndarray) -> np.ndarray:
    """The arrangement ``(..., 6)`` of object spots ``(..., 3, 2)`` (plate, cup - plate,
    utensil - plate)."""
    plate = points[..., 0, :]
    return np.concatenate([plate, points[..., 1, :] - plate, points[..., 2, :] - plate], -1)


class ArrangementPeakFinder:
    """The set table a reward model prefers under each z (module docstring)."""

    def __init__(
        self,
        model: RewardModel,
        step: float = 0.01,
        starts: int = 4096,
        rounds: int = 3,
        seed: int = 0,
    ) -> None:
        if tuple(model.meta.get("feature_names") or FEATURE_NAMES) != FEATURE_NAMES:
            raise ValueError("the arrangement peak needs a reward model on TableSetting's features")
        self.model, self.rounds = model, rounds
        self.drop = model.obs_mean.cpu().numpy()[_QUANTITIES - 1 :: _QUANTITIES]
        self.grid = box_grid(PLACE_LOW, PLACE_HIGH, step).astype(np.float32)
        space = ArrangementSpace()
        space.seed(seed)
        self.starts = spots(np.stack([space.sample() for _ in range(starts)])).astype(np.float32)

    def _scores(self, points: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Rewards ``(N,)`` of set tables ``(N, 3, 2)`` under one z."""
        states = torch.as_tensor(set_table_features(points, self.drop))
        with torch.no_grad():
            latent = torch.as_tensor(z, dtype=torch.float32).expand(len(points), -1)
            return np.asarray(self.model.reward(states, latent))

    def peak_spots(self, z: np.ndarray) -> np.ndarray:
        """The objects' spots ``(3, 2)`` of the best set table under ``z (Z,)``."""
        z = np.asarray(z, dtype=np.float32).reshape(1, -1)
        best = self.starts[int(np.argmax(self._scores(self.starts, z)))].copy()
        for _ in range(self.rounds):
            for i in range(N_OBJECTS):
                trial = np.repeat(best[None], len(self.grid), axis=0)
                trial[:, i] = self.grid
                best[i] = self.grid[int(np.argmax(self._scores(trial, z)))]
        return best

    def peak(self, z: np.ndarray) -> np.ndarray:
        """The arrangement ``(6,)`` of the best set table under ``z``."""
        return arrangement_of(self.peak_spots(z))
