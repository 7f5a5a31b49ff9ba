"""TableSetting through the pipeline's task-generic parts: queries over several objects,
the loop's arrangement proposals, the demo's per-task defaults."""

from __future__ import annotations

import numpy as np
import pytest

from robopref.data.queries import build_query_pool, object_columns
from robopref.data.rollouts import collect_rollouts
from robopref.demo import DemoOptions, with_task_defaults
from robopref.envs.table_setting import PLACE_HIGH, PLACE_LOW, spots
from robopref.loop.asking import (
    FIXED_QUESTIONS,
    OFFSET_MAX,
    OFFSET_MIN,
    PROPOSALS,
    end_points,
    fixed_questions,
    proposal_aims,
    proposal_rollouts,
)
from robopref.tasks import task_spec

TABLE = "robopref/TableSetting-v0"
PLACE = {"control": "place"}


@pytest.fixture(scope="module")
def place_rollouts():  # type: ignore[no-untyped-def]
    return collect_rollouts(TABLE, 24, np.random.default_rng(0), env_kwargs=PLACE)


def test_place_rollouts_are_whole_three_step_episodes(place_rollouts) -> None:
    assert place_rollouts.feat.shape == (24, 4, 18)
    assert place_rollouts.obs.shape[1] == 4
    assert len(object_columns(place_rollouts.feature_names)) == 3
    pool = build_query_pool(place_rollouts, 64, 4, np.random.default_rng(1), near_share=0.3)
    assert pool.segment_length == 4 and len(pool) == 64
    # the two tables of a pair differ somewhere (an informative comparison)
    assert np.all(np.abs(pool.feat_a[:, -1] - pool.feat_b[:, -1]).max(-1) > 0.01)


def test_end_points_are_the_arrangement_each_episode_left(place_rollouts) -> None:
    ends = end_points(place_rollouts)
    assert ends.shape == (24, 6)
    xy = place_rollouts.feat[:, -1].reshape(24, 3, 6)[:, :, :2]
    np.testing.assert_allclose(spots(ends), xy, atol=1e-6)
    assert fixed_questions(TABLE) == ()
    assert fixed_questions("robopref/PlatePlacement-v0") == FIXED_QUESTIONS


def test_arrangement_proposals_move_one_part_each(place_rollouts) -> None:
    ends = end_points(place_rollouts)[:4]
    aims, heights = proposal_aims(TABLE, ends, np.random.default_rng(0))
    assert aims.shape == (4 * PROPOSALS, 6) and np.isnan(heights).all()
    for u in range(4):
        for p in range(PROPOSALS):
            moved = np.flatnonzero(np.abs(aims[PROPOSALS * u + p] - ends[u]) > 1e-12)
            assert set(moved) <= {2 * p, 2 * p + 1}  # the whole setting, the cup, the utensil
            shift = np.hypot(*(aims[PROPOSALS * u + p] - ends[u])[2 * p : 2 * p + 2])
            assert OFFSET_MIN - 1e-9 <= shift <= OFFSET_MAX + 1e-9
    episodes = proposal_rollouts(TABLE, aims[:3], seed=0, env_kwargs=PLACE)
    # each object lands at its proposed spot (where the place region allows)
    wanted = np.clip(spots(aims[:3]), PLACE_LOW, PLACE_HIGH)
    np.testing.assert_allclose(spots(end_points(episodes)), wanted, atol=0.01)


def test_the_demo_takes_the_tasks_defaults_only_where_left_at_their_default() -> None:
    table = with_task_defaults(DemoOptions(env=TABLE))
    for name, value in task_spec(TABLE).demo_defaults.items():
        assert getattr(table, name) == value
    chosen = with_task_defaults(DemoOptions(env=TABLE, steps=5000, population="continuous"))
    assert chosen.steps == 5000 and chosen.population == "continuous"
    assert chosen.env_kwargs == ["control=place"]
    assert with_task_defaults(DemoOptions()) == DemoOptions()
