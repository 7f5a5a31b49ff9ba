"""The grid posterior over a user's goal and the success ceilings built on it."""

from __future__ import annotations

import numpy as np
import pytest

from robopref.data.rollouts import make_env
from robopref.envs.plate_placement import PlatePlacementEnv
from robopref.users.ceiling import (
    GoalGrid,
    answer_probs,
    bayes_active_answers,
    best_disc,
    same_answers_path,
)
from robopref.users.population import named_population

GOAL = np.array([0.10, -0.05])


@pytest.fixture(scope="module")
def population():
    env, _ = make_env("robopref/PlatePlacement-v0")
    yield named_population("continuous", env)
    env.close()


@pytest.fixture(scope="module")
def grid(population) -> GoalGrid:
    return GoalGrid.of(population, step=0.02)


def resting_segments(points: np.ndarray, steps: int = 10) -> np.ndarray:
    """Segments ``(N, T, F)`` of the plate at rest at each point."""
    return np.repeat(PlatePlacementEnv.placed_features(points)[:, None], steps, axis=1)


def user_and_pairs(population, rng: np.random.Generator, n: int, grid: GoalGrid):
    """A user with goal ``GOAL``, ``n`` pairs of resting segments and their P(A) table."""
    a, b = rng.uniform(-0.25, 0.25, (2, n, 2))
    feat_a, feat_b = resting_segments(a), resting_segments(b)
    probs = answer_probs(population, population.label_model, grid.points, feat_a, feat_b)
    user = population.sample_users(1, rng)[0]
    user = type(user)(user.env_id, user.feature_names, GOAL, user.label_model)
    return user, feat_a, feat_b, probs


def test_no_answers_give_the_prior_and_its_best_disc(grid: GoalGrid) -> None:
    path = same_answers_path(grid, np.zeros((len(grid.points), 0)), np.zeros(0))
    centre = grid.points[np.argmin(np.linalg.norm(grid.points, axis=-1))]
    inside = np.linalg.norm(grid.points - centre, axis=-1) < 0.05
    assert len(path) == 1
    # the prior's best disc is a whole disc inside the box: its share of the grid points
    assert path[0].mass == pytest.approx(inside.sum() / len(grid.points), rel=1e-5)
    assert path[0].mass < 0.05


def test_answers_that_pin_a_goal_give_a_tight_posterior_there(population, grid) -> None:
    rng = np.random.default_rng(0)
    user, feat_a, feat_b, probs = user_and_pairs(population, rng, 120, grid)
    labels = np.array([user.answer((fa, fb), rng) for fa, fb in zip(feat_a, feat_b, strict=True)])
    path = same_answers_path(grid, probs, labels)
    assert path[-1].mass > 0.9
    assert np.linalg.norm(path[-1].point - GOAL) < 0.03
    assert path[-1].mass > path[8].mass > path[0].mass
    # a skipped answer changes nothing
    skipped = same_answers_path(grid, probs[:, :3], np.array([labels[0], np.nan, labels[2]]))
    two = same_answers_path(grid, probs[:, [0, 2]], labels[[0, 2]])
    assert skipped[-1].mass == pytest.approx(two[-1].mass)


def test_bayes_active_questions_locate_the_goal_faster_than_random_ones(population, grid) -> None:
    rng = np.random.default_rng(1)
    user, feat_a, feat_b, probs = user_and_pairs(population, rng, 300, grid)

    def ask(i: int) -> float:
        return user.answer((feat_a[i], feat_b[i]), rng)

    asked, path = bayes_active_answers(grid, probs, ask, 8)
    assert len(set(asked)) == 8 and len(path) == 9
    random_labels = np.array([ask(i) for i in range(8)])
    at_random = same_answers_path(grid, probs[:, :8], random_labels)
    assert path[-1].mass > at_random[-1].mass
    assert best_disc(grid, grid.uniform()).mass == pytest.approx(path[0].mass)


def test_a_ranking_of_four_pins_the_goal_faster_than_a_pair(population, grid) -> None:
    from robopref.reward.typed_asking import TypedCandidates, parse_menu
    from robopref.users.ceiling_typed import typed_user_ceilings

    rng = np.random.default_rng(2)
    user, feat_a, feat_b, _ = user_and_pairs(population, rng, 100, grid)
    ceilings = {}
    for text in ("pair", "ranking:4"):
        menu = parse_menu(text, "end-states")
        menu = type(menu)(menu.types, menu.items, per_type=128)
        candidates = TypedCandidates.from_pool(menu, (feat_a, feat_b), (feat_a, feat_b), 0)
        answers = []
        for i in range(4):
            kind, rows = candidates.question(i)
            answers.append(user.answer_question(kind, candidates.user_items[rows], rng).tolist())
        asked = [(list(range(4)), answers)]
        rows = typed_user_ceilings(population, candidates, [user], asked, [4], 0, grid)
        ceilings[text] = rows[0]
        assert 0.0 < rows[0]["same_answers_mass"] <= 1.0
    assert ceilings["ranking:4"]["bayes_active_mass"] > ceilings["pair"]["bayes_active_mass"]
    assert ceilings["ranking:4"]["bayes_active_distance"] < 0.05
