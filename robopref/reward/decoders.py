"""The two VPL decoders behind one interface: r(s, z) and what the encoder takes from it.

* :class:`BilinearDecoder` (``"bilinear"``): r(s, z) = psi(s) . w(z) / sqrt(D), MLPs psi on
  the state (D features) and w on z. A segment's return is Psi . w(z) with Psi the
  segment's summed features, so a pair's logit for many z is one matrix product.
* :class:`MLPDecoder` (``"mlp"``): the VPL authors' MLP on the concatenation ``[s, z]``,
  with a separate per-step MLP (averaged over time) to embed segments for the encoder.

Every method takes *normalised* observations; the model normalises raw ones first.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from robopref.reward.base import PairScorer
from robopref.reward.nets import mlp

if TYPE_CHECKING:
    from robopref.reward.base import RewardModel


class Decoder(nn.Module):
    """The interface; the generic ``comparison_rewards`` and ``scorer`` fit any decoder."""

    def reward(self, obs_n: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """r(s, z) of observations ``(..., O)`` for ``z`` ``(..., Z)`` (broadcast) -> ``(...)``."""
        raise NotImplementedError

    def embed(self, obs_n: torch.Tensor) -> torch.Tensor:
        """The encoder's embedding of segments ``(..., T, O)`` -> ``(..., D)``."""
        raise NotImplementedError

    def pair_logits(
        self,
        obs_a_n: torch.Tensor,
        obs_b_n: torch.Tensor,
        emb: tuple[torch.Tensor, torch.Tensor],
        z: torch.Tensor,
    ) -> torch.Tensor:
        """Logit of P(A preferred) for segments ``(..., T, O)``, their ``embed``, ``z``
        ``(..., Z)``: the difference of the segments' returns."""
        z_steps = z.unsqueeze(-2)
        return self.reward(obs_a_n, z_steps).sum(-1) - self.reward(obs_b_n, z_steps).sum(-1)

    def comparison_rewards(self, comp_n: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Rewards of comparison states ``(M, O)`` for each ``z`` ``(..., Z)`` -> ``(..., M)``."""
        lead = z.shape[:-1]
        return self.reward(comp_n.reshape((1,) * len(lead) + comp_n.shape), z.unsqueeze(-2))

    def scorer(self, model: RewardModel, obs_a: torch.Tensor, obs_b: torch.Tensor) -> PairScorer:
        """A candidate-pair scorer for raw segments ``(C, T, O)``."""
        return PairScorer(model, obs_a, obs_b)


class BilinearDecoder(Decoder):
    """r(s, z) = psi(s) . w(z) / sqrt(D) (module docstring)."""

    def __init__(self, obs_dim: int, latent_dim: int, hidden: tuple[int, ...], features: int):
        super().__init__()
        self.psi = mlp(obs_dim, hidden, features)
        self.weights = mlp(latent_dim, hidden[:1], features)
        self.scale = math.sqrt(features)

    def reward(self, obs_n: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """psi(s) . w(z) / sqrt(D)."""
        return (self.psi(obs_n) * self.weights(z)).sum(-1) / self.scale

    def embed(self, obs_n: torch.Tensor) -> torch.Tensor:
        """The segment's summed features Psi / sqrt(D): the statistic its likelihood needs."""
        return self.psi(obs_n).sum(-2) / self.scale

    def pair_logits(
        self,
        obs_a_n: torch.Tensor,
        obs_b_n: torch.Tensor,
        emb: tuple[torch.Tensor, torch.Tensor],
        z: torch.Tensor,
    ) -> torch.Tensor:
        """(Psi_A - Psi_B) . w(z) / sqrt(D), from the embeddings alone."""
        return ((emb[0] - emb[1]) * self.weights(z)).sum(-1)

    def comparison_rewards(self, comp_n: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The comparison states' features once, then one product with w(z)."""
        return self.weights(z) @ self.psi(comp_n).T / self.scale

    def scorer(self, model: RewardModel, obs_a: torch.Tensor, obs_b: torch.Tensor) -> PairScorer:
        """Logits for many z as one product: w(z) @ (e_A - e_B).T."""
        return BilinearScorer(model, self, obs_a, obs_b)


class BilinearScorer(PairScorer):
    """Candidate logits for many z as one product: w(z) @ (e_A - e_B).T."""

    def __init__(
        self,
        model: RewardModel,
        decoder: BilinearDecoder,
        obs_a: torch.Tensor,
        obs_b: torch.Tensor,
    ) -> None:
        super().__init__(model, obs_a, obs_b)
        self.decoder = decoder
        with torch.no_grad():
            embed_a = decoder.embed(model.normalize(obs_a))
            self.delta = embed_a - decoder.embed(model.normalize(obs_b))

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """``(S, C)`` logits for ``z`` ``(S, Z)``."""
        with torch.no_grad():
            return self.decoder.weights(z) @ self.delta.T


class MLPDecoder(Decoder):
    """r(s, z) = MLP([s, z]) (module docstring)."""

    def __init__(self, obs_dim: int, latent_dim: int, hidden: tuple[int, ...], features: int):
        super().__init__()
        self.net = mlp(obs_dim + latent_dim, hidden, 1)
        self.segment_net = mlp(obs_dim, hidden, features)

    def reward(self, obs_n: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """MLP on ``[s, z]``, broadcast to the common leading shape."""
        lead = torch.broadcast_shapes(obs_n.shape[:-1], z.shape[:-1])
        joint = torch.cat([obs_n.expand(*lead, -1), z.expand(*lead, -1)], -1)
        return self.net(joint).squeeze(-1)

    def embed(self, obs_n: torch.Tensor) -> torch.Tensor:
        """The per-step embedding MLP averaged over the segment."""
        return self.segment_net(obs_n).mean(-2)


#: ``VPLConfig.decoder`` -> its class
DECODERS: dict[str, type[Decoder]] = {"bilinear": BilinearDecoder, "mlp": MLPDecoder}

#: state_dict key prefixes of checkpoints written before the decoders were modules of their
#: own (the shipped ``policies/checkpoints/vpl.pt`` among them) -> today's prefixes
LEGACY_PREFIXES: dict[str, dict[str, str]] = {
    "bilinear": {"psi.": "decoder.psi.", "weights.": "decoder.weights."},
    "mlp": {"decoder.": "decoder.net.", "segment_net.": "decoder.segment_net."},
}


def legacy_state_keys(state: dict[str, torch.Tensor], decoder: str) -> dict[str, torch.Tensor]:
    """``state`` (today's layout) under the names its decoder keys had before the split."""
    renamed = {}
    for key, value in state.items():
        for old, new in LEGACY_PREFIXES[decoder].items():
            if key.startswith(new):
                key = old + key[len(new) :]
                break
        renamed[key] = value
    return renamed


def upgrade_state_keys(state: dict[str, torch.Tensor], decoder: str, prefix: str = "") -> None:
    """Rename, in place, a legacy VPL state_dict's decoder keys (under ``prefix``)."""
    if any(key.startswith(prefix + "decoder.psi.") for key in state) or any(
        key.startswith(prefix + "decoder.net.") for key in state
    ):
        return  # already today's layout
    for key in list(state):
        for old, new in LEGACY_PREFIXES[decoder].items():
            if key.startswith(prefix + old):
                state[prefix + new + key[len(prefix + old) :]] = state.pop(key)
                break
