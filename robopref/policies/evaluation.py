"""The evaluation protocol: policies serve new users, and what they achieve per group.

For ``users`` new users drawn from a population (each answering with its own labelling
model, :mod:`robopref.users.synthetic`), every policy is run ``episodes`` times on the same initial
states with the user's hidden goal (:func:`evaluate_loaded`):

* a VPL (latent) policy first asks the user k actively chosen queries from a fresh candidate
  pool and acts with the inferred z (:mod:`robopref.policies.personalize`);
* a BTL policy (z empty) and the oracle (the true goal appended) ask nothing.

Figures per policy and group (``all`` and each mode ``group_<i>``, :func:`result_rows`):
``success`` (share of episodes ending in ``info["is_success"]``), ``return`` (the user's own
per-step reward, :meth:`robopref.users.synthetic.SyntheticUser.reward`, summed over the
episode), and
``win_rate_vs_btl``: the user's own answers to "this policy's episode or the BTL policy's
episode on the same initial state?" (1 win, 0.5 tie, 0 loss), averaged; null without a BTL
policy. :func:`summarize` flattens one policy's rows into the figures a training history,
the loop's log and a sweep cell record (``success``, ``true_return``,
``success_group_<i>``, ...).

The one home of the protocol: ``robopref evaluate``
(:mod:`robopref.policies.evaluate_command`: options, table, plot, JSON), ``train-policy``'s
held-out check (:mod:`robopref.policies.callbacks`) and ``robopref loop``'s
(:mod:`robopref.loop.report`) all call it, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from robopref.data.queries import QueryPool
from robopref.envs.wrappers import SetDown
from robopref.policies import personalize
from robopref.policies.checkpoint import LoadedPolicy
from robopref.policies.personalize import episode_seed, new_user_inference, new_user_pool, new_users
from robopref.policies.rollout import make_eval_env, policy_env_kwargs, run_episode
from robopref.reward.active import POSTERIOR
from robopref.reward.base import RewardModel
from robopref.reward.peak import PeakFinder
from robopref.reward.typed_asking import QuestionMenu
from robopref.users.hidden import hidden_knowledge
from robopref.users.population import Population
from robopref.users.synthetic import SyntheticUser


def parse_queries(text: str | int | Sequence[int]) -> list[int]:
    """``"4,8,16"`` (or an int, or a list) as sorted distinct query budgets; a clear error
    for anything else."""
    if isinstance(text, int):
        items: list[Any] = [text]
    elif isinstance(text, str):
        items = [item.strip() for item in text.split(",") if item.strip()]
    else:
        items = list(text)
    try:
        ks = sorted({int(item) for item in items})
    except (TypeError, ValueError) as error:
        raise ValueError(f"--queries {text!r} must be integers like 4 or 4,8,16") from error
    if not ks or ks[0] < 0:
        raise ValueError(f"--queries {text!r}: give one or more budgets k >= 0, like 4,8,16")
    return ks


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def delivery_figures(records: list[dict[str, Any]]) -> dict[str, float]:
    """What the reward knows against what the policy serves, over episodes whose records
    carry ``peak_served``: ``delivery`` (the share whose learned reward peaks within the
    success radius of the user's goal), and each miss split by its stage:
    ``miss_inference`` (failed, the peak was off: z inference or the reward) and
    ``miss_policy`` (failed though the peak served the goal: the policy)."""
    served = np.array([bool(r["peak_served"]) for r in records if "peak_served" in r])
    success = np.array([bool(r["success"]) for r in records if "peak_served" in r])
    return {
        "delivery": float(served.mean()),
        "miss_inference": float((~success & ~served).mean()),
        "miss_policy": float((~success & served).mean()),
    }


def result_rows(
    records: list[dict[str, Any]],
    names: list[str],
    has_btl: bool,
    ceilings: list[dict[str, Any]] | None = None,
) -> list[dict]:
    """Success, return and win rate per query budget k, policy, overall (``all``) and per
    ``group_<i>``; with ``ceilings`` (continuous populations) also the same-answers and
    Bayes-active success ceilings and the median distance of their estimates to the goal;
    for policies served by a reward whose peak can be searched, :func:`delivery_figures`.

    A policy that asks nothing (BTL, oracle) has one set of episodes, shown at every k.
    """
    rows = []
    groups = sorted({r["group"] for r in records})
    labels = [("all", None)] + [(f"group_{g}", g) for g in groups if g >= 0]
    ks = sorted({r["queries"] for r in records if r["queries"] is not None}) or [0]
    for k in ks:
        for name in names:
            for label, group in labels:
                picked = [
                    r for r in records
                    if r["policy"] == name and group in (None, r["group"])
                    and r["queries"] in (None, k)
                ]  # fmt: skip
                wins = [r["win"] for r in picked if r["win"] is not None]
                row = {
                    "queries": k,
                    "policy": name,
                    "group": label,
                    "episodes": len(picked),
                    "success": float(np.mean([r["success"] for r in picked])),
                    "return": float(np.mean([r["return"] for r in picked])),
                    "win_rate_vs_btl": float(np.mean(wins)) if has_btl and wins else None,
                }
                seconds = [r["seconds"] for r in picked if "seconds" in r]
                if seconds:
                    row["answer_seconds"] = float(np.mean(seconds))
                peaks = [r["reward_peak_distance"] for r in picked if "reward_peak_distance" in r]
                if peaks:
                    row["reward_peak_distance_median"] = _median(peaks)
                    row.update(delivery_figures(picked))
                if ceilings is not None:
                    mine = [
                        c for c in ceilings if c["queries"] == k and group in (None, c["group"])
                    ]
                    row.update(
                        success_ceiling=_mean([c["same_answers_mass"] for c in mine]),
                        bayes_active_ceiling=_mean([c["bayes_active_mass"] for c in mine]),
                        ceiling_distance_median=_median([c["same_answers_distance"] for c in mine]),
                        bayes_active_distance_median=_median(
                            [c["bayes_active_distance"] for c in mine]
                        ),
                    )
                rows.append(row)
    return rows


def summarize(
    rows: list[dict[str, Any]],
    policy: str | None = None,
    win_rate: bool = False,
    delivery: bool = False,
) -> dict[str, Any]:
    """One policy's :func:`result_rows` (one query budget; ``policy``: which, when the rows
    hold several) as flat figures: ``success`` and ``true_return`` (group ``all``), with
    ``win_rate`` its ``win_rate_vs_btl``, then ``success_group_<i>`` per group; with
    ``delivery``, :func:`delivery_figures` where the rows have them (``delivery``,
    ``miss_inference``, ``miss_policy``, and per group ``..._group_<i>``)."""
    mine = [r for r in rows if policy is None or r["policy"] == policy]
    figures: dict[str, Any] = {"success": mine[0]["success"], "true_return": mine[0]["return"]}
    if win_rate:
        figures["win_rate_vs_btl"] = mine[0]["win_rate_vs_btl"]
    for row in mine[1:]:
        figures[f"success_{row['group']}"] = row["success"]
    if delivery:
        for row in mine:  # what the reward knows beside what the policy serves, per group
            suffix = "" if row["group"] == "all" else f"_{row['group']}"
            for key in ("delivery", "miss_inference", "miss_policy"):
                if key in row:
                    figures[f"{key}{suffix}"] = row[key]
    return figures


def evaluate_loaded(
    policies: list[tuple[LoadedPolicy, RewardModel | None]],
    reward: RewardModel | None,
    population: Population,
    users: int,
    queries: int | Sequence[int],
    strategy: str,
    episodes: int,
    pool_pairs: int,
    seed: int,
    keep_episodes: bool = False,
    query_source: str = personalize.QUERY_SOURCE,
    pool: QueryPool | None = None,
    posterior: str = POSTERIOR,
    menu: QuestionMenu | None = None,
) -> list[dict[str, Any]]:
    """One record per policy, query budget k (``queries``: one k or several), new user and
    episode: what ``robopref evaluate`` measures.

    The one home of the protocol (module docstring): ``robopref loop``'s held-out check
    calls it too, so the two cannot disagree. A latent policy's user is asked the largest k
    once; its z at a smaller k is the posterior after that many of the same answers.
    Records of a latent policy carry ``queries``, ``asked`` and ``answers`` (and, on tasks
    whose goals are table points, ``reward_peak_distance``: from the learned reward's peak
    under that z to the goal); those of a policy that asks nothing have ``queries`` None.
    ``keep_episodes`` adds each episode's ``features`` and the policy's ``z`` (in memory,
    not in the JSON). ``pool``: the candidate queries, if the caller built them already;
    ``posterior``: how z follows from the answers (:mod:`robopref.reward.active`);
    ``menu``: the question types asked (None: pairs of the pool). Each latent record
    carries ``seconds``, a person's documented time for its ``k`` answers.
    """
    ks = parse_queries(queries)
    env_id = policies[0][0].meta["env_id"]
    new = new_users(population, users, seed)
    if reward is not None and pool is None:
        latent = next((p for p, m in policies if m is reward), None)
        pool = new_user_pool(reward, seed, pool_pairs, source=query_source, policy=latent)
    envs = {
        p.name: make_eval_env(
            env_id, p.kind, m, set_down=SetDown.read(p.meta.get("set_down")),
            env_kwargs=policy_env_kwargs(p.meta),
        )
        for p, m in policies
    }  # fmt: skip
    finder = None
    if reward is not None and PeakFinder.supports(reward, envs[policies[0][0].name]):
        finder = PeakFinder(reward, envs[policies[0][0].name])
    records: list[dict[str, Any]] = []
    with hidden_knowledge("evaluation"):
        for u, user in enumerate(new):
            features: dict[tuple[str, int | None], list[np.ndarray]] = {}
            for policy, model in policies:
                inference = new_user_inference(
                    policy, model, user, u, pool, ks[-1], strategy, seed, posterior, menu
                )
                for k in ks if inference is not None else [None]:
                    z = None if inference is None else inference.means[k].astype(np.float32)
                    extra: dict[str, Any] = {"queries": k}
                    if inference is not None:
                        extra.update(
                            asked=inference.asked[:k],
                            answers=inference.answers[:k],
                            seconds=(menu or QuestionMenu()).seconds(inference.asked[:k]),
                        )
                        if finder is not None and model is reward:
                            distance, served = finder.delivery(z, user.goal)
                            extra.update(reward_peak_distance=distance, peak_served=served)
                    for e in range(episodes):
                        episode = run_episode(
                            envs[policy.name], policy.act, user.goal, z,
                            seed=episode_seed(seed, u, e),
                        )  # fmt: skip
                        features.setdefault((policy.name, k), []).append(episode.features)
                        record = {
                            "policy": policy.name,
                            "user": u,
                            "group": user.group,
                            "episode": e,
                            **extra,
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
    features: dict[tuple[str, int | None], list[np.ndarray]],
    records: list[dict[str, Any]],
    u: int,
    rng: np.random.Generator,
) -> None:
    """Fill in ``win`` of user ``u``'s records: the user's answer, this episode vs BTL's."""
    if ("btl", None) not in features:
        return
    for record in records:
        if record["user"] != u or record["policy"] == "btl":
            continue
        mine = features[(record["policy"], record["queries"])][record["episode"]]
        theirs = features[("btl", None)][record["episode"]]
        record["win"] = float(user.answer((mine[1:], theirs[1:]), rng))
