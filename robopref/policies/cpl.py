"""The Contrastive Preference Learning objective (CPL; Hejna et al., ICLR 2024).

CPL learns a policy straight from preferences, with no reward model and no RL: under the
regret-based preference model a segment is preferred when it has the lower regret, and with
the optimal advantage ``A*(s, a) = alpha log pi*(a | s)`` (maximum-entropy RL) a segment's
score is the discounted sum of ``alpha log pi(a_t | s_t)``. The loss is the logistic loss
of the preferred segment's score against the other's:

    score(sigma) = sum_t gamma^t alpha log pi(a_t | s_t)
    loss = -y log sigmoid(score_A - lam score_B) - (1 - y) log sigmoid(score_B - lam score_A)

with ``y`` the label P(A preferred) (soft labels and ties as they are; NaN: skipped) and
``lam`` the *conservative* weight: ``lam < 1`` lowers the dispreferred segment's pull (the
paper's bias regularizer, which keeps the policy near the data's actions). An optional
behaviour-cloning term adds ``bc_weight`` times the mean negative log-likelihood of the
preferred segment's actions (the paper pretrains with BC and keeps a BC weight).

**Rankings** (a ranking question's answer, best first) take the Plackett-Luce form of the
same loss, each item a softmax choice among itself and the items ranked below it, whose
scores carry the conservative weight:

    loss = -sum_i log( exp(score_i) / (exp(score_i) + sum_{j > i} exp(lam score_j)) )

For two items it is the pair loss above; the CPL authors' dense variant compares every pair
of segments in a batch, which a ranking of k gives for its k items (every pair answered).

This module holds the losses only: it takes per-step log-probabilities ``(N, T)`` of the two
segments' recorded actions, from any policy (a latent-conditioned pi(a | s, z) gives one per
user). Training it needs the segments' actions in the dataset (the CPL issue's schema step).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional


@dataclass(frozen=True)
class CPLSettings:
    """The objective's constants: the paper's alpha and gamma for its MetaWorld runs; the
    conservative weight 0.5 (the paper's range), which on PlatePlacement's loop answers kept
    the policy's motions where lambda = 1 pushed them to the action bounds (README, CPL)."""

    alpha: float = 0.1
    gamma: float = 1.0
    conservative: float = 0.5
    bc_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.alpha <= 0 or not 0 < self.gamma <= 1:
            raise ValueError(f"alpha={self.alpha} must be > 0 and gamma={self.gamma} in (0, 1]")
        if not 0 < self.conservative <= 1 or self.bc_weight < 0:
            raise ValueError(
                f"conservative={self.conservative} must lie in (0, 1] and "
                f"bc_weight={self.bc_weight} be >= 0"
            )


def segment_scores(log_probs: torch.Tensor, settings: CPLSettings) -> torch.Tensor:
    """``(..., N)``: the discounted sum of ``alpha log pi`` over each segment ``(..., N, T)``."""
    steps = log_probs.shape[-1]
    discount = settings.gamma ** torch.arange(steps, dtype=log_probs.dtype, device=log_probs.device)
    return settings.alpha * (log_probs * discount).sum(-1)


def cpl_loss(
    log_probs_a: torch.Tensor,
    log_probs_b: torch.Tensor,
    label: torch.Tensor,
    settings: CPLSettings | None = None,
) -> torch.Tensor:
    """The mean CPL loss (module docstring) over answered pairs; 0 when none is answered."""
    settings = settings or CPLSettings()
    if log_probs_a.shape != log_probs_b.shape or log_probs_a.shape[:-1] != label.shape:
        raise ValueError(
            f"log-probabilities {tuple(log_probs_a.shape)} / {tuple(log_probs_b.shape)} must "
            f"be equal shapes (..., N, T) over labels {tuple(label.shape)} (..., N)"
        )
    answered = ~torch.isnan(label)
    y = torch.where(answered, label, torch.zeros_like(label))
    score_a = segment_scores(log_probs_a, settings)
    score_b = segment_scores(log_probs_b, settings)
    lam = settings.conservative
    per_pair = y * functional.softplus(-(score_a - lam * score_b)) + (1 - y) * functional.softplus(
        -(score_b - lam * score_a)
    )
    if settings.bc_weight:
        preferred = torch.where((y >= 0.5).unsqueeze(-1), log_probs_a, log_probs_b)
        per_pair = per_pair - settings.bc_weight * preferred.mean(-1)
    count = answered.sum()
    if int(count) == 0:
        return (score_a * 0.0).sum()
    return torch.where(answered, per_pair, torch.zeros_like(per_pair)).sum() / count


def cpl_ranking_loss(scores: torch.Tensor, settings: CPLSettings | None = None) -> torch.Tensor:
    """The mean Plackett-Luce CPL loss (module docstring) of rankings ``(N, K)``: each row
    the segment scores (:func:`segment_scores`) of one ranking's items, best first."""
    settings = settings or CPLSettings()
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(f"ranked scores {tuple(scores.shape)} must be (N, K) with K >= 2")
    count, items = scores.shape
    own = torch.eye(items, dtype=torch.bool, device=scores.device)
    below = torch.ones_like(own).triu(1)
    # rows[n, i, j]: item i's own score (j = i), lam * score_j for the items below it (j > i)
    rows = torch.where(
        own, scores[:, :, None].expand(count, items, items),
        settings.conservative * scores[:, None, :].expand(count, items, items),
    )  # fmt: skip
    rows = rows.masked_fill(~(own | below), -torch.inf)
    choices = scores[:, :-1] - torch.logsumexp(rows[:, :-1], dim=-1)
    return -choices.sum(-1).mean()
