"""The success ceilings of typed questions (rankings, best of k, weak pairs).

The same grid posterior as :mod:`robopref.users.ceiling`, with each answer scored by its type's
own answer model (:mod:`robopref.users.question_types`) at the population's rationality on the
user's true returns of the items for each grid goal: the *same-answers ceiling* of the
answers a system got, and the *Bayes-active ceiling* of a questioner that chooses each next
question (among the same typed candidates) by its expected information about the goal under
the grid posterior. Hidden knowledge: evaluation alone calls this.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from robopref.reward.typed_asking import TypedCandidates
from robopref.users.ceiling import GoalGrid, best_disc, ceiling_row, normalise
from robopref.users.population import Population
from robopref.users.question_types import QuestionType
from robopref.users.synthetic import SyntheticUser, segment_scores

_CHUNK = 256


def item_returns(population: Population, goals: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The users' returns ``(G, N)`` of items ``(N, T, F)`` for each goal ``(G, D)`` (the
    population's reward and myopia, as a synthetic user of it computes them)."""
    out = np.empty((len(goals), len(items)))
    for start in range(0, len(goals), _CHUNK):
        chunk = goals[start : start + _CHUNK][:, None, None, :]
        out[start : start + _CHUNK] = segment_scores(
            population.env_id,
            population.feature_names,
            items[None],
            chunk,
            population.norm_weight,
            population.label_model,
        )
    return out


class _AnswerTable:
    """One type's candidates: answer probabilities per goal and their entropies, computed
    once (only the posterior changes from question to question)."""

    def __init__(self, log_p: torch.Tensor) -> None:
        self.log_p = log_p  # (C, G, A)
        self.p = log_p.exp()
        self.entropy = -(self.p * log_p).sum(-1)  # (C, G)

    def information(self, posterior: torch.Tensor) -> torch.Tensor:
        """``(C,)`` mutual information of each candidate's answer and the goal."""
        posterior = posterior.to(self.p.dtype)
        marginal = torch.einsum("g,cga->ca", posterior, self.p)
        entropy = -(marginal * marginal.clamp(min=1e-12).log()).sum(-1)
        return entropy - self.entropy @ posterior


def typed_user_ceilings(
    population: Population,
    candidates: TypedCandidates,
    users: Sequence[SyntheticUser],
    answered: Sequence[tuple[list[int], list[Any]]],
    ks: Sequence[int],
    seed: int,
    grid: GoalGrid | None = None,
) -> list[dict[str, Any]]:
    """Per user and k, as :func:`robopref.users.ceiling.user_ceilings` does for pairs:
    ``answered[u]`` is ``(asked, answers)`` of the typed candidates (``grid``: the
    population's at :data:`~robopref.users.ceiling.GRID_STEP` unless given)."""
    grid = grid or GoalGrid.of(population)
    beta = float(population.label_model.beta)
    returns = torch.as_tensor(item_returns(population, grid.points, candidates.user_items)).float()
    tables = [
        _AnswerTable(
            kind.answer_log_probs(returns[:, torch.as_tensor(rows)].permute(1, 0, 2), beta)
        )
        for kind, rows in zip(candidates.menu.types, candidates.questions, strict=True)
    ]
    sizes = [len(rows) for rows in candidates.questions]

    def table_of(index: int) -> tuple[_AnswerTable, int]:
        for table, size in zip(tables, sizes, strict=True):
            if index < size:
                return table, index
            index -= size
        raise IndexError(index)

    def answer_index(kind: QuestionType, answer: Any) -> int:
        every = kind.all_answers()
        if kind.kind == "ranking":
            return int(np.flatnonzero((every.numpy() == np.asarray(answer)).all(-1))[0])
        return int(np.flatnonzero(np.isclose(every.numpy(), float(answer)))[0])

    def update(log_post: torch.Tensor, index: int, answer: Any) -> torch.Tensor:
        table, row = table_of(index)
        kind = candidates.menu.type_of(index)
        return log_post + table.log_p[row, :, answer_index(kind, answer)]

    rows_out = []
    uniform = torch.as_tensor(grid.uniform())
    for u, (user, (asked, answers)) in enumerate(zip(users, answered, strict=True)):
        if len(asked) < max(ks):
            raise ValueError(f"user {u} answered {len(asked)} questions, fewer than k={max(ks)}")
        log_post = uniform.log()
        same = [best_disc(grid, grid.uniform())]
        for index, answer in zip(asked[: max(ks)], answers, strict=False):
            log_post = update(log_post, index, answer)
            same.append(best_disc(grid, normalise(log_post.numpy())))
        rng = np.random.default_rng([seed, u, 17])
        log_post = uniform.log()
        posterior = uniform
        available = torch.ones(len(candidates), dtype=torch.bool)
        bayes = [best_disc(grid, grid.uniform())]
        for _ in range(max(ks)):
            gain = torch.cat([table.information(posterior) for table in tables])
            index = int(torch.argmax(torch.where(available, gain, torch.full_like(gain, -1.0))))
            available[index] = False
            kind, item_rows = candidates.question(index)
            answer = user.answer_question(kind, candidates.user_items[item_rows], rng)
            log_post = update(
                log_post, index, answer.tolist() if np.ndim(answer) else answer.item()
            )
            posterior = torch.as_tensor(normalise(log_post.numpy()))
            bayes.append(best_disc(grid, posterior.numpy()))
        rows_out += [ceiling_row(population, user, u, k, same[k], bayes[k]) for k in ks]
    return rows_out
