"""``DPLRewardModel``: distributional preference learning, mean-variance form.

Siththaranjan et al. (2023), as the VPL paper's DPL baseline: each state's reward is a
Gaussian N(mu(s), sigma(s)^2); a segment's return has mean sum(mu) and variance
sum(sigma^2), and p(A preferred) = sigmoid(sqrt(2 pi) (mu_A - mu_B) / sqrt(var_A + var_B)).
Disagreement between users shows up as variance, but the reward it hands a policy is still
one mean for everybody (``reward`` returns mu; ``reward_std`` returns sigma).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional

from robopref.reward.base import RewardModel
from robopref.reward.nets import mlp

LOGIT_SCALE = math.sqrt(2.0 * math.pi)
MIN_VAR = 1e-4


@dataclass
class DPLConfig:
    """Architecture of the DPL network (outputs a mean and a log-variance per state)."""

    hidden: tuple[int, ...] = (128, 128)


class DPLRewardModel(RewardModel):
    """Mean-variance distributional reward; z is ignored (``latent_dim == 0``)."""

    kind = "dpl"

    def __init__(self, obs_dim: int, config: DPLConfig | None = None) -> None:
        config = config or DPLConfig()
        super().__init__(obs_dim, config)
        self.net = mlp(obs_dim, config.hidden, 2)

    def _mean_var(self, obs_n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(obs_n)
        return out[..., 0], functional.softplus(out[..., 1]) + MIN_VAR

    def step_reward(self, obs_n: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """The mean reward mu(s) of normalised observations ``(..., O)``."""
        return self._mean_var(obs_n)[0]

    def pair_logits(
        self, obs_a: torch.Tensor, obs_b: torch.Tensor, z: torch.Tensor | None
    ) -> torch.Tensor:
        """sqrt(2 pi) (mu_A - mu_B) / sqrt(var_A + var_B) for raw segments ``(..., T, O)``."""
        mean_a, var_a = self._mean_var(self.normalize(obs_a))
        mean_b, var_b = self._mean_var(self.normalize(obs_b))
        spread = torch.sqrt(var_a.sum(-1) + var_b.sum(-1))
        return LOGIT_SCALE * (mean_a.sum(-1) - mean_b.sum(-1)) / spread

    def reward_std(self, obs: Any) -> Any:
        """sigma(s): the model's spread of per-step reward across users, ``(..., O) -> (...)``."""
        obs_t = self._obs(obs)
        return self._run(obs, lambda: self._mean_var(self.normalize(obs_t))[1].sqrt())
