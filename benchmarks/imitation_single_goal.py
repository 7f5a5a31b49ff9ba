"""robopref's loop against imitation's preference comparisons on one user type (issue 11).

Everyone wants the plate at (0.20, 0.15) (``benchmarks/populations/plate_single_goal.yaml``).
Both sides get the same budget: 1,000 answers in all, 300k PPO steps of robopref's recipe,
the same PlatePlacement env under the same ``SetDownOnContact`` primitive (contact and place,
robopref's policies' default), and the same
user: robopref's :class:`~robopref.users.synthetic.SyntheticUser` reward, answering with Boltzmann
noise of the same rationality (robopref's ``beta = 20`` on a segment's *mean* reward is
imitation's ``temperature = segment / beta`` on its *sum*).

* **robopref**: ``robopref loop`` runs beforehand, one folder per seed (the command below);
  this script evaluates each folder's BTL and VPL policies with ``robopref evaluate``.
* **imitation** (1.0.1, ``PreferenceComparisons``: queries from its own agent's rollouts,
  random fragments, a hyperbolic query schedule, its basic reward net) pins gymnasium 0.29
  and SB3 2.2, so it runs in its own virtualenv (``--venv``, made on first use: torch's CPU
  pin first, then imitation, then robopref without its dependencies). robopref's env is
  built from its class there: gymnasium 0.29's ``gym.make`` rejects the class's metadata
  property.

Success is the env's own ``is_success`` at an episode's end, over ``--episodes`` greedy
episodes from held-out seeds. Run::

    for s in 0 1 2; do robopref loop --population benchmarks/populations/plate_single_goal.yaml \
        --users 20 --first-answers 18 --answers 50 --steps 300000 --seed $s \
        --out runs/single/loop_$s; done
    python benchmarks/imitation_single_goal.py --loops runs/single/loop_0 runs/single/loop_1 \
        runs/single/loop_2 --seeds 0 1 2 --json runs/bench/imitation_single_goal.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
POPULATION = REPO / "benchmarks" / "populations" / "plate_single_goal.yaml"
ENV_ID = "robopref/PlatePlacement-v0"
GOAL = (0.20, 0.15)
#: imitation's pins; torch's CPU build goes in first (an unpinned torch pulls CUDA).
#: in this order: torch's CPU pin first, imitation, then what robopref's env and population
#: code import (robopref itself goes in without its dependencies, which pin gymnasium 1.x)
VENV_PACKAGES = ("torch==2.13.0", "imitation==1.0.1", "mujoco>=3.2", "pyyaml>=6.0")
SEGMENT = 10


def ensure_venv(venv: Path) -> Path:
    """The virtualenv with imitation and robopref (no dependencies); made on first use."""
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if stamp.exists():
        return python
    print(f"making {venv} (imitation pins gymnasium 0.29 and SB3 2.2) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    for package in VENV_PACKAGES:
        subprocess.run([*pip, package], check=True)
    subprocess.run([*pip, "--no-deps", str(REPO)], check=True)
    stamp.touch()
    return python


# ---------------------------------------------------------------------------------------
# The imitation side: runs inside the imitation virtualenv (``--worker``).


def _imitation_env(user: Any) -> Any:
    """PlatePlacement at the goal, set-down primitive, rewarded by the user's reward."""
    import gymnasium as gym

    from robopref import ENV_IDS
    from robopref.envs import PlatePlacementEnv
    from robopref.envs.wrappers import SetDownOnContact

    class UserReward(gym.Wrapper):
        """The reward is the synthetic user's per-step reward of the step's features."""

        def step(self, action: Any) -> Any:
            obs, _, terminated, truncated, info = self.env.step(action)
            return obs, float(user.reward(info["features"])), terminated, truncated, info

    env = gym.wrappers.TimeLimit(PlatePlacementEnv(goal=GOAL), ENV_IDS[ENV_ID].max_episode_steps)
    return UserReward(SetDownOnContact(env, place=True))


def imitation_worker(
    seed: int, steps: int, comparisons: int, episodes: int, fragment: int
) -> dict[str, Any]:
    """Train imitation's PreferenceComparisons with robopref's PPO recipe; judge its policy."""
    import numpy as np
    import torch
    from imitation.algorithms import preference_comparisons as pc
    from imitation.rewards.reward_nets import BasicRewardNet
    from imitation.util.networks import RunningNorm
    from stable_baselines3.common.vec_env import DummyVecEnv

    from robopref.envs import PlatePlacementEnv
    from robopref.policies.recipe import PPO_LEARNING_RATE, make_algo
    from robopref.users.synthetic import LabelModel, SyntheticUser

    torch.set_num_threads(1)
    label_model = LabelModel()
    user = SyntheticUser(ENV_ID, PlatePlacementEnv.feature_names, np.array(GOAL), label_model)
    rng = np.random.default_rng(seed)
    venv = DummyVecEnv([lambda: _imitation_env(user) for _ in range(8)])
    venv.seed(seed)
    reward_net = BasicRewardNet(
        venv.observation_space, venv.action_space, normalize_input_layer=RunningNorm
    )
    preference_model = pc.PreferenceModel(reward_net)
    reward_trainer = pc.BasicRewardTrainer(
        preference_model=preference_model, loss=pc.CrossEntropyRewardLoss(), epochs=3, rng=rng
    )
    # robopref's recipe, its rate annealed over the whole run: imitation calls learn() once
    # per iteration, which would restart SB3's own progress each time.
    agent = make_algo("ppo", venv, seed, "cpu", None, steps)
    agent.lr_schedule = lambda _: PPO_LEARNING_RATE * max(0.0, 1.0 - agent.num_timesteps / steps)
    trainer = pc.AgentTrainer(
        algorithm=agent, reward_fn=reward_net, venv=venv, exploration_frac=0.05, rng=rng
    )
    comparisons_algo = pc.PreferenceComparisons(
        trainer, reward_net, num_iterations=30,
        fragmenter=pc.RandomFragmenter(warning_threshold=0, rng=rng),
        preference_gatherer=pc.SyntheticGatherer(temperature=fragment / label_model.beta, rng=rng),
        reward_trainer=reward_trainer, fragment_length=fragment, transition_oversampling=1,
        initial_comparison_frac=0.1, allow_variable_horizon=True, initial_epoch_multiplier=4,
        query_schedule="hyperbolic",
    )  # fmt: skip
    start = time.perf_counter()
    comparisons_algo.train(total_timesteps=steps, total_comparisons=comparisons)
    train_s = time.perf_counter() - start
    env = _imitation_env(user)
    successes, distances, held, heights = [], [], [], []
    for episode in range(episodes):
        obs, info = env.reset(seed=10_000 + episode)
        done = False
        while not done:
            action, _ = agent.predict(obs, deterministic=True)
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        successes.append(bool(info["is_success"]))
        feats = dict(zip(PlatePlacementEnv.feature_names, info["features"], strict=True))
        distances.append(float(np.hypot(feats["x"] - GOAL[0], feats["y"] - GOAL[1])))
        held.append(bool(feats["held"] > 0.5))
        heights.append(float(feats["height"]))
    return {
        "method": "imitation",
        "seed": seed,
        "success": float(np.mean(successes)),
        "median_distance_m": float(np.median(distances)),
        "held_at_end": float(np.mean(held)),
        "median_height_m": float(np.median(heights)),
        "comparisons": comparisons,
        "steps": steps,
        "fragment": fragment,
        "train_s": round(train_s, 1),
    }


# ---------------------------------------------------------------------------------------
# The robopref side and the table.


def robopref_rows(loop: Path, seed: int, episodes: int, out: Path) -> list[dict[str, Any]]:
    """``robopref evaluate`` of one loop folder's BTL and VPL policies on the single user."""
    report = out / f"evaluate_seed{seed}.json"
    command = [
        str(Path(sys.executable).parent / "robopref"), "evaluate",
        "--policy", str(loop / "policy_vpl"), str(loop / "policy_btl"),
        "--reward", str(loop / "vpl.pt"), "--population", str(POPULATION),
        "--users", str(episodes), "--episodes", "1", "--seed", "3",
        "--json", str(report), "--overwrite",
    ]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    history = json.loads((loop / "loop.json").read_text())
    answers = history["options"]["answers"] * history["options"]["users"]
    rows = []
    for row in json.loads(report.read_text())["results"]:
        if row["group"] != "all":
            continue
        method = row["policy"]
        rows.append(
            {"method": f"robopref {method}", "seed": seed, "success": row["success"],
             "comparisons": answers, "steps": history["options"]["steps"]}
        )  # fmt: skip
    return rows


def imitation_row(
    python: Path, seed: int, fragment: int, args: argparse.Namespace, folder: Path
) -> dict[str, Any]:
    """One imitation run in its virtualenv; its result is kept beside the report and reused
    (a rerun after an interruption skips the runs already done)."""
    # "place": runs under the contact-only primitive, before the place existed, are not reused
    name = f"imitation_seed{seed}_fragment{fragment}_{args.steps}_{args.comparisons}_place.json"
    done = folder / name
    if done.exists():
        print(f"imitation seed {seed}, {fragment}-step fragments: {done} (done before)")
        return json.loads(done.read_text())
    print(f"imitation seed {seed}, {fragment}-step fragments ...", flush=True)
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    result = subprocess.run(
        [str(python), __file__, "--worker", "--seeds", str(seed), "--steps", str(args.steps),
         "--comparisons", str(args.comparisons), "--episodes", str(args.episodes),
         "--fragment", str(fragment)],
        check=True, capture_output=True, text=True, env=env, cwd="/",
    )  # fmt: skip
    row = json.loads(result.stdout.strip().splitlines()[-1])
    row["method"] = f"imitation ({fragment}-step)"
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(row))
    tmp.replace(done)
    return row


def main(argv: list[str] | None = None) -> None:
    """Run imitation per seed (in its virtualenv), evaluate robopref's loops, print both."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", nargs="*", default=[], help="robopref loop folders, per seed")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=300_000, help="PPO env steps per run")
    parser.add_argument("--comparisons", type=int, default=1000, help="imitation's answers")
    parser.add_argument("--episodes", type=int, default=40, help="held-out episodes per run")
    parser.add_argument(
        "--fragment", type=int, nargs="+", default=[SEGMENT],
        help="imitation's fragment lengths to run (robopref's segment: 10; an episode: 60)",
    )  # fmt: skip
    parser.add_argument("--venv", default=str(REPO / "runs" / "venv-imitation"))
    parser.add_argument("--json", default=str(REPO / "runs/bench/imitation_single_goal.json"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        result = imitation_worker(
            args.seeds[0], args.steps, args.comparisons, args.episodes, args.fragment[0]
        )
        print(json.dumps(result))
        return
    loops = [Path(p) for p in args.loops]
    if loops and len(loops) != len(args.seeds):
        parser.error(f"--loops names {len(loops)} folders for {len(args.seeds)} seeds: one each")
    for loop in loops:
        if not (loop / "loop.json").exists() or not (loop / "policy_vpl").exists():
            parser.error(f"{loop} is not a finished loop (run `robopref loop --out {loop}`)")
        steps = json.loads((loop / "loop.json").read_text())["options"]["steps"]
        if steps != args.steps:
            parser.error(
                f"{loop}'s final policies trained {steps} PPO steps, imitation gets --steps "
                f"{args.steps}: run the loop with --steps {args.steps} (the same budget)"
            )
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    python = ensure_venv(Path(args.venv))
    rows: list[dict[str, Any]] = []
    for i, seed in enumerate(args.seeds):
        if loops:
            rows += robopref_rows(loops[i], seed, args.episodes, out.parent)
        for fragment in args.fragment:
            rows.append(imitation_row(python, seed, fragment, args, out.parent))
            print(f"  {rows[-1]}", flush=True)
    print(f"\n{'method':<22} {'seed':>4} {'success':>8} {'answers':>8} {'steps':>8}")
    for row in rows:
        print(
            f"{row['method']:<22} {row['seed']:>4} {row['success']:>8.2f} "
            f"{row['comparisons']:>8} {row['steps']:>8}"
        )
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"rows": rows}, indent=2))
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
