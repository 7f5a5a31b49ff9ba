"""Throughput of preference collection: pairs labelled per second, and the collect command.

It measures, on this machine:

* ``label_pairs_per_s``: :func:`robopref.users.synthetic.label_pairs` alone (rewards of both
  segments, returns, noisy answers, noise-free answers and answer probabilities) on
  ``--pairs`` pairs of 10-step PlatePlacement segments asked to 200 two-modes users;
* for each task, ``collect_wall_s``: the wall time of the issue's command, run as a fresh
  process (interpreter start, imports, rollouts, labelling and both files included)::

      robopref collect --env ENV --population two-modes --users 200 --queries-per-user 16 \\
          --segment 10 --seed 0 --out OUT --overwrite

  (target: at most 60 s on this 2-core machine), and ``collect_pairs_per_s`` = pairs / wall.

Times are the best of ``--repeats`` runs (the machine is shared). ``make bench`` runs it as
``python benchmarks/collect_throughput.py --json runs/bench/collect_throughput.json``; the
datasets go to a temporary folder, never to ``data/``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from robopref.data.queries import build_query_pool
from robopref.data.rollouts import collect_rollouts, make_env
from robopref.files import write_json_atomic
from robopref.users.population import named_population
from robopref.users.synthetic import label_pairs

PLATE = "robopref/PlatePlacement-v0"
ENVS = (PLATE, "robopref/BlockSort-v0")


def label_rate(pairs: int, repeats: int, seed: int = 0) -> float:
    """Pairs labelled per second by ``label_pairs`` (best of ``repeats``)."""
    env, _ = make_env(PLATE)
    rollouts = collect_rollouts(PLATE, 50, np.random.default_rng(seed))
    pool = build_query_pool(rollouts, min(pairs, 20_000), 10, np.random.default_rng(seed))
    index = np.resize(np.arange(len(pool)), pairs)
    feat_a, feat_b = pool.feat_a[index], pool.feat_b[index]
    users = named_population("two-modes", env).sample_users(200, np.random.default_rng(seed))
    who = np.random.default_rng(seed).integers(200, size=pairs)
    best = float("inf")
    for repeat in range(repeats):
        start = time.perf_counter()
        label_pairs(users, who, feat_a, feat_b, np.random.default_rng(repeat))
        best = min(best, time.perf_counter() - start)
    return pairs / best


def collect_wall(env_id: str, folder: Path, repeats: int) -> dict[str, float]:
    """Best wall time of the collect command for ``env_id`` as a fresh process."""
    out = folder / f"{env_id.split('/')[-1]}.npz"
    command = [sys.executable, "-m", "robopref.cli", "collect", "--env", env_id]
    command += ["--population", "two-modes", "--users", "200", "--queries-per-user", "16"]
    command += ["--segment", "10", "--seed", "0", "--out", str(out), "--overwrite"]
    command += ["--progress", "false"]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    summary = json.loads(out.with_name(out.stem + ".summary.json").read_text())
    return {
        "collect_wall_s": best,
        "collect_pairs_per_s": summary["pairs"] / best,
        "bayes_ceiling": summary["bayes_ceiling"],
        "labeller_alignment": summary["labeller_alignment"],
        "contested_share": summary["contested_share"],
    }


def main() -> None:
    """Measure, print a table, and write ``--json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--pairs", type=int, default=100_000, help="pairs labelled at once")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    args = parser.parse_args()
    results: dict = {"label_pairs_per_s": label_rate(args.pairs, args.repeats)}
    print(f"label_pairs: {results['label_pairs_per_s']:,.0f} pairs/s ({args.pairs:,} at once)")
    with tempfile.TemporaryDirectory() as folder:
        for env_id in ENVS:
            results[env_id] = collect_wall(env_id, Path(folder), args.repeats)
            r = results[env_id]
            print(
                f"{env_id}: collect {r['collect_wall_s']:.2f} s wall "
                f"({r['collect_pairs_per_s']:,.0f} pairs/s), Bayes ceiling "
                f"{r['bayes_ceiling']:.4f}, alignment {r['labeller_alignment']:.4f}, "
                f"contested {r['contested_share']:.3f}"
            )
    if args.json:
        write_json_atomic(args.json, results)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
