"""``LowRankRewardModel``: low-rank personalised rewards (LoRe, arXiv 2504.14439; PAL,
arXiv 2406.08469).

K basis rewards shared by every user (:mod:`robopref.reward.basis`); a user is a weight
vector w = softmax(z / 0.5) on the simplex over them, any mixture of the basis. Training
is the joint maximum a posteriori fit of the basis and every training user's weights:
each step, each user of the batch gets the z that maximises log N(z; 0, I) + log p(their
answers | z) under the current basis (Newton steps, :func:`fit_user_latents`), and the
basis then takes a gradient step on the users' answers under those z. A new user is
fitted the same way from a handful of answers with the basis frozen (``posterior``: the
MAP z and a Laplace standard deviation), or by ``infer_user``'s likelihood posterior.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from robopref.reward.basis import BasisRewardModel
from robopref.reward.data import UserTensors, preference_nll

#: Newton steps of a user's MAP weights (the problem is K-dimensional and smooth)
NEWTON_STEPS = 20
#: the largest Newton step in z (keeps the first steps of a user with sure answers sane)
MAX_STEP = 2.0


def fit_user_latents(
    differences: torch.Tensor, label: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """MAP z ``(..., K)`` under the prior N(0, I) and p(A) = sigmoid(softmax(z / t) . d) of
    pairs with basis-return differences ``d`` ``(..., N, K)`` and labels ``(..., N)`` (NaN:
    no answer), and the Laplace standard deviation at it (Gauss-Newton curvature)."""
    differences = differences.detach()
    answered = ~torch.isnan(label)
    target = torch.where(answered, label, torch.zeros_like(label))
    mask = answered.to(differences.dtype)
    components = differences.shape[-1]
    eye = torch.eye(components, dtype=differences.dtype, device=differences.device)
    z = torch.zeros(*differences.shape[:-2], components, device=differences.device)
    for step in range(NEWTON_STEPS + 1):
        weights = torch.softmax(z / temperature, -1)
        logits = (weights.unsqueeze(-2) * differences).sum(-1)
        # d logit / d z_j = w_j (d_j - logit) / t
        jacobian = weights.unsqueeze(-2) * (differences - logits.unsqueeze(-1)) / temperature
        prob = torch.sigmoid(logits)
        curvature = prob * (1.0 - prob) * mask
        hessian = (jacobian.transpose(-1, -2) * curvature.unsqueeze(-2)) @ jacobian + eye
        if step == NEWTON_STEPS:
            break
        gradient = (((prob - target) * mask).unsqueeze(-1) * jacobian).sum(-2) + z
        move = torch.linalg.solve(hessian, gradient.unsqueeze(-1)).squeeze(-1)
        norm = move.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        z = z - move * (MAX_STEP / norm).clamp(max=1.0)
    std = torch.linalg.inv(hessian).diagonal(dim1=-2, dim2=-1).clamp(min=1e-12).sqrt()
    return z, std


class LowRankRewardModel(BasisRewardModel):
    """Basis rewards fitted jointly with each user's simplex weights (module docstring)."""

    kind = "lowrank"
    #: with z ~ N(0, I) a prior user's weights reach the corners of the simplex as well
    temperature: ClassVar[float] = 0.5

    def user_latents(
        self, differences: torch.Tensor, label: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The MAP z and its Laplace std (:func:`fit_user_latents`)."""
        return fit_user_latents(differences, label, self.temperature)

    def training_loss(
        self, batch: UserTensors, generator: torch.Generator, kl_scale: float
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Cross-entropy of every answer under its user's MAP weights (basis gradient only)."""
        differences = self.batch_differences(batch)
        z, _ = self.user_latents(differences, batch.label)
        logits = self.difference_logits(differences, z)
        count = batch.answered.sum().clamp(min=1)
        loss = preference_nll(logits, batch.label).sum() / count
        return loss, {"nll": float(loss.detach())}
