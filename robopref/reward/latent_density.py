"""Weights that give every region of the latent space its share, whatever its head count.

A minority's users sit in a sparse corner of z; drawn in proportion to their number they
get few updates (reward fitting) and few episodes (policy training). These weights are
inversely proportional to a k-nearest-neighbour density estimate of the latents, so a
region gets draws in proportion to its extent. Only latents are read: no goal, no group
(the rule of hidden knowledge); the latents come from each user's answers.
"""

from __future__ import annotations

import numpy as np

#: neighbours whose distance sizes a latent's region in :func:`coverage_weights`
COVERAGE_NEIGHBOURS = 5


def coverage_weights(
    latents: np.ndarray, neighbours: int = COVERAGE_NEIGHBOURS, cap: float | None = None
) -> np.ndarray:
    """Draw weights ``(U,)`` (summing to one) inversely proportional to each latent's density,
    estimated as 1 / r^d with r the distance to its ``neighbours``-th nearest latent in d
    dimensions. ``cap`` bounds any one latent's weight at ``cap`` times the uniform ``1 / U``
    (an isolated latent, one user's odd answers, would otherwise take most draws)."""
    latents = np.asarray(latents, dtype=np.float64)
    count, dim = latents.shape
    if count < 2:
        return np.ones(count) / max(count, 1)
    k = min(neighbours, count - 1)
    distances = np.sqrt(((latents[:, None, :] - latents[None, :, :]) ** 2).sum(-1))
    radius = np.sort(distances, axis=1)[:, k]  # column 0 is the latent itself
    log_weight = dim * np.log(np.maximum(radius, 1e-12))
    weights = np.exp(log_weight - log_weight.max())
    weights /= weights.sum()
    if cap is not None:
        for _ in range(20):  # clip and renormalise until no weight exceeds the cap
            limit = cap / count
            if weights.max() <= limit * (1 + 1e-9):
                break
            weights = np.minimum(weights, limit)
            weights /= weights.sum()
    return weights
