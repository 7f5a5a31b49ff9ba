"""``MixtureRewardModel``: a mixture of K BTL rewards fitted by EM (Myers, Biyik et al.
2021, arXiv 2109.12750; PREC's clustering of users into group rewards).

Every user answers by one of K rewards (the basis of :mod:`robopref.reward.basis`), drawn
with the mixing weights pi. Training is stochastic EM over batches of users: the E-step
gives each user the responsibilities gamma_k proportional to pi_k p(their answers | r_k)
under the current rewards; the M-step is a gradient step on sum_k gamma_k (log pi_k +
log p(answers | r_k)), which trains each reward on the users it explains and pi towards
the mean responsibilities. A new user's responsibilities follow from their answers the
same way (``posterior``).

z: w(z) = softmax(z / 0.05) is nearly one-hot for z ~ N(0, I) (the largest coordinate
picks the component, each equally likely a priori), so the shared machinery's prior and
likelihood posterior treat a user as one component. ``posterior`` returns mean
0.05 log gamma (so that w(mean) = gamma) and std 0.05: a sample mean + std * noise then
picks component k with about probability gamma_k (Gaussian noise standing in for the
Gumbel noise of the Gumbel-max trick), which is what BALD's samples need.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from robopref.reward.basis import BasisConfig, BasisRewardModel
from robopref.reward.data import UserTensors, preference_nll

#: the smallest responsibility kept before taking its log (z stays finite)
MIN_RESPONSIBILITY = 1e-12


class MixtureRewardModel(BasisRewardModel):
    """K BTL rewards and their mixing weights, fitted by EM (module docstring)."""

    kind = "mixture"
    temperature: ClassVar[float] = 0.05

    def __init__(self, obs_dim: int, config: BasisConfig | None = None) -> None:
        super().__init__(obs_dim, config)
        self.mixing_logits = nn.Parameter(torch.zeros(self.latent_dim))

    def log_mixing(self) -> torch.Tensor:
        """log pi ``(K,)``: the mixing weights."""
        return torch.log_softmax(self.mixing_logits, -1)

    def component_log_likelihoods(
        self, differences: torch.Tensor, label: torch.Tensor
    ) -> torch.Tensor:
        """``(..., K)``: log p(a user's answers | r_k) for each component k."""
        labels = label.unsqueeze(-1).expand(differences.shape)
        return -preference_nll(differences, labels).sum(-2)

    def responsibilities(self, differences: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """gamma ``(..., K)``: p(component k | answers) (no answers: the mixing weights)."""
        log_joint = self.log_mixing() + self.component_log_likelihoods(differences, label)
        return torch.softmax(log_joint, -1)

    def user_latents(
        self, differences: torch.Tensor, label: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(0.05 log gamma, 0.05)`` (module docstring: w(mean) = gamma)."""
        gamma = self.responsibilities(differences.detach(), label).detach()
        mean = self.temperature * gamma.clamp(min=MIN_RESPONSIBILITY).log()
        mean = mean - mean.mean(-1, keepdim=True)
        return mean, torch.full_like(mean, self.temperature)

    def training_loss(
        self, batch: UserTensors, generator: torch.Generator, kl_scale: float
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """One EM step over the batch (module docstring), per answered pair."""
        differences = self.batch_differences(batch)
        log_likelihood = self.component_log_likelihoods(differences, batch.label)
        log_joint = self.log_mixing() + log_likelihood
        gamma = torch.softmax(log_joint, -1).detach()
        count = batch.answered.sum().clamp(min=1)
        loss = -(gamma * log_joint).sum() / count
        # the mixture's own negative log-likelihood of the answers, per answer
        nll = -torch.logsumexp(log_joint, -1).sum() / count
        return loss, {"nll": float(nll.detach())}
