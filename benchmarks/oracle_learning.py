"""Can RL learn PlatePlacement from the oracle reward? PPO over random goals.

Trains SB3 PPO on ``robopref/PlatePlacement-v0`` with ``goal="random"`` and the goal
appended to the observation (:class:`robopref.envs.wrappers.GoalObservation`), evaluates
the deterministic policy on held-out seeds and goals every ``--eval-every`` steps, and
prints the success curve and the wall time. Target (foundation issue): at least 90%
success within 300k env steps and 15 minutes on a 2-core CPU.

    python benchmarks/oracle_learning.py --json runs/bench/oracle_learning.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import gymnasium as gym
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

import robopref  # noqa: F401  (registers the envs)
from robopref.envs.wrappers import GoalObservation

ENV_ID = "robopref/PlatePlacement-v0"


def make_oracle_env() -> gym.Env:
    """PlatePlacement with a random goal each episode, the goal appended to the observation."""
    return GoalObservation(gym.make(ENV_ID, goal="random"))


def make_ppo(env, seed: int) -> PPO:
    """PPO with the settings tuned for this task (see the README's benchmark section)."""
    return PPO(
        "MlpPolicy",
        env,
        n_steps=256,
        batch_size=512,
        n_epochs=10,
        learning_rate=1e-3,
        gamma=0.97,
        gae_lambda=0.95,
        policy_kwargs={"net_arch": [128, 128], "log_std_init": -0.5},
        seed=seed,
        device="cpu",
        verbose=0,
    )


def success_rate(model: PPO, episodes: int, seed: int) -> float:
    """Fraction of ``episodes`` (fresh seeds and goals) that end with the plate placed."""
    env = make_oracle_env()
    successes = 0
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done = False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        successes += bool(info["is_success"])
    env.close()
    return successes / episodes


def main() -> None:
    """Train, print the success curve, optionally write the final figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300_000, help="env steps to train")
    parser.add_argument("--eval-every", type=int, default=50_000, help="steps between evals")
    parser.add_argument("--eval-episodes", type=int, default=100, help="episodes per eval")
    parser.add_argument("--n-envs", type=int, default=8, help="envs stepped in one process")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--json", type=Path, default=None, help="write final figures here")
    args = parser.parse_args()

    torch.set_num_threads(1)  # small networks: threads cost more than they give on 2 cores
    env = make_vec_env(make_oracle_env, n_envs=args.n_envs, seed=args.seed)
    model = make_ppo(env, args.seed)
    curve = []
    start = time.perf_counter()
    trained = 0
    print(f"{'steps':>8} {'wall_s':>7} {'success':>8}")
    while trained < args.steps:
        chunk = min(args.eval_every, args.steps - trained)
        model.learn(chunk, reset_num_timesteps=False)
        trained += chunk
        wall = time.perf_counter() - start
        success = success_rate(model, args.eval_episodes, seed=1_000_000)
        curve.append({"steps": trained, "wall_s": round(wall, 1), "success": success})
        print(f"{trained:>8} {wall:>7.1f} {success:>8.2f}", flush=True)
    result = {
        "env_id": ENV_ID,
        "algo": "PPO",
        "success": curve[-1]["success"],
        "steps": trained,
        "wall_s": curve[-1]["wall_s"],
        "eval_episodes": args.eval_episodes,
        "seed": args.seed,
        "curve": curve,
        "env_steps_per_s": round(trained / curve[-1]["wall_s"]),
    }
    print(json.dumps({k: result[k] for k in ("success", "steps", "wall_s")}))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2))
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
