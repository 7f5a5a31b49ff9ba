"""Guided policies: a goal-conditioned skill commanded to the learned reward's peak."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import robopref.policies
from robopref.policies.checkpoint import load_policy
from robopref.policies.evaluation import delivery_figures, evaluate_loaded, result_rows
from robopref.policies.guided import GuidedPolicy, compose_guided
from robopref.policies.rollout import make_eval_env, run_episode
from robopref.reward.peak import candidate_goals
from robopref.users.population import GOAL_SPACE, population_from_dict, resolve_population

SHIPPED = Path(robopref.policies.__file__).resolve().parent / "checkpoints"
PLATE = "robopref/PlatePlacement-v0"


def test_the_goal_space_population_covers_every_goal_and_reads_none():
    plate = gym.make(PLATE)
    goals, _ = resolve_population(GOAL_SPACE, plate).sample_goals(2000, np.random.default_rng(0))
    # the whole box, not a population's modes
    assert np.all(goals.min(0) < -0.24) and np.all(goals.max(0) > 0.24)
    block = gym.make("robopref/BlockSort-v0", n_zones=4)
    zones, _ = resolve_population(GOAL_SPACE, block).sample_goals(400, np.random.default_rng(0))
    assert sorted(np.unique(zones).astype(int).tolist()) == [0, 1, 2, 3]


def test_the_peak_is_searched_among_zones_and_table_points():
    block = gym.make("robopref/BlockSort-v0", n_zones=4).unwrapped
    assert candidate_goals(block).tolist() == [0, 1, 2, 3]
    states = block.placed_features(block.zone_centers)
    zone_distance = states[:, block.feature_index["zone_0"] :]
    assert np.allclose(np.diag(zone_distance), 0.0, atol=1e-6)  # each at rest in its zone
    assert candidate_goals(gym.make(PLATE)).shape[1] == 2
    table = gym.make("robopref/TableSetting-v0", control="place")
    assert candidate_goals(table) is None  # arrangements: no peak search, no guided policy


@pytest.fixture(scope="module")
def guided(tmp_path_factory) -> GuidedPolicy:
    """The shipped VPL reward commanding the shipped oracle as a skill."""
    out = tmp_path_factory.mktemp("guided") / "policy_guided"
    meta = compose_guided(SHIPPED / "policy_oracle", SHIPPED / "vpl.pt", out)
    assert meta["kind"] == "latent" and meta["method"] == "guided"
    assert meta["reward_path"].endswith("vpl.pt") and meta["latent_dim"] == 4
    policy = load_policy(out)
    assert isinstance(policy, GuidedPolicy)
    return policy


def test_the_skill_reaches_the_goal_it_is_commanded(guided):
    """For several z, the episode (scored against the commanded peak) ends at the peak."""
    env = make_eval_env(PLATE, "latent", guided.finder.model, set_down=guided.meta["set_down"])
    rng = np.random.default_rng(0)
    reached = []
    for i in range(4):
        z = rng.standard_normal(4).astype(np.float32) * 1.5
        goal = guided.goal_for(z)
        episode = run_episode(env, guided.act, goal, z, seed=i)
        reached.append(episode.success)
    assert np.mean(reached) >= 0.75, reached


def test_batched_and_single_actions_agree(guided):
    obs = np.random.default_rng(1).standard_normal((5, 16 + 4)).astype(np.float32)
    batch = guided.predict(obs)
    single = np.stack([guided.predict(row) for row in obs])
    np.testing.assert_allclose(batch, single, atol=1e-6)


def test_evaluate_reports_delivery_and_the_stage_of_each_miss(guided):
    population = resolve_population("two-modes", gym.make(PLATE))
    records = evaluate_loaded(
        [(guided, guided.finder.model)], guided.finder.model, population, 4, 4, "active", 1,
        128, 0,
    )  # fmt: skip
    assert all("peak_served" in r and "reward_peak_distance" in r for r in records)
    rows = result_rows(records, [guided.name], has_btl=False)
    assert {"delivery", "miss_inference", "miss_policy"} <= set(rows[0])
    assert rows[0]["success"] >= 0.75


def test_delivery_figures_split_each_miss_by_stage():
    records = [
        {"success": True, "peak_served": True},
        {"success": False, "peak_served": True},  # the policy missed a goal the reward knew
        {"success": False, "peak_served": False},  # the reward's peak was off
        {"success": True, "peak_served": False},  # lucky
    ]
    assert delivery_figures(records) == {
        "delivery": 0.5, "miss_inference": 0.25, "miss_policy": 0.25,
    }  # fmt: skip


def test_composition_refuses_what_cannot_guide(tmp_path):
    with pytest.raises(ValueError, match="needs a user latent"):
        compose_guided(SHIPPED / "policy_oracle", SHIPPED / "btl.pt", tmp_path / "a")
    with pytest.raises(ValueError, match="kind oracle"):
        compose_guided(SHIPPED / "policy_vpl", SHIPPED / "vpl.pt", tmp_path / "b")
    other = Path(shutil.copytree(SHIPPED / "policy_oracle", tmp_path / "block_skill"))
    meta = json.loads((other / "meta.json").read_text())
    meta.update(env_id="robopref/BlockSort-v0")
    (other / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="train the skill on the reward model's task"):
        compose_guided(other, SHIPPED / "vpl.pt", tmp_path / "c")


def test_a_minority_served_when_the_reward_knows_it(guided):
    """Only the minority's users (the shipped two-modes reward; each group evaluated on its
    own): the guided policy serves each group as its delivery allows."""
    env = gym.make(PLATE)
    for goal in ([0.20, 0.15], [0.20, -0.15]):
        group = population_from_dict({"modes": [{"goal": goal}]}, env)
        records = evaluate_loaded(
            [(guided, guided.finder.model)], guided.finder.model, group, 4, 4, "active", 1,
            128, 1,
        )  # fmt: skip
        figures = delivery_figures(records)
        success = np.mean([r["success"] for r in records])
        assert success >= 0.95 * figures["delivery"], (goal, success, figures)


def test_coverage_weights_give_a_sparse_cluster_the_share_of_a_dense_one():
    from robopref.policies.latent_env import LatentSource, coverage_weights

    rng = np.random.default_rng(0)
    dense = rng.normal((0.0, 0.0), 0.1, size=(90, 2))
    sparse = rng.normal((3.0, 3.0), 0.1, size=(10, 2))
    latents = np.concatenate([dense, sparse]).astype(np.float32)
    weights = coverage_weights(latents)
    assert weights.sum() == pytest.approx(1.0)
    assert 0.35 <= weights[90:].sum() <= 0.65  # unweighted draws: 0.10
    source = LatentSource(2, latents, widen_share=0.0, balance=True)
    draws = np.stack([source.draw(rng)[0] for _ in range(4000)])
    assert 0.35 <= np.mean(draws[:, 0] > 1.5) <= 0.65
    plain = LatentSource(2, latents, widen_share=0.0)
    assert np.mean(np.stack([plain.draw(rng)[0] for _ in range(4000)])[:, 0] > 1.5) < 0.15


def test_an_empty_population_is_the_one_the_reward_learnt_from(tmp_path):
    """train-policy's held-out check (and what evaluate then serves) is the population the
    reward model's answers came from, not a default one (a guided policy on a reward of a
    three-group file was once checked on two-modes users: 0.00)."""
    from robopref.policies.train import (
        DEFAULT_POPULATION,
        TrainPolicyOptions,
        with_served_population,
    )
    from robopref.reward.checkpoint import load_payload, save_payload

    payload = load_payload(SHIPPED / "vpl.pt")
    payload["meta"]["population"] = "benchmarks/populations/plate_three_groups.yaml"
    save_payload(payload, tmp_path / "vpl.pt")
    filled = with_served_population(TrainPolicyOptions(reward=str(tmp_path / "vpl.pt")))
    assert filled.population == "benchmarks/populations/plate_three_groups.yaml"
    given = TrainPolicyOptions(reward=str(tmp_path / "vpl.pt"), population="modes")
    assert with_served_population(given).population == "modes"
    assert with_served_population(TrainPolicyOptions(oracle=True)).population == DEFAULT_POPULATION
