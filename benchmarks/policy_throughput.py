"""Env steps/s of the latent policy's training env: where the reward model's cost goes.

Three ways of stepping ``--envs`` :class:`~robopref.policies.latent_env.LatentRewardEnv`
copies of PlatePlacement in one process (SB3's ``DummyVecEnv``, random actions, resets
included), measured side by side in one run:

* ``no_model``: rewards deferred and never computed (the env and wrapper alone),
* ``per_step``: one reward-model call per env step inside each wrapper,
* ``batched``: rewards deferred to :class:`~robopref.policies.latent_env.BatchedRewardVecEnv`,
  one model call for all envs per step (what ``robopref train-policy`` uses), on
  ``--device`` (``cuda`` on a GPU machine).

It prints steps/s for each (best of ``--repeats``) and the ratio batched / per-step. The
reward model defaults to the shipped demo model (``robopref/policies/checkpoints/vpl.pt``)::

    python benchmarks/policy_throughput.py --json runs/bench/policy_throughput.json
"""

from __future__ import annotations

import argparse
import functools
import time

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

import robopref.envs  # noqa: F401  (registers the envs)
from robopref.demo import SHIPPED
from robopref.files import write_json_atomic
from robopref.policies.latent_env import BatchedRewardVecEnv, LatentRewardEnv, LatentSource
from robopref.reward import load_reward_model
from robopref.reward.nets import resolve_device


def _env(env_id: str, path: str, defer: bool, seed: int) -> gym.Env:
    model = load_reward_model(path, device="cpu")
    source = LatentSource.prior(model.latent_dim)
    return LatentRewardEnv(gym.make(env_id), model, source, defer_reward=defer, seed=seed)


def build(mode: str, env_id: str, path: str, envs: int, device: str) -> VecEnv:
    """The vectorized env of one mode (module docstring)."""
    defer = mode != "per_step"
    venv: VecEnv = DummyVecEnv(
        [functools.partial(_env, env_id, path, defer, i) for i in range(envs)]
    )
    if mode == "batched":
        venv = BatchedRewardVecEnv(venv, load_reward_model(path, device=device))
    venv.seed(0)
    return venv


def steps_per_second(venv: VecEnv, steps: int) -> float:
    """Env steps (summed over envs) per second over ``steps`` vector steps."""
    rng = np.random.default_rng(0)
    venv.reset()
    actions = rng.uniform(-1, 1, size=(steps, venv.num_envs, 4)).astype(np.float32)
    start = time.perf_counter()
    for action in actions:
        venv.step(action)
    return steps * venv.num_envs / (time.perf_counter() - start)


def main() -> None:
    """Measure the three modes; print a table and the ratio; write ``--json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reward", default=str(SHIPPED / "vpl.pt"))
    parser.add_argument("--env", default="robopref/PlatePlacement-v0")
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=500, help="vector steps per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="device of the batched model")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = str(resolve_device(args.device))
    results: dict[str, float] = {}
    for mode in ("no_model", "per_step", "batched"):
        venv = build(mode, args.env, args.reward, args.envs, device)
        results[mode] = max(steps_per_second(venv, args.steps) for _ in range(args.repeats))
        venv.close()
        print(f"{mode:9s} {results[mode]:8.0f} env steps/s", flush=True)
    ratio = results["batched"] / results["per_step"]
    print(f"batched / per-step: {ratio:.2f}x ({args.envs} envs, device {device})")
    if args.json:
        out = {"envs": args.envs, "device": device, "steps_per_s": results, "ratio": ratio}
        write_json_atomic(args.json, out)


if __name__ == "__main__":
    main()
