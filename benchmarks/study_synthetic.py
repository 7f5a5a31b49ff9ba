"""A study taken by synthetic participants over HTTP, beside ``robopref evaluate``.

The check that nothing is lost or mixed up between the browser's routes, the database, the
report, the export and the model: a study run by synthetic participants (users with hidden
goals, :mod:`robopref.study.synthetic`) must reproduce, within noise, the success and win
rate that ``robopref evaluate`` reports for the same policies and the same kind of users.

1. Creates a study from a study file (welcome, consent, ``--practice`` queries, then
   ``--queries`` of ``--questions``, BALD on the shipped two-modes VPL model, the blind end
   between the shipped VPL and BTL policies) and serves it with ``robopref study serve``.
2. ``--participants`` synthetic participants, drawn from the VPL policy's population,
   ``--concurrent`` of them at once, take it: every page, clip, picture and robot clip
   through HTTP. Then checks that every answer was stored once and as meant
   (:func:`robopref.study.synthetic.stored_as_meant`).
3. Runs the evaluation protocol (:func:`robopref.policies.evaluation.evaluate_loaded`) on
   as many new users of the same population with the same k and strategy, one episode each.
4. Prints, side by side with 95% intervals: the personalized robot's success (Wilson), its
   win rate over BTL (a win 1, "about equal" 0.5, a loss 0; bootstrap) from the study's
   blind choice and from ``evaluate``, per group too; whether each pair agrees (the 95%
   interval of their difference holds 0); the study report's figures. ``--json`` writes it.

    python benchmarks/study_synthetic.py --participants 40 --json runs/bench/study_synthetic.json

About 10 minutes on 2 cores (40 robots rendered on one worker, then the evaluation).
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from robopref.files import write_json_atomic
from robopref.study.report import bootstrap_interval, study_report, wilson_interval

CHECKPOINTS = Path(__file__).resolve().parents[1] / "robopref" / "policies" / "checkpoints"


def _agree(a: list[float], b: list[float]) -> dict[str, Any]:
    """Means, 95% intervals and whether the 95% interval of the difference holds 0."""
    mean_a, mean_b = float(np.mean(a)), float(np.mean(b))
    spread = 1.96 * math.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b))
    return {
        "study": mean_a,
        "evaluate": mean_b,
        "difference": mean_a - mean_b,
        "difference_ci95": [mean_a - mean_b - spread, mean_a - mean_b + spread],
        "agree": bool(abs(mean_a - mean_b) <= spread),
    }


def run_study(args: argparse.Namespace, folder: Path) -> tuple[list[Any], dict[str, Any]]:
    """Create and serve the study, let the participants take it; their records and timing."""
    import httpx2 as httpx

    from robopref.policies.checkpoint import read_meta
    from robopref.policies.personalize import new_users
    from robopref.study.create import StudyCreateOptions, create_study
    from robopref.study.load import free_port, start_server
    from robopref.study.spec import read_links
    from robopref.study.study_file import example_study_file
    from robopref.study.synthetic import StudyEyes, take_part
    from robopref.tasks import task_goals
    from robopref.users.population import resolve_population

    study_file = folder.parent / f"{folder.name}.yaml"
    study_file.write_text(
        example_study_file(
            CHECKPOINTS, practice=args.practice, questions=args.questions, queries=args.queries,
            participants=args.participants, strategy=args.strategy, episodes=24, pairs=64,
            seed=args.seed,
        )
    )  # fmt: skip
    started = time.perf_counter()
    create_study(StudyCreateOptions(out=str(folder), file=str(study_file)), progress=False)
    create_s = time.perf_counter() - started
    meta = read_meta(CHECKPOINTS / "policy_vpl")
    population = resolve_population(args.population or meta["options"]["population"],
                                    task_goals(meta["env_id"]))  # fmt: skip
    users = new_users(population, args.participants, args.seed + 1000)
    eyes = StudyEyes(folder)
    links = read_links(folder)
    port = free_port()
    server = start_server(folder, port)
    started = time.perf_counter()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120.0) as client:

            def one(index: int) -> Any:
                name, token = list(links.items())[index]
                return take_part(client, token, name, users[index], eyes, args.seed + index)

            with ThreadPoolExecutor(max_workers=args.concurrent) as pool:
                records = list(pool.map(one, range(args.participants)))
    finally:
        server.terminate()
        server.wait(timeout=60)
    return records, {"create_s": create_s, "take_s": time.perf_counter() - started}


def run_evaluate(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The evaluation protocol on the same policies and population (one episode per user)."""
    from robopref.policies.checkpoint import load_policy, read_meta
    from robopref.policies.evaluation import evaluate_loaded
    from robopref.reward import load_reward_model
    from robopref.tasks import task_goals
    from robopref.users.population import resolve_population

    vpl = load_reward_model(str(CHECKPOINTS / "vpl.pt"))
    btl = load_reward_model(str(CHECKPOINTS / "btl.pt"))
    meta = read_meta(CHECKPOINTS / "policy_vpl")
    population = resolve_population(args.population or meta["options"]["population"],
                                    task_goals(meta["env_id"]))  # fmt: skip
    policies = [
        (load_policy(CHECKPOINTS / "policy_vpl", vpl), vpl),
        (load_policy(CHECKPOINTS / "policy_btl", btl), btl),
    ]
    return evaluate_loaded(
        policies, vpl, population, args.participants, args.queries, args.strategy,
        episodes=1, pool_pairs=64, seed=args.seed,
    )  # fmt: skip


def compare(records: list[Any], evaluated: list[dict[str, Any]]) -> dict[str, Any]:
    """The study's figures against evaluate's (module docstring, step 4)."""
    vpl_name = next(r["policy"] for r in evaluated if r["queries"] is not None)
    mine = [r for r in evaluated if r["policy"] == vpl_name]
    study_success = [float(r.success["vpl"]) for r in records]
    study_win = [
        {"equal": 0.5}.get(r.final["choice"], float(_chosen(r.final) == "vpl")) for r in records
    ]
    out: dict[str, Any] = {
        "success": _agree(study_success, [float(r["success"]) for r in mine]),
        "win_rate_vs_btl": _agree(study_win, [float(r["win"]) for r in mine]),
        "btl_success": {
            "study": float(np.mean([r.success["btl"] for r in records])),
            "evaluate": float(
                np.mean([r["success"] for r in evaluated if r["policy"] != vpl_name])
            ),
        },
        "per_group": {},
    }
    for name, values in (("success", study_success), ("win_rate_vs_btl", study_win)):
        out[name]["study_ci95"] = list(
            wilson_interval(int(sum(values)), len(values))
            if name == "success"
            else bootstrap_interval(values)
        )
        theirs = [float(r["success" if name == "success" else "win"]) for r in mine]
        out[name]["evaluate_ci95"] = list(
            wilson_interval(int(sum(theirs)), len(theirs))
            if name == "success"
            else bootstrap_interval(theirs)
        )
    for group in sorted({r.group for r in records} | {r["group"] for r in mine}):
        ours = [s for s, r in zip(study_success, records, strict=True) if r.group == group]
        theirs = [float(r["success"]) for r in mine if r["group"] == group]
        out["per_group"][f"group_{group}"] = {
            "study_success": float(np.mean(ours)) if ours else None,
            "study_users": len(ours),
            "evaluate_success": float(np.mean(theirs)) if theirs else None,
            "evaluate_users": len(theirs),
        }
    return out


def _chosen(final: dict[str, Any]) -> str:
    other = "btl" if final["left"] == "vpl" else "vpl"
    return final["left"] if final["choice"] == "left" else other


def _print(result: dict[str, Any]) -> None:
    print(f"{'figure':<22} {'study':>18} {'evaluate':>18} {'agree':>6}")
    for name in ("success", "win_rate_vs_btl"):
        row = result[name]
        study = f"{row['study']:.2f} [{row['study_ci95'][0]:.2f}, {row['study_ci95'][1]:.2f}]"
        theirs = (
            f"{row['evaluate']:.2f} [{row['evaluate_ci95'][0]:.2f}, {row['evaluate_ci95'][1]:.2f}]"
        )
        print(f"{name:<22} {study:>18} {theirs:>18} {'yes' if row['agree'] else 'NO':>6}")
    btl = result["btl_success"]
    print(f"{'BTL success':<22} {btl['study']:>18.2f} {btl['evaluate']:>18.2f}")
    for group, row in result["per_group"].items():
        print(
            f"  {group}: success study {row['study_success']:.2f} ({row['study_users']} users), "
            f"evaluate {row['evaluate_success']:.2f} ({row['evaluate_users']} users)"
        )


def main() -> None:
    """Parse the options, run the study and the evaluation, print and save the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=40)
    parser.add_argument("--concurrent", type=int, default=20, help="participants at once")
    parser.add_argument("--queries", type=int, default=4, help="recorded queries (evaluate's k)")
    parser.add_argument("--questions", default="pair", help="the study's question types")
    parser.add_argument("--practice", type=int, default=1)
    parser.add_argument("--strategy", default="active")
    parser.add_argument("--population", default="", help="default: the VPL policy's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", default="", help="keep the study folder here (must not exist)")
    parser.add_argument("--json", default="", help="write the figures to this file")
    args = parser.parse_args()
    if args.participants < 2 or args.concurrent < 1:
        parser.error("--participants must be at least 2 and --concurrent at least 1")
    if args.keep and Path(args.keep).exists():
        parser.error(f"--keep {args.keep} exists: name a new folder")
    temp = Path(tempfile.mkdtemp(prefix="study_synthetic_"))
    folder = Path(args.keep) if args.keep else temp / "study"
    try:
        records, timing = run_study(args, folder)
        from robopref.study.synthetic import stored_as_meant

        problems = stored_as_meant(folder, records)
        report = study_report(folder)
        print(
            f"study: {len(records)} participants ({args.concurrent} at once), "
            f"{sum(len(r.meant) for r in records)} answers, {timing['take_s']:.0f} s; "
            f"stored as meant: {'yes' if not problems else f'NO ({len(problems)})'}"
        )
        for problem in problems[:10]:
            print(f"  {problem}")
        started = time.perf_counter()
        evaluated = run_evaluate(args)
        timing["evaluate_s"] = time.perf_counter() - started
        result = compare(records, evaluated)
        _print(result)
        result.update(
            options=vars(args), timing=timing, stored_as_meant=not problems,
            problems=problems, report={k: report[k] for k in ("final", "answer_seconds",
                                                              "position_bias", "costs")},
            requests=sum(r.requests for r in records),
        )  # fmt: skip
        if args.json:
            write_json_atomic(args.json, result)
            print(f"wrote {args.json}")
    finally:
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
