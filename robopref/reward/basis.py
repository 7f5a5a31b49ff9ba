"""Rewards built from K shared basis rewards; a user is a point on the simplex over them.

r(s, z) = sum_k w_k(z) r_k(s) with w(z) = softmax(z / temperature): the K basis rewards
r_k are the outputs of one MLP, shared by every user; a user is their weights w on the
simplex. z has the prior N(0, I) of every latent model here, so ``infer_user`` (BALD, the
likelihood posterior), the loop and latent policies take these models as they take VPL.
A pair's logit is w(z) . (R(A) - R(B)) with R_k the basis returns of a segment, so scoring
candidates for many z is one matrix product (:class:`BasisPairScorer`).

Two ways to fit them, each its own module:
:mod:`robopref.reward.lowrank` (LoRe / PAL: a user is any mixture of the basis, fitted
jointly with it) and :mod:`robopref.reward.mixture` (a mixture of K BTL rewards fitted by
EM: a user is one component). Subclasses give the temperature and ``user_latents``: how z
follows from a user's answers given the basis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from robopref.reward.base import PairScorer, RewardModel
from robopref.reward.data import (
    PairContext,
    UserTensors,
    context_tensors,
    context_validation_sums,
)
from robopref.reward.nets import like_input, mlp


@dataclass
class BasisConfig:
    """Architecture of a basis-reward model: ``components`` rewards from one MLP."""

    components: int = 4
    hidden: tuple[int, ...] = (128, 128)

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        if self.components < 2 or not self.hidden:
            raise ValueError(
                f"components={self.components} must be at least 2 (--components: the basis "
                "rewards a user's weights mix; 1 is BTL) and hidden non-empty"
            )


class BasisPairScorer(PairScorer):
    """Candidate pairs' basis-return differences, computed once; logits for many z at once."""

    def __init__(self, model: BasisRewardModel, obs_a: torch.Tensor, obs_b: torch.Tensor) -> None:
        super().__init__(model, obs_a, obs_b)
        with torch.no_grad():
            self.differences = model.basis_returns(obs_a) - model.basis_returns(obs_b)
        self.weights = model.weights

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """``(S, C)``: logit P(A preferred) of each candidate for each ``z`` ``(S, K)``."""
        with torch.no_grad():
            return self.weights(z) @ self.differences.T


class BasisRewardModel(RewardModel):
    """r(s, z) = softmax(z / temperature) . r_basis(s) (module docstring)."""

    #: w(z) = softmax(z / temperature): small makes w nearly one-hot for z ~ N(0, I)
    temperature: ClassVar[float] = 1.0

    def __init__(self, obs_dim: int, config: BasisConfig | None = None) -> None:
        config = config or BasisConfig()
        super().__init__(obs_dim, config)
        self.basis = mlp(obs_dim, config.hidden, config.components)

    @property
    def latent_dim(self) -> int:
        """K: one coordinate of z per basis reward."""
        return int(self.config.components)

    def weights(self, z: torch.Tensor) -> torch.Tensor:
        """A user's weights on the basis rewards, ``(..., K)`` on the simplex."""
        return torch.softmax(z / self.temperature, -1)

    def step_reward(self, obs_n: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """r(s, z) for normalised observations ``(..., O)`` and ``z`` ``(..., K)``."""
        if z is None:
            raise ValueError(f"{self.kind} rewards need a latent z (the user's basis weights)")
        return (self.basis(obs_n) * self.weights(z)).sum(-1)

    def basis_returns(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw segments ``(..., T, O)`` -> each basis reward's return ``(..., K)``."""
        return self.basis(self.normalize(obs)).sum(-2)

    def pair_logits(
        self, obs_a: torch.Tensor, obs_b: torch.Tensor, z: torch.Tensor | None
    ) -> torch.Tensor:
        """w(z) . (R(A) - R(B)) for raw segments ``(..., T, O)`` and ``z`` ``(..., K)``."""
        if z is None:
            raise ValueError(f"{self.kind} pair logits need a latent z")
        return self.difference_logits(self.basis_returns(obs_a) - self.basis_returns(obs_b), z)

    def difference_logits(self, differences: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """w(z) . d: the logits of pairs with basis-return differences ``d`` ``(..., N, K)``
        (or ``(..., K)``) for ``z`` ``(..., K)`` (one z per row of pairs)."""
        weights = self.weights(z)
        if differences.dim() > weights.dim():
            weights = weights.unsqueeze(-2)
        return (weights * differences).sum(-1)

    def pair_scorer(self, obs_a: Any, obs_b: Any) -> PairScorer:
        """Candidate scorer: one matrix product per batch of z."""
        return BasisPairScorer(self, self._obs(obs_a), self._obs(obs_b))

    def user_latents(
        self, differences: torch.Tensor, label: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, std)`` ``(..., K)`` of z for users whose answered pairs have basis-return
        differences ``(..., N, K)`` and labels ``(..., N)`` (NaN: no answer)."""
        raise NotImplementedError

    def posterior(self, context: PairContext | tuple[Any, Any, Any]) -> tuple[Any, Any]:
        """z given a user's answered pairs (``user_latents``); no pairs give the prior."""
        obs_a, obs_b, label = context_tensors(context, self.obs_dim, self.device)
        with torch.no_grad():
            mean, std = self.user_latents(
                self.basis_returns(obs_a) - self.basis_returns(obs_b), label
            )
        return like_input(mean, context[2]), like_input(std, context[2])

    def batch_differences(self, batch: UserTensors) -> torch.Tensor:
        """``(U, N, K)``: the basis-return differences of a batch's pairs (differentiable)."""
        return self.basis_returns(batch.obs_a) - self.basis_returns(batch.obs_b)

    def validation_sums(self, batch: UserTensors, generator: torch.Generator) -> dict[str, float]:
        """Target-pair sums with z from the other pairs, over contexts of 0, 1, 2, 4, 8 pairs."""
        differences = self.batch_differences(batch)

        def logits_given(context_label: torch.Tensor) -> torch.Tensor:
            mean, _ = self.user_latents(differences, context_label)
            return self.difference_logits(differences, mean)

        cap = (batch.answered.sum(-1) - 1).clamp(min=0)
        return context_validation_sums(batch.label, cap, generator, logits_given)
