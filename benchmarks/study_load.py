"""How long a study takes a person, and how the server holds 20 participants at once.

Creates a study (PlatePlacement, the shipped two-modes VPL/BTL checkpoints, active BALD
queries, 8 per person, ``robopref study create``'s default pool of 24 episodes and 64
pairs), serves it with ``robopref study serve`` in a subprocess and measures, side by side
in one run:

* ``create_s``: creating the study (episodes rendered, clips encoded);
* **one participant alone**: per answer, the page (HTML of the next query, which runs
  BALD), both clips, and the answer itself; then the "your robot" clips' render time;
* **20 participants at once** (:func:`robopref.study.load.answer_concurrently`, one thread
  each): the same latencies, median and 95th percentile;
* both again with **one other busy process** on the machine (a CPU-bound loop), as users
  run it on shared machines.

A person's time for 8 answers is the machine's part (these latencies) plus watching: each
query's two clips play together for ``clip_s`` (one episode) before a person can judge.

    python benchmarks/study_load.py --json runs/bench/study_load.json
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx

from robopref.files import write_json_atomic
from robopref.study.create import StudyCreateOptions, create_study
from robopref.study.load import LoadResult, answer_concurrently, free_port, start_server
from robopref.study.spec import read_links

CHECKPOINTS = Path(__file__).resolve().parents[1] / "robopref" / "policies" / "checkpoints"


def _busy(stop: Any) -> None:
    x = 0
    while not stop.is_set():
        x = (x * 31 + 7) % 1_000_003


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"median_ms": 1000 * statistics.median(ordered), "p95_ms": 1000 * p95}


def _summary(result: LoadResult) -> dict[str, Any]:
    return {
        "answers": result.answers,
        "failures": len(result.failures),
        "wall_s": result.wall_s,
        "page": _quantiles(result.page_s),
        "clips": _quantiles(result.clip_s),
        "answer": _quantiles(result.answer_s),
    }


def _robot_seconds(base: str, token: str) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < 300:
        if httpx.get(f"{base}/s/{token}/robot.json").json()["status"] == "ready":
            return time.perf_counter() - start
        time.sleep(0.2)
    return float("nan")


def measure(folder: Path, tokens: list[str], queries: int) -> dict[str, Any]:
    """One participant alone, then the other 20 at once, on a fresh server."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_server(folder, port)
    try:
        alone = answer_concurrently(base, tokens[:1], queries)
        robot_s = _robot_seconds(base, tokens[0])
        crowd = answer_concurrently(base, tokens[1:21], queries)
    finally:
        process.terminate()
        process.wait(timeout=60)
    return {"alone": _summary(alone), "robot_s": robot_s, "twenty": _summary(crowd)}


def main() -> None:
    """Run the measurements and print the table (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="study_bench_"))
    try:
        start = time.perf_counter()
        template = work / "template"
        spec = create_study(
            StudyCreateOptions(
                out=str(template),
                reward=str(CHECKPOINTS / "vpl.pt"),
                policy=str(CHECKPOINTS / "policy_vpl"),
                btl_policy=str(CHECKPOINTS / "policy_btl"),
                btl_reward=str(CHECKPOINTS / "btl.pt"),
                participants=42,
                queries=args.queries,
                strategy="active",
            ),
            progress=False,
        )
        create_s = time.perf_counter() - start
        clip_s = spec.segment / spec.fps
        results: dict[str, Any] = {"create_s": create_s, "clip_s": clip_s, "runs": {}}
        for condition in ("idle", "one busy process"):
            folder = Path(shutil.copytree(template, work / condition.replace(" ", "_")))
            tokens = list(read_links(folder).values())
            stop = multiprocessing.Event()
            busy = multiprocessing.Process(target=_busy, args=(stop,))
            if condition != "idle":
                busy.start()
            try:
                results["runs"][condition] = measure(folder, tokens, args.queries)
            finally:
                stop.set()
                if busy.is_alive():
                    busy.join()
        print(f"create: {create_s:.1f} s; each clip plays {clip_s:.1f} s")
        print(
            f"{'condition':>17} {'who':>8} {'page ms':>13} {'clips ms':>13} {'answer ms':>13} "
            f"{'answers':>8} {'fails':>5}"
        )
        for condition, run in results["runs"].items():
            for who in ("alone", "twenty"):
                row = run[who]
                cells = [
                    f"{row[k]['median_ms']:5.0f} / {row[k]['p95_ms']:5.0f}"
                    for k in ("page", "clips", "answer")
                ]
                print(
                    f"{condition:>17} {who:>8} {cells[0]:>13} {cells[1]:>13} {cells[2]:>13} "
                    f"{row['answers']:>8} {row['failures']:>5}"
                )
            alone = run["alone"]
            machine = sum(alone[k]["median_ms"] for k in ("page", "clips", "answer")) / 1000
            print(
                f"{condition:>17}: 'your robot' ready {run['robot_s']:.1f} s after the last "
                f"answer; a person's 8 answers: {args.queries} x ({machine:.2f} s machine + "
                f"{clip_s:.1f} s watching) = {args.queries * (machine + clip_s):.0f} s at least"
            )
        print("(median / 95th percentile per request)")
        if args.json:
            write_json_atomic(args.json, results)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
