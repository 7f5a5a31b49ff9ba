"""Behaviour rollouts and candidate query pools."""

from __future__ import annotations

import numpy as np
import pytest

from robopref.data.queries import build_query_pool
from robopref.data.rollouts import SOURCES, BehaviourMix, collect_rollouts, make_env
from robopref.users.population import named_population
from robopref.users.synthetic import SyntheticUser

PLATE = "robopref/PlatePlacement-v0"
BLOCK = "robopref/BlockSort-v0"


@pytest.fixture(scope="module")
def plate_rollouts():
    return collect_rollouts(PLATE, 24, np.random.default_rng(0))


def test_rollouts_keep_every_state_and_are_seeded(plate_rollouts):
    r = plate_rollouts
    assert r.obs.shape == (24, 61, 16) and r.feat.shape == (24, 61, 8)
    assert r.obs.dtype == np.float32 and r.feat.dtype == np.float32
    assert set(np.unique(r.source)) <= {0, 1}
    again = collect_rollouts(PLATE, 24, np.random.default_rng(0))
    assert np.array_equal(r.obs, again.obs) and np.array_equal(r.feat, again.feat)
    other = collect_rollouts(PLATE, 3, np.random.default_rng(1))
    assert not np.array_equal(r.obs[:3], other.obs)


def test_experts_set_the_plate_down(plate_rollouts):
    r = plate_rollouts
    expert = r.source == SOURCES.index("expert")
    on_table_at_end = r.feat[expert, -1, r.feature_names.index("on_table")]
    assert on_table_at_end.mean() > 0.7


def test_callable_policies_join_the_mix():
    calls = []

    def lift(obs):
        calls.append(obs)
        return np.array([0.0, 0.0, 1.0, 1.0], dtype=np.float32)

    mix = BehaviourMix(expert_share=0.0, random_share=0.0, policy_share=1.0)
    r = collect_rollouts(PLATE, 2, np.random.default_rng(0), mix, policies=[lift])
    assert np.all(r.source == SOURCES.index("policy")) and len(calls) == 2 * 60
    assert np.all(r.obs[:, -1, 2] >= r.obs[:, 0, 2])  # the tip only went up
    with pytest.raises(ValueError, match="policies"):
        collect_rollouts(PLATE, 2, np.random.default_rng(0), mix)


def test_careless_experts_break_the_drop_norm_careful_ones_do_not():
    def drops(careless: float) -> np.ndarray:
        mix = BehaviourMix(
            expert_share=1.0,
            random_share=0.0,
            expert_noise=0.0,
            careless_share=careless,
            hesitant_share=0.0,
        )
        r = collect_rollouts(BLOCK, 6, np.random.default_rng(0), mix)
        return r.feat[..., r.feature_names.index("drop_height")].max(axis=1)

    assert (drops(1.0) > 0.02).mean() > 0.5
    assert np.all(drops(0.0) < 0.02)


def test_hesitant_experts_hold_the_plate_down_longer_than_prompt_ones():
    def held_on_table(hesitant: float) -> float:
        mix = BehaviourMix(
            expert_share=1.0,
            random_share=0.0,
            expert_noise=0.0,
            careless_share=0.0,
            hesitant_share=hesitant,
        )
        r = collect_rollouts(PLATE, 6, np.random.default_rng(0), mix)
        held = r.feat[..., r.feature_names.index("held")] > 0.5
        low = r.feat[..., r.feature_names.index("height")] < 0.004
        return float((held & low).sum())

    assert held_on_table(1.0) > held_on_table(0.0) + 30
    with pytest.raises(ValueError, match="at most 1"):
        BehaviourMix(careless_share=0.6, hesitant_share=0.6).shares(0)


def test_near_pairs_end_at_one_spot(plate_rollouts):
    def ending_close(share: float) -> float:
        pool = build_query_pool(plate_rollouts, 400, 10, np.random.default_rng(0), near_share=share)
        end_a, end_b = pool.feat_a[:, -1, :2], pool.feat_b[:, -1, :2]
        return float((np.hypot(*(end_a - end_b).T) < 0.05).mean())

    assert ending_close(1.0) > ending_close(0.0) + 0.3
    with pytest.raises(ValueError, match="near_share"):
        build_query_pool(plate_rollouts, 10, 10, np.random.default_rng(0), near_share=2.0)


def test_unknown_env_is_refused():
    with pytest.raises(ValueError, match="unknown env"):
        make_env("robopref/Nope-v0")


@pytest.mark.parametrize("segment", [1, 10])
def test_pool_pairs_are_informative(plate_rollouts, segment):
    pool = build_query_pool(plate_rollouts, 500, segment, np.random.default_rng(0), min_gap=0.03)
    assert len(pool) == 500 and pool.segment_length == segment
    assert pool.obs_a.shape == (500, segment, 16) and pool.feat_b.shape == (500, segment, 8)
    pos_a, pos_b = pool.feat_a[..., :3], pool.feat_b[..., :3]
    held_gap = np.abs(pool.feat_a[..., 3] - pool.feat_b[..., 3]).mean(-1)
    gap = np.linalg.norm(pos_a - pos_b, axis=-1).mean(-1) + 0.05 * held_gap
    assert np.all(gap >= 0.03 - 1e-6)
    episode, start = pool.origin[0, 0]
    assert np.array_equal(pool.obs_a[0], plate_rollouts.obs[episode, start : start + segment])
    same = build_query_pool(plate_rollouts, 500, segment, np.random.default_rng(0))
    assert np.array_equal(pool.feat_a, same.feat_a) and np.array_equal(pool.obs_b, same.obs_b)


def test_pool_rejects_pairs_of_idle_segments():
    r = collect_rollouts(BLOCK, 12, np.random.default_rng(0))
    pool = build_query_pool(r, 400, 5, np.random.default_rng(0), min_gap=0.0)
    start = r.feat[:, :1, :3]
    cols = r.feature_names
    held = cols.index("held")

    def idle(feat, episodes):
        moved = np.linalg.norm(feat[..., :3] - start[episodes], axis=-1) > 0.01
        return ~(moved | (feat[..., held] > 0.5)).any(-1)

    # a segment whose object sits unheld where it started is idle; never two together
    idle_a = idle(pool.feat_a, pool.origin[:, 0, 0])
    idle_b = idle(pool.feat_b, pool.origin[:, 1, 0])
    assert idle_a.any() or idle_b.any()  # idle segments exist, paired with active ones
    assert not np.any(idle_a & idle_b)


def test_pool_errors_name_the_fix(plate_rollouts):
    with pytest.raises(ValueError, match="segment"):
        build_query_pool(plate_rollouts, 10, 62, np.random.default_rng(0))
    with pytest.raises(RuntimeError, match="min_gap"):
        build_query_pool(plate_rollouts, 10, 10, np.random.default_rng(0), min_gap=5.0)


def test_draw_for_a_new_user_excludes_asked_pairs(plate_rollouts):
    pool = build_query_pool(plate_rollouts, 50, 4, np.random.default_rng(0))
    rng = np.random.default_rng(0)
    first = pool.draw(20, rng)
    assert len(np.unique(first)) == 20
    rest = pool.draw(30, rng, exclude=first)
    assert not set(first) & set(rest)
    with pytest.raises(ValueError, match="larger pool"):
        pool.draw(1, rng, exclude=np.arange(50))
    user = SyntheticUser(PLATE, pool.feature_names, (0.2, 0.15))
    assert user.answer(pool.pair(int(first[0])), rng) in (0.0, 0.5, 1.0)
    sub = pool.subset(first[:5])
    assert np.array_equal(sub.feat_a, pool.feat_a[first[:5]])


def test_contested_pairs_are_common(plate_rollouts):
    env, _ = make_env(PLATE)
    pool = build_query_pool(plate_rollouts, 1000, 10, np.random.default_rng(0))
    share = named_population("two-modes", env).contested(pool.feat_a, pool.feat_b).mean()
    assert share > 0.15


def test_missed_experts_set_the_block_down_beside_the_zone():
    def end_offsets(missed: float) -> np.ndarray:
        mix = BehaviourMix(
            expert_share=1.0,
            random_share=0.0,
            expert_noise=0.0,
            careless_share=0.0,
            missed_share=missed,
        )
        r = collect_rollouts(BLOCK, 8, np.random.default_rng(0), mix)
        zones = [r.feature_names.index(f"zone_{i}") for i in (0, 1)]
        return r.feat[:, -1, zones].min(axis=1)  # distance to the nearer zone's centre

    assert np.all(end_offsets(0.0) < 0.03)
    missed = end_offsets(1.0)
    assert np.all(missed > 0.02) and missed.max() > 0.06
    with pytest.raises(ValueError, match="missed"):
        BehaviourMix(missed_share=1.5).shares(0)


@pytest.mark.parametrize(
    "bad",
    [
        {"expert_share": float("nan")},
        {"random_share": float("inf")},
        {"expert_noise": float("nan")},
    ],
)
def test_a_mix_with_nan_or_infinite_shares_is_refused(bad):
    with pytest.raises(ValueError, match="non-negative shares"):
        BehaviourMix(**bad).shares(0)
