"""The reward-model half of the benchmark: every population of a sweep file x every reward
model x seeds, scored on held-out users from a few answers, with the latent diagnostics.

For each task and population of the sweep file (``benchmarks/sweeps/benchmark.yaml`` by
default): ``robopref collect`` (its defaults: 200 users x 16 pairs; the task entry's
``segment`` option if it has one), then for each model and seed ``robopref train-reward
--model M --seed S`` (the same 20% of users held out for every model), then on the
held-out users: pairwise accuracy from ``k`` active answers (``evaluate_few_shot``, the
reward model's likelihood posterior), overall, on contested pairs and per group, and for
latent models the active latent units and the lower bound on I(z; group) in bits
(evaluation-only readers of the users' groups). ``vpl-guard`` is VPL with ``--swap-guard
5``. Each (population, model, seed) writes ``OUT/<population>/<model>_s<seed>.json``
atomically and is skipped when present (the run resumes); the table is printed at the end
with mean +- the 95% Student-t half-width over seeds:

    python benchmarks/reward_benchmark.py --out runs/reward_benchmark
    python benchmarks/reward_benchmark.py --out runs/reward_benchmark --table-only \
        --plot benchmarks/figures/benchmark/reward_models.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from robopref.cli import main as robopref
from robopref.data.dataset import PreferenceDataset
from robopref.files import save_figure_atomic, write_json_atomic
from robopref.reward.base import RewardModel
from robopref.reward.checkpoint import load_payload
from robopref.reward.evaluate_command import heldout_users
from robopref.reward.evaluation import evaluate_few_shot
from robopref.reward.inputs import reward_input, reward_view
from robopref.reward.latent_usage import latent_usage
from robopref.reward.registry import load_reward_model
from robopref.sweep.grid import load_sweep
from robopref.sweep.table import mean_ci

MODELS = ("vpl", "vpl-guard", "lowrank", "mixture", "dpl", "btl")
#: train-reward options of each benchmark model beyond --model
MODEL_OPTIONS = {"vpl-guard": ["--model", "vpl", "--swap-guard", "5"]}


def populations(sweep_file: str) -> list[dict]:
    """The distinct (task, env_kwargs, population, segment) of the sweep file's cells."""
    seen, out = set(), []
    for cell in load_sweep(sweep_file).cells:
        key = (cell.task, cell.env_kwargs, cell.population)
        if key in seen:
            continue
        seen.add(key)
        name = Path(cell.population).stem if "/" in cell.population else cell.population
        slug = f"{cell.task.split('/')[-1].removesuffix('-v0')}-{name}"
        segment = cell.loop_options().get("segment")
        out.append({"slug": slug, "task": cell.task, "env_kwargs": list(cell.env_kwargs),
                    "population": cell.population, "segment": segment})  # fmt: skip
    return out


def collect(entry: dict, folder: Path) -> Path:
    """The population's dataset (collected once)."""
    path = folder / "data.npz"
    if not path.is_file():
        args = ["collect", "--env", entry["task"], "--population", entry["population"],
                "--out", str(path), "--seed", "0", "--progress", "false"]  # fmt: skip
        if entry["env_kwargs"]:
            args += ["--env-kwargs", *entry["env_kwargs"]]
        if entry["segment"]:
            args += ["--segment", str(entry["segment"])]
        if robopref(args) != 0:
            raise SystemExit(f"collect failed for {entry['slug']}")
    return path


def run_one(data: Path, folder: Path, model: str, seed: int, ks: list[int]) -> dict:
    """Train one model at one seed and score it on the held-out users."""
    checkpoint = folder / f"{model}_s{seed}.pt"
    if not checkpoint.is_file():
        kind = MODEL_OPTIONS.get(model, ["--model", model])
        args = ["train-reward", "--data", str(data), "--out", str(checkpoint), "--seed",
                str(seed), "--device", "cpu", *kind]  # fmt: skip
        if robopref(args) != 0:
            raise SystemExit(f"train-reward failed: {args}")
    reward, test = heldout_view(data, checkpoint)
    result: dict = {"model": model, "seed": seed, "users": test.n_users, "accuracy": {}}
    rows = evaluate_few_shot(reward, test, ks, ["active"], progress=False)
    for row in rows:
        result["accuracy"][f"{row['subset']}@{row['k']}"] = row["accuracy"]
    groups = sorted({int(g) for g in test.user_group if g >= 0})
    result["per_group"] = {}
    for group in groups if len(groups) > 1 else []:
        members = np.flatnonzero(test.user_group == group)
        rows = evaluate_few_shot(reward, test.subset_users(members), [max(ks)], ["active"],
                                 progress=False)  # fmt: skip
        result["per_group"][str(group)] = next(r["accuracy"] for r in rows if r["subset"] == "all")
    if reward.latent_dim:
        result.update(latent_figures(reward, test))
    return result


def heldout_view(data: Path, checkpoint: Path) -> tuple[RewardModel, PreferenceDataset]:
    """The reward model of ``checkpoint`` and its held-out users of ``data``, as it reads them."""
    reward = load_reward_model(checkpoint)
    dataset = reward_view(PreferenceDataset.load(data), reward_input(reward))
    test = dataset.subset_users(
        np.asarray(heldout_users(load_payload(checkpoint), dataset, str(checkpoint)))
    )
    return reward, test


def latent_figures(reward: RewardModel, test: PreferenceDataset) -> dict:
    """Active latent units and the bound on I(z; group) of a latent model's held-out users."""
    usage = latent_usage(reward, test)
    return {
        "active_dims": usage["active_dims"],
        "latent_dims": reward.latent_dim,
        "group_bits": usage.get("group_bits"),
        "group_entropy_bits": usage.get("group_entropy_bits"),
    }


def rescore_latents(out: Path, entries: list[dict]) -> None:
    """Recompute the latent diagnostics of every finished latent result (the accuracies
    stay): what ``--diagnostics-only`` does after the diagnostics change."""
    for entry in entries:
        folder = out / entry["slug"]
        for path in sorted(folder.glob("*_s*.json")):
            result = json.loads(path.read_text())
            if not result.get("latent_dims"):
                continue
            checkpoint = path.with_suffix(".pt")
            result.update(latent_figures(*heldout_view(folder / "data.npz", checkpoint)))
            write_json_atomic(path, result)


def _cell(values: list[float | None]) -> str:
    mean, half, n = mean_ci([v for v in values if v is not None])
    if n == 0:
        return "-"
    return f"{mean:.3f}" if n < 2 else f"{mean:.3f} ± {half:.3f}"


def table(out: Path, entries: list[dict], ks: list[int]) -> str:
    """The markdown table of every finished result under ``out`` (the best mean contested
    accuracy of each population in bold)."""
    k = max(ks)
    lines = [
        f"| population | model | seeds | all, k = 0 | all, k = {k} | contested, k = {k} | "
        f"per group, k = {k} | active z units | I(z; group) bits |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for entry in entries:
        finished = {
            model: [json.loads(p.read_text())
                    for p in sorted((out / entry["slug"]).glob(f"{model}_s*.json"))]
            for model in MODELS
        }  # fmt: skip
        contested = {
            model: mean_ci([r["accuracy"].get(f"contested@{k}") for r in results])[0]
            for model, results in finished.items() if results
        }  # fmt: skip
        best = max(contested.values(), default=None)
        for model, results in finished.items():
            if not results:
                continue
            groups = sorted({g for r in results for g in r["per_group"]}, key=int)
            per_group = " / ".join(_cell([r["per_group"].get(g) for r in results]).split(" ±")[0]
                                   for g in groups) or "-"  # fmt: skip
            latent = results[0].get("latent_dims")
            active = (f"{np.mean([r['active_dims'] for r in results]):.1f} of {latent}"
                      if latent else "-")  # fmt: skip
            mark = "**" if contested[model] == best else ""
            bits = _cell([r.get("group_bits") for r in results]) if latent else "-"
            entropy = results[0].get("group_entropy_bits")
            if latent and entropy:
                bits += f" (of {entropy:.2f})"
            lines.append(
                f"| {entry['slug']} | {model} | {len(results)} | "
                f"{_cell([r['accuracy'].get('all@0') for r in results])} | "
                f"{_cell([r['accuracy'].get(f'all@{k}') for r in results])} | "
                f"{mark}{_cell([r['accuracy'].get(f'contested@{k}') for r in results])}{mark} | "
                f"{per_group} | {active} | {bits} |"
            )
    return "\n".join(lines)


def plot(out: Path, entries: list[dict], k: int, path: Path) -> None:
    """Contested accuracy at ``k`` answers per population and model, mean and 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(12, 4.5))
    width = 0.8 / len(MODELS)
    for index, model in enumerate(MODELS):
        means, halves = [], []
        for entry in entries:
            values = [json.loads(p.read_text())["accuracy"].get(f"contested@{k}")
                      for p in sorted((out / entry["slug"]).glob(f"{model}_s*.json"))]  # fmt: skip
            mean, half, _ = mean_ci(values)
            means.append(mean)
            halves.append(0.0 if np.isnan(half) else half)
        positions = np.arange(len(entries)) + (index - (len(MODELS) - 1) / 2) * width
        axis.bar(positions, means, width, yerr=halves, capsize=2, label=model)
    axis.set_xticks(np.arange(len(entries)))
    axis.set_xticklabels([e["slug"].replace("-", "\n", 1) for e in entries], fontsize=8)
    axis.set_ylim(0.4, 1.1)
    axis.axhline(0.5, color="grey", linewidth=0.5)
    axis.set_ylabel(f"contested accuracy, {k} active answers")
    axis.set_title("Reward models on held-out users (mean and 95% interval over seeds)")
    axis.legend(ncol=len(MODELS), fontsize=8, loc="upper center")
    figure.tight_layout()
    save_figure_atomic(figure, path)  # closes it


def main() -> None:
    """Run what is missing, then print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default="benchmarks/sweeps/benchmark.yaml")
    parser.add_argument("--out", default="runs/reward_benchmark")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--ks", nargs="+", type=int, default=[0, 4])
    parser.add_argument("--only", nargs="*", default=[], help="population slugs to run")
    parser.add_argument("--table-only", action="store_true", help="print what is finished")
    parser.add_argument("--plot", default="", help="also save the contested accuracies here")
    parser.add_argument(
        "--diagnostics-only", action="store_true",
        help="recompute the latent diagnostics of the finished results, then print",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    entries = populations(args.sweep)
    if args.diagnostics_only:
        rescore_latents(out, entries)
    elif not args.table_only:
        chosen = [e for e in entries if not args.only or e["slug"] in args.only]
        data = {}
        for entry in chosen:
            (out / entry["slug"]).mkdir(parents=True, exist_ok=True)
            data[entry["slug"]] = collect(entry, out / entry["slug"])
        for seed in args.seeds:  # every population's first seed before any second one
            for entry in chosen:
                for model in args.models:
                    folder = out / entry["slug"]
                    path = folder / f"{model}_s{seed}.json"
                    if path.is_file():
                        continue
                    print(f"{entry['slug']}: {model} seed {seed}", file=sys.stderr, flush=True)
                    result = run_one(data[entry["slug"]], folder, model, seed, args.ks)
                    write_json_atomic(path, result)
    print(table(out, entries, args.ks))
    if args.plot:
        plot(out, entries, max(args.ks), Path(args.plot))


if __name__ == "__main__":
    main()
