"""The loop against the offline pipeline at the same answers per user, no hidden knowledge.

For each budget b (answers per training user) the offline pipeline collects once from the
loop's round-0 behaviour (:data:`robopref.loop.asking.GOAL_AGNOSTIC`, the same near
pairs; no population goals), b answers per user, trains the reward model and a PPO policy
of the same recipe and budget (``robopref train-policy``), and is checked exactly as the
loop checks itself each round (:func:`robopref.loop.report.heldout_check`: the same new
users, k = 4 active queries). The finished loop's per-round rows give its curve; both go in
one plot (``--out`` .png beside the JSON).

    python benchmarks/loop_vs_offline.py --loop runs/demo --budgets 16 32 48 \
        --json runs/bench/loop_vs_offline.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import robopref.envs  # noqa: F401  (registers the envs)
from robopref.data.collect import CollectOptions, collect_command
from robopref.data.rollouts import make_env
from robopref.files import write_json_atomic
from robopref.loop.asking import GOAL_AGNOSTIC, NEAR_SHARE
from robopref.loop.report import heldout_check, plot_history
from robopref.loop.run import LoopOptions, shared_setup
from robopref.policies.checkpoint import load_policy
from robopref.policies.train import TrainPolicyOptions, train_policy
from robopref.reward import load_reward_model
from robopref.reward.train_command import TrainRewardOptions, train_reward_command
from robopref.users.population import resolve_population


def offline_point(loop: LoopOptions, method: str, budget: int, folder: Path) -> dict[str, Any]:
    """Collect, fit and train ``method`` offline with ``budget`` answers per user; check it."""
    folder.mkdir(parents=True, exist_ok=True)
    data, reward, policy = folder / "data.npz", folder / f"{method}.pt", folder / f"policy_{method}"
    if not data.exists():
        mix = GOAL_AGNOSTIC
        collect_command(
            CollectOptions(
                env=loop.env, env_kwargs=loop.env_kwargs, population=loop.population,
                users=loop.users, queries_per_user=budget, episodes=loop.episodes,
                seed=loop.seed, out=str(data), expert_share=mix.expert_share,
                random_share=mix.random_share, hesitant_share=mix.hesitant_share,
                careless_share=mix.careless_share, missed_share=mix.missed_share,
                population_goal_share=0.0, near_share=NEAR_SHARE, progress=False,
            )
        )  # fmt: skip
    if not reward.exists():
        train_reward_command(
            TrainRewardOptions(data=str(data), model=method, out=str(reward), seed=loop.seed)
        )
    if not (policy / "model.zip").exists():
        train_policy(
            TrainPolicyOptions(
                reward=str(reward), data=str(data), steps=loop.steps, out=str(policy),
                name=method, seed=loop.seed, device="cpu", progress=False, eval_every=0,
                population=loop.population, overwrite=True,
            )
        )  # fmt: skip
    model = load_reward_model(reward)
    loaded = load_policy(policy, model)
    population = resolve_population(loop.population, make_env(loop.env)[0])
    pool = shared_setup(loop).pool
    return heldout_check(
        {method: (loaded, model)}, population, pool, loop.eval_users, loop.eval_episodes, loop.seed
    )[method]


def main() -> None:
    """Parse the options, run the offline points, write the JSON and the plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", default="runs/demo", help="a finished loop's folder")
    parser.add_argument("--budgets", type=int, nargs="+", default=[16, 32, 48])
    parser.add_argument("--methods", nargs="+", default=["vpl"])
    parser.add_argument("--work", default="runs/bench/offline", help="the offline runs' folder")
    parser.add_argument("--json", default="runs/bench/loop_vs_offline.json")
    args = parser.parse_args()
    state = json.loads((Path(args.loop) / "loop.json").read_text())
    fields = {f.name for f in dataclasses.fields(LoopOptions)}
    loop = LoopOptions(**{k: v for k, v in state["options"].items() if k in fields})
    offline: dict[str, list[tuple[int, float]]] = {}
    rows = []
    for method in args.methods:
        for budget in args.budgets:
            began = time.perf_counter()
            figures = offline_point(loop, method, budget, Path(args.work) / f"b{budget}")
            wall = round(time.perf_counter() - began, 1)
            rows.append({"method": method, "answers_per_user": budget, **figures, "wall_s": wall})
            offline.setdefault(method, []).append((budget, figures["success"]))
            print(f"offline {method} {budget} answers/user: success {figures['success']:.2f} "
                  f"({wall} s)", flush=True)  # fmt: skip
    for row in state["history"]:
        for method, figures in row["methods"].items():
            print(f"loop    {method} {row['answers_per_user']} answers/user: success "
                  f"{figures['success']:.2f}")  # fmt: skip
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, {"loop": args.loop, "offline": rows, "loop_history": state["history"]})
    plot_history(state["history"], out.with_suffix(".png"), offline)
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
