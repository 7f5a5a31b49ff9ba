"""Inferring a new user's latent z from a few answers, asked at random or actively.

``infer_user(model, ask, k, strategy, candidates, rng)`` asks ``k`` of the candidate pairs
(``candidates.obs_a`` / ``obs_b`` ``(C, T, O)``, e.g. a :class:`robopref.queries.QueryPool`,
or a tuple ``(obs_a, obs_b)``) through ``ask(index) -> label`` and returns the posterior.

* ``"random"``: k distinct candidates in a random order (``rng.permutation``, so the first
  k of a longer run are the k of a shorter run with the same generator).
* ``"active"``: one at a time, the candidate with the largest BALD score (Houlsby et al.,
  2011), the mutual information between its answer and z under the current posterior:
  ``H[E_z p(A | z)] - E_z H[p(A | z)]``, with ``n_samples`` z drawn from the posterior
  (the same standard-normal draws reused at every step, so scores are comparable); then
  the posterior is updated with the answer and the next candidate chosen. A pair everyone
  answers alike (low second term, low first) or that nobody can answer reliably (high
  both) scores low; a pair that splits the posterior's samples scores high.

The candidates' z-independent work is done once (``model.pair_scorer``); each step is then
one small matrix product for the bilinear VPL decoder. A skipped answer (NaN) uses up a
query and leaves the posterior as it was. Models without a latent (BTL, DPL) ask nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from robopref.reward.base import RewardModel
from robopref.reward.nets import as_tensor

STRATEGIES = ("active", "random")
#: posterior samples of z that BALD scores candidates with
BALD_SAMPLES = 64


@dataclass
class InferenceResult:
    """The posterior after the answers, and the path to it."""

    mean: np.ndarray
    std: np.ndarray
    asked: list[int]
    answers: list[float]
    #: ``(len(asked) + 1, Z)``: the posterior mean/std before any answer and after each one
    means: np.ndarray
    stds: np.ndarray


def _binary_entropy(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-7, 1 - 1e-7)
    return -(p * p.log() + (1 - p) * (1 - p).log())


def bald_scores(logits: torch.Tensor) -> torch.Tensor:
    """BALD ``(C,)`` from logits ``(S, C)`` of S posterior samples: H[mean p] - mean H[p]."""
    p = torch.sigmoid(logits)
    return _binary_entropy(p.mean(0)) - _binary_entropy(p).mean(0)


def _candidate_arrays(candidates: Any) -> tuple[Any, Any]:
    if hasattr(candidates, "obs_a") and hasattr(candidates, "obs_b"):
        return candidates.obs_a, candidates.obs_b
    if isinstance(candidates, tuple | list) and len(candidates) >= 2:
        return candidates[0], candidates[1]
    raise ValueError(
        "candidates must have obs_a and obs_b arrays (C, T, O), e.g. a QueryPool, or be a "
        "tuple (obs_a, obs_b)"
    )


def infer_user(
    model: RewardModel,
    ask: Callable[[int], float],
    k: int,
    strategy: str = "active",
    candidates: Any = None,
    rng: np.random.Generator | int | None = None,
    n_samples: int = BALD_SAMPLES,
) -> InferenceResult:
    """Ask ``k`` candidate pairs (module docstring) and return the user's posterior."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r} must be one of {STRATEGIES}")
    if candidates is None:
        raise ValueError("infer_user needs candidates: arrays obs_a/obs_b (C, T, O) to ask about")
    obs_a, obs_b = (as_tensor(x, model.device) for x in _candidate_arrays(candidates))
    n_candidates = int(obs_a.shape[0])
    if not 0 <= k <= n_candidates:
        raise ValueError(f"k={k} queries asked for but there are {n_candidates} candidates")
    rng = np.random.default_rng(rng)
    z_dim = model.latent_dim
    mean, std = np.zeros(z_dim, np.float32), np.ones(z_dim, np.float32)
    means, stds = [mean], [std]
    asked: list[int] = []
    answers: list[float] = []
    if z_dim == 0:
        return InferenceResult(mean, std, asked, answers, np.stack(means), np.stack(stds))

    if strategy == "random":
        order = rng.permutation(n_candidates)[:k].tolist()
    else:
        scorer = model.pair_scorer(obs_a, obs_b)
        noise = torch.as_tensor(rng.standard_normal((n_samples, z_dim)), dtype=torch.float32)
        noise = noise.to(model.device)
        available = torch.ones(n_candidates, dtype=torch.bool, device=model.device)
    for step in range(k):
        if strategy == "random":
            index = int(order[step])
        else:
            z = (
                torch.as_tensor(mean, device=model.device)
                + torch.as_tensor(std, device=model.device) * noise
            )
            scores = bald_scores(scorer.logits(z))
            scores = torch.where(available, scores, torch.full_like(scores, -1.0))
            index = int(torch.argmax(scores))
            available[index] = False
        answer = float(ask(index))
        asked.append(index)
        answers.append(answer)
        label = torch.tensor(answers, dtype=torch.float32, device=model.device)
        mean_t, std_t = model.posterior((obs_a[asked], obs_b[asked], label))
        mean = mean_t.cpu().numpy()
        std = std_t.cpu().numpy()
        means.append(mean)
        stds.append(std)
    return InferenceResult(mean, std, asked, answers, np.stack(means), np.stack(stds))
