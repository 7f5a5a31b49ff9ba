"""The interface every reward model shares, and the code they share.

A reward model is a ``torch.nn.Module`` with

* ``fit(dataset, ...)``: learn from a :class:`~robopref.data.dataset.PreferenceDataset`
  (the shared loop in :mod:`robopref.reward.training`),
* ``reward(obs, z)``: the per-step reward r(s, z) of observations ``(..., O)`` for latent
  vectors ``z`` (``(Z,)`` or ``(..., Z)``, broadcast against the leading dimensions; models
  without a latent, ``latent_dim == 0``, ignore ``z``); numpy in, numpy out; torch in, torch out,
* ``scaled_reward(obs, z)``: the VPL paper's scaled reward in [0, 1], the mean over a stored
  comparison set of states s' of sigmoid(r(s, z) - r(s', z)): comparable across users,
* ``posterior(context) -> (mean, std)``: q(z | context) (``(..., 0)`` arrays without a latent).

Observations are normalised inside the model with the training data's mean and std, stored
as buffers, so callers always pass raw observations.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from robopref.reward.data import PairContext, UserTensors, hard_correct, preference_nll
from robopref.reward.nets import as_tensor, like_input
from robopref.reward.training import TrainResult, TrainSettings, train

if TYPE_CHECKING:
    from robopref.data.dataset import PreferenceDataset

MIN_STD = 1e-6


class PairScorer:
    """Scores a fixed set of candidate pairs for many latent vectors (used by active queries).

    The generic version evaluates the model afresh; models override ``pair_scorer`` to
    precompute what does not depend on ``z``.
    """

    def __init__(self, model: RewardModel, obs_a: torch.Tensor, obs_b: torch.Tensor) -> None:
        self.model, self.obs_a, self.obs_b = model, obs_a, obs_b

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """``(S, C)``: logit P(A preferred) of each candidate pair for each ``z`` ``(S, Z)``."""
        zz = z[:, None, :] if z.shape[-1] else None
        with torch.no_grad():
            out = self.model.pair_logits(self.obs_a[None], self.obs_b[None], zz)
        return out.expand(z.shape[0], self.obs_a.shape[0])


class RewardModel(nn.Module):
    """Base class: normalisation, the public reward API, and the no-latent training loss."""

    kind: ClassVar[str] = ""
    #: whether the training loss has a KL term (the training loop's KL delay and warm-up)
    has_kl: ClassVar[bool] = False

    def __init__(self, obs_dim: int, config: Any) -> None:
        super().__init__()
        if obs_dim <= 0:
            raise ValueError(f"obs_dim={obs_dim} must be positive")
        self.obs_dim = int(obs_dim)
        self.config = config
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        self.register_buffer("comparison_obs", torch.zeros(0, obs_dim))
        #: provenance written by ``fit``: env id, feature names, segment length, schema, ...
        self.meta: dict[str, Any] = {}

    def fingerprint(self) -> str:
        """A short hash of the kind and weights: which latent space z lives in.

        A latent policy records it and is refused with any other reward model.
        """
        digest = hashlib.sha256(self.kind.encode())
        for key, value in sorted(self.state_dict().items()):
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    # ----------------------------------------------------------------- subclass hooks
    @property
    def latent_dim(self) -> int:
        """Size of the user latent z (0: one reward for everybody)."""
        return 0

    def step_reward(self, obs_n: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """Reward of normalised observations ``(..., O)`` for ``z`` ``(..., Z)`` -> ``(...)``."""
        raise NotImplementedError

    def pair_logits(
        self, obs_a: torch.Tensor, obs_b: torch.Tensor, z: torch.Tensor | None
    ) -> torch.Tensor:
        """Logit of P(A preferred) for raw segments ``(..., T, O)`` and ``z`` ``(..., Z)``."""
        z_steps = None if z is None else z.unsqueeze(-2)
        ret_a = self.step_reward(self.normalize(obs_a), z_steps).sum(-1)
        ret_b = self.step_reward(self.normalize(obs_b), z_steps).sum(-1)
        return ret_a - ret_b

    def training_loss(
        self, batch: UserTensors, generator: torch.Generator, kl_scale: float
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean cross-entropy over the batch's answered pairs (models with a latent override)."""
        logits = self.pair_logits(batch.obs_a, batch.obs_b, None)
        count = batch.answered.sum().clamp(min=1)
        loss = preference_nll(logits, batch.label).sum() / count
        return loss, {"nll": float(loss.detach())}

    def validation_sums(self, batch: UserTensors, generator: torch.Generator) -> dict[str, float]:
        """Sums over ``batch`` (held-out users): ``nll``, ``n``, ``correct``, ``scored``."""
        logits = self.pair_logits(batch.obs_a, batch.obs_b, None)
        correct, scored = hard_correct(logits, batch.label)
        return {
            "nll": float(preference_nll(logits, batch.label).sum()),
            "n": float(batch.answered.sum()),
            "correct": float(correct.sum()),
            "scored": float(scored.sum()),
        }

    # ----------------------------------------------------------------- shared machinery
    @property
    def device(self) -> torch.device:
        """The device the model's buffers live on."""
        return self.obs_mean.device

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """Observations standardised with the stored training mean and std."""
        return (obs - self.obs_mean) / self.obs_std

    def fit_normalization(
        self, users: UserTensors, n_comparison: int, generator: torch.Generator
    ) -> None:
        """Store the observation mean/std and a random comparison set of training states."""
        obs = users.all_observations().to(self.device)
        self.obs_mean.copy_(obs.mean(0))
        std = obs.std(0) if obs.shape[0] > 1 else torch.ones_like(self.obs_std)
        self.obs_std.copy_(torch.where(std > MIN_STD, std, torch.ones_like(std)))
        pick = torch.randperm(obs.shape[0], generator=generator)[:n_comparison]
        self.comparison_obs = obs[pick.to(obs.device)].clone()

    def _obs(self, obs: Any) -> torch.Tensor:
        tensor = as_tensor(obs, self.device)
        if tensor.ndim == 0 or tensor.shape[-1] != self.obs_dim:
            raise ValueError(
                f"observations of shape {tuple(tensor.shape)} do not end in this model's "
                f"observation size {self.obs_dim}"
            )
        return tensor

    def _latent(self, z: Any, lead: torch.Size) -> torch.Tensor | None:
        if self.latent_dim == 0:
            return None
        if z is None:
            raise ValueError(
                f"this {self.kind} model needs a latent z of size {self.latent_dim}: take the "
                "posterior mean from posterior(context) or infer_user(...)"
            )
        tensor = as_tensor(z, self.device)
        if tensor.ndim == 0 or tensor.shape[-1] != self.latent_dim:
            raise ValueError(
                f"z of shape {tuple(tensor.shape)} must end in the latent size {self.latent_dim}"
            )
        try:
            return tensor.expand(*torch.broadcast_shapes(lead, tensor.shape[:-1]), self.latent_dim)
        except RuntimeError as error:
            raise ValueError(
                f"z of shape {tuple(tensor.shape)} does not broadcast against observations "
                f"with leading shape {tuple(lead)}"
            ) from error

    def _run(self, template: Any, fn: Any) -> Any:
        if isinstance(template, torch.Tensor):
            return fn()
        with torch.no_grad():
            return like_input(fn(), template)

    def reward(self, obs: Any, z: Any = None) -> Any:
        """Per-step reward r(s, z) of observations ``(..., O)`` -> ``(...)`` (module docstring)."""
        obs_t = self._obs(obs)
        z_t = self._latent(z, obs_t.shape[:-1])
        return self._run(obs, lambda: self.step_reward(self.normalize(obs_t), z_t))

    def scaled_reward(self, obs: Any, z: Any = None) -> Any:
        """The VPL paper's scaled reward: mean over the comparison set of sigmoid(r(s)-r(s'))."""
        if self.comparison_obs.shape[0] == 0:
            raise RuntimeError("this model has no comparison set: fit it before scaled_reward")
        obs_t = self._obs(obs)
        z_t = self._latent(z, obs_t.shape[:-1])

        if z_t is not None:  # keep z's own leading shape: comparisons once per distinct z
            z_t = as_tensor(z, self.device)

        def compute() -> torch.Tensor:
            own = self.step_reward(self.normalize(obs_t), z_t)
            return torch.sigmoid(own.unsqueeze(-1) - self.comparison_rewards(z_t)).mean(-1)

        return self._run(obs, compute)

    def comparison_rewards(self, z: torch.Tensor | None) -> torch.Tensor:
        """Rewards of the ``M`` comparison states for each ``z`` ``(..., Z)`` -> ``(..., M)``."""
        comp = self.normalize(self.comparison_obs)
        if z is None:
            return self.step_reward(comp, None)
        lead = z.shape[:-1]
        return self.step_reward(comp.reshape((1,) * len(lead) + comp.shape), z.unsqueeze(-2))

    def posterior(self, context: PairContext | tuple[Any, Any, Any]) -> tuple[Any, Any]:
        """q(z | context) as ``(mean, std)`` ``(..., Z)``; ``(..., 0)`` without a latent."""
        label = context[2]
        lead = tuple(label.shape[:-1])
        empty = torch.zeros(*lead, 0, device=self.device)
        return like_input(empty, label), like_input(empty.clone(), label)

    def pair_scorer(self, obs_a: Any, obs_b: Any) -> PairScorer:
        """A :class:`PairScorer` for candidate pairs ``(C, T, O)``."""
        return PairScorer(self, self._obs(obs_a), self._obs(obs_b))

    def fit(
        self,
        dataset: PreferenceDataset,
        *,
        val_dataset: PreferenceDataset | None = None,
        settings: TrainSettings | None = None,
        checkpoint: str | None = None,
        resume: bool = False,
        device: str = "auto",
        extra: dict[str, Any] | None = None,
        log: Callable[[str], None] | None = None,
        warm_start: bool = False,
    ) -> TrainResult:
        """Train on ``dataset`` (see :func:`robopref.reward.training.train`)."""
        return train(
            self,
            dataset,
            val_dataset=val_dataset,
            settings=settings,
            checkpoint=checkpoint,
            resume=resume,
            device=device,
            extra=extra,
            log=log,
            warm_start=warm_start,
        )
