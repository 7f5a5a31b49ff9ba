"""The VPL decoders behind one interface: r(s, z) and what the encoder takes from it.

* :class:`BilinearDecoder` (``"bilinear"``): r(s, z) = psi(s) . w(z) / sqrt(D), MLPs psi on
  the state (D features) and w on z. A segment's return is Psi . w(z) with Psi the
  segment's summed features, so a pair's logit for many z is one matrix product.
* :class:`IdealPointDecoder` (``"ideal"``): the user is a point m(z) in a learned feature
  space and the reward falls with the squared distance of the state's features phi(s) to
  it, r(s, z) = [b(s) - |phi(s) - m(z)|^2] / sqrt(D) (ideal-point preferences, as in PAL,
  Chen et al. 2024). Every user's reward has one peak, wherever m(z) puts it, which a
  bilinear form of the same size cannot promise. Expanded, the reward is bilinear in
  ``[phi(s), b(s) - |phi(s)|^2]`` and ``[2 m(z), 1]`` plus ``-|m(z)|^2``, a constant per
  user that no comparison and no policy sees (pairs compare equal-length segments; the
  policy's scaled reward compares states under one z), so it is dropped and the fast
  bilinear scorer is shared.
* :class:`LinearIdealPointDecoder` (``"ideal-linear"``): the same with phi(s) = A s, a
  linear projection of the (normalised) state, and b(s) an MLP: each user's reward is a
  quadratic bowl over the state's features around the user's point (r = b(s) - (s - c)^T
  A^T A (s - c)), the ideal-point family with the fewest weights to learn from few answers.
* :class:`DistanceIdealPointDecoder` (``"ideal-distance"``): the same point and projection,
  but the reward falls with the distance itself, r = [b(s) - |A s - m(z)|] / sqrt(D): a
  cone, sharp at its tip (a squared distance is flat there, where a policy must find the
  last centimetres; and a bowl fitted to answers about far-apart states pulls its centre
  towards where the states are). Not bilinear: its scorer precomputes ``A s`` and ``b(s)``
  of the candidates and takes the distances to each m(z) in chunks.
* :class:`MLPDecoder` (``"mlp"``): the VPL authors' MLP on the concatenation ``[s, z]``,
  with a separate per-step MLP (averaged over time) to embed segments for the encoder.

``VPLConfig.fourier`` > 0 feeds every state network random Fourier features of the
normalised state, ``[s, sin(2 pi B s), cos(2 pi B s)]`` with a fixed Gaussian ``B`` of
scale ``fourier_scale`` (Tancik et al. 2020): MLPs on raw coordinates are biased towards
smooth functions and put broad peaks where users want sharp ones.

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
    from robopref.reward.vpl import VPLConfig

#: the seed of the fixed Fourier basis: a checkpoint also stores it (a buffer)
FOURIER_SEED = 0


class FourierEncoding(nn.Module):
    """``s -> [s, sin(2 pi B s), cos(2 pi B s)]``, ``B`` ``(O, K)`` fixed Gaussian of scale
    ``scale``; with ``frequencies`` 0 the identity (and no weights in the state_dict)."""

    def __init__(self, in_dim: int, frequencies: int, scale: float) -> None:
        super().__init__()
        self.frequencies = int(frequencies)
        self.out_dim = in_dim + 2 * self.frequencies
        if self.frequencies:
            generator = torch.Generator().manual_seed(FOURIER_SEED)
            basis = torch.randn(in_dim, self.frequencies, generator=generator) * float(scale)
            self.register_buffer("basis", basis)

    def forward(self, obs_n: torch.Tensor) -> torch.Tensor:
        """The encoding of ``(..., O)`` -> ``(..., O + 2K)``."""
        if not self.frequencies:
            return obs_n
        angle = 2.0 * math.pi * (obs_n @ self.basis)
        return torch.cat([obs_n, angle.sin(), angle.cos()], -1)


def state_mlp(obs_dim: int, config: VPLConfig, out_dim: int) -> nn.Sequential:
    """An MLP on the state (through its Fourier encoding when ``config.fourier`` > 0)."""
    encoding = FourierEncoding(obs_dim, config.fourier, config.fourier_scale)
    net = mlp(encoding.out_dim, config.hidden, out_dim)
    return nn.Sequential(encoding, *net) if encoding.frequencies else net


class Decoder(nn.Module):
    """The interface; the generic ``comparison_rewards`` and ``scorer`` fit any decoder.

    ``embed_dim``: the size of a segment's embedding, what the set encoder reads per segment.
    """

    embed_dim: int

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

    def __init__(self, obs_dim: int, config: VPLConfig) -> None:
        super().__init__()
        self.psi = state_mlp(obs_dim, config, config.features)
        self.weights = mlp(config.latent_dim, config.hidden[:1], config.features)
        self.scale = math.sqrt(config.features)

    @property
    def embed_dim(self) -> int:
        """Size of a segment's embedding (the encoder's input per segment)."""
        return int(self.weights[-1].out_features)

    def state_features(self, obs_n: torch.Tensor) -> torch.Tensor:
        """psi(s) ``(..., D)``: the state's side of the bilinear form."""
        return self.psi(obs_n)

    def latent_weights(self, z: torch.Tensor) -> torch.Tensor:
        """w(z) ``(..., D)``: the user's side of the bilinear form."""
        return self.weights(z)

    def reward(self, obs_n: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """psi(s) . w(z) / sqrt(D)."""
        return (self.state_features(obs_n) * self.latent_weights(z)).sum(-1) / self.scale

    def embed(self, obs_n: torch.Tensor) -> torch.Tensor:
        """The segment's summed features Psi / sqrt(D): the statistic its likelihood needs."""
        return self.state_features(obs_n).sum(-2) / self.scale

    def pair_logits(
        self,
        obs_a_n: torch.Tensor,
        obs_b_n: torch.Tensor,
        emb: tuple[torch.Tensor, torch.Tensor],
        z: torch.Tensor,
    ) -> torch.Tensor:
        """(Psi_A - Psi_B) . w(z) / sqrt(D), from the embeddings alone."""
        return ((emb[0] - emb[1]) * self.latent_weights(z)).sum(-1)

    def comparison_rewards(self, comp_n: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The comparison states' features once, then one product with w(z)."""
        return self.latent_weights(z) @ self.state_features(comp_n).T / self.scale

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
            return self.decoder.latent_weights(z) @ self.delta.T


class IdealPointDecoder(BilinearDecoder):
    """r(s, z) = [b(s) - |phi(s) - m(z)|^2] / sqrt(D) up to a per-user constant (module
    docstring): the bilinear form of ``[phi(s), b(s) - |phi(s)|^2]`` and ``[2 m(z), 1]``."""

    def __init__(self, obs_dim: int, config: VPLConfig) -> None:
        super().__init__(obs_dim, config)
        # psi: phi(s) (D) and b(s) (1) from one network; weights: m(z)
        self.psi = state_mlp(obs_dim, config, config.features + 1)

    @property
    def embed_dim(self) -> int:
        """D + 1: phi's features and the user-independent part."""
        return int(self.weights[-1].out_features) + 1

    def state_features(self, obs_n: torch.Tensor) -> torch.Tensor:
        """``[phi(s), b(s) - |phi(s)|^2]`` ``(..., D + 1)``."""
        out = self.psi(obs_n)
        phi, base = out[..., :-1], out[..., -1:]
        return torch.cat([phi, base - phi.square().sum(-1, keepdim=True)], -1)

    def latent_weights(self, z: torch.Tensor) -> torch.Tensor:
        """``[2 m(z), 1]`` ``(..., D + 1)``."""
        ideal = self.weights(z)
        return torch.cat([2.0 * ideal, torch.ones_like(ideal[..., :1])], -1)

    def ideal_point(self, z: torch.Tensor) -> torch.Tensor:
        """m(z) ``(..., D)``: where in feature space the user's reward peaks."""
        return self.weights(z)


class LinearIdealFeatures(nn.Module):
    """``s -> [A s, b(s)]``: a linear projection ``A`` (D) of the state beside an MLP ``b``."""

    def __init__(self, obs_dim: int, config: VPLConfig) -> None:
        super().__init__()
        self.projection = nn.Linear(obs_dim, config.features, bias=False)
        self.base = state_mlp(obs_dim, config, 1)

    def forward(self, obs_n: torch.Tensor) -> torch.Tensor:
        """``(..., O)`` -> ``(..., D + 1)``, the layout :class:`IdealPointDecoder` reads."""
        return torch.cat([self.projection(obs_n), self.base(obs_n)], -1)


class LinearIdealPointDecoder(IdealPointDecoder):
    """The ideal-point reward with phi(s) = A s linear (module docstring): every user's
    reward is a quadratic bowl in the state's features, centred where m(z) puts it."""

    def __init__(self, obs_dim: int, config: VPLConfig) -> None:
        super().__init__(obs_dim, config)
        self.psi = LinearIdealFeatures(obs_dim, config)


class DistanceIdealPointDecoder(Decoder):
    """r(s, z) = [b(s) - sqrt(|A s - m(z)|^2 + EPS^2)] / sqrt(D) (module docstring): the
    reward falls linearly with the distance to the user's point, a cone with a sharp tip."""

    def __init__(self, obs_dim: int, config: VPLConfig) -> None:
        super().__init__()
        self.psi = LinearIdealFeatures(obs_dim, config)
        self.weights = mlp(config.latent_dim, config.hidden[:1], config.features)
        self.scale = math.sqrt(config.features)
        self.embed_dim = config.features + 1

    def split(self, obs_n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``A s`` ``(..., D)`` and ``b(s)`` ``(...)``."""
        out = self.psi(obs_n)
        return out[..., :-1], out[..., -1]

    def ideal_point(self, z: torch.Tensor) -> torch.Tensor:
        """m(z) ``(..., D)``: where in feature space the user's reward peaks."""
        return self.weights(z)

    @staticmethod
    def cone(projected: torch.Tensor, base: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
        """``b - sqrt(|A s - m|^2 + EPS^2)``, broadcast over the leading dimensions."""
        return base - ((projected - point).square().sum(-1) + CONE_EPS**2).sqrt()

    def reward(self, obs_n: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The cone at the state for the user's point m(z)."""
        projected, base = self.split(obs_n)
        return self.cone(projected, base, self.ideal_point(z)) / self.scale

    def embed(self, obs_n: torch.Tensor) -> torch.Tensor:
        """``[A s, b(s)]`` summed over the segment: what the encoder reads."""
        return self.psi(obs_n).sum(-2) / self.scale

    def scorer(self, model: RewardModel, obs_a: torch.Tensor, obs_b: torch.Tensor) -> PairScorer:
        """The candidates' projections once; the cone for each z in chunks."""
        return DistanceScorer(model, self, obs_a, obs_b)


#: the cone's rounding at its tip, in projected-feature units (keeps the gradient finite)
CONE_EPS = 1e-2
#: most (z, candidate, step) entries :class:`DistanceScorer` holds at once
_SCORER_CHUNK = 1 << 22


class DistanceScorer(PairScorer):
    """Candidate logits for many z: ``A s`` and ``b(s)`` of every step precomputed, the squared
    distances to each m(z) as one matrix product (``|p|^2 - 2 p . m + |m|^2``), in chunks
    of z so that memory stays bounded."""

    def __init__(
        self,
        model: RewardModel,
        decoder: DistanceIdealPointDecoder,
        obs_a: torch.Tensor,
        obs_b: torch.Tensor,
    ) -> None:
        super().__init__(model, obs_a, obs_b)
        self.decoder = decoder
        with torch.no_grad():
            proj_a, base_a = decoder.split(model.normalize(obs_a))  # (C, T, D), (C, T)
            proj_b, base_b = decoder.split(model.normalize(obs_b))
        self.steps = proj_a.shape[:-1]
        self.proj = (proj_a.flatten(0, 1), proj_b.flatten(0, 1))  # (C T, D)
        self.square = tuple(p.square().sum(-1) for p in self.proj)  # (C T,)
        self.base_gap = base_a.sum(-1) - base_b.sum(-1)

    def _distance_sums(self, points: torch.Tensor, side: int) -> torch.Tensor:
        """``(S, C)``: sum over a segment's steps of sqrt(|A s - m|^2 + EPS^2)."""
        square = self.square[side] - 2.0 * points @ self.proj[side].T
        square = (square + points.square().sum(-1, keepdim=True)).clamp_min(0.0)
        return (square + CONE_EPS**2).sqrt().reshape(-1, *self.steps).sum(-1)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """``(S, C)`` logits for ``z`` ``(S, Z)``."""
        with torch.no_grad():
            points = self.decoder.ideal_point(z)  # (S, D)
            step = max(1, _SCORER_CHUNK // max(1, self.proj[0].shape[0]))
            out = [
                self.base_gap
                - self._distance_sums(points[i : i + step], 0)
                + self._distance_sums(points[i : i + step], 1)
                for i in range(0, points.shape[0], step)
            ]
            return torch.cat(out) / self.decoder.scale


class MLPDecoder(Decoder):
    """r(s, z) = MLP([s, z]) (module docstring)."""

    def __init__(self, obs_dim: int, config: VPLConfig) -> None:
        super().__init__()
        self.encoding = FourierEncoding(obs_dim, config.fourier, config.fourier_scale)
        width = self.encoding.out_dim
        self.net = mlp(width + config.latent_dim, config.hidden, 1)
        self.segment_net = mlp(width, config.hidden, config.features)
        self.embed_dim = config.features

    def reward(self, obs_n: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """MLP on ``[s, z]``, broadcast to the common leading shape."""
        obs_n = self.encoding(obs_n)
        lead = torch.broadcast_shapes(obs_n.shape[:-1], z.shape[:-1])
        joint = torch.cat([obs_n.expand(*lead, -1), z.expand(*lead, -1)], -1)
        return self.net(joint).squeeze(-1)

    def embed(self, obs_n: torch.Tensor) -> torch.Tensor:
        """The per-step embedding MLP averaged over the segment."""
        return self.segment_net(self.encoding(obs_n)).mean(-2)


#: ``VPLConfig.decoder`` -> its class
DECODERS: dict[str, type[Decoder]] = {
    "bilinear": BilinearDecoder,
    "ideal": IdealPointDecoder,
    "ideal-linear": LinearIdealPointDecoder,
    "ideal-distance": DistanceIdealPointDecoder,
    "mlp": MLPDecoder,
}
