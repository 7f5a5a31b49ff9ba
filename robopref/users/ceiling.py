"""What a user's answers say about the user's goal: a grid posterior, and the success ceiling.

For a population of continuous table-point goals (PlatePlacement's ``continuous`` box),
evaluation asks how well *any* system could serve a new user from the answers it got. The
answers are scored under the *true* reward family and labelling model (hidden knowledge:
evaluation alone reads this module) on a grid over the population's goal box:

    posterior(g) ∝ prior(g) · prod_i p(A_i | g)^y_i · (1 - p(A_i | g))^(1 - y_i)

with ``p(A | g)`` the labelling model's answer probability (mistakes, position bias, both
orders) for a user with goal ``g`` and the population's norms, and the prior uniform over
the box. A 0/1 answer is scored exactly; a tie or a soft label ``y`` as a soft label
(its cross-entropy); a skipped pair (NaN) is left out. Serving a user means putting the
object at one point: the best one is the grid point with the largest posterior mass within
the success radius, and that mass is the success any system could expect from those
answers, the *same-answers ceiling* (:func:`best_disc`).

:func:`bayes_active_answers` asks the user the questions a Bayes-optimal questioner would:
each next one the candidate pair with the largest expected information about the goal under
the grid posterior, the *Bayes-active ceiling*: the best those candidates could do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from robopref.data.queries import QueryPool
from robopref.reward.peak import box_grid
from robopref.tasks import TASKS, task_spec
from robopref.users.population import Population
from robopref.users.synthetic import LabelModel, SyntheticUser, segment_scores

#: grid spacing (m) of the goal posterior
GRID_STEP = 0.01
#: arrangements drawn as the Monte Carlo "grid" of a TableSetting population
ARRANGEMENT_SAMPLES = 8000
#: goals per chunk when the likelihood of many candidate pairs is tabulated
_CHUNK = 256
_EPS = 1e-6


def has_ceiling(population: Population) -> bool:
    """Whether the ceiling is defined: continuous table-point goals on a known task."""
    spec = TASKS.get(population.env_id)
    return population.low is not None and spec is not None and spec.success_radius is not None


@dataclass
class GoalGrid:
    """The grid over a population's goal box and the success discs around its points."""

    points: np.ndarray  # (G, 2)
    disc: np.ndarray  # (G, G) float32: 1 where two grid points lie within the radius
    radius: float

    @classmethod
    def of(cls, population: Population, step: float = GRID_STEP) -> GoalGrid:
        """The grid of ``population``'s continuous box at spacing ``step``."""
        if not has_ceiling(population):
            raise ValueError(
                f"the success ceiling needs continuous table-point goals on one of "
                f"{_with_radius()}; population {population.name!r} is not"
            )
        assert population.low is not None and population.high is not None
        radius = task_spec(population.env_id).success_radius
        if len(population.low) != 2:  # arrangements: samples of the population itself
            points = population.sample_goals(ARRANGEMENT_SAMPLES, np.random.default_rng(0))[0]
        else:
            points = box_grid(population.low, population.high, step)
        disc = np.concatenate([
            served(population.env_id, points[i : i + _CHUNK, None], points[None], radius)
            for i in range(0, len(points), _CHUNK)
        ])  # fmt: skip
        return cls(points, disc.astype(np.float32), radius)

    def uniform(self) -> np.ndarray:
        """The prior: uniform over the grid, ``(G,)``."""
        return np.full(len(self.points), 1.0 / len(self.points))


def _with_radius() -> list[str]:
    return sorted(env_id for env_id, spec in TASKS.items() if spec.success_radius is not None)


def goal_error(env_id: str, estimate: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """How far ``estimate`` is from ``goals`` (m, broadcast over their leading axes), as the
    task's spec measures it: the distance of the table points, or, for arrangements, the
    largest of the objects' spots'."""
    return task_spec(env_id).goal_error(estimate, goals)


def served(env_id: str, estimate: np.ndarray, goals: np.ndarray, radius: float) -> np.ndarray:
    """Whether serving ``estimate`` succeeds for users with each of ``goals``: bool ``(...)``."""
    return goal_error(env_id, estimate, goals) < radius


def answer_probs(
    population: Population,
    label_model: LabelModel,
    goals: np.ndarray,
    feat_a: np.ndarray,
    feat_b: np.ndarray,
) -> np.ndarray:
    """P(A) ``(G, P)`` of pairs ``(P, T, F)`` for a user with each goal ``(G, 2)``."""
    out = np.empty((len(goals), len(feat_a)))
    for start in range(0, len(goals), _CHUNK):
        chunk = goals[start : start + _CHUNK][:, None, None, :]
        returns = [
            segment_scores(
                population.env_id,
                population.feature_names,
                f[None],
                chunk,
                population.norm_weight,
                label_model,
            )
            for f in (feat_a, feat_b)
        ]
        out[start : start + _CHUNK] = label_model.answer_prob(*returns)
    return out


def log_likelihood(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Sum over answered pairs of the labels' log-likelihood: ``probs`` ``(G, P)``,
    ``labels`` ``(P,)`` -> ``(G,)`` (module docstring: NaN skipped, soft labels soft)."""
    answered = ~np.isnan(labels)
    p = np.clip(np.nan_to_num(probs[:, answered], nan=0.5), _EPS, 1.0 - _EPS)
    y = labels[answered]
    return (y * np.log(p) + (1.0 - y) * np.log1p(-p)).sum(-1)


def normalise(log_weights: np.ndarray) -> np.ndarray:
    """A posterior ``(G,)`` from unnormalised log weights."""
    w = np.exp(log_weights - log_weights.max())
    return w / w.sum()


@dataclass
class DiscEstimate:
    """The best point to serve a user at, and the posterior mass within the radius of it."""

    point: np.ndarray
    mass: float


def best_disc(grid: GoalGrid, posterior: np.ndarray) -> DiscEstimate:
    """The grid point whose success disc holds the most posterior mass, and that mass."""
    mass = grid.disc @ posterior.astype(np.float32)
    best = int(np.argmax(mass))
    return DiscEstimate(grid.points[best].copy(), float(min(mass[best], 1.0)))


def same_answers_path(grid: GoalGrid, probs: np.ndarray, labels: np.ndarray) -> list[DiscEstimate]:
    """The best disc before any answer and after each of ``labels`` (pair ``i`` of
    ``probs`` ``(G, P)`` answered ``labels[i]``): ``P + 1`` estimates."""
    log_post = np.log(grid.uniform())
    path = [best_disc(grid, grid.uniform())]
    for i in range(len(labels)):
        log_post = log_post + log_likelihood(probs[:, i : i + 1], labels[i : i + 1])
        path.append(best_disc(grid, normalise(log_post)))
    return path


def _entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return -(p * np.log(p) + (1.0 - p) * np.log1p(-p))


def expected_information(posterior: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Mutual information ``(C,)`` between each candidate's answer and the goal:
    ``H[sum_g post(g) p_gc] - sum_g post(g) H[p_gc]`` for ``probs`` ``(G, C)``."""
    p = np.nan_to_num(probs, nan=0.5)
    return _entropy(posterior @ p) - posterior @ _entropy(p)


def bayes_active_answers(
    grid: GoalGrid, probs: np.ndarray, ask: Callable[[int], float], k: int
) -> tuple[list[int], list[DiscEstimate]]:
    """Ask ``k`` of the candidates (``probs`` ``(G, C)``), each next the most informative
    about the goal under the grid posterior; the asked indices and the best disc before
    any answer and after each one."""
    if not 0 <= k <= probs.shape[1]:
        raise ValueError(f"k={k} Bayes-active questions but {probs.shape[1]} candidates")
    log_post = np.log(grid.uniform())
    posterior = grid.uniform()
    available = np.ones(probs.shape[1], dtype=bool)
    asked: list[int] = []
    path = [best_disc(grid, posterior)]
    for _ in range(k):
        gain = np.where(available, expected_information(posterior, probs), -np.inf)
        index = int(np.argmax(gain))
        available[index] = False
        label = np.array([ask(index)], dtype=np.float64)
        asked.append(index)
        log_post = log_post + log_likelihood(probs[:, index : index + 1], label)
        posterior = normalise(log_post)
        path.append(best_disc(grid, posterior))
    return asked, path


def _asker(user: SyntheticUser, pool: QueryPool, seed: list[int]) -> Callable[[int], float]:
    rng = np.random.default_rng(seed)
    return lambda index: user.answer(pool.pair(index), rng)


def ceiling_row(
    population: Population,
    user: SyntheticUser,
    index: int,
    k: int,
    same: DiscEstimate,
    bayes: DiscEstimate,
) -> dict[str, Any]:
    """One user's ceilings at budget ``k``: each estimate's mass and its distance to the goal
    (evaluation only: reads the goal)."""
    return {
        "user": index,
        "group": user.group,
        "queries": k,
        "same_answers_mass": same.mass,
        "same_answers_distance": float(goal_error(population.env_id, same.point, user.goal)),
        "bayes_active_mass": bayes.mass,
        "bayes_active_distance": float(goal_error(population.env_id, bayes.point, user.goal)),
    }


def user_ceilings(
    population: Population,
    pool: QueryPool,
    users: Sequence[SyntheticUser],
    answered: Sequence[tuple[list[int], list[float]]],
    ks: Sequence[int],
    seed: int,
) -> list[dict[str, Any]]:
    """Per user and budget k: the same-answers ceiling from the first k of the pool pairs
    ``answered[u]`` ``(asked, answers)`` user ``u`` answered, the Bayes-active ceiling from k
    questions of ``pool`` chosen on the grid, and each estimate's distance to the goal.

    Reads the users' goals: call it only from evaluation (``hidden_knowledge``).
    """
    grid = GoalGrid.of(population)
    probs = answer_probs(population, population.label_model, grid.points, pool.feat_a, pool.feat_b)
    rows = []
    for u, (user, (asked, answers)) in enumerate(zip(users, answered, strict=True)):
        if len(asked) < max(ks):
            raise ValueError(f"user {u} answered {len(asked)} queries, fewer than k={max(ks)}")
        same = same_answers_path(grid, probs[:, asked], np.asarray(answers, dtype=np.float64))
        _, bayes = bayes_active_answers(grid, probs, _asker(user, pool, [seed, u, 17]), max(ks))
        rows += [ceiling_row(population, user, u, k, same[k], bayes[k]) for k in ks]
    return rows
