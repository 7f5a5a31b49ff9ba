"""The loop's per-round check on held-out users, its log line and its plot.

Held-out users are *new* users, drawn and served exactly as ``robopref evaluate`` draws and
serves them (:func:`robopref.policies.evaluation.evaluate_loaded`, same seed, same candidate pool,
k active queries): the last round's row is what ``robopref evaluate --users N --episodes E
--seed S`` prints for the loop's final policies. Per method it reports the success (overall
and per group), the users' own return of the episodes, the learned reward of the same
episodes under the z the policy acted with (a learned return that rises while the true one
does not shows reward over-optimisation), and the reward model's accuracy on the held-out
users' answers to pairs of the goal-agnostic pool after k active queries, beside the Bayes
ceiling. Only this module and the oracle read hidden knowledge.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from robopref.data.dataset import PreferenceDataset
from robopref.data.queries import QueryPool
from robopref.files import save_figure_atomic
from robopref.policies.checkpoint import LoadedPolicy
from robopref.policies.evaluation import evaluate_loaded, result_rows, summarize
from robopref.policies.latent_env import relabel
from robopref.policies.personalize import POOL_PAIRS, QUERIES, STRATEGY, new_users
from robopref.reward.base import RewardModel
from robopref.reward.evaluation import evaluate_few_shot
from robopref.reward.inputs import reward_view
from robopref.reward.latent_usage import latent_usage
from robopref.users.hidden import hidden_knowledge
from robopref.users.population import Population
from robopref.users.synthetic import label_pairs

#: pairs of the goal-agnostic pool each held-out user answers for the accuracy check
ACCURACY_PAIRS = 16


def heldout_accuracy(
    model: RewardModel, population: Population, pool: QueryPool, users: int, seed: int
) -> dict[str, float]:
    """Pairwise accuracy (k active queries, leave one out) of ``model`` on ``users`` new
    users' answers to ``ACCURACY_PAIRS`` pairs each of ``pool``, and the Bayes ceiling."""
    rng = np.random.default_rng([seed, 17])
    with hidden_knowledge("evaluation"):
        new = new_users(population, users, seed)
        index = np.concatenate([pool.draw(ACCURACY_PAIRS, rng) for _ in new])
        owner = np.repeat(np.arange(len(new)), ACCURACY_PAIRS)
        asked = pool.subset(index)
        labels = label_pairs(new, owner, asked.feat_a, asked.feat_b, rng)
        data = PreferenceDataset.from_answers(asked, labels, owner, env_id=pool.env_id, users=new)
    view = reward_view(data, "features")
    rows = evaluate_few_shot(model, view, [QUERIES], [STRATEGY], seed=seed, progress=False)
    row = next(r for r in rows if r["subset"] == "all")
    figures = {"accuracy": float(row["accuracy"]), "ceiling": float(row["ceiling"])}
    if model.latent_dim > 0:  # the latent diagnostics, each user given all its answers
        with hidden_knowledge("evaluation"):
            usage = latent_usage(model, view)
        figures.update(active_dims=usage["active_dims"], latent_dims=model.latent_dim,
                       group_bits=usage["group_bits"])  # fmt: skip
    return figures


def heldout_check(
    policies: dict[str, tuple[LoadedPolicy, RewardModel]],
    population: Population,
    pool: QueryPool,
    users: int,
    episodes: int,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """Per method: success (``success``, ``success_group_<g>``), ``true_return``,
    ``learned_return``, ``win_rate_vs_btl``, ``accuracy`` and ``ceiling`` on new users (and for a
    latent model ``active_dims`` of ``latent_dims`` and ``group_bits``, the lower bound on
    I(z; group) of :mod:`robopref.reward.latent_usage`); where
    the reward's peak can be searched, ``delivery``, ``miss_inference`` and ``miss_policy``
    (and ``_group_<g>``: :func:`robopref.policies.evaluation.delivery_figures`)."""
    latent = [m for _, m in policies.values() if m.latent_dim > 0]
    records = evaluate_loaded(
        list(policies.values()), latent[0] if latent else None, population, users, QUERIES,
        STRATEGY, episodes, POOL_PAIRS, seed, keep_episodes=True,
    )  # fmt: skip
    names = list(policies)
    rows = result_rows(records, names, "btl" in names)
    out: dict[str, dict[str, Any]] = {}
    for name, (_, model) in policies.items():
        entry = summarize(rows, name, win_rate=True, delivery=True)
        learned = []
        for record in (r for r in records if r["policy"] == name):
            feats = record["features"][1:]
            z = np.zeros((len(feats), model.latent_dim), np.float32)
            if record["z"] is not None:
                z[:] = record["z"]
            learned.append(float(relabel(model, feats, z).sum()))
        entry["learned_return"] = float(np.mean(learned))
        entry.update(heldout_accuracy(model, population, pool, users, seed))
        out[name] = entry
    return out


def format_round(row: dict[str, Any]) -> str:
    """One log line: the round, answers so far, and each method's held-out figures."""
    parts = [f"round {row['round'] + 1}/{row['rounds']}", f"{row['answers_per_user']} answers/user"]
    for name, fig in row["methods"].items():
        groups = " ".join(
            f"{k.removeprefix('success_group_')}:{v:.2f}"
            for k, v in fig.items()
            if k.startswith("success_group_")
        )
        parts.append(
            f"{name}: success {fig['success']:.2f}"
            + (f" ({groups})" if groups else "")
            + f" return {fig['true_return']:.1f} learned {fig['learned_return']:.1f}"
            f" acc {fig['accuracy']:.3f}/{fig['ceiling']:.3f}" + _latent_part(fig)
        )
    parts.append(f"{row['wall_s']:.0f} s")
    return "  ".join(parts)


def _latent_part(figures: dict[str, Any]) -> str:
    """`` z 3/4 active, I(z; group) 0.95 b`` for a latent model's figures, else ``""``."""
    if "active_dims" not in figures:
        return ""
    bits = figures.get("group_bits")
    information = "" if bits is None else f", I(z; group) {bits:.2f} b"
    return f" z {figures['active_dims']}/{figures['latent_dims']} active{information}"


def plot_history(history: list[dict[str, Any]], path: Path, offline: dict | None = None) -> None:
    """Held-out success against answers per user, one line per method (and, when given,
    ``offline``: ``{name: [(answers, success), ...]}`` from the offline pipeline)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    names = list(dict.fromkeys(n for row in history for n in row["methods"]))
    for name in names:
        xs = [row["answers_per_user"] for row in history if name in row["methods"]]
        ys = [row["methods"][name]["success"] for row in history if name in row["methods"]]
        ax.plot(xs, ys, marker="o", label=f"loop {name}")
    for name, points in (offline or {}).items():
        ax.plot(*zip(*points, strict=True), marker="s", linestyle="--", label=f"offline {name}")
    ax.set_xlabel("answers per training user")
    ax.set_ylabel("held-out success (new users)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure_atomic(fig, path)
