"""Choosing a VPL model from the answers alone: ``--decoder auto`` and ``--posterior auto``.

Which reward family serves a population depends on its shape: groups want a decoder that can
give each group its own peak (``bilinear``, ``mlp``), a continuum of goals wants one peak
that moves with z (``ideal-distance``, the cone). Nobody who brings a population knows its
shape, and nothing that chooses may read a user's goal or group, so the choice is made from
what the answers themselves can tell:

1. **Held-back answers.** A random share (:data:`HELD_SHARE`, at least one) of each
   training user's answers is held back; the rest is the user's *context*.
2. **Screening fits.** Every candidate (:data:`CANDIDATES`) is fitted on the context answers
   for a fraction (:data:`SCREEN_SHARE`) of the full fit's epochs.
3. **Scores.** For each user and each posterior (the encoder, the likelihood posterior),
   z is inferred from a few of the user's context answers (:data:`FEW_SHOT`, what a new
   user gives) and the held-back answers are predicted: per-user mean log-likelihood.
   The **mean over users** decides; the worst fifth of users (a conditional value at risk,
   CVaR 0.2) and the held-back accuracy are reported beside it. Measured
   (docs/notes/2026-12-07-selection.md): the mean picks the family that serves two of
   three measured populations (two-modes, and continuous by a margin within noise) and
   misses BlockSort's three-of-four zones; the worst fifth, and holding back each user's
   last-asked answers instead, did worse. So ``auto`` is an option, not the default.
4. **The winner** keeps its screening weights and is fitted on *all* answers for the rest
   of the epochs, so the selection costs the screening fits of the losers (about
   ``(len(CANDIDATES) - 1) x SCREEN_SHARE`` of one fit) on top of one fit.

The choice, every candidate's scores and the seconds spent are returned as a
:class:`SelectionReport` and recorded in the model's ``meta["selection"]`` (so in its
checkpoint). No field of the dataset but the answers and the segments is read.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from robopref.data.dataset import PreferenceDataset
from robopref.reward.active import POSTERIORS, answers_posterior
from robopref.reward.base import RewardModel
from robopref.reward.nets import as_tensor
from robopref.reward.registry import build_model
from robopref.reward.training import TrainResult, TrainSettings

AUTO = "auto"
#: the candidate VPL configurations, by name (each a set of VPLConfig fields): the decoders
#: that serve groups (bilinear, mlp) and the one that serves a continuum (ideal-distance,
#: with the small state networks the continuous figures use)
CANDIDATES: dict[str, dict[str, Any]] = {
    "bilinear": {"decoder": "bilinear"},
    "mlp": {"decoder": "mlp"},
    "ideal-distance": {"decoder": "ideal-distance", "hidden": (32, 32)},
}
#: share of each user's answers held back to score the candidates (at least one answer)
HELD_SHARE = 0.25
#: answers of a user's context that the few-shot posterior reads (a new user's budget)
FEW_SHOT = 4
#: the worst share of users whose mean decides (CVaR level)
WORST_SHARE = 0.2
#: share of the full fit's epochs each screening fit runs
SCREEN_SHARE = 0.25
#: a log-probability floor: one answer the model is certain of and gets wrong costs this
LOG_FLOOR = math.log(1e-4)


@dataclass(frozen=True)
class CandidateScore:
    """One candidate and posterior, scored on the held-back answers."""

    candidate: str
    posterior: str
    worst_fifth_loglik: float
    mean_loglik: float
    accuracy: float
    fit_seconds: float


@dataclass
class SelectionReport:
    """What ``auto`` chose, why (every score), and what the choice cost."""

    candidate: str
    posterior: str
    config: dict[str, Any]
    scores: list[CandidateScore]
    screen_epochs: int
    seconds: float
    held_answers: int
    users: int
    #: the winner's last fit on all answers (None until it ran)
    final_fit: TrainResult | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (what checkpoints store in ``meta["selection"]``)."""
        out = dataclasses.asdict(dataclasses.replace(self, final_fit=None))
        del out["final_fit"]
        out["config"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.config.items()}
        return out

    def table(self) -> str:
        """The scores as aligned text lines, the chosen row marked."""
        lines = [
            f"{'candidate':<16} {'posterior':<11} {'mean loglik':>11} {'worst 1/5 loglik':>16} "
            f"{'accuracy':>8} {'fit s':>6}"
        ]
        for s in self.scores:
            chosen = (s.candidate, s.posterior) == (self.candidate, self.posterior)
            mark = " <- chosen" if chosen else ""
            lines.append(
                f"{s.candidate:<16} {s.posterior:<11} {s.mean_loglik:>11.4f} "
                f"{s.worst_fifth_loglik:>16.4f} {s.accuracy:>8.3f} {s.fit_seconds:>6.0f}{mark}"
            )
        return "\n".join(lines)


def held_back_split(dataset: PreferenceDataset, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pair indices ``(context, held)``: per user, a random :data:`HELD_SHARE` of the
    answered pairs (at least one, none of a user with fewer than two) is held back."""
    rng = np.random.default_rng([seed, 7])
    context, held = [], []
    for user in range(dataset.n_users):
        own = dataset.user_indices(user)
        answered = own[~np.isnan(dataset.label[own])]
        n_held = max(1, int(round(HELD_SHARE * len(answered)))) if len(answered) >= 2 else 0
        pick = rng.permutation(answered)[:n_held]
        held.append(pick)
        context.append(np.setdiff1d(own, pick))
    return np.sort(np.concatenate(context)), np.sort(np.concatenate(held))


def worst_share_mean(values: np.ndarray, share: float = WORST_SHARE) -> float:
    """The mean of the lowest ``share`` of ``values`` (at least one): CVaR at ``share``."""
    values = np.sort(np.asarray(values, dtype=np.float64))
    return float(values[: max(1, int(math.ceil(share * len(values))))].mean())


def score_users(
    model: RewardModel,
    dataset: PreferenceDataset,
    context: np.ndarray,
    held: np.ndarray,
    posterior: str,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per user with held-back answers: the mean log-likelihood of the held-back answers and
    their accuracy, given z inferred from :data:`FEW_SHOT` of the user's context answers."""
    rng = np.random.default_rng([seed, 11])
    logliks, accuracies = [], []
    in_context = np.zeros(dataset.n_pairs, bool)
    in_context[context] = True
    in_held = np.zeros(dataset.n_pairs, bool)
    in_held[held] = True
    for user in range(dataset.n_users):
        own = dataset.user_indices(user)
        own_held = own[in_held[own]]
        own_context = own[in_context[own] & ~np.isnan(dataset.label[own])]
        if len(own_held) == 0:
            continue
        shown = rng.permutation(own_context)[:FEW_SHOT]
        if model.latent_dim and len(shown):
            mean, _ = answers_posterior(
                model, (dataset.obs_a[shown], dataset.obs_b[shown], dataset.label[shown]), posterior
            )
        else:
            mean = np.zeros(model.latent_dim, np.float32)
        with torch.no_grad():
            z = as_tensor(np.broadcast_to(mean, (len(own_held), len(mean))).copy(), model.device)
            logits = model.pair_logits(
                as_tensor(dataset.obs_a[own_held], model.device),
                as_tensor(dataset.obs_b[own_held], model.device),
                z if model.latent_dim else None,
            )
        logits = logits.cpu().numpy().astype(np.float64)
        label = dataset.label[own_held].astype(np.float64)
        log_p = np.maximum(-np.logaddexp(0.0, -logits), LOG_FLOOR)
        log_q = np.maximum(-np.logaddexp(0.0, logits), LOG_FLOOR)
        logliks.append(float(np.mean(label * log_p + (1.0 - label) * log_q)))
        decided = label != 0.5
        right = (logits[decided] > 0) == (label[decided] > 0.5)
        accuracies.append(float(right.mean()) if decided.any() else 0.5)
    return np.array(logliks), np.array(accuracies)


def select_vpl(
    dataset: PreferenceDataset,
    base_config: dict[str, Any],
    settings: TrainSettings,
    fit: Callable[[RewardModel, PreferenceDataset, TrainSettings, bool], TrainResult],
    candidates: Sequence[str] | None = None,
    posteriors: Sequence[str] = POSTERIORS,
    log: Callable[[str], None] = lambda _line: None,
) -> tuple[RewardModel, SelectionReport]:
    """Choose a VPL configuration and posterior from ``dataset``'s answers, then fit it.

    ``base_config`` holds the VPLConfig fields the user fixed (a candidate's fields override
    only ``decoder`` and, for ``ideal-distance``, ``hidden``); ``fit(model, data, settings,
    warm_start)`` trains a model (the caller's own training: early stopping, logging).
    Returns the chosen model, fitted on all answers, and the report (module docstring).
    """
    started = time.perf_counter()
    names = list(candidates or CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise ValueError(f"unknown candidate(s) {unknown}: choose among {list(CANDIDATES)}")
    context, held = held_back_split(dataset, settings.seed)
    if len(held) == 0:
        raise ValueError(
            "--decoder auto needs users with at least two answers each to hold one back; "
            "collect more answers per user or name a decoder (--decoder bilinear)"
        )
    screen = dataclasses.replace(
        settings,
        epochs=max(1, int(round(SCREEN_SHARE * settings.epochs))),
        patience=max(1, int(round(SCREEN_SHARE * settings.patience))),
    )
    screening = dataset.subset_pairs(context)
    scores: list[CandidateScore] = []
    models: dict[str, RewardModel] = {}
    for name in names:
        config = {**base_config, **CANDIDATES[name]}
        tick = time.perf_counter()
        torch.manual_seed(settings.seed)
        model = build_model("vpl", dataset.obs_a.shape[-1], config)
        fit(model, screening, screen, False)
        model.eval()
        seconds = time.perf_counter() - tick
        models[name] = model
        for posterior in posteriors:
            logliks, accuracies = score_users(
                model, dataset, context, held, posterior, settings.seed
            )
            score = CandidateScore(
                name,
                posterior,
                worst_share_mean(logliks),
                float(logliks.mean()),
                float(accuracies.mean()),
                seconds,
            )
            scores.append(score)
            log(
                f"auto: {name:<15} {posterior:<10} mean {score.mean_loglik:.4f}  worst fifth "
                f"{score.worst_fifth_loglik:.4f}  accuracy {score.accuracy:.3f}  ({seconds:.0f} s)"
            )
    best = max(scores, key=lambda s: (s.mean_loglik, s.worst_fifth_loglik))
    chosen = models[best.candidate]
    report = SelectionReport(
        candidate=best.candidate,
        posterior=best.posterior,
        config={**base_config, **CANDIDATES[best.candidate]},
        scores=scores,
        screen_epochs=screen.epochs,
        seconds=time.perf_counter() - started,
        held_answers=int(len(held)),
        users=int(dataset.n_users),
    )
    log(
        f"auto chose {best.candidate} with the {best.posterior} posterior after "
        f"{report.seconds:.0f} s of screening; fitting it on all answers"
    )
    chosen.meta["selection"] = report.to_dict()  # the checkpoint the last fit writes has it
    rest = dataclasses.replace(settings, epochs=max(1, settings.epochs - screen.epochs))
    report.final_fit = fit(chosen, dataset, rest, True)
    chosen.eval()
    report.seconds = time.perf_counter() - started
    chosen.meta["selection"] = report.to_dict()
    return chosen, report
