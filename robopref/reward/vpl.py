"""``VPLRewardModel``: Variational Preference Learning (Poddar et al., NeurIPS 2024).

A user is a latent vector z. From a *set* of that user's labelled pairs (any number, any
order) the encoder infers a diagonal Gaussian q(z | context); the decoder gives the reward
r(s, z); p(A preferred | z) = sigmoid(R_A(z) - R_B(z)) with R the sum of r over a segment.

Encoder (permutation-invariant, any context size): each segment is embedded by an MLP on
its normalised steps, averaged over time; each pair by an MLP on
``[s (phi_A - phi_B), phi_A + phi_B, |s|]`` with ``s = 2y - 1``: the preferred segment's
embedding minus the other's, so that ``(A, B, y)`` and ``(B, A, 1 - y)``, the same answer,
embed alike, and a tie (``s = 0``) carries no direction. Each answered pair contributes a
Gaussian factor over z, a latent observation ``o_i`` with precision ``lam_i >= 0``; the
factors are multiplied into the prior N(0, I): ``precision = 1 + sum(lam_i)``,
``mean = sum(lam_i o_i) / precision`` (Bayesian context aggregation, Volpp et al. 2021). An empty
context gives the prior exactly; skipped pairs (NaN labels) contribute nothing; more
answers give a tighter posterior.

Decoder: ``"bilinear"`` (default): r(s, z) = psi(s) . w(z) / sqrt(D), MLPs psi on the
state and w on z, so that a candidate pair's logit for many z is one matrix product (fast
active queries); ``"mlp"``: the authors' MLP on ``[s, z]``.

Training (``training_loss``): for each user of a batch, a random context of size
0..n-1 (capped by ``max_context``) is drawn from its answered pairs; z ~ q(z | context); the
loss is the cross-entropy of the user's *other* answered pairs given z (soft labels and
ties 0.5 included) plus ``kl_weight * anneal * KL(q || N(0, I))``, per target pair.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from robopref.reward.base import PairScorer, RewardModel
from robopref.reward.data import PairContext, UserTensors, hard_correct, preference_nll
from robopref.reward.nets import as_tensor, like_input, mlp

DECODERS = ("bilinear", "mlp")
#: context sizes used for the (deterministic) validation loss
VALIDATION_CONTEXT_SIZES = (0, 1, 2, 4, 8)


@dataclass
class VPLConfig:
    """Architecture and objective of a VPL model."""

    latent_dim: int = 8
    hidden: tuple[int, ...] = (128, 128)
    embed_dim: int = 64
    decoder: str = "bilinear"
    features: int = 32
    kl_weight: float = 1.0
    max_context: int = 0

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder={self.decoder!r} must be one of {DECODERS}")
        if self.latent_dim <= 0:
            raise ValueError(f"latent_dim={self.latent_dim} must be at least 1 for VPL")
        if self.kl_weight < 0 or self.max_context < 0:
            raise ValueError("kl_weight and max_context must be >= 0 (max_context 0 = no cap)")


class SetEncoder(nn.Module):
    """q(z | labelled pairs): per-pair Gaussian factors multiplied into the prior."""

    def __init__(self, obs_dim: int, config: VPLConfig) -> None:
        super().__init__()
        width = config.embed_dim
        self.segment = mlp(obs_dim, config.hidden, width)
        self.pair = mlp(2 * width + 1, config.hidden, width)
        self.heads = nn.Linear(width, 2 * config.latent_dim)

    def segment_embedding(self, obs_n: torch.Tensor) -> torch.Tensor:
        """``(..., T, O)`` normalised steps -> ``(..., E)`` (mean of a per-step MLP)."""
        return self.segment(obs_n).mean(-2)

    def factors(
        self, emb_a: torch.Tensor, emb_b: torch.Tensor, label: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(lam * o, lam)`` ``(..., Z)`` per pair; zero for NaN labels (no answer)."""
        answered = ~torch.isnan(label)
        sign = torch.where(answered, 2.0 * label - 1.0, torch.zeros_like(label)).unsqueeze(-1)
        pair_in = torch.cat([sign * (emb_a - emb_b), emb_a + emb_b, sign.abs()], -1)
        obs_z, raw_prec = self.heads(self.pair(pair_in)).chunk(2, dim=-1)
        lam = functional.softplus(raw_prec) * answered.unsqueeze(-1)
        return lam * obs_z, lam

    @staticmethod
    def combine(eta: torch.Tensor, lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``(mean, std)`` from summed factors ``(..., Z)`` and the N(0, I) prior."""
        precision = 1.0 + lam
        return eta / precision, precision.rsqrt()

    def forward(
        self, obs_a_n: torch.Tensor, obs_b_n: torch.Tensor, label: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, std)`` ``(..., Z)`` from pairs ``(..., N, T, O)`` and labels ``(..., N)``."""
        eta, lam = self.factors(
            self.segment_embedding(obs_a_n), self.segment_embedding(obs_b_n), label
        )
        return self.combine(eta.sum(-2), lam.sum(-2))


class BilinearScorer(PairScorer):
    """Candidate logits for many z as one product: (w(z) @ (Psi_A - Psi_B).T) / sqrt(D)."""

    def __init__(self, model: VPLRewardModel, obs_a: torch.Tensor, obs_b: torch.Tensor) -> None:
        super().__init__(model, obs_a, obs_b)
        with torch.no_grad():
            psi = model.psi
            self.delta = (
                psi(model.normalize(obs_a)).sum(-2) - psi(model.normalize(obs_b)).sum(-2)
            ) / math.sqrt(model.config.features)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """``(S, C)`` logits for ``z`` ``(S, Z)``."""
        with torch.no_grad():
            return self.model.weights(z) @ self.delta.T


class VPLRewardModel(RewardModel):
    """Latent-conditioned reward r(s, z) with a set encoder q(z | context) (module doc)."""

    kind = "vpl"

    def __init__(self, obs_dim: int, config: VPLConfig | None = None) -> None:
        config = config or VPLConfig()
        super().__init__(obs_dim, config)
        self.encoder = SetEncoder(obs_dim, config)
        z_dim = config.latent_dim
        if config.decoder == "bilinear":
            self.psi = mlp(obs_dim, config.hidden, config.features)
            self.weights = mlp(z_dim, config.hidden[:1], config.features)
        else:
            self.decoder = mlp(obs_dim + z_dim, config.hidden, 1)

    @property
    def latent_dim(self) -> int:
        """Size of z."""
        return int(self.config.latent_dim)

    def step_reward(self, obs_n: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """r(s, z) for normalised observations ``(..., O)`` and ``z`` ``(..., Z)``."""
        if z is None:
            raise ValueError("VPL rewards need a latent z")
        if self.config.decoder == "bilinear":
            prod = self.psi(obs_n) * self.weights(z)
            return prod.sum(-1) / math.sqrt(self.config.features)
        lead = torch.broadcast_shapes(obs_n.shape[:-1], z.shape[:-1])
        joint = torch.cat([obs_n.expand(*lead, -1), z.expand(*lead, -1)], -1)
        return self.decoder(joint).squeeze(-1)

    def encode(
        self, obs_a: torch.Tensor, obs_b: torch.Tensor, label: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | pairs) ``(mean, std)`` for raw tensors (differentiable)."""
        return self.encoder(self.normalize(obs_a), self.normalize(obs_b), label)

    def posterior(self, context: PairContext | tuple[Any, Any, Any]) -> tuple[Any, Any]:
        """q(z | context) as ``(mean, std)`` ``(..., Z)``; an empty context gives N(0, I)."""
        obs_a, obs_b, label = (as_tensor(x, self.device) for x in context)
        if obs_a.shape[-1] != self.obs_dim or obs_a.shape != obs_b.shape:
            raise ValueError(
                f"context segments {tuple(obs_a.shape)} / {tuple(obs_b.shape)} must be equal "
                f"shapes (..., N, T, {self.obs_dim})"
            )
        if obs_a.shape[:-2] != label.shape:
            raise ValueError(
                f"context labels {tuple(label.shape)} must match the pairs' leading shape "
                f"{tuple(obs_a.shape[:-2])}"
            )
        with torch.no_grad():
            mean, std = self.encode(obs_a, obs_b, label)
        return like_input(mean, context[2]), like_input(std, context[2])

    def pair_scorer(self, obs_a: Any, obs_b: Any) -> PairScorer:
        """Candidate scorer; with the bilinear decoder its ``logits`` is one matrix product."""
        if self.config.decoder == "bilinear":
            return BilinearScorer(self, self._obs(obs_a), self._obs(obs_b))
        return super().pair_scorer(obs_a, obs_b)

    # ----------------------------------------------------------------- training
    def _split(
        self, answered: torch.Tensor, sizes: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Context and target masks: a random ``sizes[u]`` of user u's answered pairs."""
        keys = torch.rand(answered.shape, generator=generator).to(answered.device)
        keys = torch.where(answered, keys, torch.full_like(keys, 2.0))
        rank = keys.argsort(-1).argsort(-1)
        context = answered & (rank < sizes.unsqueeze(-1))
        return context, answered & ~context

    def _cap(self, answered: torch.Tensor) -> torch.Tensor:
        cap = (answered.sum(-1) - 1).clamp(min=0)
        if self.config.max_context:
            cap = cap.clamp(max=self.config.max_context)
        return cap

    def training_loss(
        self, batch: UserTensors, generator: torch.Generator, kl_scale: float
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Negative ELBO per target pair (module docstring)."""
        answered = batch.answered
        cap = self._cap(answered)
        draw = torch.rand(cap.shape, generator=generator).to(cap.device)
        sizes = torch.floor(draw * (cap + 1).float()).long()
        context, target = self._split(answered, sizes, generator)
        context_label = torch.where(context, batch.label, torch.full_like(batch.label, math.nan))
        mean, std = self.encode(batch.obs_a, batch.obs_b, context_label)
        noise = torch.randn(mean.shape, generator=generator).to(mean.device)
        z = mean + std * noise
        logits = self.pair_logits(batch.obs_a, batch.obs_b, z.unsqueeze(-2))
        target_label = torch.where(target, batch.label, torch.full_like(batch.label, math.nan))
        nll = preference_nll(logits, target_label).sum()
        kl = 0.5 * (std.square() + mean.square() - 1.0 - 2.0 * std.log()).sum()
        count = target.sum().clamp(min=1)
        loss = (nll + self.config.kl_weight * kl_scale * kl) / count
        return loss, {"nll": float(nll.detach() / count), "kl": float(kl.detach() / mean.shape[0])}

    def validation_sums(self, batch: UserTensors, generator: torch.Generator) -> dict[str, float]:
        """Target-pair sums with z = posterior mean, over contexts of sizes 0, 1, 2, 4, 8."""
        answered = batch.answered
        cap = self._cap(answered)
        totals = {"nll": 0.0, "n": 0.0, "correct": 0.0, "scored": 0.0}
        for size in VALIDATION_CONTEXT_SIZES:
            sizes = torch.minimum(cap, torch.full_like(cap, size))
            context, target = self._split(answered, sizes, generator)
            nan = torch.full_like(batch.label, math.nan)
            mean, _ = self.encode(batch.obs_a, batch.obs_b, torch.where(context, batch.label, nan))
            logits = self.pair_logits(batch.obs_a, batch.obs_b, mean.unsqueeze(-2))
            target_label = torch.where(target, batch.label, nan)
            correct, scored = hard_correct(logits, target_label)
            totals["nll"] += float(preference_nll(logits, target_label).sum())
            totals["n"] += float(target.sum())
            totals["correct"] += float(correct.sum())
            totals["scored"] += float(scored.sum())
        return totals
