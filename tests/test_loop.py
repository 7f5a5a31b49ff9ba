"""The RLHF loop on a tiny configuration: firewall, resumption, queries, log, plot."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import robopref.loop.run as loop_run
from robopref.data.dataset import PreferenceDataset
from robopref.data.rollouts import SOURCES, make_env
from robopref.envs.wrappers import SetDownOnContact
from robopref.loop import LoopOptions, run_loop
from robopref.loop.asking import (
    FIXED_QUESTIONS,
    HOLD_LOW_MAX,
    HOLD_LOW_MIN,
    PROPOSALS,
    ending_pair,
)
from robopref.loop.report import format_round
from robopref.policies.checkpoint import load_policy
from robopref.policies.evaluate_command import EvaluateOptions, evaluate
from robopref.policies.personalize import new_user_pool
from robopref.reward import load_reward_model
from robopref.users.hidden import HiddenKnowledgeError, SealedUser, hidden_knowledge
from robopref.users.population import named_population

#: two rounds (4 answers, then 3 more per user: the two fixed questions and one chosen),
#: PPO's smallest update per round
TINY = {
    "users": 10,
    "answers": 7,
    "first_answers": 4,
    "per_round": 3,
    "steps": 4096,
    "scout_steps": 4096,
    "episodes": 16,
    "candidates": 8,
    "eval_users": 2,
    "fit_epochs": 25,
    "refit_epochs": 5,
    "progress": False,
    # in-process arms: the spies and monkeypatches below reach no worker process
    "workers": 1,
}


def tiny(out: Path, **changes: object) -> LoopOptions:
    return LoopOptions(out=str(out), **{**TINY, **changes})


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoopOptions, dict, list]:
    """One tiny loop run to the end, with the candidate pools of round 1 recorded."""
    out = tmp_path_factory.mktemp("loop") / "run"
    seen: list[tuple[np.ndarray, object, int]] = []
    original = loop_run.user_candidates

    def spy(rollouts, own, n_pairs, segment, rng):  # type: ignore[no-untyped-def]
        pool = original(rollouts, own, n_pairs, segment, rng)
        seen.append((own, pool, rollouts))
        return pool

    loop_run.user_candidates = spy
    try:
        state = run_loop(tiny(out))
    finally:
        loop_run.user_candidates = original
    return tiny(out), state, seen


def test_sealed_user_raises_outside_evaluation() -> None:
    env, _ = make_env("robopref/PlatePlacement-v0")
    user = SealedUser(
        named_population("two-modes", env).sample_users(1, np.random.default_rng(0))[0]
    )
    for name in ("goal", "group", "label_model", "norm_weight"):
        with pytest.raises(HiddenKnowledgeError, match="only through its answers"):
            getattr(user, name)
    with pytest.raises(HiddenKnowledgeError):
        user.unsealed()
    feats = np.zeros((2, 10, len(env.feature_names)), np.float32)
    assert user.answer((feats[0], feats[1]), np.random.default_rng(0)) in (0.0, 0.5, 1.0)
    with hidden_knowledge("evaluation"):
        assert user.goal.shape == (2,)
        assert user.group in (0, 1)
    with pytest.raises(ValueError, match="not allowed"), hidden_knowledge("training"):
        pass


def test_firewall_the_loop_runs_with_sealed_users_only(finished) -> None:
    """Every training user is sealed (reading its goal or group raises), so the loop having
    finished means that no stage but evaluation read them; what it wrote knows no goal."""
    options, state, _ = finished
    assert state["finished"] and state["done"] == options.rounds == 2
    out = Path(options.out)
    for method in ("vpl", "btl"):
        data = PreferenceDataset.load(out / f"{method}.npz")
        assert data.n_users == 10 and data.n_pairs == 10 * 7
        assert data.user_goal.shape == (10, 0)
        assert (data.user_group == -1).all()
        assert np.isnan(data.true_label).all() and np.isnan(data.answer_prob).all()
        assert np.isin(data.label, [0.0, 0.5, 1.0]).all()


def test_sealed_users_in_the_loop_really_raise(tmp_path: Path, monkeypatch) -> None:
    """A stage that reads a user's goal stops the loop: the firewall is live in the loop."""
    answer = loop_run.answer_pairs

    def peeking(users, *args):  # type: ignore[no-untyped-def]
        _ = [u.goal for u in users]  # what a recipe aiming data at users' goals would do
        return answer(users, *args)

    monkeypatch.setattr(loop_run, "answer_pairs", peeking)
    with pytest.raises(HiddenKnowledgeError):
        run_loop(tiny(tmp_path / "peek"))


def test_round_one_queries_come_from_each_users_policy_rollouts(finished) -> None:
    options, _, seen = finished
    assert len(seen) == 2 * options.users  # round 1, both methods, every user
    for own, pool, rollouts in seen:
        assert (own >= options.episodes).all()  # after round 0's goal-agnostic episodes
        policy_episodes, (at, beside, low) = own[:-PROPOSALS], own[-PROPOSALS:]
        assert (rollouts.source[policy_episodes] == SOURCES.index("policy")).all()
        # the proposals set the object down where the greedy policy episode took it, and
        # a few centimetres from there, and hold it low where the policy took it
        col = {n: rollouts.feature_names.index(n) for n in ("x", "y", "height", "held")}
        xy = [col["x"], col["y"]]
        greedy_end = rollouts.feat[policy_episodes[0], -1, xy]
        assert np.hypot(*(rollouts.feat[at, -1, xy] - greedy_end)) < 0.05
        assert 0.0 < np.hypot(*(rollouts.feat[beside, -1, xy] - greedy_end)) < 0.15
        assert np.hypot(*(rollouts.feat[low, -1, xy] - greedy_end)) < 0.05
        assert rollouts.feat[at, -1, col["held"]] == 0 and rollouts.feat[low, -1, col["held"]] == 1
        assert HOLD_LOW_MIN - 0.003 < rollouts.feat[low, -1, col["height"]] < HOLD_LOW_MAX + 0.003
        assert np.isin(pool.origin[:, 0, 0], own).all()  # first segment: this user's rollout
    owns = {tuple(own) for own, _, _ in seen[: options.users]}
    assert len(owns) == options.users  # each user is asked about its own rollouts


@pytest.mark.parametrize("proposal", FIXED_QUESTIONS)
def test_each_later_round_asks_the_fixed_questions(finished, proposal: int) -> None:
    """Set down at the policy's spot, and held low there, each against the policy's greedy
    episode, both ending: asked of every user, by both methods."""
    options, _, seen = finished
    for method_index, method in enumerate(("vpl", "btl")):
        own, _, rollouts = seen[method_index * options.users]
        episode = own[-PROPOSALS + proposal]
        pair = ending_pair(rollouts, episode, own[0], options.segment)
        np.testing.assert_array_equal(pair.feat_a[0], rollouts.feat[episode, -options.segment :])
        np.testing.assert_array_equal(pair.feat_b[0], rollouts.feat[own[0], -options.segment :])
        data = PreferenceDataset.load(Path(options.out) / f"{method}.npz")
        first_user = data.feat_a[data.user == 0]
        assert any(np.array_equal(a, pair.feat_a[0]) for a in first_user)  # it was asked


def test_the_loops_policies_act_through_the_place_primitive(finished) -> None:
    """Trained under contact and place, and rebuilt so by whatever loads them."""
    from robopref.policies.rollout import make_eval_env

    options, _, _ = finished
    for method in ("vpl", "btl"):
        policy = load_policy(Path(options.out) / f"policy_{method}")
        assert policy.meta["set_down"] == "place"
        model = load_reward_model(Path(options.out) / f"{method}.pt")
        env = make_eval_env(options.env, "latent", model, set_down=policy.meta["set_down"])
        while not isinstance(env, SetDownOnContact):
            env = env.env
        assert env.place


def test_a_round_too_small_for_the_fixed_questions_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--per-round 1 leaves no room"):
        run_loop(tiny(tmp_path / "small", per_round=1, answers=6))


def test_log_and_plot_are_written(finished) -> None:
    options, state, _ = finished
    out = Path(options.out)
    saved = json.loads((out / "loop.json").read_text())
    assert [r["answers_per_user"] for r in saved["history"]] == [4, 7]
    for row in saved["history"]:
        for method in ("vpl", "btl"):
            figures = row["methods"][method]
            for key in ("success", "true_return", "learned_return", "accuracy", "ceiling"):
                assert np.isfinite(figures[key]), key
        vpl = row["methods"]["vpl"]  # the latent diagnostics: VPL's only (BTL has no z)
        assert (
            0 <= vpl["active_dims"] <= vpl["latent_dims"]
            and "active_dims" not in row["methods"]["btl"]
        )
        assert vpl["group_bits"] is None or 0.0 <= vpl["group_bits"] <= 1.0
    assert " active" in format_round(saved["history"][-1])
    assert (out / "loop.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert state["history"] == saved["history"]


def test_scouts_are_continued_and_the_final_policy_is_new(finished) -> None:
    options, state, _ = finished
    out = Path(options.out)
    steps = [row["steps"] for row in state["history"]]
    # round 0's scout: one round's share; the final policy: --steps of its own, not added on
    assert steps == [options.scout_round_steps, options.steps]
    for method in ("vpl", "btl"):
        reward = load_reward_model(out / f"{method}.pt")
        policy = load_policy(out / f"policy_{method}", reward)
        assert policy.model.num_timesteps == options.steps
        assert policy.meta["steps"] == options.steps


def test_heldout_check_is_what_evaluate_measures(finished) -> None:
    options, state, _ = finished
    out = Path(options.out)
    result = evaluate(
        EvaluateOptions(
            policy=[str(out / "policy_vpl"), str(out / "policy_btl")], reward=str(out / "vpl.pt"),
            population=options.population, users=options.eval_users,
            episodes=options.eval_episodes, seed=options.seed, json=str(out / "e.json"),
        )
    )  # fmt: skip
    last = state["history"][-1]["methods"]
    for row in (r for r in result["results"] if r["group"] == "all"):
        assert row["success"] == last[row["policy"]]["success"]
        assert row["return"] == pytest.approx(last[row["policy"]]["true_return"])
    reward = load_reward_model(out / "vpl.pt")
    assert load_policy(out / "policy_vpl", reward).meta["latent_dim"] == reward.latent_dim


def test_interrupted_loop_resumes_to_the_same_result(finished, tmp_path: Path, monkeypatch) -> None:
    """Killed in round 1, resumed with the arms in two worker processes: the same weights
    and history as the uninterrupted in-process run."""
    options, state, _ = finished
    out = tmp_path / "killed"
    original = loop_run.run_round

    def dies_in_round_two(opts, shared, round_index, workers=None):  # type: ignore[no-untyped-def]
        if round_index == 1:
            raise KeyboardInterrupt  # as a kill mid-round: round 1 has not been committed
        return original(opts, shared, round_index, workers)

    monkeypatch.setattr(loop_run, "run_round", dies_in_round_two)
    with pytest.raises(KeyboardInterrupt):
        run_loop(tiny(out))
    monkeypatch.setattr(loop_run, "run_round", original)
    with pytest.raises(ValueError, match="--resume to continue it"):
        run_loop(tiny(out))
    with pytest.raises(ValueError, match="other options.*users"):
        run_loop(tiny(out, resume=True, users=11))
    resumed = run_loop(tiny(out, resume=True, workers=2))
    timings = ("wall_s", "seconds")  # wall-clock figures differ between runs
    strip = [{k: v for k, v in r.items() if k not in timings} for r in state["history"]]
    assert [{k: v for k, v in r.items() if k not in timings} for r in resumed["history"]] == strip
    assert set(resumed["history"][-1]["seconds"]) == {"vpl", "btl", "heldout"}
    for method in ("vpl", "btl"):
        first = load_reward_model(Path(options.out) / f"{method}.pt").state_dict()
        again = load_reward_model(out / f"{method}.pt").state_dict()
        assert all(torch.equal(first[k], again[k]) for k in first)
        a = load_policy(Path(options.out) / f"policy_{method}").model.policy.state_dict()
        b = load_policy(out / f"policy_{method}").model.policy.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_budgets_are_refused_before_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiple of --per-round"):
        run_loop(tiny(tmp_path / "a", answers=8))
    with pytest.raises(ValueError, match="--methods"):
        run_loop(tiny(tmp_path / "b", methods=["vpl", "dpo"]))
    with pytest.raises(ValueError, match="unknown env"):
        run_loop(tiny(tmp_path / "c", env="robopref/Nope-v0"))
    assert not (tmp_path / "a").exists()


def test_a_finished_loop_is_not_replaced_silently(finished) -> None:
    options, _, _ = finished
    with pytest.raises(ValueError, match="finished loop: pass --overwrite"):
        run_loop(dataclasses.replace(options))


def test_new_users_can_be_asked_about_the_policys_own_episodes(finished) -> None:
    options, _, _ = finished
    out = Path(options.out)
    reward = load_reward_model(out / "vpl.pt")
    policy = load_policy(out / "policy_vpl", reward)
    pool = new_user_pool(reward, 0, pairs=64, episodes=8, source="policy", policy=policy)
    assert len(pool) == 64
    assert (pool.origin[:, 0, 0] >= 8).all()  # first segments: the policy's episodes
    result = evaluate(
        EvaluateOptions(
            policy=[str(out / "policy_vpl")], reward=str(out / "vpl.pt"), users=2, episodes=1,
            query_source="policy", json=str(out / "p.json"),
        )
    )  # fmt: skip
    assert result["query_source"] == "policy"
    with pytest.raises(ValueError, match="--query-source 'people'"):
        evaluate(EvaluateOptions(policy=[str(out / "policy_vpl")], query_source="people"))


def test_evaluate_at_several_budgets_reports_the_ceilings(finished, tmp_path: Path) -> None:
    """``--queries 0,2`` on a continuous population: one row per k, the latent user asked
    the largest k once (z at k = 0 the prior's), and the grid-posterior ceilings beside."""
    options, _, _ = finished
    out = Path(options.out)
    result = evaluate(
        EvaluateOptions(
            policy=[str(out / "policy_vpl"), str(out / "policy_btl")], reward=str(out / "vpl.pt"),
            population="continuous", users=2, episodes=1, queries="2,0", seed=5,
            pool_pairs=64, json=str(tmp_path / "e.json"),
        )
    )  # fmt: skip
    assert result["queries"] == [0, 2]
    rows = {(r["queries"], r["policy"], r["group"]): r for r in result["results"]}
    assert set(rows) == {(k, p, "all") for k in (0, 2) for p in ("vpl", "btl")}
    prior = rows[(0, "vpl", "all")]
    assert 0.0 < prior["success_ceiling"] == prior["bayes_active_ceiling"] < 0.05
    assert rows[(2, "vpl", "all")]["bayes_active_ceiling"] >= prior["bayes_active_ceiling"]
    assert rows[(0, "btl", "all")]["success"] == rows[(2, "btl", "all")]["success"]
    assert "reward_peak_distance_median" in rows[(2, "vpl", "all")]
    vpl = [e for e in result["episodes"] if e["policy"] == "vpl"]
    assert [len(e["asked"]) for e in vpl if e["user"] == 0] == [0, 2]
    assert all(e["queries"] is None for e in result["episodes"] if e["policy"] == "btl")


def test_evaluation_rebuilds_the_loops_own_training_users(finished) -> None:
    """``training_users`` (evaluation's way to a loop's users) gives the users the loop asked,
    and the peak benchmark scores a finished loop's reward model on every one of them."""
    options, _, _ = finished
    sealed = loop_run.shared_setup(options).users
    with hidden_knowledge("evaluation"):
        rebuilt = loop_run.training_users(options)
        assert [tuple(u.goal) for u in rebuilt] == [tuple(s.goal) for s in sealed]
    spec = importlib.util.spec_from_file_location(
        "reward_peak", Path(__file__).parents[1] / "benchmarks" / "reward_peak.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert loop_run.saved_options(options.out) == options
    args = argparse.Namespace(
        loop=options.out, data=None, model=None, population="continuous", posterior=["encoder"]
    )
    (row,) = bench.measure(args)["rows"]
    assert row["users"] == "all" and row["peak"]["users"] == options.users
    assert 0.0 <= row["peak"]["within_radius"] <= 1.0
    assert np.isfinite(row["true_family"]["median_cm"])
