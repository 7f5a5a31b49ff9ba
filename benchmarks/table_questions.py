"""TableSetting arrangements: does a new user's reward peak at their table after k questions?

For a VPL reward model on TableSetting (place interface), each of ``--users`` new users of
the ``arrangements`` population (8 types) answers up to ``max(--queries)`` questions of
``--question`` about ``--question-items`` (asked actively, as ``robopref evaluate`` asks:
the same pool, seeds and posterior), and the learned reward's peak over set tables under the
inferred z (:class:`robopref.reward.arrangement_peak.ArrangementPeakFinder`) is compared
with the user's arrangement: *delivery*, the share whose peak puts every object within the
success radius (4 cm) of its spot, per type. A policy that sets the reward's peak table
succeeds for exactly those users; this measures the reward and the questions, not a policy.

Beside it, the *same-answers ceiling*: the posterior over the 8 types from the same answers
under the true reward family and answer model (hidden knowledge: evaluation only), the mass
of its most probable type. And the documented seconds a person spends on the k answers.

    python benchmarks/table_questions.py runs/questions/table_vpl_rank_end.pt \
        --question ranking:4 --question-items end-states --json runs/questions/tq_rank.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from robopref.data.queries import build_query_pool
from robopref.data.rollouts import BehaviourMix, collect_rollouts, make_env
from robopref.envs.table_setting import SUCCESS_RADIUS
from robopref.policies.evaluation import parse_queries
from robopref.policies.personalize import (
    POOL_EPISODES,
    infer_new_user,
    new_users,
    typed_candidates,
)
from robopref.reward import load_reward_model
from robopref.reward.arrangement_peak import ArrangementPeakFinder
from robopref.reward.typed_asking import parse_menu
from robopref.tasks.table_setting import ARRANGEMENT_TYPES
from robopref.users.ceiling import answer_probs, goal_error
from robopref.users.ceiling import log_likelihood as pair_log_likelihood
from robopref.users.ceiling_typed import item_returns
from robopref.users.hidden import hidden_knowledge
from robopref.users.population import resolve_population


def type_posterior_mass(population, pool, candidates, menu, asked, answers) -> np.ndarray:
    """``(k + 1,)``: the largest type posterior mass before any answer and after each."""
    goals = np.array(list(ARRANGEMENT_TYPES.values()))
    log_post = np.zeros(len(goals))
    masses = [1.0 / len(goals)]
    beta = float(population.label_model.beta)
    for index, answer in zip(asked, answers, strict=True):
        if menu.pairs_only:
            query = pool.pair(index)
            probs = answer_probs(
                population, population.label_model, goals,
                query.feat_a[None], query.feat_b[None],
            )  # fmt: skip
            log_post = log_post + pair_log_likelihood(probs, np.array([answer], np.float64))
        else:
            kind, rows = candidates.question(index)
            returns = torch.as_tensor(item_returns(population, goals, candidates.user_items[rows]))
            given = torch.as_tensor(np.asarray(answer))
            given = given.expand(len(goals), *given.shape)
            if kind.kind != "ranking":
                given = given.to(torch.long if kind.kind == "best-of" else returns.dtype)
            log_post = log_post + kind.log_likelihood(returns, given, beta).numpy()
        post = np.exp(log_post - log_post.max())
        masses.append(float((post / post.sum()).max()))
    return np.array(masses)


def main() -> None:
    """Print delivery per type against k (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reward", type=Path, help="a VPL reward model on TableSetting")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--queries", default="1,2,4,8")
    parser.add_argument("--question", default="pair")
    parser.add_argument("--question-items", default="segments")
    parser.add_argument("--pool-pairs", type=int, default=512)
    parser.add_argument(
        "--segment", type=int, default=4, help="steps of the pool's segments (4: whole episodes)"
    )
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    began = time.perf_counter()
    ks = parse_queries(args.queries)
    menu = parse_menu(args.question, args.question_items)
    reward = load_reward_model(args.reward, expected_env="robopref/TableSetting-v0")
    env, _ = make_env("robopref/TableSetting-v0", reward.meta.get("env_kwargs") or {})
    population = resolve_population("arrangements", env)
    # the pool of `evaluate`, but of whole episodes: an end state is then a set table
    rng = np.random.default_rng(args.seed + 1)
    env_kwargs = reward.meta.get("env_kwargs") or {}
    rollouts = collect_rollouts(
        "robopref/TableSetting-v0", POOL_EPISODES, rng, BehaviourMix(), env_kwargs=env_kwargs
    )
    pool = build_query_pool(rollouts, args.pool_pairs, args.segment, rng)
    candidates = None if menu.pairs_only else typed_candidates(reward, pool, menu, args.seed)
    finder = ArrangementPeakFinder(reward)
    rows = []
    for u, user in enumerate(new_users(population, args.users, args.seed)):
        result = infer_new_user(reward, user, u, pool, ks[-1], "active", args.seed, menu=menu)
        with hidden_knowledge("evaluation"):
            masses = type_posterior_mass(
                population, pool, candidates, menu, result.asked, result.answers
            )
            for k in ks:
                peak = finder.peak(result.means[k])
                error = float(goal_error(env.unwrapped.spec.id, peak, user.goal))
                rows.append(
                    {"user": u, "type": user.group, "queries": k, "error": error,
                     "served": error < SUCCESS_RADIUS, "ceiling": masses[k],
                     "seconds": menu.seconds(result.asked[:k])}
                )  # fmt: skip
    print(f"{args.reward} asked {menu.describe()}, {args.users} new users, seed {args.seed}")
    print(f"{'k':>3} {'seconds':>8} {'delivery':>9} {'ceiling':>8}  per type (0-7)")
    for k in ks:
        mine = [r for r in rows if r["queries"] == k]
        per_type = [
            np.mean([r["served"] for r in mine if r["type"] == t]) for t in range(8)
        ]  # fmt: skip
        print(
            f"{k:>3} {np.mean([r['seconds'] for r in mine]):>8.0f} "
            f"{np.mean([r['served'] for r in mine]):>9.2f} "
            f"{np.mean([r['ceiling'] for r in mine]):>8.2f}  "
            + " ".join(f"{p:.2f}" for p in per_type)
        )
    print(f"({time.perf_counter() - began:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = {"reward": str(args.reward), "question": menu.describe(), "rows": rows}
        args.json.write_text(json.dumps(doc, indent=1, default=float))


if __name__ == "__main__":
    main()
