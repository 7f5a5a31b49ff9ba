"""PPO's speed against its physics, and where a PPO update's time goes, in one run.

Side by side on ``robopref/PlatePlacement-v0`` with the oracle reward (the env
``train-policy --oracle`` and ``benchmarks/oracle_learning.py`` train on: random goals,
the goal in the observation, the set-down primitive), one CPU thread for torch:

* ``physics_steps_per_s``: the raw physics of the same model, control steps per second
  (``benchmarks/env_throughput.py``'s replay: ``mj_step`` alone, on the states a
  random-action rollout of the env visits);
* ``env_steps_per_s``: the 8 training envs stepped in this process with random actions
  (the wrappers, the oracle reward and the vec env, no learning);
* PPO with the recipe (:func:`robopref.policies.recipe.make_algo`) for ``--steps`` env
  steps after one warm-up update, three ways: ``sb3`` (SB3's own ``PPO`` on its
  ``DummyVecEnv``, the path before this benchmark existed), ``lean`` (the default:
  :class:`~robopref.policies.lean_ppo.LeanPPO` on the in-process vec env) and
  ``lean-2-workers`` (the envs stepped by two worker processes). Each gets a breakdown:
  env stepping, reward relabelling (none: the oracle reward comes with the step), policy
  inference while collecting, gradient steps (``train``), and the rest (SB3's
  bookkeeping: rollout buffer, GAE, callbacks, logging).

``ppo_steps_per_s`` is the default (``lean``) run; ``ratio`` = ``ppo_steps_per_s /
physics_steps_per_s`` (target >= 0.5). Also printed: the physics of the states PPO itself
visits (``mj_step`` timed inside the training run), which costs more than the random
rollout's (the plate is carried and set down).

    python benchmarks/ppo_speed.py --json runs/bench/ppo_speed.json
    python benchmarks/ppo_speed.py --steps 4096 --json /tmp/ppo_speed.json   # quick
"""

from __future__ import annotations

from robopref.envs.rendering import default_gl_backend

default_gl_backend()  # MUJOCO_GL=egl without a display, before mujoco is imported

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from env_throughput import physics_steps_per_s, random_actions  # noqa: E402
from oracle_learning import ENV_ID, make_oracle_env  # noqa: E402

from robopref.files import check_writable, write_json_atomic  # noqa: E402
from robopref.policies import lean_ppo  # noqa: E402
from robopref.policies.recipe import make_algo  # noqa: E402
from robopref.policies.vec_env import build_vec_env  # noqa: E402

N_ENVS = 8  # the recipe's
VARIANTS = ("sb3", "lean", "lean-2-workers")


class Stopwatch:
    """Seconds summed per named part."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function``, its time added to ``name`` on each call."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

        return timed


class TimedVecEnv(VecEnvWrapper):
    """A vec env whose ``step`` time goes to the stopwatch's ``env``."""

    def __init__(self, venv: VecEnv, watch: Stopwatch) -> None:
        super().__init__(venv)
        self._step = watch.wrap("env", venv.step)

    def step(self, actions: np.ndarray) -> Any:
        return self._step(actions)

    def reset(self) -> Any:
        return self.venv.reset()

    def step_wait(self) -> Any:  # pragma: no cover - step is overridden whole
        return self.venv.step_wait()


def env_steps_per_s(steps: int, seed: int) -> float:
    """Env steps/s of the 8 training envs in this process under random actions."""
    venv = build_vec_env([make_oracle_env] * N_ENVS, 0, seed)
    venv.reset()
    actions = random_actions(steps, seed).reshape(-1, N_ENVS, 4)
    start = time.perf_counter()
    for action in actions:
        venv.step(action)
    elapsed = time.perf_counter() - start
    venv.close()
    return actions.shape[0] * N_ENVS / elapsed


def _instrument(model: PPO, variant: str, watch: Stopwatch) -> None:
    """Route the model's inference, update and physics time through ``watch``."""
    model.train = watch.wrap("gradient steps", model.train)  # type: ignore[method-assign]
    if variant == "sb3":
        model.policy.forward = watch.wrap("policy inference", model.policy.forward)  # type: ignore[method-assign]
    else:
        lean_ppo.LeanNetworks.act = watch.wrap("policy inference", _LEAN_ACT)  # type: ignore[method-assign]


_LEAN_ACT = lean_ppo.LeanNetworks.act
_MJ_STEP = mujoco.mj_step


def ppo_run(variant: str, steps: int, seed: int) -> dict[str, Any]:
    """Train the recipe's PPO for ``steps`` env steps (after a warm-up update); returns
    steps/s and the breakdown of the timed run, in seconds and in microseconds per step."""
    factories = [make_oracle_env] * N_ENVS
    if variant == "sb3":
        venv: VecEnv = DummyVecEnv(factories)
        venv.seed(seed)
    else:
        venv = build_vec_env(factories, 2 if variant == "lean-2-workers" else 0, seed)
    watch = Stopwatch()
    timed_env = TimedVecEnv(venv, watch)
    model = make_algo("ppo", timed_env, seed, "cpu", None, steps)
    if variant == "sb3":
        model = PPO(
            "MlpPolicy", timed_env, n_steps=model.n_steps, batch_size=model.batch_size,
            n_epochs=model.n_epochs, learning_rate=model.learning_rate, gamma=model.gamma,
            gae_lambda=model.gae_lambda, seed=seed, device="cpu",
            policy_kwargs={"net_arch": [128, 128], "log_std_init": -0.5},
        )  # fmt: skip
    model.learn(model.n_steps * N_ENVS)  # warm-up: first-call costs out of the timing
    watch.seconds.clear()
    _instrument(model, variant, watch)
    physics = {"seconds": 0.0, "calls": 0}
    if variant != "lean-2-workers":  # the workers' physics runs in their own processes

        def timed_mj_step(*args: Any, **kwargs: Any) -> None:
            start = time.perf_counter()
            _MJ_STEP(*args, **kwargs)
            physics["seconds"] += time.perf_counter() - start
            physics["calls"] += 1

        mujoco.mj_step = timed_mj_step
    start = time.perf_counter()
    try:
        model.learn(steps, reset_num_timesteps=False)
    finally:
        mujoco.mj_step = _MJ_STEP
        lean_ppo.LeanNetworks.act = _LEAN_ACT  # type: ignore[method-assign]
    total = time.perf_counter() - start
    done = steps
    venv.close()
    parts = {
        "env stepping": watch.seconds.get("env", 0.0),
        "reward relabelling": 0.0,  # the oracle reward comes with each env step
        "policy inference": watch.seconds.get("policy inference", 0.0),
        "gradient steps": watch.seconds.get("gradient steps", 0.0),
    }
    parts["bookkeeping"] = max(total - sum(parts.values()), 0.0)
    result: dict[str, Any] = {
        "steps_per_s": done / total,
        "seconds": total,
        "breakdown_s": {k: round(v, 3) for k, v in parts.items()},
        "breakdown_us_per_step": {k: round(1e6 * v / done, 1) for k, v in parts.items()},
    }
    if physics["calls"]:
        result["physics_in_training_steps_per_s"] = physics["calls"] / physics["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8 * 256 * 30, help="timed PPO env steps")
    parser.add_argument("--physics-steps", type=int, default=5000, help="raw physics steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", choices=VARIANTS, action="append", help="only these")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.json:
        check_writable(Path(args.json), "--json")
    torch.set_num_threads(1)
    variants = args.variant or list(VARIANTS)
    results: dict[str, Any] = {"env_id": ENV_ID, "steps": args.steps, "torch_threads": 1}
    print(f"raw physics and env of {ENV_ID} ...", flush=True)
    results["physics_steps_per_s"] = max(
        physics_steps_per_s(ENV_ID, args.physics_steps, args.seed + r) for r in range(3)
    )
    results["env_steps_per_s"] = env_steps_per_s(args.physics_steps, args.seed)
    results["ppo"] = {}
    for variant in variants:
        print(f"PPO ({variant}), {args.steps} steps ...", flush=True)
        results["ppo"][variant] = ppo_run(variant, args.steps, args.seed)
    default = "lean" if "lean" in results["ppo"] else variants[0]
    results["ppo_steps_per_s"] = results["ppo"][default]["steps_per_s"]
    results["ratio"] = results["ppo_steps_per_s"] / results["physics_steps_per_s"]
    _print(results, default)
    if args.json:
        write_json_atomic(Path(args.json), results)
        print(f"wrote {args.json}")


def _print(results: dict[str, Any], default: str) -> None:
    physics = results["physics_steps_per_s"]
    envs = results["env_steps_per_s"]
    print(f"\nraw physics {physics:,.0f} steps/s; the 8 training envs {envs:,.0f}")
    parts = list(next(iter(results["ppo"].values()))["breakdown_us_per_step"])
    header = f"{'PPO':<16} {'steps/s':>8} {'x physics':>9} " + " ".join(
        f"{p[:12]:>12}" for p in parts
    )
    print(header + "   (microseconds per env step)")
    print("-" * len(header))
    for variant, run in results["ppo"].items():
        cells = " ".join(f"{run['breakdown_us_per_step'][p]:>12.1f}" for p in parts)
        rate = run["steps_per_s"]
        print(f"{variant:<16} {rate:>8,.0f} {rate / physics:>9.2f} {cells}")
    for variant, run in results["ppo"].items():
        if "physics_in_training_steps_per_s" in run:
            print(
                f"physics of the states {variant} PPO visits: "
                f"{run['physics_in_training_steps_per_s']:,.0f} steps/s"
            )
    print(
        f"\nppo_steps_per_s {results['ppo_steps_per_s']:,.0f} ({default}), ratio to the raw "
        f"physics {results['ratio']:.2f} (target >= 0.5)"
    )


if __name__ == "__main__":
    main()
