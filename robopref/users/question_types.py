"""Question types: what a user is shown, what the answer is, and its likelihood.

A question shows ``k >= 1`` items (segments or end states) and records one answer. Each type
has a likelihood under returns ``R`` (a reward model's, differentiable in torch, or a
synthetic user's own) with rationality ``beta``, and draws synthetic answers from the same
model, so that what a synthetic user answers and what a model learns agree:

* ``pair``: which of two is better; ``P(A) = sigmoid(beta (R_A - R_B))``. Answer: 1.0 for A,
  0.0 for B (robopref's question until now).
* ``weak-pair``: the pair with "about equal" (a weak comparison, APReL's), the
  Rao-Kupper model with a margin ``tie_margin``: ``P(A) = sigmoid(beta (R_A - R_B) - m)``,
  ``P(B) = sigmoid(beta (R_B - R_A) - m)``, ``P(equal)`` the rest. Answer: 1.0, 0.0 or 0.5.
* ``ranking``: the order of ``k`` items, best first (Plackett-Luce: the best is a softmax
  choice among all, the next among the rest, ...). Answer: the items' indices, best first.
* ``best-of``: the best of ``k`` (one softmax choice). Answer: the chosen index.
* ``rating``: one item on a ``1..levels`` scale (an ordinal logit: ``P(rating <= c) =
  sigmoid(thresholds[c] - beta R)``, thresholds evenly spaced over ``rating_span``).
  Answer: the rating.

``ANSWER_SECONDS`` is the documented cost of each type for a person (what a question costs
when the loop or a study weighs information against time); the figures are a default, to be
replaced by the study's measured times.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional

#: the question types, in the order of how much a person has to do
QUESTION_TYPES = ("pair", "weak-pair", "best-of", "ranking", "rating")
#: a person's seconds per answer, by type and number of items shown (a documented default:
#: clips of a few seconds each are watched once, then compared; a ranking needs each item
#: placed, about one comparison more per item)
ANSWER_SECONDS = {"pair": 6.0, "weak-pair": 6.0, "best-of": 3.0, "ranking": 4.0, "rating": 4.0}


@dataclass(frozen=True)
class QuestionType:
    """One question type and its answer model's parameters (module docstring)."""

    kind: str = "pair"
    #: how many items it shows (2 for the pairs, 1 for a rating, 3-4 for rankings)
    items: int = 2
    #: the weak pair's margin m (in logits): the larger, the more "about equal" answers
    tie_margin: float = 1.0
    #: the rating's number of levels and the return range its thresholds span
    levels: int = 7
    rating_span: tuple[float, float] = (-1.0, 1.0)
    #: measured seconds per answer unit, replacing :data:`ANSWER_SECONDS` (a study's
    #: report: :func:`load_answer_costs`); None: the documented default
    cost: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in QUESTION_TYPES:
            raise ValueError(f"question type {self.kind!r} is unknown: use one of {QUESTION_TYPES}")
        wanted = {"pair": (2, 2), "weak-pair": (2, 2), "rating": (1, 1)}
        low, high = wanted.get(self.kind, (2, 8))
        if not low <= self.items <= high:
            raise ValueError(f"a {self.kind} question shows {low}-{high} items, not {self.items}")
        if not 0 <= self.tie_margin < np.inf:
            raise ValueError(f"tie_margin={self.tie_margin} must be a finite number >= 0")
        if self.levels < 2 or not self.rating_span[0] < self.rating_span[1]:
            raise ValueError("a rating needs levels >= 2 and rating_span (low, high), low < high")

    def seconds(self) -> float:
        """A person's seconds for one answer (:data:`ANSWER_SECONDS`, or the measured
        ``cost``, per item shown; per answer for the pairs)."""
        unit = ANSWER_SECONDS[self.kind] if self.cost is None else self.cost
        return unit * (1 if self.kind in ("pair", "weak-pair") else self.items)

    def thresholds(self) -> np.ndarray:
        """The rating's ``levels - 1`` cut points, evenly spaced over ``rating_span``."""
        low, high = self.rating_span
        return np.linspace(low, high, self.levels + 1)[1:-1]

    # ------------------------------------------------------------------ likelihood
    def log_likelihood(
        self, returns: torch.Tensor, answer: torch.Tensor, beta: float = 1.0
    ) -> torch.Tensor:
        """``log P(answer | returns)`` per question: ``returns (..., items)``, ``answer`` as in
        the module docstring (``(...)`` for pairs, best-of and ratings; ``(..., items)`` of
        indices for rankings). Differentiable in ``returns``."""
        utility = beta * returns
        if self.kind == "pair":
            logit = utility[..., 0] - utility[..., 1]
            return -functional.binary_cross_entropy_with_logits(
                logit, answer.to(logit.dtype), reduction="none"
            )
        if self.kind == "weak-pair":
            return (
                _weak_pair_log_probs(utility, self.tie_margin)
                .gather(-1, _weak_pair_index(answer).unsqueeze(-1))
                .squeeze(-1)
            )
        if self.kind == "best-of":
            return (
                torch.log_softmax(utility, -1).gather(-1, answer.long().unsqueeze(-1)).squeeze(-1)
            )
        if self.kind == "ranking":
            return _plackett_luce(utility, answer.long())
        cuts = torch.as_tensor(self.thresholds(), dtype=utility.dtype, device=utility.device)
        return (
            _ordinal_log_probs(utility[..., 0], cuts)
            .gather(-1, (answer.long() - 1).unsqueeze(-1))
            .squeeze(-1)
        )

    # ------------------------------------------------------------------ answers
    def sample(self, returns: np.ndarray, beta: float, rng: np.random.Generator) -> np.ndarray:
        """Synthetic answers ``(...)`` (``(..., items)`` for rankings) to questions whose
        items have ``returns (..., items)``, drawn from the likelihood's own model
        (``beta = inf``: noise-free)."""
        returns = np.asarray(returns, dtype=np.float64)
        if np.isinf(beta):
            return self._noise_free(returns)
        utility = torch.as_tensor(beta * returns)
        if self.kind == "pair":
            prob = torch.sigmoid(utility[..., 0] - utility[..., 1]).numpy()
            return (rng.random(prob.shape) < prob).astype(np.float64)
        if self.kind == "weak-pair":
            probs = _weak_pair_log_probs(utility, self.tie_margin).exp().numpy()
            return np.array([1.0, 0.0, 0.5])[_categorical(probs, rng)]
        if self.kind in ("best-of", "ranking"):
            # Gumbel-max: sorting utilities plus Gumbel noise draws a Plackett-Luce ranking
            noisy = beta * returns + rng.gumbel(size=returns.shape)
            order = np.argsort(-noisy, axis=-1)
            return order[..., 0] if self.kind == "best-of" else order
        cuts = torch.as_tensor(self.thresholds())
        probs = _ordinal_log_probs(utility[..., 0], cuts).exp().numpy()
        return (_categorical(probs, rng) + 1).astype(np.float64)

    def _noise_free(self, returns: np.ndarray) -> np.ndarray:
        if self.kind in ("pair", "weak-pair"):
            gap = returns[..., 0] - returns[..., 1]
            return np.where(gap > 0, 1.0, np.where(gap < 0, 0.0, 0.5))
        if self.kind == "best-of":
            return np.argmax(returns, axis=-1)
        if self.kind == "ranking":
            return np.argsort(-returns, axis=-1, kind="stable")
        return (np.searchsorted(self.thresholds(), returns[..., 0]) + 1).astype(np.float64)

    def all_answers(self) -> torch.Tensor:
        """Every possible answer, stacked (``(A,)``, or ``(A, items)`` orders for rankings)."""
        if self.kind == "pair":
            return torch.tensor([1.0, 0.0])
        if self.kind == "weak-pair":
            return torch.tensor([1.0, 0.0, 0.5])
        if self.kind == "best-of":
            return torch.arange(self.items)
        if self.kind == "ranking":
            return torch.tensor(list(itertools.permutations(range(self.items))))
        return torch.arange(1, self.levels + 1, dtype=torch.float64)

    def answer_log_probs(self, returns: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """``(..., A)``: ``log P(answer | returns)`` of every answer (:meth:`all_answers`'
        order) to questions whose items have ``returns (..., items)``."""
        answers = self.all_answers()
        expanded = returns.unsqueeze(-2).expand(*returns.shape[:-1], len(answers), self.items)
        shape = expanded.shape[:-1]
        if self.kind == "ranking":
            given = answers.expand(*shape, self.items)
        else:
            given = answers.to(returns.dtype if self.kind != "best-of" else torch.long)
            given = given.expand(*shape)
        return self.log_likelihood(expanded, given, beta)

    def information(self, returns: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """BALD's expected information about the user from one answer, in nats: the mutual
        information between the answer and z, with ``returns (..., S, items)`` the items'
        returns under ``S`` posterior samples of z: ``H[mean_s p(a | z_s)] - mean_s H[p(a |
        z_s)]`` (``(...)``)."""
        log_p = self.answer_log_probs(returns, beta)  # (..., S, A)
        p = log_p.exp()
        marginal = p.mean(-2)
        entropy = -(marginal * marginal.clamp(min=1e-12).log()).sum(-1)
        conditional = -(p * log_p).sum(-1).mean(-1)
        return entropy - conditional

    def implied_pairs(self) -> int:
        """How many pairwise preferences one answer implies (a ranking of k: k (k - 1) / 2;
        best of k: k - 1; a pair: 1; a rating alone: 0, it compares with nothing)."""
        if self.kind == "ranking":
            return self.items * (self.items - 1) // 2
        if self.kind == "best-of":
            return self.items - 1
        return 0 if self.kind == "rating" else 1


def _weak_pair_index(answer: torch.Tensor) -> torch.Tensor:
    """Answers 1.0 / 0.0 / 0.5 -> categories 0 (A) / 1 (B) / 2 (about equal)."""
    return torch.where(answer == 1.0, 0, torch.where(answer == 0.0, 1, 2)).long()


def _weak_pair_log_probs(utility: torch.Tensor, margin: float) -> torch.Tensor:
    """``(..., 3)`` log P(A), log P(B), log P(equal) of the Rao-Kupper weak comparison."""
    gap = utility[..., 0] - utility[..., 1]
    log_a = functional.logsigmoid(gap - margin)
    log_b = functional.logsigmoid(-gap - margin)
    equal = (1.0 - log_a.exp() - log_b.exp()).clamp(min=1e-12)
    return torch.stack([log_a, log_b, equal.log()], -1)


def _plackett_luce(utility: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """``log P(order)``: each position a softmax choice among the items not yet placed."""
    ranked = utility.gather(-1, order)
    # log-sum-exp of each suffix: the items still to choose from at each position
    suffix = torch.logcumsumexp(ranked.flip(-1), -1).flip(-1)
    return (ranked - suffix)[..., :-1].sum(-1)


def _ordinal_log_probs(utility: torch.Tensor, cuts: torch.Tensor) -> torch.Tensor:
    """``(..., levels)`` log P(rating = c) of the ordinal logit at cut points ``cuts``."""
    below = torch.sigmoid(cuts - utility.unsqueeze(-1))  # P(rating <= c), c = 1..levels-1
    zero = torch.zeros_like(below[..., :1])
    cumulative = torch.cat([zero, below, torch.ones_like(zero)], -1)
    return (cumulative[..., 1:] - cumulative[..., :-1]).clamp(min=1e-12).log()


def _categorical(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One category per row of ``probs (..., C)``."""
    cumulative = np.cumsum(probs, -1)
    draw = rng.random(probs.shape[:-1] + (1,)) * cumulative[..., -1:]
    return np.minimum((draw > cumulative).sum(-1), probs.shape[-1] - 1)


def load_answer_costs(path: str | Path) -> dict[str, float]:
    """Measured seconds per answer unit by question type, from a study's ``report.json``
    (its ``costs``: ``robopref study report``) or a JSON object of the same shape; they
    replace :data:`ANSWER_SECONDS` for the types they name."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"--costs {path}: no such file (a study's report.json: `robopref study report`)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"--costs {path} is not JSON: {error}") from error
    costs = data.get("costs", data) if isinstance(data, dict) else None
    if not isinstance(costs, dict) or not costs:
        raise ValueError(
            f'--costs {path} has no costs: give a study report (its "costs") or '
            '{"pair": 5.1, "ranking": 3.2, ...}'
        )
    out = {}
    for kind, seconds in costs.items():
        if kind not in ANSWER_SECONDS:
            raise ValueError(f"--costs {path}: {kind!r} is not a question type {QUESTION_TYPES}")
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not (0 < seconds < np.inf)
        ):
            raise ValueError(f"--costs {path}: {kind} costs {seconds!r}: give seconds > 0")
        out[kind] = float(seconds)
    return out


def question_type(kind: str, items: int | None = None, **settings: object) -> QuestionType:
    """A :class:`QuestionType` by name, with its usual number of items (a ranking: 4)."""
    usual = {"pair": 2, "weak-pair": 2, "best-of": 4, "ranking": 4, "rating": 1}
    if kind not in usual:
        raise ValueError(f"question type {kind!r} is unknown: use one of {QUESTION_TYPES}")
    return QuestionType(kind, items if items is not None else usual[kind], **settings)  # type: ignore[arg-type]


def answer_as_pairs(question: QuestionType, answer: object) -> list[tuple[int, int, float]]:
    """The pairwise preferences an answer implies, as ``(item, other, P(item preferred))``
    (a ranking: every earlier item over every later one; best of k: the chosen over each
    other; a (weak) pair: the answer about items 0 and 1; a rating: none). For readers that
    take only pairs, such as VPL's encoder."""
    if question.kind in ("pair", "weak-pair"):
        return [(0, 1, float(answer))]  # type: ignore[arg-type]
    if question.kind == "best-of":
        chosen = int(answer)  # type: ignore[call-overload]
        return [(chosen, other, 1.0) for other in range(question.items) if other != chosen]
    if question.kind == "ranking":
        order = [int(i) for i in np.asarray(answer).ravel()]
        return [
            (order[a], order[b], 1.0) for a in range(len(order)) for b in range(a + 1, len(order))
        ]
    return []
