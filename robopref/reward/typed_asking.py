"""Asking a new user questions of any type (:mod:`robopref.users.question_types`) and inferring z.

:func:`robopref.reward.active.infer_user` asks pairs. :func:`infer_user_typed` asks the
questions of a :class:`QuestionMenu`: one or more types (a ranking of four segments, the
best of four, a weak pair, ...) about items drawn from the same candidate pool, and chooses
each next question, type and items together, by BALD's expected information about z under
the current posterior (per second of the person's time when ``per_second``: the documented
:data:`~robopref.users.question_types.ANSWER_SECONDS`).

A reward model trained on comparisons knows a user's returns only up to a constant, and
every comparison type needs only differences: the items' utilities under z are the model's
pair logits of each item against the question's first one, ``u_j - u_0 = logit(j, 0)``
(already in the answer's logit units, so the types' likelihoods are used with beta 1). A
rating needs returns on an absolute scale that such a model does not have: it is refused.

Items are segments (``items="segments"``), or each segment's last state alone
(``"end-states"``: "which of these tables would you rather have?"), judged by the user and
scored by the model as a one-step segment.

The posterior (``likelihood``, the default, or ``encoder``) is computed as for pairs: the
model's Bayes posterior by importance sampling with each answer's type likelihood, or VPL's
encoder on the pairs the answers imply (:func:`~robopref.users.question_types.answer_as_pairs`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from robopref.reward.active import (
    BALD_SAMPLES,
    POSTERIOR,
    POSTERIOR_DRAWS_SEED,
    POSTERIOR_SAMPLES,
    POSTERIORS,
    STRATEGIES,
    InferenceResult,
)
from robopref.reward.base import MIN_STD, RewardModel
from robopref.reward.nets import as_tensor
from robopref.users.question_types import (
    QUESTION_TYPES,
    QuestionType,
    answer_as_pairs,
    question_type,
)

ITEM_KINDS = ("segments", "end-states")
#: candidate questions of each type drawn from the pool's segments
QUESTIONS_PER_TYPE = 512


@dataclass(frozen=True)
class QuestionMenu:
    """What new users may be asked: the types, what the items are, how the next is chosen."""

    types: tuple[QuestionType, ...] = (QuestionType("pair", 2),)
    items: str = "segments"
    #: choose by information per second of the person's time (else per question)
    per_second: bool = False
    #: candidate questions of each type
    per_type: int = QUESTIONS_PER_TYPE

    def __post_init__(self) -> None:
        if not self.types:
            raise ValueError("a question menu needs at least one question type")
        if self.items not in ITEM_KINDS:
            raise ValueError(f"question items {self.items!r}: use one of {ITEM_KINDS}")
        for kind in self.types:
            if kind.kind == "rating":
                raise ValueError(
                    "a rating needs returns on an absolute scale, and a reward model trained "
                    "on comparisons knows them only up to a constant: ask a comparison type "
                    f"({', '.join(k for k in QUESTION_TYPES if k != 'rating')})"
                )

    @property
    def pairs_only(self) -> bool:
        """Whether this is robopref's classic question (a pair of segments)."""
        return self.items == "segments" and all(t.kind == "pair" for t in self.types)

    def type_of(self, index: int) -> QuestionType:
        """The type of candidate ``index`` (candidates are numbered type after type)."""
        if self.pairs_only:
            return self.types[0]
        return self.types[index // self.per_type]

    def seconds(self, asked: list[int]) -> float:
        """A person's documented seconds for the questions ``asked``."""
        return float(sum(self.type_of(i).seconds() for i in asked))

    def describe(self) -> str:
        """``ranking-4 of end-states`` and the like (for reports)."""
        names = ", ".join(f"{t.kind}-{t.items}" for t in self.types)
        return f"{names} of {self.items}" + (" per second" if self.per_second else "")


def parse_menu(
    text: str,
    items: str = "segments",
    per_second: bool = False,
    costs: dict[str, float] | None = None,
) -> QuestionMenu:
    """A menu from ``--question`` text: types separated by commas, each optionally with its
    number of items (``ranking``, ``ranking:3``, ``pair,best-of:4``); ``costs``: measured
    seconds per answer unit by type (:func:`~robopref.users.question_types.load_answer_costs`)."""
    types = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        kind, _, count = part.partition(":")
        try:
            items_shown = int(count) if count else None
        except ValueError as error:
            raise ValueError(
                f"--question {part!r}: write TYPE or TYPE:ITEMS, like ranking:4"
            ) from error
        types.append(question_type(kind, items_shown, cost=(costs or {}).get(kind)))
    if not types:
        raise ValueError(f"--question {text!r}: name one or more of {QUESTION_TYPES}")
    return QuestionMenu(tuple(types), items, per_second)


@dataclass
class TypedCandidates:
    """The candidate questions of a menu: ``model_items (N, T, O)`` as the model reads them,
    ``user_items (N, T, F)`` as the user judges them, and per type ``(C, k)`` item indices."""

    menu: QuestionMenu
    model_items: np.ndarray
    user_items: np.ndarray
    questions: list[np.ndarray]

    @classmethod
    def from_pool(
        cls,
        menu: QuestionMenu,
        model_sides: tuple[np.ndarray, np.ndarray],
        user_sides: tuple[np.ndarray, np.ndarray],
        seed: int,
    ) -> TypedCandidates:
        """Items: every segment of a pair pool (both sides); ``menu.per_type`` questions of
        each type, each ``k`` distinct items drawn uniformly (seeded by ``seed``)."""
        model_items = np.concatenate([np.asarray(s, np.float32) for s in model_sides])
        user_items = np.concatenate([np.asarray(s, np.float32) for s in user_sides])
        if menu.items == "end-states":
            model_items, user_items = model_items[:, -1:], user_items[:, -1:]
        rng = np.random.default_rng([seed, 31])
        n = len(model_items)
        questions = []
        for kind in menu.types:
            if kind.items > n:
                raise ValueError(f"a {kind.kind} of {kind.items} needs that many candidate items")
            keys = rng.random((menu.per_type, n))
            questions.append(np.argsort(keys, axis=1)[:, : kind.items])
        return cls(menu, model_items, user_items, questions)

    def question(self, index: int) -> tuple[QuestionType, np.ndarray]:
        """Candidate ``index`` (over all types, in menu order): its type and item indices."""
        for kind, rows in zip(self.menu.types, self.questions, strict=True):
            if index < len(rows):
                return kind, rows[index]
            index -= len(rows)
        raise IndexError("no such candidate question")

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.questions)

    def seconds(self, index: int) -> float:
        """A person's seconds to answer candidate ``index``."""
        return self.question(index)[0].seconds()


class ItemUtilities:
    """Items' utilities under many z for fixed questions (``rows (C, k)`` of ``items``):
    each item's pair logit against its question's first item."""

    def __init__(self, model: RewardModel, items: torch.Tensor, rows: np.ndarray) -> None:
        count, width = rows.shape
        self.shape = (count, width - 1)
        index = torch.as_tensor(rows, device=items.device)
        others = items[index[:, 1:]].flatten(0, 1)
        first = items[index[:, :1].expand(-1, width - 1)].flatten(0, 1)
        self.scorer = model.pair_scorer(others, first)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """``(S, C, k)``: utilities relative to each question's first item."""
        with torch.no_grad():
            gaps = self.scorer.logits(z).reshape(z.shape[0], *self.shape)
        return torch.cat([torch.zeros_like(gaps[..., :1]), gaps], -1)


def _answer_tensor(kind: QuestionType, answer: Any, device: torch.device) -> torch.Tensor:
    if kind.kind == "ranking":
        return torch.as_tensor(np.asarray(answer), dtype=torch.long, device=device)
    if kind.kind == "best-of":
        return torch.as_tensor(int(answer), dtype=torch.long, device=device)
    return torch.as_tensor(float(answer), dtype=torch.float32, device=device)


def infer_user_typed(
    model: RewardModel,
    ask: Callable[[QuestionType, np.ndarray], Any],
    k: int,
    candidates: TypedCandidates,
    strategy: str = "active",
    rng: np.random.Generator | int | None = None,
    n_samples: int = BALD_SAMPLES,
    posterior: str = POSTERIOR,
) -> InferenceResult:
    """Ask ``k`` questions of ``candidates`` through ``ask(type, item indices) -> answer``
    (module docstring); the posterior after each. ``asked`` holds candidate indices over
    all types (:meth:`TypedCandidates.question`), ``answers`` the answers (a ranking's: the
    item positions, best first)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r} must be one of {STRATEGIES}")
    if posterior not in POSTERIORS:
        raise ValueError(f"posterior={posterior!r} must be one of {POSTERIORS}")
    if not 0 <= k <= len(candidates):
        raise ValueError(f"k={k} questions asked for but there are {len(candidates)} candidates")
    rng = np.random.default_rng(rng)
    z_dim = model.latent_dim
    mean, std = np.zeros(z_dim, np.float32), np.ones(z_dim, np.float32)
    means, stds, asked, answers = [mean], [std], [], []
    if z_dim == 0:
        return InferenceResult(mean, std, asked, answers, np.stack(means), np.stack(stds))
    device = model.device
    items = as_tensor(candidates.model_items, device)
    utilities = [ItemUtilities(model, items, rows) for rows in candidates.questions]
    cost = torch.as_tensor(
        np.concatenate(
            [
                np.full(len(rows), t.seconds())
                for t, rows in zip(candidates.menu.types, candidates.questions, strict=True)
            ]
        ),
        dtype=torch.float32,
        device=device,
    )
    available = torch.ones(len(candidates), dtype=torch.bool, device=device)
    noise = torch.as_tensor(rng.standard_normal((n_samples, z_dim)), dtype=torch.float32).to(device)
    draws = np.random.default_rng(POSTERIOR_DRAWS_SEED).standard_normal((POSTERIOR_SAMPLES, z_dim))
    prior_z = torch.as_tensor(draws, dtype=torch.float32, device=device)
    log_weight = torch.zeros(POSTERIOR_SAMPLES, device=device)
    implied: list[tuple[np.ndarray, np.ndarray, float]] = []
    for _ in range(k):
        if strategy == "random":
            choices = torch.nonzero(available).flatten().cpu().numpy()
            index = int(rng.choice(choices))
        else:
            z = torch.as_tensor(mean, device=device) + torch.as_tensor(std, device=device) * noise
            scores = torch.cat(
                [
                    kind.information(u(z).permute(1, 0, 2))
                    for kind, u in zip(candidates.menu.types, utilities, strict=True)
                ]
            )
            if candidates.menu.per_second:
                scores = scores / cost
            scores = torch.where(available, scores, torch.full_like(scores, -1.0))
            index = int(torch.argmax(scores))
        available[index] = False
        kind, rows = candidates.question(index)
        answer = ask(kind, rows)
        asked.append(index)
        answers.append(answer.tolist() if isinstance(answer, np.ndarray) else answer)
        if posterior == "likelihood":
            with torch.no_grad():
                u = ItemUtilities(model, items, rows[None])(prior_z)[:, 0]  # (S, k)
                given = _answer_tensor(kind, answer, device)
                given = given.expand(*u.shape[:-1], *given.shape)
                log_weight += kind.log_likelihood(u, given)
            weight = torch.softmax(log_weight, 0)[:, None]
            mean_t = (weight * prior_z).sum(0)
            std_t = (weight * (prior_z - mean_t) ** 2).sum(0).sqrt().clamp_min(MIN_STD)
        else:
            for better, worse, label in answer_as_pairs(kind, answer):
                implied.append((rows[better], rows[worse], label))
            if implied:
                a = items[[i for i, _, _ in implied]]
                b = items[[j for _, j, _ in implied]]
                label_t = torch.tensor([y for _, _, y in implied], device=device)
                mean_t, std_t = model.posterior((a, b, label_t))
                mean_t, std_t = torch.as_tensor(mean_t), torch.as_tensor(std_t)
            else:
                mean_t, std_t = torch.as_tensor(mean), torch.as_tensor(std)
        mean = mean_t.detach().cpu().numpy().astype(np.float32)
        std = std_t.detach().cpu().numpy().astype(np.float32)
        means.append(mean)
        stds.append(std)
    return InferenceResult(mean, std, asked, answers, np.stack(means), np.stack(stds))


def typed_posterior(
    model: RewardModel, answered: list[tuple[QuestionType, np.ndarray, Any]], scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """A user's posterior mean and std ``(Z,)`` from answers to questions of any type:
    ``answered`` holds ``(type, items (k, T, O) as the model reads them, answer)`` (the
    answer as the type's :meth:`~robopref.users.question_types.QuestionType.log_likelihood`
    takes it; a NaN pair answer is skipped). Importance sampling of the same prior draws
    as :func:`robopref.reward.active.answers_posterior`, each answer adding its type's
    log-likelihood once (a ranking is one Plackett-Luce term, not its implied pairs,
    which would count it as k (k - 1) / 2 independent answers). ``scale`` multiplies the
    items' utilities (:func:`logit_scale`: items longer than the model's segments)."""
    z_dim = model.latent_dim
    if z_dim == 0 or not answered:
        return np.zeros(z_dim, np.float32), np.ones(z_dim, np.float32)
    device = model.device
    draws = np.random.default_rng(POSTERIOR_DRAWS_SEED).standard_normal((POSTERIOR_SAMPLES, z_dim))
    prior_z = torch.as_tensor(draws, dtype=torch.float32, device=device)
    log_weight = torch.zeros(POSTERIOR_SAMPLES, device=device)
    used = 0
    for kind, items, answer in answered:
        if kind.kind in ("pair", "weak-pair") and np.isnan(float(answer)):
            continue
        rows = np.arange(len(items))[None]
        with torch.no_grad():
            utility = ItemUtilities(model, as_tensor(np.asarray(items, np.float32), device), rows)
            u = scale * utility(prior_z)[:, 0]  # (S, k)
            given = _answer_tensor(kind, answer, device)
            log_weight += kind.log_likelihood(u, given.expand(*u.shape[:-1], *given.shape))
        used += 1
    if not used:
        return np.zeros(z_dim, np.float32), np.ones(z_dim, np.float32)
    weight = torch.softmax(log_weight, 0)[:, None]
    mean = (weight * prior_z).sum(0)
    std = (weight * (prior_z - mean) ** 2).sum(0).sqrt().clamp_min(MIN_STD)
    return mean.cpu().numpy().astype(np.float32), std.cpu().numpy().astype(np.float32)


def logit_scale(model: RewardModel, steps: int) -> float:
    """What a reward model's logits about ``steps``-state items are multiplied by to be on
    the scale it was trained on: its segment length over ``steps`` (1 when unknown).

    A model's pair logit sums its reward over the segment's states, and was fitted to
    answers about segments of ``meta["segment_length"]`` states; a person judges a clip as
    a whole, no surer of a 60-state clip than of a 10-state one. Unscaled, a study's whole
    episodes make each answer count six times: the posterior collapses onto a few prior
    draws far from the prior's centre, where the latent policy was never trained."""
    trained = model.meta.get("segment_length") if hasattr(model, "meta") else None
    if not trained or steps <= 0:
        return 1.0
    return float(trained) / float(steps)
