"""Wall time of a CPL policy against VPL + PPO's policy stage, side by side in one run.

On one loop's answers and VPL model (``--loop``, a ``robopref loop`` folder; or a collected
dataset and its VPL model: ``--data D --reward R --population P``), measures:

* ``cpl_s``: ``robopref train-policy --method cpl`` with its defaults, or the settings of
  ``--cpl KEY=VALUE ...`` (``bc_data=preferred bc_steps=5000``; no held-out check);
* ``ppo_s``: ``robopref train-policy --reward LOOP/vpl.pt`` (the RL recipe on the learned
  reward) for ``--ppo-steps`` env steps (default 100k, a tenth of the loop's final policy),
  and ``ppo_1m_s``, that time scaled to the loop's 1M steps (PPO's time per step is flat);
* ``ratio = ppo_1m_s / cpl_s``: how much faster the policy stage is without RL;
* ``cpl_loaded_s``: the CPL run again beside one CPU-bound process, and its ratio to
  ``cpl_s`` (a default must not collapse on a shared machine).

Both methods share the loop that gathered the answers (its scouts' PPO and refits: the loop's
own ``wall_s`` per round in ``loop.json``), which is not counted here.
``python benchmarks/cpl_speed.py --loop runs/cpl/plate_loop --json runs/bench/cpl_speed.json``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from reward_speed import busy_process  # noqa: E402

from robopref.files import write_json_atomic  # noqa: E402
from robopref.policies.train import TrainPolicyOptions, train_policy  # noqa: E402


def _timed(options: TrainPolicyOptions) -> float:
    began = time.perf_counter()
    train_policy(options)
    return time.perf_counter() - began


def _cpl_settings(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` CPL settings as train-policy's ``cpl_KEY`` options, typed as their defaults."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainPolicyOptions)}
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        name = f"cpl_{key}"
        if name not in defaults:
            raise SystemExit(f"--cpl {pair}: {key} is not a CPL setting (train-policy --cpl-*)")
        settings[name] = type(defaults[name])(value)
    return settings


def main() -> int:
    """Run the measurement and print (and optionally write) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", default="", help="a finished robopref loop folder")
    parser.add_argument("--data", default="", help="or: a dataset (with --reward, --population)")
    parser.add_argument("--reward", default="", help="the VPL model of --data")
    parser.add_argument("--population", default="two-modes", help="the users of --data")
    parser.add_argument("--cpl", nargs="*", default=[], help="CPL settings KEY=VALUE")
    parser.add_argument("--ppo-steps", type=int, default=100_000)
    parser.add_argument("--json", default="", help="write the figures here")
    args = parser.parse_args()
    if args.loop:
        loop = Path(args.loop)
        reward, data = str(loop / "vpl.pt"), str(loop / "vpl.npz")
        population = json.loads((loop / "loop.json").read_text())["options"]["population"]
    elif args.data and args.reward:
        reward, data, population = args.reward, args.data, args.population
    else:
        parser.error("give --loop, or --data and --reward")
    settings = _cpl_settings(args.cpl)
    with tempfile.TemporaryDirectory() as tmp:
        common = {"reward": reward, "data": data, "population": population,
                  "progress": False, "eval_episodes": 0}  # fmt: skip
        cpl = TrainPolicyOptions(method="cpl", out=f"{tmp}/cpl", **common, **settings)
        cpl_s = _timed(cpl)
        ppo_s = _timed(
            TrainPolicyOptions(steps=args.ppo_steps, out=f"{tmp}/ppo", eval_every=0,
                               checkpoint_every=0, checkpoint_minutes=0, **common)
        )  # fmt: skip
        with busy_process():
            cpl_loaded_s = _timed(TrainPolicyOptions(**{**cpl.__dict__, "overwrite": True}))
    ppo_1m_s = ppo_s * 1_000_000 / args.ppo_steps
    figures = {
        "data": data,
        "cpl": settings,
        "cpl_s": round(cpl_s, 1),
        "ppo_steps": args.ppo_steps,
        "ppo_s": round(ppo_s, 1),
        "ppo_1m_s": round(ppo_1m_s, 1),
        "ratio": round(ppo_1m_s / cpl_s, 1),
        "cpl_loaded_s": round(cpl_loaded_s, 1),
        "cpl_loaded_ratio": round(cpl_loaded_s / cpl_s, 2),
    }
    for key, value in figures.items():
        print(f"{key:<18} {value}")
    if args.json:
        write_json_atomic(Path(args.json), figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
