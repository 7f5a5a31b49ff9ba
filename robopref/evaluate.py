"""``robopref evaluate``: personalized policies vs the standard RLHF policy vs the oracle.

For ``--users`` new users drawn from ``--population`` (each answering with its own labelling
model, :mod:`robopref.users`), every policy in ``--policy`` is run ``--episodes`` times on
the same initial states with the user's hidden goal:

* a VPL (latent) policy first asks the user ``--queries`` actively chosen queries from a
  fresh candidate pool and acts with the inferred z (:func:`robopref.policies.personalize`);
* a BTL policy (z empty) and the oracle (the true goal appended) ask nothing.

Figures per policy and group (``all`` and each mode ``group_<i>``): ``success`` (share of
episodes ending in ``info["is_success"]``), ``return`` (the user's own per-step reward,
:meth:`robopref.users.SyntheticUser.reward`, summed over the episode), and
``win_rate_vs_btl``: the user's own answers to "this policy's episode or the BTL policy's
episode on the same initial state?" (1 win, 0.5 tie, 0 loss), averaged; null without a BTL
policy among ``--policy``. Output: a printed table, ``--json`` and a bar plot beside it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import robopref.envs  # noqa: F401  (registers the envs)
from robopref.files import atomic_path, check_output, write_json_atomic
from robopref.hidden import hidden_knowledge
from robopref.policies import personalize
from robopref.policies.checkpoint import LoadedPolicy, load_policy, read_meta
from robopref.policies.personalize import (
    episode_seed,
    new_user_pool,
    new_users,
    personalize_new_user,
)
from robopref.policies.rollout import make_eval_env, policy_env_kwargs, run_episode
from robopref.population import Population, resolve_population
from robopref.queries import make_env
from robopref.reward import load_reward_model
from robopref.reward.base import RewardModel
from robopref.reward.nets import resolve_device
from robopref.users import SyntheticUser

DEMO_POLICIES = ["runs/demo/policy_vpl", "runs/demo/policy_btl", "runs/demo/policy_oracle"]


@dataclass
class EvaluateOptions:
    """Evaluate trained policies on new users (defaults: the demo's three policies)."""

    policy: list[str] = field(
        default_factory=lambda: list(DEMO_POLICIES), metadata={"help": "policy folders"}
    )
    reward: str = field(
        default="runs/demo/vpl.pt", metadata={"help": "the latent policies' reward model"}
    )
    population: str = field(default="two-modes", metadata={"help": "population name or file"})
    users: int = field(default=20, metadata={"help": "new users drawn"})
    queries: int = field(
        default=personalize.QUERIES, metadata={"help": "queries asked of each new user (k)"}
    )
    strategy: str = field(
        default=personalize.STRATEGY, metadata={"help": "active or random queries"}
    )
    episodes: int = field(default=2, metadata={"help": "episodes per user and policy"})
    pool_pairs: int = field(
        default=personalize.POOL_PAIRS, metadata={"help": "candidate queries in the pool"}
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


def _load(
    folders: list[str], reward: RewardModel | None, device: str
) -> list[tuple[LoadedPolicy, RewardModel | None]]:
    loaded = []
    for folder in folders:
        meta = read_meta(folder)
        if meta["kind"] == "oracle":
            loaded.append((load_policy(folder, device=device), None))
        elif int(meta["latent_dim"]) == 0:
            model = load_reward_model(meta["reward_path"], device=device)
            loaded.append((load_policy(folder, model, device=device), model))
        else:
            if reward is None:
                raise FileNotFoundError(f"{folder} needs its reward model: pass --reward")
            loaded.append((load_policy(folder, reward, device=device), reward))
    return loaded


def result_rows(records: list[dict[str, Any]], names: list[str], has_btl: bool) -> list[dict]:
    """Success, return and win rate per policy, overall (``all``) and per ``group_<i>``."""
    rows = []
    groups = sorted({r["group"] for r in records})
    labels = [("all", None)] + [(f"group_{g}", g) for g in groups if g >= 0]
    for name in names:
        for label, group in labels:
            picked = [r for r in records if r["policy"] == name and group in (None, r["group"])]
            wins = [r["win"] for r in picked if r["win"] is not None]
            rows.append(
                {
                    "policy": name,
                    "group": label,
                    "episodes": len(picked),
                    "success": float(np.mean([r["success"] for r in picked])),
                    "return": float(np.mean([r["return"] for r in picked])),
                    "win_rate_vs_btl": float(np.mean(wins)) if has_btl and wins else None,
                }
            )
    return rows


def evaluate(options: EvaluateOptions) -> dict[str, Any]:
    """Run the evaluation described by ``options``; returns the JSON document."""
    torch.set_num_threads(1)
    if options.users < 1 or options.episodes < 1:
        raise ValueError("--users and --episodes must be at least 1")
    if options.query_source not in personalize.QUERY_SOURCES:
        raise ValueError(
            f"--query-source {options.query_source!r}: use one of {personalize.QUERY_SOURCES}"
        )
    device = str(resolve_device(options.device))
    metas = [read_meta(f) for f in options.policy]
    needs_reward = any(m["kind"] == "latent" and int(m["latent_dim"]) > 0 for m in metas)
    reward = load_reward_model(options.reward, device=device) if needs_reward else None
    policies = _load(options.policy, reward, device)
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
    population = resolve_population(options.population, raw_env)
    began = time.perf_counter()
    records = evaluate_loaded(
        policies, reward, population, options.users, options.queries, options.strategy,
        options.episodes, options.pool_pairs, options.seed, query_source=options.query_source,
    )  # fmt: skip
    has_btl = "btl" in names
    result = {
        "env_id": env_id,
        "population": options.population,
        "users": options.users,
        "queries": options.queries,
        "strategy": options.strategy,
        "query_source": options.query_source,
        "episodes_per_user": options.episodes,
        "seed": options.seed,
        "wall_s": round(time.perf_counter() - began, 1),
        "results": result_rows(records, names, has_btl),
        "episodes": records,
    }
    return result


def evaluate_loaded(
    policies: list[tuple[LoadedPolicy, RewardModel | None]],
    reward: RewardModel | None,
    population: Population,
    users: int,
    queries: int,
    strategy: str,
    episodes: int,
    pool_pairs: int,
    seed: int,
    keep_episodes: bool = False,
    query_source: str = personalize.QUERY_SOURCE,
) -> list[dict[str, Any]]:
    """One record per policy, new user and episode: what ``robopref evaluate`` measures.

    The one home of the protocol (module docstring): ``robopref loop``'s held-out check
    calls it too, so the two cannot disagree. ``keep_episodes`` adds each episode's
    ``features`` and the policy's ``z`` to its record (in memory, not in the JSON).
    """
    env_id = policies[0][0].meta["env_id"]
    new = new_users(population, users, seed)
    pool = None
    if reward is not None:
        latent = next((p for p, m in policies if m is reward), None)
        pool = new_user_pool(reward, seed, pool_pairs, source=query_source, policy=latent)
    envs = {
        p.name: make_eval_env(
            env_id, p.kind, m, set_down=p.meta.get("set_down", False),
            env_kwargs=policy_env_kwargs(p.meta),
        )
        for p, m in policies
    }  # fmt: skip
    records: list[dict[str, Any]] = []
    with hidden_knowledge("evaluation"):
        for u, user in enumerate(new):
            features: dict[str, list[np.ndarray]] = {}
            for policy, model in policies:
                z = personalize_new_user(policy, model, user, u, pool, queries, strategy, seed)
                for e in range(episodes):
                    episode = run_episode(
                        envs[policy.name], policy.act, user.goal, z, seed=episode_seed(seed, u, e)
                    )
                    features.setdefault(policy.name, []).append(episode.features)
                    record = {
                        "policy": policy.name,
                        "user": u,
                        "group": user.group,
                        "episode": e,
                        "success": episode.success,
                        "return": float(user.reward(episode.features[1:]).sum()),
                        "win": None,
                    }
                    if keep_episodes:
                        record.update(features=episode.features, z=z)
                    records.append(record)
            _judge(user, features, records, u, np.random.default_rng([seed, u, 13]))
    for env in envs.values():
        env.close()
    return records


def _judge(
    user: SyntheticUser,
    features: dict[str, list[np.ndarray]],
    records: list[dict[str, Any]],
    u: int,
    rng: np.random.Generator,
) -> None:
    """Fill in ``win`` of user ``u``'s records: the user's answer, this episode vs BTL's."""
    if "btl" not in features:
        return
    for record in records:
        if record["user"] != u or record["policy"] == "btl":
            continue
        mine = features[record["policy"]][record["episode"]]
        theirs = features["btl"][record["episode"]]
        record["win"] = float(user.answer((mine[1:], theirs[1:]), rng))


def format_table(rows: list[dict[str, Any]]) -> str:
    """The results as an aligned text table."""
    lines = [f"{'policy':<10} {'group':<9} {'success':>8} {'return':>9} {'win vs btl':>11}"]
    for r in rows:
        win = "-" if r["win_rate_vs_btl"] is None else f"{r['win_rate_vs_btl']:.2f}"
        lines.append(
            f"{r['policy']:<10} {r['group']:<9} {r['success']:>8.2f} {r['return']:>9.1f} {win:>11}"
        )
    return "\n".join(lines)


def plot_results(rows: list[dict[str, Any]], path: Path) -> None:
    """Bar plot of success per policy and group, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
