"""``VPLRewardModel``: Variational Preference Learning (Poddar et al., NeurIPS 2024).

A user is a latent vector z. From a *set* of that user's labelled pairs (any number, any
order) the encoder infers a diagonal Gaussian q(z | context); the decoder gives the reward
r(s, z); p(A preferred | z) = sigmoid(R_A(z) - R_B(z)) with R the sum of r over a segment.

Decoder (:mod:`robopref.reward.decoders`, chosen once from ``VPLConfig.decoder``):
``"bilinear"`` (default): r(s, z) = psi(s) . w(z) / sqrt(D), a pair's logit for many z one
matrix product (fast active queries); ``"ideal"``: the user an ideal point m(z) in a learned
feature space, r falling with |phi(s) - m(z)|^2 (one peak per user, the same fast scorer);
``"mlp"``: the authors' MLP on ``[s, z]``. ``fourier`` adds Fourier features of the state.

Encoder (permutation-invariant, any context size): each segment is embedded (bilinear: its
decoder features Psi / sqrt(D), the statistic the likelihood depends on; mlp: a separate
per-step MLP averaged over time); each pair by an MLP on ``[s (e_A - e_B), e_A + e_B, |s|]``
with ``s = 2y - 1``: the preferred segment's embedding minus the other's, so that
``(A, B, y)`` and ``(B, A, 1 - y)``, the same answer, embed alike, and a tie carries no
direction. Each answered pair contributes a Gaussian factor over z (a latent observation
``o_i`` with precision ``lam_i >= 0``); the factors are multiplied into the prior N(0, I):
``precision = 1 + sum(lam_i)``, ``mean = sum(lam_i o_i) / precision`` (Bayesian context
aggregation, Volpp et al. 2021). An empty context gives the prior exactly; skipped pairs
(NaN labels) contribute nothing; more answers give a tighter posterior.

Training (``training_loss``), per user u of a batch with n_u answered pairs: a random
context of size 0..n_u-1 (capped by ``max_context``), z_u ~ q(z | context_u) (one sample),
and the cross-entropy NLL_u of the *other* (held-back, target) pairs given z_u, scaled by
n_u / (number held back) so that it estimates the likelihood of all n_u answers. With
KL_u = KL(q(z | context_u) || N(0, I)), the batch loss is

    loss = [ sum_u (n_u / held_u) NLL_u
             + kl_weight * anneal * sum_u max(0, KL_u - free_nats) ] / sum_u n_u

the free-nats hinge leaving each user ``free_nats`` of KL unpenalised (free bits, so that
the posterior does not collapse to the prior); ``anneal`` is the training loop's KL ramp
(:func:`robopref.reward.training.kl_anneal`). Soft labels and ties (0.5) enter the
cross-entropy as they are.

The swap guard (``swap_guard`` > 0, ``train-reward --swap-guard``), against posterior
collapse (the latent unused; SPL, arXiv 2603.12595, guides the latent with swapped
annotations): the z of each user of the batch is swapped in for every other user's, and
each user's held-back answers must be explained better under their own z than under the
others' (InfoNCE over the batch's users: log sum_v exp(-NLL_u(z_v)) + NLL_u(z_u), with
NLL_u(z) the mean cross-entropy of user u's held-back answers under z: the bound on the
information z carries about the user's other answers, per answer, so that the guard cannot
grow by making the decoder overconfident). A latent that is unused scores every swap alike
and pays log U per user; ``swap_guard`` times the mean over users joins the loss (5 rescues
a collapsed toy latent and costs nothing on a healthy one). Earlier forms and their
figures: docs/notes/2026-12-07-benchmark.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from robopref.reward.base import PairScorer, RewardModel
from robopref.reward.data import (
    PairContext,
    UserTensors,
    context_tensors,
    context_validation_sums,
    preference_nll,
    split_context,
)
from robopref.reward.decoders import DECODERS
from robopref.reward.nets import like_input, mlp


@dataclass
class VPLConfig:
    """Architecture and objective of a VPL model."""

    latent_dim: int = 4
    hidden: tuple[int, ...] = (128, 128)
    features: int = 32
    decoder: str = "bilinear"
    #: random Fourier features of the state fed to the decoder's state networks (0: none)
    fourier: int = 0
    #: their scale: the standard deviation of the frequencies, per unit of normalised state
    fourier_scale: float = 1.0
    kl_weight: float = 1.0
    free_nats: float = 2.0
    max_context: int = 0
    #: weight of the guard against posterior collapse (0: off; module docstring)
    swap_guard: float = 0.0

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder={self.decoder!r} must be one of {tuple(DECODERS)}")
        if self.latent_dim <= 0 or self.features <= 0 or not self.hidden:
            raise ValueError("latent_dim and features must be >= 1 and hidden non-empty for VPL")
        # written as "not (ok)" so that NaN, which compares False with everything, fails
        if self.fourier < 0 or not 0 < self.fourier_scale < math.inf:
            raise ValueError(
                f"fourier must be >= 0 (0: none) and fourier_scale a finite number > 0; got "
                f"fourier={self.fourier}, fourier_scale={self.fourier_scale}"
            )
        for name in ("kl_weight", "free_nats", "swap_guard"):
            value = getattr(self, name)
            if not 0 <= value < math.inf:
                raise ValueError(
                    f"{name}={value} must be a finite number >= 0 (--{name.replace('_', '-')}); "
                    f"the default is {getattr(VPLConfig, name)}"
                )
        if self.max_context < 0:
            raise ValueError(f"max_context={self.max_context} must be >= 0 (0: no cap)")


class SetEncoder(nn.Module):
    """q(z | labelled pairs) from segment embeddings: Gaussian factors times the prior."""

    def __init__(self, embed_dim: int, config: VPLConfig) -> None:
        super().__init__()
        self.pair = mlp(2 * embed_dim + 1, config.hidden[:-1], config.hidden[-1])
        self.heads = nn.Sequential(
            nn.LeakyReLU(0.2), nn.Linear(config.hidden[-1], 2 * config.latent_dim)
        )

    def factors(
        self, emb_a: torch.Tensor, emb_b: torch.Tensor, label: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(lam * o, lam)`` ``(..., N, Z)`` per pair; zero for NaN labels (no answer)."""
        answered = ~torch.isnan(label)
        sign = torch.where(answered, 2.0 * label - 1.0, torch.zeros_like(label)).unsqueeze(-1)
        pair_in = torch.cat([sign * (emb_a - emb_b), emb_a + emb_b, sign.abs()], -1)
        obs_z, raw_prec = self.heads(self.pair(pair_in)).chunk(2, dim=-1)
        lam = functional.softplus(raw_prec) * answered.unsqueeze(-1)
        return lam * obs_z, lam

    def forward(
        self, emb_a: torch.Tensor, emb_b: torch.Tensor, label: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, std)`` ``(..., Z)`` from embeddings ``(..., N, E)``, labels ``(..., N)``."""
        eta, lam = self.factors(emb_a, emb_b, label)
        precision = 1.0 + lam.sum(-2)
        return eta.sum(-2) / precision, precision.rsqrt()


class VPLRewardModel(RewardModel):
    """Latent-conditioned reward r(s, z) with a set encoder q(z | context) (module doc)."""

    kind = "vpl"
    has_kl = True

    def __init__(self, obs_dim: int, config: VPLConfig | None = None) -> None:
        config = config or VPLConfig()
        super().__init__(obs_dim, config)
        decoder_type = DECODERS[config.decoder]
        self.decoder = decoder_type(obs_dim, config)
        self.encoder = SetEncoder(self.decoder.embed_dim, config)

    @property
    def latent_dim(self) -> int:
        """Size of z."""
        return int(self.config.latent_dim)

    def step_reward(self, obs_n: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """r(s, z) for normalised observations ``(..., O)`` and ``z`` ``(..., Z)``."""
        if z is None:
            raise ValueError("VPL rewards need a latent z")
        return self.decoder.reward(obs_n, z)

    def comparison_rewards(self, z: torch.Tensor | None) -> torch.Tensor:
        """``(..., M)``: the decoder's rewards of the comparison states for each ``z``."""
        if z is None:
            return super().comparison_rewards(z)
        return self.decoder.comparison_rewards(self.normalize(self.comparison_obs), z)

    def segment_embedding(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw segments ``(..., T, O)`` -> the encoder's embedding ``(..., D)``."""
        return self.decoder.embed(self.normalize(obs))

    def encode(
        self, obs_a: torch.Tensor, obs_b: torch.Tensor, label: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | pairs) ``(mean, std)`` for raw tensors (differentiable)."""
        return self.encoder(self.segment_embedding(obs_a), self.segment_embedding(obs_b), label)

    def posterior(self, context: PairContext | tuple[Any, Any, Any]) -> tuple[Any, Any]:
        """q(z | context) as ``(mean, std)`` ``(..., Z)``; an empty context gives N(0, I)."""
        obs_a, obs_b, label = context_tensors(context, self.obs_dim, self.device)
        with torch.no_grad():
            mean, std = self.encode(obs_a, obs_b, label)
        return like_input(mean, context[2]), like_input(std, context[2])

    def pair_scorer(self, obs_a: Any, obs_b: Any) -> PairScorer:
        """Candidate scorer; with the bilinear decoder its ``logits`` is one matrix product."""
        return self.decoder.scorer(self, self._obs(obs_a), self._obs(obs_b))

    # ----------------------------------------------------------------- training
    def _segments(
        self, batch: UserTensors
    ) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """The batch's normalised segments (A, B) and their encoder embeddings."""
        obs_n = (self.normalize(batch.obs_a), self.normalize(batch.obs_b))
        return obs_n, (self.decoder.embed(obs_n[0]), self.decoder.embed(obs_n[1]))

    def _cap(self, answered: torch.Tensor) -> torch.Tensor:
        cap = (answered.sum(-1) - 1).clamp(min=0)
        if self.config.max_context:
            cap = cap.clamp(max=self.config.max_context)
        return cap

    def training_loss(
        self, batch: UserTensors, generator: torch.Generator, kl_scale: float
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Negative ELBO per answered pair (module docstring)."""
        answered = batch.answered
        cap = self._cap(answered)
        draw = torch.rand(cap.shape, generator=generator).to(cap.device)
        sizes = torch.floor(draw * (cap + 1).float()).long()
        context, target = split_context(answered, sizes, generator)
        nan = torch.full_like(batch.label, math.nan)
        obs_n, emb = self._segments(batch)
        mean, std = self.encoder(emb[0], emb[1], torch.where(context, batch.label, nan))
        noise = torch.randn(mean.shape, generator=generator).to(mean.device)
        z = (mean + std * noise).unsqueeze(-2)
        logits = self.decoder.pair_logits(obs_n[0], obs_n[1], emb, z)
        nll = preference_nll(logits, torch.where(target, batch.label, nan)).sum(-1)
        n_answered = answered.sum(-1)
        scale = n_answered / target.sum(-1).clamp(min=1)
        kl = 0.5 * (std.square() + mean.square() - 1.0 - 2.0 * std.log()).sum(-1)
        total = n_answered.sum().clamp(min=1)
        penalty = functional.relu(kl - self.config.free_nats).sum()
        loss = ((scale * nll).sum() + self.config.kl_weight * kl_scale * penalty) / total
        stats = {
            "nll": float((scale * nll).sum().detach() / total),
            "kl": float(kl.mean().detach()),
        }
        if self.config.swap_guard > 0 and answered.shape[0] > 1:
            guard = self._guard_loss(batch, obs_n, emb, (context, target), z).mean()
            loss = loss + self.config.swap_guard * guard
            stats["guard"] = float(guard.detach())
        return loss, stats

    def _guard_loss(
        self,
        batch: UserTensors,
        obs_n: tuple[torch.Tensor, ...],
        emb: tuple[torch.Tensor, ...],
        split: tuple[torch.Tensor, torch.Tensor],
        z: torch.Tensor,
    ) -> torch.Tensor:
        """The guard's InfoNCE loss per user ``(U,)`` (module docstring): each user's target
        answers scored under every batch user's z; users without context or targets add 0."""
        context, target = split
        expand = (obs_n[0].unsqueeze(1), obs_n[1].unsqueeze(1))
        logits = self.decoder.pair_logits(
            *expand, (emb[0].unsqueeze(1), emb[1].unsqueeze(1)), z.squeeze(-2)[None, :, None, :]
        )  # (U, V, N): user u's pairs under user v's z
        label = torch.where(target, batch.label, torch.full_like(batch.label, math.nan))
        count = target.sum(-1, keepdim=True).clamp(min=1)
        score = -preference_nll(logits, label.unsqueeze(1).expand_as(logits)).sum(-1) / count
        nce = torch.logsumexp(score, -1) - score.diagonal()
        return nce * (context.any(-1) & target.any(-1))

    def validation_sums(self, batch: UserTensors, generator: torch.Generator) -> dict[str, float]:
        """Target-pair sums with z = posterior mean, over contexts of sizes 0, 1, 2, 4, 8."""
        obs_n, emb = self._segments(batch)

        def logits_given(context_label: torch.Tensor) -> torch.Tensor:
            mean, _ = self.encoder(emb[0], emb[1], context_label)
            return self.decoder.pair_logits(obs_n[0], obs_n[1], emb, mean.unsqueeze(-2))

        return context_validation_sums(
            batch.label, self._cap(batch.answered), generator, logits_given
        )
