"""``robopref evaluate``: personalized policies vs the standard RLHF policy vs the oracle.

For ``--users`` new users drawn from ``--population`` (by default the population the policies
were trained for, as their ``meta.json`` records it; policies or a reward model that
disagree need an explicit ``--population``) (each answering with its own labelling
model, :mod:`robopref.users.synthetic`), every policy in ``--policy`` is run ``--episodes`` times on
the same initial states with the user's hidden goal:

* a VPL (latent) policy first asks the user ``--queries`` actively chosen queries from a
  fresh candidate pool and acts with the inferred z (:func:`robopref.policies.personalize`);
* a BTL policy (z empty) and the oracle (the true goal appended) ask nothing.

Figures per policy and group (``all`` and each mode ``group_<i>``): ``success`` (share of
episodes ending in ``info["is_success"]``), ``return`` (the user's own per-step reward,
:meth:`robopref.users.synthetic.SyntheticUser.reward`, summed over the episode), and
``win_rate_vs_btl``: the user's own answers to "this policy's episode or the BTL policy's
episode on the same initial state?" (1 win, 0.5 tie, 0 loss), averaged; null without a BTL
policy among ``--policy``. Output: a printed table, ``--json`` and a bar plot beside it.

The protocol itself (the episodes and the figures) is the library's,
:mod:`robopref.policies.evaluation`; this command chooses the policies, reward models and
population, and writes the table, the JSON and the plot.

Reward models: ``--reward`` for the latent (VPL) policies, by default the one they record;
``--btl-reward`` for the BTL policies, by default the one each records (found relative to
its policy folder, see :func:`robopref.policies.checkpoint.read_meta`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robopref.data.queries import QueryPool
from robopref.data.rollouts import make_env
from robopref.files import atomic_path, check_output, write_json_atomic
from robopref.policies import personalize
from robopref.policies.checkpoint import (
    LoadedPolicy,
    existing_reward,
    load_policy,
    read_meta,
    recorded_population,
)
from robopref.policies.evaluation import evaluate_loaded, parse_queries, result_rows
from robopref.policies.personalize import new_user_pool, new_users, typed_candidates
from robopref.policies.rollout import policy_env_kwargs
from robopref.reward import load_reward_model
from robopref.reward.active import PAIR_STRATEGIES, POSTERIOR, POSTERIOR_HELP, POSTERIORS
from robopref.reward.base import RewardModel
from robopref.reward.nets import resolve_device
from robopref.reward.typed_asking import QuestionMenu, parse_menu
from robopref.users.ceiling import has_ceiling, user_ceilings
from robopref.users.ceiling_typed import typed_user_ceilings
from robopref.users.hidden import hidden_knowledge
from robopref.users.population import GOAL_SPACE, Population, resolve_population
from robopref.users.question_types import load_answer_costs

DEMO_POLICIES = ["runs/demo/policy_vpl", "runs/demo/policy_btl", "runs/demo/policy_oracle"]


@dataclass
class EvaluateOptions:
    """Evaluate trained policies on new users (defaults: the demo's three policies)."""

    policy: list[str] = field(
        default_factory=lambda: list(DEMO_POLICIES), metadata={"help": "policy folders"}
    )
    reward: str = field(
        default="",
        metadata={
            "help": "the latent (VPL) policies' reward model (empty: the one their meta.json "
            "records)"
        },
    )
    btl_reward: str = field(
        default="",
        metadata={
            "help": "the BTL policies' reward model (empty: the one their meta.json records)"
        },
    )
    population: str = field(
        default="",
        metadata={
            "help": "population name or file of the new users (empty: the one the policies "
            "were trained for, from their meta.json)"
        },
    )
    users: int = field(default=20, metadata={"help": "new users drawn"})
    queries: str = field(
        default=str(personalize.QUERIES),
        metadata={"help": "queries asked of each new user: one k or several (4,8,16)"},
    )
    strategy: str = field(
        default=personalize.STRATEGY,
        metadata={"help": "active, random, or sets (VPL's own selection; one --queries)"},
    )
    episodes: int = field(default=2, metadata={"help": "episodes per user and policy"})
    pool_pairs: int = field(
        default=personalize.POOL_PAIRS, metadata={"help": "candidate queries in the pool"}
    )
    posterior: str = field(default=POSTERIOR, metadata={"help": POSTERIOR_HELP})
    question: str = field(
        default="pair",
        metadata={
            "help": "the question types asked, comma-separated, each TYPE or TYPE:ITEMS: "
            "pair, weak-pair, best-of:4, ranking:4 (several: the most informative of any "
            "type is asked each time)"
        },
    )
    question_items: str = field(
        default="segments",
        metadata={"help": "what a question shows: segments, or end-states (each one's last state)"},
    )
    per_second: bool = field(
        default=False,
        metadata={"help": "choose questions by information per second of the person's time"},
    )
    costs: str = field(
        default="",
        metadata={
            "help": "a study's report.json: its measured seconds per answer replace the "
            "documented ones (--per-second, and the seconds reported)"
        },
    )
    query_source: str = field(
        default=personalize.QUERY_SOURCE,
        metadata={
            "help": "pool (goal-agnostic behaviour) or policy (also the latent policy's own "
            "episodes under candidate z: what the robot would do for different people)"
        },
    )
    json: str = field(default="runs/demo/evaluate.json", metadata={"help": "JSON to write"})
    seed: int = field(default=0, metadata={"help": "seed of users, queries and episodes"})
    device: str = field(
        default="cpu",
        metadata={
            "help": "auto, cpu or cuda: where the policies and reward models run (cpu: the "
            "README's figures)"
        },
    )
    overwrite: bool = field(
        default=False, metadata={"help": "replace an existing --json report (and its .png)"}
    )


def latent_reward_path(options: EvaluateOptions, metas: dict[str, dict[str, Any]]) -> str | None:
    """The VPL policies' reward model: ``--reward``, else the one they record (None when no
    policy has a user latent); a clear error when they record different ones."""
    latent = {f: m for f, m in metas.items() if m["kind"] == "latent" and int(m["latent_dim"])}
    if not latent:
        return None
    if options.reward:
        return existing_reward(options.reward, "--reward", next(iter(latent)))
    recorded = {str(m["reward_path"]) for m in latent.values()}
    if len({os.path.realpath(path) for path in recorded}) > 1:
        raise ValueError(
            f"the latent policies record different reward models {sorted(recorded)}: "
            "evaluate them one at a time, or pass --reward"
        )
    folder = next(iter(latent))
    return existing_reward(recorded.pop(), "--reward", folder)


def _load(
    folders: list[str], reward: RewardModel | None, device: str, btl_reward: str = ""
) -> list[tuple[LoadedPolicy, RewardModel | None]]:
    loaded = []
    for folder in folders:
        meta = read_meta(folder)
        if meta["kind"] in ("oracle", "plain"):
            loaded.append((load_policy(folder, device=device), None))
        elif int(meta["latent_dim"]) == 0:
            path = existing_reward(btl_reward or str(meta["reward_path"]), "--btl-reward", folder)
            model = load_reward_model(path, device=device)
            loaded.append((load_policy(folder, model, device=device), model))
        else:
            if reward is None:
                raise FileNotFoundError(f"{folder} needs its reward model: pass --reward")
            loaded.append((load_policy(folder, reward, device=device), reward))
    return loaded


def default_population(
    metas: dict[str, dict[str, Any]], reward: RewardModel | None = None, given: str = ""
) -> str:
    """``given`` (``--population``) if any; else the one population the policies (their
    ``meta.json``'s options) and the reward model (its ``meta``, where recorded) were made
    for. A clear error when they record none, or disagree."""
    if given:
        return given
    recorded = {folder: recorded_population(meta) for folder, meta in metas.items()}
    if reward is not None and reward.meta.get("population"):
        recorded["the reward model"] = str(reward.meta["population"])
    known = {source: pop for source, pop in recorded.items() if pop}
    # a skill trained on the goal space has no users of its own: the others' users count
    users_of = {source: pop for source, pop in known.items() if pop != GOAL_SPACE}
    known = users_of or known
    if not known:
        raise ValueError(
            f"{', '.join(metas)} record(s) no population they were trained for: pass "
            "--population NAME|FILE (e.g. --population two-modes)"
        )
    if len(set(known.values())) > 1:
        shown = ", ".join(f"{source}: {pop}" for source, pop in known.items())
        raise ValueError(
            f"the policies and reward model were made for different populations ({shown}): "
            "pass --population NAME|FILE to choose the new users"
        )
    return next(iter(known.values()))


def check_strategy(strategy: str, ks: list[int], menu: QuestionMenu) -> None:
    """Refuse, before any work, a query strategy this evaluation cannot ask by."""
    if strategy not in PAIR_STRATEGIES:
        raise ValueError(f"--strategy {strategy!r}: use one of {', '.join(PAIR_STRATEGIES)}")
    if strategy == "sets" and (len(ks) != 1 or not menu.pairs_only):
        raise ValueError(
            "--strategy sets chooses one set of pair questions for one budget (the best set "
            f"of k is not the first k of a larger one's): give one --queries (not {ks}) and "
            "pair questions"
        )


def evaluate(options: EvaluateOptions) -> dict[str, Any]:
    """Run the evaluation described by ``options``; returns the JSON document."""
    torch.set_num_threads(1)
    if options.users < 1 or options.episodes < 1:
        raise ValueError("--users and --episodes must be at least 1")
    if options.query_source not in personalize.QUERY_SOURCES:
        raise ValueError(
            f"--query-source {options.query_source!r}: use one of {personalize.QUERY_SOURCES}"
        )
    if options.posterior not in POSTERIORS:
        raise ValueError(f"--posterior {options.posterior!r}: use one of {POSTERIORS}")
    ks = parse_queries(options.queries)
    costs = load_answer_costs(options.costs) if options.costs else None
    menu = parse_menu(options.question, options.question_items, options.per_second, costs)
    check_strategy(options.strategy, ks, menu)
    device = str(resolve_device(options.device))
    metas = {f: read_meta(f) for f in options.policy}
    reward_path = latent_reward_path(options, metas)
    reward = None if reward_path is None else load_reward_model(reward_path, device=device)
    population_name = default_population(metas, reward, options.population)
    policies = _load(options.policy, reward, device, options.btl_reward)
    names = [p.name for p, _ in policies]
    if len(set(names)) != len(names):
        raise ValueError(f"policy names {names} repeat: retrain one with --name")
    env_ids = {p.meta["env_id"] for p, _ in policies}
    if len(env_ids) != 1:
        raise ValueError(f"the policies were trained on different tasks {sorted(env_ids)}")
    env_id = env_ids.pop()
    kwargs = [policy_env_kwargs(p.meta) for p, _ in policies]
    if any(k != kwargs[0] for k in kwargs):
        raise ValueError(f"the policies were trained on differently built envs {kwargs}")
    raw_env, _ = make_env(env_id, kwargs[0])
    population = resolve_population(population_name, raw_env)
    began = time.perf_counter()
    pool = None
    if reward is not None:
        latent = next(p for p, m in policies if m is reward)
        pool = new_user_pool(
            reward, options.seed, options.pool_pairs, source=options.query_source, policy=latent
        )
    records = evaluate_loaded(
        policies, reward, population, options.users, ks, options.strategy,
        options.episodes, options.pool_pairs, options.seed, query_source=options.query_source,
        pool=pool, posterior=options.posterior, menu=menu,
    )  # fmt: skip
    ceilings = None
    if pool is not None and has_ceiling(population):
        ceilings = _ceilings(population, pool, records, options, ks, menu, reward)
    has_btl = "btl" in names
    result = {
        "env_id": env_id,
        "population": population_name,
        "users": options.users,
        "queries": ks,
        "strategy": options.strategy,
        "query_source": options.query_source,
        "posterior": options.posterior,
        "question": menu.describe(),
        "episodes_per_user": options.episodes,
        "seed": options.seed,
        "wall_s": round(time.perf_counter() - began, 1),
        "results": result_rows(records, names, has_btl, ceilings),
        "episodes": records,
    }
    return result


def _ceilings(
    population: Population,
    pool: QueryPool,
    records: list[dict[str, Any]],
    options: EvaluateOptions,
    ks: list[int],
    menu: QuestionMenu,
    reward: RewardModel,
) -> list[dict[str, Any]]:
    """:func:`robopref.users.ceiling.user_ceilings` (pairs) or
    :func:`robopref.users.ceiling_typed.typed_user_ceilings` (any other menu) from the answers
    the first latent policy's users gave (episode 0's record at the largest k holds them)."""
    latent = next(r["policy"] for r in records if r["queries"] is not None)
    answered = {
        r["user"]: (r["asked"], r["answers"])
        for r in records
        if r["policy"] == latent and r["queries"] == ks[-1] and r["episode"] == 0
    }
    users = new_users(population, options.users, options.seed)
    answers = [answered[u] for u in range(len(users))]
    with hidden_knowledge("evaluation"):
        if not menu.pairs_only:
            candidates = typed_candidates(reward, pool, menu, options.seed)
            return typed_user_ceilings(population, candidates, users, answers, ks, options.seed)
        return user_ceilings(population, pool, users, answers, ks, options.seed)


def format_table(rows: list[dict[str, Any]]) -> str:
    """The results as an aligned text table (with the ceilings where there are any)."""
    ceiling = any(r.get("success_ceiling") is not None for r in rows)
    delivery = any("delivery" in r for r in rows)
    head = f"{'k':>3} {'policy':<10} {'group':<9} {'success':>8} {'return':>9} {'win vs btl':>11}"
    if delivery:
        head += f" {'delivery':>8} {'miss z':>6} {'miss pi':>7}"
    if ceiling:
        head += f" {'ceiling':>8} {'bayes':>6} {'est cm':>7} {'peak cm':>8}"
    lines = [head]
    for r in rows:
        win = "-" if r["win_rate_vs_btl"] is None else f"{r['win_rate_vs_btl']:.2f}"
        line = (
            f"{r['queries']:>3} {r['policy']:<10} {r['group']:<9} {r['success']:>8.2f} "
            f"{r['return']:>9.1f} {win:>11}"
        )
        if delivery:
            line += (
                f" {r['delivery']:>8.2f} {r['miss_inference']:>6.2f} {r['miss_policy']:>7.2f}"
                if "delivery" in r
                else f" {'-':>8} {'-':>6} {'-':>7}"
            )
        if ceiling:
            peak = r.get("reward_peak_distance_median")
            line += (
                f" {r['success_ceiling']:>8.2f} {r['bayes_active_ceiling']:>6.2f}"
                f" {100 * r['ceiling_distance_median']:>7.1f}"
                f" {'-' if peak is None else f'{100 * peak:.1f}':>8}"
            )
        lines.append(line)
    return "\n".join(lines)


def plot_results(rows: list[dict[str, Any]], path: Path) -> None:
    """The results as a PNG (atomically): bars of success per policy and group for one k;
    success against k per policy (with the ceilings, where there are any) for several."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = sorted({r["queries"] for r in rows})
    if len(ks) > 1:
        fig, ax = plt.subplots(figsize=(5.2, 3.4))
        overall = [r for r in rows if r["group"] == "all"]
        for policy in dict.fromkeys(r["policy"] for r in overall):
            mine = [r for r in overall if r["policy"] == policy]
            ax.plot(ks, [r["success"] for r in mine], "o-", label=policy)
        for key, label, style in (
            ("success_ceiling", "same-answers ceiling", "k--"),
            ("bayes_active_ceiling", "Bayes-active ceiling", "k:"),
        ):
            first = [r for r in overall if r["policy"] == overall[0]["policy"]]
            if first[0].get(key) is not None:
                ax.plot(ks, [r[key] for r in first], style, label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("queries asked of each new user (k)")
    else:
        policies = list(dict.fromkeys(r["policy"] for r in rows))
        groups = list(dict.fromkeys(r["group"] for r in rows))
        width = 0.8 / len(groups)
        fig, ax = plt.subplots(figsize=(1.8 + 1.4 * len(policies), 3.2))
        for j, group in enumerate(groups):
            values = [
                next((r["success"] for r in rows if r["policy"] == p and r["group"] == group), 0.0)
                for p in policies
            ]
            ax.bar(np.arange(len(policies)) + j * width, values, width, label=group)
        ax.set_xticks(np.arange(len(policies)) + 0.4 - width / 2, policies)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success on new users")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as temp:
        fig.savefig(temp, dpi=100)
    plt.close(fig)


def check_report(out: Path, overwrite: bool) -> None:
    """Refuse, before the evaluation, a report (``out`` or its ``.png``) that exists (unless
    ``overwrite``) or cannot be written."""
    png = out.with_suffix(".png")
    exists = out.exists() or png.exists()
    check_output(out, overwrite, what="evaluation report", flag="--json", exists=exists)


def evaluate_command(options: EvaluateOptions) -> dict[str, Any]:
    """CLI entry: evaluate, print the table, write the JSON and the plot."""
    out = Path(options.json)
    check_report(out, options.overwrite)
    result = evaluate(options)
    print(format_table(result["results"]))
    write_json_atomic(out, result)
    plot_results(result["results"], out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')} ({result['wall_s']} s)")
    return {"results": result["results"]}
