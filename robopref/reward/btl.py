"""``BTLRewardModel``: one reward for every user, fitted with the Bradley-Terry loss.

This is standard RLHF: p(A preferred) = sigmoid(R_A - R_B), R the sum of r(s) over a
segment's steps. When users disagree it learns the average opinion and serves nobody.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robopref.reward.base import RewardModel
from robopref.reward.nets import mlp


@dataclass
class BTLConfig:
    """Architecture of the BTL reward network."""

    hidden: tuple[int, ...] = (128, 128)


class BTLRewardModel(RewardModel):
    """r(s): an MLP on the normalised observation; z is ignored (``latent_dim == 0``)."""

    kind = "btl"

    def __init__(self, obs_dim: int, config: BTLConfig | None = None) -> None:
        config = config or BTLConfig()
        super().__init__(obs_dim, config)
        self.net = mlp(obs_dim, config.hidden, 1)

    def step_reward(self, obs_n: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """r(s) for normalised observations ``(..., O)``."""
        return self.net(obs_n).squeeze(-1)
