"""The loop and PPO on a GPU against the CPU, side by side in one run.

For each ``--device`` (default: ``cpu`` and, when torch sees one, ``cuda``):

* ``ppo_steps_per_s``: the recipe's PPO (:class:`~robopref.policies.lean_ppo.LeanPPO`) on
  PlatePlacement's oracle reward with its policy on that device, ``--ppo-steps`` env steps
  after a warm-up update (the envs step on the CPU either way);
* ``loop_s``: a small ``robopref loop`` (``--users`` users, two rounds, PPO's smallest
  updates) with ``--device`` on that device: its reward fits, active asking and reward
  relabelling there (its PPO stays on the CPU, as the loop's always does), arms one after
  the other in this process; with each stage's seconds from ``loop.json``.

Where no GPU is lent, the CPU column alone is printed (``make test`` runs a tiny version
so that the script is ready for one: ``tests/test_speed_benchmarks.py``).

    python benchmarks/gpu_speed.py --json runs/bench/gpu_speed.json
"""

from __future__ import annotations

from robopref.envs.rendering import default_gl_backend

default_gl_backend()  # MUJOCO_GL=egl without a display, before mujoco is imported

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from oracle_learning import make_oracle_env  # noqa: E402

from robopref.files import check_writable, write_json_atomic  # noqa: E402
from robopref.loop.run import LoopOptions, run_loop  # noqa: E402
from robopref.policies.recipe import make_algo  # noqa: E402
from robopref.policies.vec_env import build_vec_env  # noqa: E402


def ppo_steps_per_s(device: str, steps: int, seed: int) -> float:
    """Env steps/s of the recipe's PPO with its policy and update on ``device``."""
    venv = build_vec_env([make_oracle_env] * 8, 0, seed)
    model = make_algo("ppo", venv, seed, device, None, steps)
    model.learn(model.n_steps * venv.num_envs)  # warm-up: first-call costs out of the timing
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    elapsed = time.perf_counter() - start
    venv.close()
    return steps / elapsed


def loop_seconds(device: str, users: int, steps: int, seed: int) -> dict[str, Any]:
    """Wall seconds of a small two-round loop with ``--device device``, and its stages'."""
    with tempfile.TemporaryDirectory() as folder:
        options = LoopOptions(
            out=str(Path(folder) / "loop"), users=users, answers=12, first_answers=8,
            per_round=4, steps=steps, scout_steps=steps, episodes=32, candidates=16,
            eval_users=4, seed=seed, device=device, workers=1, progress=False,
        )  # fmt: skip
        start = time.perf_counter()
        run_loop(options)
        elapsed = time.perf_counter() - start
        history = json.loads((Path(options.out) / "loop.json").read_text())["history"]
    stages: dict[str, float] = {}
    for row in history:
        for method, parts in row["seconds"].items():
            if isinstance(parts, dict):
                for stage, value in parts.items():
                    key = f"{method} {stage}"
                    stages[key] = round(stages.get(key, 0.0) + value, 1)
            else:
                stages[method] = round(stages.get(method, 0.0) + parts, 1)
    return {"loop_s": round(elapsed, 1), "stages_s": stages}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", action="append", help="cpu, cuda (default: both if any)")
    parser.add_argument("--ppo-steps", type=int, default=8 * 256 * 20)
    parser.add_argument("--users", type=int, default=100, help="training users of the loop")
    parser.add_argument("--loop-steps", type=int, default=8 * 256 * 4, help="PPO steps/round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if args.json:
        check_writable(Path(args.json), "--json")
    devices = args.device or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    torch.set_num_threads(1)
    results: dict[str, Any] = {
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "devices": {},
    }
    for device in devices:
        print(f"{device}: PPO, {args.ppo_steps} steps ...", flush=True)
        row = {"ppo_steps_per_s": ppo_steps_per_s(device, args.ppo_steps, args.seed)}
        print(f"{device}: loop, {args.users} users ...", flush=True)
        row.update(loop_seconds(device, args.users, args.loop_steps, args.seed))
        results["devices"][device] = row
    print(f"\nGPU: {results['gpu'] or 'none lent'}")
    print(f"{'device':<8} {'PPO steps/s':>12} {'loop s':>8}  stages (s)")
    for device, row in results["devices"].items():
        stages = ", ".join(f"{k} {v}" for k, v in row["stages_s"].items())
        print(f"{device:<8} {row['ppo_steps_per_s']:>12,.0f} {row['loop_s']:>8.1f}  {stages}")
    if args.json:
        write_json_atomic(Path(args.json), results)
        print(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    main()
