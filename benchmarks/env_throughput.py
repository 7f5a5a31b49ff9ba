"""Throughput of every robopref env: env steps/s, raw physics, vectorized, rendering.

For each registered id it measures, on this machine:

* ``env_steps_per_s``: ``gym.make(id, goal="random")`` (the oracle env RL trains on, with
  Gymnasium's default wrappers) stepped with random actions in one process, resetting at
  episode ends;
* ``physics_steps_per_s``: the raw physics of the same model, as control steps per second:
  ``mujoco.mj_step(model, data, nstep=SUBSTEPS)`` on a copy of the env's model and data,
  set before each call to the state and inputs the env's own step had (a recorded rollout
  of the same random actions replayed), only the ``mj_step`` calls timed;
* ``overhead_ratio`` = env step time / raw physics time of its substeps (target <= 1.5);
* ``vector_steps_per_s``: env steps/s summed over a ``gymnasium.vector.AsyncVectorEnv``
  with 2 worker processes;
* ``render_fps``: ``env.render()`` frames/s at 320x240 from the front camera (target >= 50;
  llvmpipe renders with every CPU, so other jobs on the machine slow it most).

Throughputs are the best of ``--repeats`` runs (the machine is shared; the best run is the
least disturbed one). ``make bench`` runs it as
``python benchmarks/env_throughput.py --json runs/bench/env_throughput.json``.
"""

from __future__ import annotations

from robopref.envs.rendering import default_gl_backend
from robopref.files import write_json_atomic

default_gl_backend()  # MUJOCO_GL=egl without a display, before mujoco is imported

import argparse  # noqa: E402
import copy  # noqa: E402
import functools  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402

import robopref  # noqa: E402
from robopref.envs import scene  # noqa: E402


def random_actions(count: int, seed: int) -> np.ndarray:
    """``count`` uniform random actions in [-1, 1]^4 (float32), reproducible from ``seed``."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=(count, 4)).astype(np.float32)


def env_steps_per_s(env_id: str, steps: int, seed: int) -> float:
    """Control steps/s of the wrapped oracle env under random actions, resets included."""
    env = gym.make(env_id, goal="random")
    actions = random_actions(steps, seed)
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


# What the env sets before its physics runs: the hand's mocap pose and the suction weld.
_STATE = mujoco.mjtState.mjSTATE_INTEGRATION
_INPUTS = mujoco.mjtState.mjSTATE_MOCAP_POS | mujoco.mjtState.mjSTATE_EQ_ACTIVE


def record_env_physics(
    env_id: str, steps: int, seed: int
) -> tuple[mujoco.MjModel, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Run the env as :func:`env_steps_per_s` does and record what each step's physics got.

    Returns a copy of the env's model and, per step, the physics state before its
    substeps (positions, velocities, solver warm start, ...), the inputs the env set for
    them (hand mocap position, suction on/off), and the suction weld's ``eq_data``.
    """
    env = gym.make(env_id, goal="random")
    task = env.unwrapped
    model, data = task.model, task.data
    state = np.empty(mujoco.mj_stateSize(model, _STATE))
    inputs = np.empty(mujoco.mj_stateSize(model, _INPUTS))
    env.reset(seed=seed)
    mujoco.mj_getState(model, data, state, _STATE)
    records = []
    for action in random_actions(steps, seed):
        before = state.copy()
        _, _, terminated, truncated, _ = env.step(action)
        mujoco.mj_getState(model, data, inputs, _INPUTS)  # unchanged by the physics
        records.append((before, inputs.copy(), model.eq_data.copy()))
        if terminated or truncated:
            env.reset()
        mujoco.mj_getState(model, data, state, _STATE)
    model_copy = copy.deepcopy(model)
    env.close()
    return model_copy, records


def physics_steps_per_s(env_id: str, steps: int, seed: int) -> float:
    """Control steps/s of bare ``mj_step(nstep=SUBSTEPS)``, replaying the env's own physics.

    A copy of the model and a fresh ``MjData`` are set, step by step, to the recorded
    mid-episode states and inputs; only the ``mj_step`` calls are timed. The env step time
    divided by this time is the env's overhead over its physics.
    """
    model, records = record_env_physics(env_id, steps, seed)
    data = mujoco.MjData(model)
    elapsed = 0.0
    for state, inputs, eq_data in records:
        mujoco.mj_setState(model, data, state, _STATE)
        mujoco.mj_setState(model, data, inputs, _INPUTS)
        model.eq_data[:] = eq_data
        start = time.perf_counter()
        mujoco.mj_step(model, data, nstep=scene.SUBSTEPS)
        elapsed += time.perf_counter() - start
    return len(records) / elapsed


def vector_steps_per_s(env_id: str, steps: int, seed: int, workers: int = 2) -> float:
    """Env steps/s summed over an ``AsyncVectorEnv`` of ``workers`` processes (no start-up)."""
    # Workers reach the id as "robopref:<id>", which imports robopref in any start method.
    make = functools.partial(gym.make, f"robopref:{env_id}", goal="random")
    envs = gym.vector.AsyncVectorEnv([make] * workers)
    try:
        envs.reset(seed=seed)
        vector_steps = max(1, steps // workers)
        actions = random_actions(vector_steps * workers, seed).reshape(vector_steps, workers, 4)
        envs.step(actions[0])  # warm the pipes
        start = time.perf_counter()
        for action in actions:
            envs.step(action)
        elapsed = time.perf_counter() - start
    finally:
        envs.close()
    return vector_steps * workers / elapsed


def render_fps(
    env_id: str, frames: int, seed: int, repeats: int = 1, width: int = 320, height: int = 240
) -> float:
    """Frames/s of ``env.render()`` alone (stepping excluded), front camera; best of ``repeats``.

    Each repeat renders ``frames`` frames of a random-action rollout.
    """
    env = gym.make(env_id, render_mode="rgb_array", camera="front", width=width, height=height)
    env.reset(seed=seed)
    env.render()  # the GL context and the textures are created on the first frame
    rates = []
    for repeat in range(repeats):
        elapsed = 0.0
        for action in random_actions(frames, seed + repeat):
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
            start = time.perf_counter()
            env.render()
            elapsed += time.perf_counter() - start
        rates.append(frames / elapsed)
    env.close()
    return max(rates)


def measure(env_id: str, steps: int, frames: int, repeats: int, seed: int) -> dict[str, float]:
    """All figures for one env id; throughputs are the best of ``repeats`` runs."""
    env_rates, physics_rates = [], []
    for repeat in range(repeats):  # interleaved, so both see the same machine load
        env_rates.append(env_steps_per_s(env_id, steps, seed + repeat))
        physics_rates.append(physics_steps_per_s(env_id, steps, seed + repeat))
    env_rate, physics_rate = max(env_rates), max(physics_rates)
    return {
        "env_steps_per_s": env_rate,
        "physics_steps_per_s": physics_rate,
        "overhead_ratio": physics_rate / env_rate,
        "vector_steps_per_s": max(vector_steps_per_s(env_id, steps, seed) for _ in range(repeats)),
        "render_fps": render_fps(env_id, frames, seed, repeats),
    }


def format_table(results: dict[str, dict[str, float]]) -> str:
    """A plain-text table of the results, one row per env id."""
    header = (
        "env",
        "env steps/s",
        "physics steps/s",
        "overhead",
        "2-proc vec steps/s",
        "render fps",
    )
    rows = [header] + [
        (
            env_id,
            f"{r['env_steps_per_s']:,.0f}",
            f"{r['physics_steps_per_s']:,.0f}",
            f"{r['overhead_ratio']:.2f}",
            f"{r['vector_steps_per_s']:,.0f}",
            f"{r['render_fps']:.0f}",
        )
        for env_id, r in results.items()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.rjust(w) if i else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure every env id (or ``--env``), print a table, optionally write ``--json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--steps", type=int, default=5000, help="env steps per measurement")
    parser.add_argument("--frames", type=int, default=100, help="frames rendered per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="runs per throughput; best kept")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random actions")
    parser.add_argument(
        "--env", action="append", choices=list(robopref.ENV_IDS), help="only this id (repeatable)"
    )
    args = parser.parse_args(argv)
    if args.steps < 2 or args.frames < 1 or args.repeats < 1:
        parser.error("--steps must be at least 2, --frames and --repeats at least 1")
    results = {}
    for env_id in args.env or robopref.ENV_IDS:
        print(f"measuring {env_id} ({args.steps} steps x {args.repeats}) ...", flush=True)
        results[env_id] = measure(env_id, args.steps, args.frames, args.repeats, args.seed)
    print(format_table(results))
    print(
        f"targets: overhead ratio <= 1.5, render >= 50 fps at 320x240 "
        f"(MUJOCO_GL={os.environ.get('MUJOCO_GL', '<unset>')}, {os.cpu_count()} CPUs)"
    )
    if args.json is not None:
        write_json_atomic(args.json, results)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
