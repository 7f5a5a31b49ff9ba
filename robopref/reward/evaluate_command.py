"""``robopref eval-reward``: few-shot pairwise accuracy of reward models on held-out users.

For every checkpoint (``--model``, several to compare them), on the users that its training
run held out (the split is stored in the checkpoint), for each query budget k and strategy
(``active`` or ``random``): the accuracy on the user's pairs not used as context, on all
pairs and on contested pairs, absolute and as a fraction of the Bayes ceiling (see
:mod:`robopref.reward.evaluation`). Checkpoints with the same name (``--names``, default
the model kind) are averaged: train them with different ``--seed`` values.

Writes the JSON (``--json``; ``results``: one row per model, strategy, k and subset, averaged over
seeds; ``latent_usage``: per latent model, how many dimensions of z it uses and how far
apart its held-out groups lie, see :mod:`robopref.reward.latent_usage`; ``per_checkpoint``:
the rows of each file), prints a table, and draws next to the JSON
``<stem>.accuracy.png`` (accuracy against k) and ``<stem>.latent.png`` (held-out users'
posterior means, first two dimensions or the first two principal components, coloured by
their hidden group or goal). Existing outputs are refused unless ``--overwrite``; every
output is checked before the first checkpoint is evaluated.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robopref.data.dataset import PreferenceDataset
from robopref.files import atomic_path, check_output, write_json_atomic
from robopref.reward.active import (
    BALD_SAMPLES,
    PAIR_STRATEGIES,
    POSTERIOR,
    POSTERIOR_HELP,
    POSTERIORS,
    STRATEGIES,
)
from robopref.reward.base import RewardModel
from robopref.reward.data import dataset_fingerprint
from robopref.reward.evaluation import SUBSETS, evaluate_few_shot
from robopref.reward.inputs import reward_input, reward_view
from robopref.reward.latent_usage import format_usage, posterior_moments, usage_from_posteriors
from robopref.reward.nets import resolve_device
from robopref.reward.registry import load_checkpoint


@dataclass
class EvalRewardOptions:
    """Few-shot accuracy of reward models on held-out users; JSON, table and plots."""

    model: list[str] = field(
        default_factory=lambda: ["runs/reward/vpl.pt"],
        metadata={"help": "one or more reward-model checkpoints"},
    )
    data: str = field(default="data/plate.npz", metadata={"help": "the preference dataset"})
    queries: str = field(
        default="0,1,2,4,8,16", metadata={"help": "comma-separated query budgets k"}
    )
    strategy: str = field(
        default=",".join(STRATEGIES),
        metadata={"help": "active, random and/or sets (VPL's own selection of a query set)"},
    )
    json: str = field(default="runs/reward/eval.json", metadata={"help": "where to write JSON"})
    users: str = field(
        default="heldout",
        metadata={"help": "heldout (the checkpoint's test users) or all users of --data"},
    )
    names: list[str] = field(
        default_factory=list,
        metadata={"help": "a name per checkpoint (default: its model kind); same name = averaged"},
    )
    seed: int = field(default=0, metadata={"help": "seed of random contexts and z samples"})
    samples: int = field(
        default=BALD_SAMPLES, metadata={"help": "posterior samples for active queries"}
    )
    posterior: str = field(default=POSTERIOR, metadata={"help": POSTERIOR_HELP})
    device: str = field(default="cpu", metadata={"help": "auto, cpu or cuda"})
    plot: bool = field(default=True, metadata={"help": "draw the PNG plots"})
    threads: int = field(
        default=1,
        metadata={"help": "torch CPU threads, 0: torch's default (its work is many tiny steps)"},
    )
    overwrite: bool = field(
        default=False, metadata={"help": "replace an existing JSON and plots at --json"}
    )


def parse_list(text: str, what: str) -> list[str]:
    """Split ``"a,b"`` into ``["a", "b"]``; ``ValueError`` naming ``what`` if empty."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError(f"--{what} is empty")
    return items


def output_paths(options: EvalRewardOptions, any_latent: bool) -> list[Path]:
    """What the command writes: the JSON, then (with ``--plot``) its plots beside it."""
    out = Path(options.json)
    paths = [out]
    if options.plot:
        paths.append(out.with_suffix(".accuracy.png"))
        if any_latent:
            paths.append(out.with_suffix(".latent.png"))
    return paths


def heldout_users(payload: dict[str, Any], dataset: PreferenceDataset, path: str) -> list[int]:
    """The users a checkpoint's training run held out, checked against ``dataset``."""
    split = payload.get("split")
    if not split:
        raise ValueError(f"{path} stores no user split: evaluate it with --users all")
    if split["dataset_fingerprint"] != dataset_fingerprint(dataset):
        raise ValueError(
            f"{path} was trained on another dataset than this --data (its held-out users are "
            "unknown here): pass the training dataset, or --users all"
        )
    return [int(u) for u in split["test_users"]]


def average_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (model, strategy, k, subset): means (and std) over checkpoints."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["model"], row["strategy"], row["k"], row["subset"])].append(row)
    averaged = []
    for (model, strategy, k, subset), items in groups.items():
        acc = np.array([r["accuracy"] for r in items])
        ceiling = float(np.mean([r["ceiling"] for r in items]))
        averaged.append(
            {
                "model": model,
                "strategy": strategy,
                "k": k,
                "subset": subset,
                "accuracy": float(acc.mean()),
                "ceiling": ceiling,
                "fraction_of_ceiling": float(np.mean([r["fraction_of_ceiling"] for r in items])),
                "n_pairs": int(np.mean([r["n_pairs"] for r in items])),
                "accuracy_std": float(acc.std()),
                "n_seeds": len(items),
                "k_used": float(np.mean([r["k_used"] for r in items])),
                "latent": bool(items[0].get("latent", True)),
            }
        )
    return averaged


def format_table(rows: list[dict[str, Any]]) -> str:
    """The averaged rows as a text table: accuracy (fraction of ceiling) per subset."""
    lines = [
        f"{'model':<10} {'strategy':<8} {'k':>3}  "
        + "  ".join(f"{subset + ' acc (x ceiling)':<26}" for subset in SUBSETS)
        + "  seeds"
    ]
    cells: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        cells[(row["model"], row["strategy"], row["k"])][row["subset"]] = row
    for (model, strategy, k), by_subset in cells.items():
        parts = []
        for subset in SUBSETS:
            row = by_subset.get(subset)
            parts.append(
                f"{row['accuracy']:.3f} ({row['fraction_of_ceiling']:.3f}) n={row['n_pairs']:<5}"
                if row
                else "-"
            )
        seeds = next(iter(by_subset.values()))["n_seeds"]
        lines.append(
            f"{model:<10} {strategy:<8} {k:>3}  "
            + "  ".join(f"{p:<26}" for p in parts)
            + f"  {seeds}"
        )
    return "\n".join(lines)


def plot_accuracy(rows: list[dict[str, Any]], path: Path) -> None:
    """Accuracy against k, one line per model and strategy, one panel per subset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SUBSETS), figsize=(5.5 * len(SUBSETS), 4), squeeze=False)
    for ax, subset in zip(axes[0], SUBSETS, strict=True):
        chosen = [r for r in rows if r["subset"] == subset]
        keys = sorted({(r["model"], r["strategy"]) for r in chosen})
        # a model without a latent answers the same whatever the strategy: draw it once
        first = {}
        for model, strategy in keys:
            first.setdefault(model, strategy)
        latent = {r["model"]: r.get("latent", True) for r in chosen}
        keys = [(m, s) for m, s in keys if latent[m] or first[m] == s]
        for key in keys:
            line = sorted(
                (r for r in chosen if (r["model"], r["strategy"]) == key), key=lambda r: r["k"]
            )
            ks = [r["k"] for r in line]
            ax.errorbar(
                ks,
                [r["accuracy"] for r in line],
                yerr=[r["accuracy_std"] for r in line],
                marker="o",
                capsize=3,
                label=f"{key[0]} ({key[1]})" if latent[key[0]] else key[0],
            )
        if chosen:
            ax.axhline(np.mean([r["ceiling"] for r in chosen]), color="k", ls="--", label="ceiling")
        ax.set_xscale("symlog", linthresh=1)
        ticks = sorted({r["k"] for r in chosen})
        ax.set_xticks(ticks, [str(k) for k in ticks])
        ax.set_xlabel("queries k")
        ax.set_ylabel("pairwise accuracy")
        ax.set_title(f"{subset} pairs")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as temp:
        fig.savefig(temp, dpi=110)
    plt.close(fig)


def _two_dims(means: np.ndarray) -> tuple[np.ndarray, str]:
    if means.shape[1] <= 2:
        padded = np.pad(means, ((0, 0), (0, 2 - means.shape[1])))
        return padded, "z"
    centred = means - means.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T, "PC"


def _colourings(data: PreferenceDataset) -> list[tuple[np.ndarray, str]]:
    """What to colour users by: their group, else each of (up to) two goal coordinates."""
    if (data.user_group >= 0).any():
        return [(data.user_group, "group")]
    goal = np.asarray(data.user_goal, dtype=np.float64).reshape(data.n_users, -1)
    return [(goal[:, i], f"goal[{i}]") for i in range(min(goal.shape[1], 2))]


def plot_latents(panels: list[tuple[str, np.ndarray, PreferenceDataset]], path: Path) -> None:
    """Held-out users' posterior means per model, coloured by hidden group (or goal)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [
        (name, means, colour, label)
        for name, means, data in panels
        for colour, label in _colourings(data)
    ]
    fig, axes = plt.subplots(1, len(cells), figsize=(4.5 * len(cells), 4), squeeze=False)
    for ax, (name, means, colour, label) in zip(axes[0], cells, strict=True):
        points, axis = _two_dims(means)
        scatter = ax.scatter(points[:, 0], points[:, 1], c=colour, cmap="coolwarm", s=18)
        fig.colorbar(scatter, ax=ax, label=label)
        ax.set_xlabel(f"{axis}1")
        ax.set_ylabel(f"{axis}2")
        ax.set_title(f"{name}: held-out users' posterior means", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as temp:
        fig.savefig(temp, dpi=110)
    plt.close(fig)


def check_options(options: EvalRewardOptions) -> tuple[list[int], list[str]]:
    """The query budgets and strategies; ``ValueError`` naming the bad option and the fix."""
    try:
        ks = sorted({int(k) for k in parse_list(options.queries, "queries")})
    except ValueError as error:
        raise ValueError(f"--queries {options.queries!r} must be integers like 0,1,2,4") from error
    if ks[0] < 0:
        raise ValueError(f"--queries {options.queries!r}: query budgets must be 0 or more")
    strategies = parse_list(options.strategy, "strategy")
    unknown = set(strategies) - set(PAIR_STRATEGIES)
    if unknown:
        raise ValueError(f"--strategy {sorted(unknown)} unknown: use {','.join(PAIR_STRATEGIES)}")
    if options.users not in ("heldout", "all"):
        raise ValueError(f"--users {options.users!r} must be heldout or all")
    if options.names and len(options.names) != len(options.model):
        raise ValueError(
            f"--names gives {len(options.names)} names for {len(options.model)} models"
        )
    if options.threads < 0:
        raise ValueError(
            f"--threads {options.threads} is negative: pass 0 for torch's default or a "
            "positive number of CPU threads"
        )
    if options.samples < 1:
        raise ValueError(
            f"--samples {options.samples}: active queries need at least 1 posterior sample "
            f"(default {BALD_SAMPLES})"
        )
    if options.posterior not in POSTERIORS:
        raise ValueError(f"--posterior {options.posterior!r}: use one of {POSTERIORS}")
    return ks, strategies


def load_models(
    options: EvalRewardOptions, dataset: PreferenceDataset, device: torch.device
) -> list[tuple[str, str, RewardModel, dict[str, Any], PreferenceDataset]]:
    """``(path, name, model, checkpoint dict, users to score)`` per ``--model``, all checked."""
    loaded = []
    for i, path in enumerate(options.model):
        model, payload = load_checkpoint(path, expected_env=dataset.env_id, device=device)
        view = reward_view(dataset, reward_input(model))
        if view.obs_a.shape[-1] != model.obs_dim:
            raise ValueError(
                f"{path} reads {reward_input(model)} of size {model.obs_dim}, but {options.data} "
                f"has {view.obs_a.shape[-1]}: evaluate it on data of the task it was trained on"
            )
        name = options.names[i] if options.names else model.kind
        if options.users == "heldout":
            subset = view.subset_users(np.asarray(heldout_users(payload, view, path)))
        else:
            subset = view
        loaded.append((path, name, model, payload, subset))
    return loaded


def eval_reward_command(options: EvalRewardOptions) -> int:
    """Run ``robopref eval-reward`` with ``options``."""
    ks, strategies = check_options(options)
    device = resolve_device(options.device)
    if options.threads > 0:
        torch.set_num_threads(options.threads)
    dataset = PreferenceDataset.load(options.data)
    models = load_models(options, dataset, device)
    outputs = output_paths(options, any(model.latent_dim for _, _, model, _, _ in models))
    for path in outputs:
        check_output(path, options.overwrite, what="evaluation output", flag="--json")
    rows: list[dict[str, Any]] = []
    panels: list[tuple[str, np.ndarray, PreferenceDataset]] = []
    usage: dict[str, dict[str, Any]] = {}  # per latent model: collapse and group separation
    for path, name, model, payload, subset in models:
        print(f"eval-reward: {path} ({name}) on {subset.n_users} users of {options.data}")
        with torch.no_grad():
            found = evaluate_few_shot(
                model, subset, ks, strategies, seed=options.seed, n_samples=options.samples,
                posterior=options.posterior,
            )  # fmt: skip
        seed = payload.get("options", {}).get("seed")
        rows += [
            {"model": name, "checkpoint": str(path), "seed": seed, "latent": bool(model.latent_dim)}
            | row
            for row in found
        ]
        if model.latent_dim and name not in {p[0] for p in panels}:
            means, stds = posterior_moments(model, subset)
            panels.append((name, means, subset))
            usage[name] = usage_from_posteriors(means, stds, np.asarray(subset.user_group))
            print(format_usage(name, usage[name]))
    results = sorted(
        average_rows(rows), key=lambda r: (r["model"], r["strategy"], r["k"], r["subset"])
    )
    write_json_atomic(
        outputs[0],
        {
            "data": options.data,
            "env_id": dataset.env_id,
            "users": options.users,
            "queries": ks,
            "strategies": strategies,
            "posterior": options.posterior,
            "results": results,
            "latent_usage": usage,
            "per_checkpoint": rows,
        },
    )
    print(format_table(results))
    print(f"eval-reward: wrote {outputs[0]}")
    if options.plot:
        plot_accuracy(results, outputs[1])
        print(f"eval-reward: wrote {outputs[1]}")
        if panels:
            plot_latents(panels, outputs[2])
            print(f"eval-reward: wrote {outputs[2]}")
    return 0
