"""What the reward models read from a :class:`~robopref.data.dataset.PreferenceDataset`.

``UserTensors`` lays the answers out per user, padded: ``obs_a``/``obs_b`` ``(U, N, T, O)``
and ``label`` ``(U, N)`` with NaN where a pair was skipped or is padding (``N`` is the most
pairs any user answered). Only observations and labels are read: the evaluation-only fields
of the dataset (goals, groups, true labels, answer probabilities) never reach ``fit``.

``PairContext`` is a context set handed to ``posterior``: labelled pairs of one user (or a
batch of users, with leading dimensions).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.nn import functional

from robopref.data.dataset import PreferenceDataset
from robopref.reward.nets import as_tensor


class PairContext(NamedTuple):
    """Labelled pairs: ``obs_a``, ``obs_b`` ``(..., N, T, O)``, ``label`` ``(..., N)``.

    ``label`` is P(A preferred): 1, 0, 0.5 (tie), soft values in between, NaN = no answer
    (ignored). Numpy arrays or torch tensors; ``N`` may be 0 (then the posterior is the prior).
    """

    obs_a: Any
    obs_b: Any
    label: Any

    @classmethod
    def from_dataset(cls, dataset: PreferenceDataset, indices: Any) -> PairContext:
        """The pairs ``indices`` of ``dataset`` (normally one user's) as a context."""
        idx = np.asarray(indices, dtype=np.int64)
        return cls(dataset.obs_a[idx], dataset.obs_b[idx], dataset.label[idx])

    @classmethod
    def empty(cls, segment_length: int, obs_dim: int) -> PairContext:
        """A context with no pairs (its posterior is the prior)."""
        obs = np.zeros((0, segment_length, obs_dim), dtype=np.float32)
        return cls(obs, obs.copy(), np.zeros(0, dtype=np.float32))


def context_tensors(
    context: PairContext | tuple[Any, Any, Any], obs_dim: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A context's ``(obs_a, obs_b, label)`` as tensors on ``device``, its shapes checked:
    segments ``(..., N, T, obs_dim)`` alike, labels ``(..., N)``."""
    obs_a, obs_b, label = (as_tensor(x, device) for x in context)
    if obs_a.shape[-1] != obs_dim or obs_a.shape != obs_b.shape or obs_a.ndim < 3:
        raise ValueError(
            f"context segments {tuple(obs_a.shape)} / {tuple(obs_b.shape)} must be equal "
            f"shapes (..., N, T, {obs_dim})"
        )
    if obs_a.shape[:-2] != label.shape:
        raise ValueError(
            f"context labels {tuple(label.shape)} must match the pairs' leading shape "
            f"{tuple(obs_a.shape[:-2])}"
        )
    return obs_a, obs_b, label


def check_dataset(dataset: PreferenceDataset) -> None:
    """Raise ``ValueError`` naming the problem if ``dataset`` cannot be trained on."""
    if dataset.obs_a.ndim != 3 or dataset.obs_a.shape != dataset.obs_b.shape:
        raise ValueError(
            f"obs_a {dataset.obs_a.shape} and obs_b {dataset.obs_b.shape} must both be "
            "(pairs, steps, obs_dim): the dataset file is malformed, recollect it"
        )
    n = dataset.obs_a.shape[0]
    if dataset.label.shape != (n,) or dataset.user.shape != (n,):
        raise ValueError(
            f"label {dataset.label.shape} and user {dataset.user.shape} must have one entry "
            f"per pair ({n}): the dataset file is malformed, recollect it"
        )
    if n == 0:
        raise ValueError("the dataset has no pairs: collect some answers first")
    if not (np.isfinite(dataset.obs_a).all() and np.isfinite(dataset.obs_b).all()):
        raise ValueError("the dataset's observations contain NaN or inf: recollect it")
    answered = dataset.label[~np.isnan(dataset.label)]
    if answered.size == 0:
        raise ValueError("every pair of the dataset was skipped: there is nothing to learn from")
    if answered.min() < 0.0 or answered.max() > 1.0:
        raise ValueError(
            f"labels must be P(A preferred) in [0, 1] or NaN, found values in "
            f"[{answered.min()}, {answered.max()}]"
        )
    changes = int(np.count_nonzero(np.diff(dataset.user))) + 1
    if changes != len(np.unique(dataset.user)):
        raise ValueError(
            "each user's pairs must be contiguous in the dataset (the PreferenceDataset "
            "contract); this file interleaves users"
        )


def dataset_fingerprint(dataset: PreferenceDataset) -> str:
    """A short hash of a dataset's pairs, users and labels (to recognise it again)."""
    digest = hashlib.sha256()
    for array in (dataset.obs_a, dataset.obs_b, dataset.label, dataset.user):
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(dataset.env_id.encode())
    return digest.hexdigest()[:16]


@dataclass
class UserTensors:
    """A dataset's answers laid out per user and padded (see the module docstring)."""

    obs_a: torch.Tensor
    obs_b: torch.Tensor
    label: torch.Tensor

    @classmethod
    def from_dataset(cls, dataset: PreferenceDataset) -> UserTensors:
        """Every user of ``dataset`` (users with no pairs get an all-NaN row)."""
        check_dataset(dataset)
        n_users = max(dataset.n_users, int(dataset.user.max()) + 1)
        counts = np.bincount(dataset.user, minlength=n_users)
        width = max(int(counts.max()), 1)
        _, steps, obs_dim = dataset.obs_a.shape
        obs_a = np.zeros((n_users, width, steps, obs_dim), dtype=np.float32)
        obs_b = np.zeros_like(obs_a)
        label = np.full((n_users, width), np.nan, dtype=np.float32)
        # position of each pair within its user's block (pairs are contiguous per user)
        first = np.zeros(n_users, dtype=np.int64)
        starts = np.flatnonzero(np.r_[True, np.diff(dataset.user) != 0])
        first[dataset.user[starts]] = starts
        position = np.arange(dataset.n_pairs) - first[dataset.user]
        obs_a[dataset.user, position] = dataset.obs_a
        obs_b[dataset.user, position] = dataset.obs_b
        label[dataset.user, position] = dataset.label
        return cls(torch.from_numpy(obs_a), torch.from_numpy(obs_b), torch.from_numpy(label))

    @property
    def n_users(self) -> int:
        """Number of users (rows)."""
        return int(self.label.shape[0])

    @property
    def answered(self) -> torch.Tensor:
        """``(U, N)`` bool: the pair exists and was answered (label not NaN)."""
        return ~torch.isnan(self.label)

    def select(self, users: torch.Tensor) -> UserTensors:
        """The rows ``users`` (a 1-D index tensor)."""
        return UserTensors(self.obs_a[users], self.obs_b[users], self.label[users])

    def to(self, device: torch.device) -> UserTensors:
        """The same tensors on ``device``."""
        return UserTensors(self.obs_a.to(device), self.obs_b.to(device), self.label.to(device))

    def all_observations(self) -> torch.Tensor:
        """``(M, O)``: every step of every answered pair's two segments."""
        mask = self.answered
        return torch.cat([self.obs_a[mask], self.obs_b[mask]]).flatten(0, 1)


def preference_nll(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Per-pair cross-entropy of P(A) = sigmoid(logits) against ``label`` (soft, ties 0.5).

    NaN labels (skipped or padding) give 0; the caller masks and counts them.
    """
    answered = ~torch.isnan(label)
    target = torch.where(answered, label, torch.zeros_like(label))
    loss = functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return torch.where(answered, loss, torch.zeros_like(loss))


def hard_correct(logits: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(correct, scored)`` bool masks: scored pairs have a label on one side of 0.5."""
    scored = ~torch.isnan(label) & (label != 0.5)
    correct = scored & ((logits > 0) == (label > 0.5))
    return correct, scored


def split_context(
    answered: torch.Tensor, sizes: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Context and target masks ``(U, N)``: a random ``sizes[u]`` of user u's answered pairs
    form the context, the rest of them the targets (the latent models' training split)."""
    keys = torch.rand(answered.shape, generator=generator).to(answered.device)
    keys = torch.where(answered, keys, torch.full_like(keys, 2.0))
    rank = keys.argsort(-1).argsort(-1)
    context = answered & (rank < sizes.unsqueeze(-1))
    return context, answered & ~context


#: context sizes at which the latent models' validation scores held-out users' other pairs
VALIDATION_CONTEXT_SIZES = (0, 1, 2, 4, 8)


def context_validation_sums(
    label: torch.Tensor,
    cap: torch.Tensor,
    generator: torch.Generator,
    logits_given: Callable[[torch.Tensor], torch.Tensor],
) -> dict[str, float]:
    """The validation sums (``nll``, ``n``, ``correct``, ``scored``) of a latent model over
    users with labels ``(U, N)``: for each size in ``VALIDATION_CONTEXT_SIZES`` (at most
    ``cap[u]``), a random context of that many answered pairs, the others scored with
    ``logits_given(context labels)`` ``(U, N)`` (NaN outside the context)."""
    answered = ~torch.isnan(label)
    nan = torch.full_like(label, float("nan"))
    totals = {"nll": 0.0, "n": 0.0, "correct": 0.0, "scored": 0.0}
    for size in VALIDATION_CONTEXT_SIZES:
        sizes = torch.minimum(cap, torch.full_like(cap, size))
        context, target = split_context(answered, sizes, generator)
        logits = logits_given(torch.where(context, label, nan))
        target_label = torch.where(target, label, nan)
        correct, scored = hard_correct(logits, target_label)
        totals["nll"] += float(preference_nll(logits, target_label).sum())
        totals["n"] += float(target.sum())
        totals["correct"] += float(correct.sum())
        totals["scored"] += float(scored.sum())
    return totals
