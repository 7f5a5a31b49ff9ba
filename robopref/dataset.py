"""``PreferenceDataset``: per-user context sets of labelled pairs of trajectory segments.

This is the contract between the users/queries side (which writes datasets) and the reward
models (which read them). Arrays, with P pairs, T steps per segment, U users:

========================  ===============  ==================================================
field                     shape, dtype     meaning
========================  ===============  ==================================================
``obs_a``, ``obs_b``      (P, T, O) f32    observations of segment A and segment B
``feat_a``, ``feat_b``    (P, T, F) f32    ``info["features"]`` of the same steps
``label``                 (P,) f32         the answer: P(A preferred) as given by the user;
                                           1 = A, 0 = B, 0.5 = tie, in between = soft label,
                                           NaN = skipped (no answer)
``user``                  (P,) i64         the answering user's index in [0, U); each user's
                                           pairs are contiguous and in the order asked
``user_goal``             (U, G) f64       hidden goal of each user (evaluation only)
``user_group``            (U,) i64         mode index of each user, -1 if none (evaluation)
``true_label``            (P,) f32         noise-free answer: 1, 0 or 0.5 (evaluation only)
``answer_prob``           (P,) f32         the user's exact probability of answering A, with
                                           all noise (evaluation only: the Bayes ceiling)
``contested``             (P,) bool        users of the population disagree on this pair
                                           without noise (evaluation only)
========================  ===============  ==================================================

``env_id`` names the task, ``feature_names`` the F features, and ``meta`` holds the rest of
the provenance (population, seed, segment length, behaviour mix, ...). Fields marked
"evaluation only" must never be read by a reward model's ``fit``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCHEMA_VERSION = 1


@dataclass
class PreferenceDataset:
    """Labelled segment pairs grouped by user (see the module docstring for the fields)."""

    env_id: str
    feature_names: tuple[str, ...]
    obs_a: np.ndarray
    obs_b: np.ndarray
    feat_a: np.ndarray
    feat_b: np.ndarray
    label: np.ndarray
    user: np.ndarray
    user_goal: np.ndarray
    user_group: np.ndarray
    true_label: np.ndarray
    answer_prob: np.ndarray
    contested: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_pairs(self) -> int:
        """Number of pairs P."""
        return int(self.label.shape[0])

    @property
    def n_users(self) -> int:
        """Number of users U."""
        return int(self.user_goal.shape[0])

    @property
    def segment_length(self) -> int:
        """Steps per segment T (1 means single states)."""
        return int(self.obs_a.shape[1])

    def user_indices(self, user: int) -> np.ndarray:
        """Indices of ``user``'s pairs, in the order they were asked."""
        return np.flatnonzero(self.user == user)

    def subset_users(self, users: np.ndarray) -> PreferenceDataset:
        """The pairs of ``users`` only, users renumbered 0..len(users)-1 in the given order."""
        users = np.asarray(users, dtype=np.int64)
        remap = np.full(self.n_users, -1, dtype=np.int64)
        remap[users] = np.arange(len(users))
        pairs = (
            np.concatenate([self.user_indices(int(u)) for u in users])
            if len(users)
            else (np.zeros(0, dtype=np.int64))
        )
        per_pair = (
            "obs_a",
            "obs_b",
            "feat_a",
            "feat_b",
            "label",
            "true_label",
            "answer_prob",
            "contested",
        )
        return PreferenceDataset(
            env_id=self.env_id,
            feature_names=self.feature_names,
            user=remap[self.user[pairs]],
            user_goal=self.user_goal[users],
            user_group=self.user_group[users],
            meta={**self.meta, "parent_users": users.tolist()},
            **{name: getattr(self, name)[pairs] for name in per_pair},
        )

    def split_users(
        self, test_fraction: float, seed: int | np.random.Generator = 0
    ) -> tuple[PreferenceDataset, PreferenceDataset]:
        """Split by user into (train, test): held-out users' pairs are never in train."""
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction={test_fraction} must lie strictly between 0 and 1")
        order = np.random.default_rng(seed).permutation(self.n_users)
        n_test = max(1, int(round(test_fraction * self.n_users)))
        return self.subset_users(np.sort(order[n_test:])), self.subset_users(
            np.sort(order[:n_test])
        )
