"""``robopref sweep FILE.yaml``: every cell of a sweep as a Ray task, resumable.

``ray.init()`` starts Ray on this machine by default (every core: one cell per CPU);
``--address`` joins a running cluster (``ray start --head`` on one node, ``ray start
--address HEAD:6379`` on the others, as the Ray docs show), which must see the sweep's
``--out`` folder at the same path (a shared filesystem). Each cell is one task declaring
``resources`` (one CPU by default; a GPU fraction is passed to Ray, and the oracle then
trains with ``--device cuda``; the loop trains on the CPU).

Resumable: a cell whose ``result.json`` holds the same settings is skipped; a cell killed
midway continues (:mod:`robopref.sweep.cell`). A failing cell is retried once; if it fails
again its error goes to its folder (``error.txt``) and to the results, and the others go
on. The driver prints each cell as it finishes and a line of who is running every minute.
At the end ``results.json`` and ``results.csv`` gather every cell (``robopref table``
reads them).
"""

from __future__ import annotations

import csv
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robopref.files import atomic_path, check_writable, write_json_atomic
from robopref.sweep.cell import read_result, run_cell
from robopref.sweep.grid import Cell, Sweep, load_sweep

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
SWEEP_COPY = "sweep.yaml"
#: attempts per cell: the first and one retry
ATTEMPTS = 2
HEARTBEAT_S = 60.0


@dataclass
class SweepOptions:
    """Run a benchmark sweep (task x population x method x seed) as Ray tasks."""

    file: str = field(metadata={"help": "the sweep file (YAML; schema in robopref.sweep.grid)"})
    out: str = field(default="", metadata={"help": "sweep folder (default runs/sweeps/<name>)"})
    address: str = field(
        default="", metadata={"help": "a running Ray cluster to join (default: start one here)"}
    )
    cpus: int = field(
        default=0,
        metadata={"help": "CPUs of the local Ray (0: every core); ignored with --address"},
    )


def _task_error(error: BaseException) -> str:
    cause = getattr(error, "cause", None) or error
    return "".join(traceback.format_exception_only(type(cause), cause)).strip()


def _remote_cell(cell: Cell) -> Any:
    import ray

    device = "cuda" if cell.resources.gpus > 0 else "cpu"
    task = ray.remote(run_cell).options(
        num_cpus=cell.resources.cpus, num_gpus=cell.resources.gpus, max_retries=0,
        name=cell.name,
    )  # fmt: skip
    return task, device


def _write_results(out: Path, records: list[dict[str, Any]]) -> None:
    write_json_atomic(out / RESULTS_JSON, {"cells": records})
    metric_names = sorted({k for r in records for k in (r.get("metrics") or {})})
    columns = ["name", "task", "env_kwargs", "population", "method", "seed", "grid", "status",
               "attempts", "node", "wall_s", *metric_names, "error"]  # fmt: skip
    with atomic_path(out / RESULTS_CSV) as temp, open(temp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for record in records:
            cell = record["cell"]
            writer.writerow({
                "name": cell["name"], "task": cell["task"],
                "env_kwargs": " ".join(cell["env_kwargs"]), "population": cell["population"],
                "method": cell["method"], "seed": cell["seed"],
                "grid": " ".join(f"{k}={v}" for k, v in cell["grid"].items()),
                "status": record["status"], "attempts": record.get("attempts", 0),
                "node": record.get("node") or "",
                "wall_s": round(record.get("wall_s") or 0.0, 1),
                **(record.get("metrics") or {}), "error": record.get("error", ""),
            })  # fmt: skip


def _record(cell: Cell, result: dict[str, Any] | None, attempts: int, error: str = "") -> dict:
    if result is None:
        return {"cell": cell.to_json(), "status": "failed", "attempts": attempts, "error": error}
    return {
        "cell": cell.to_json(),
        "status": "done",
        "attempts": attempts,
        "wall_s": result.get("wall_s"),
        "node": result.get("node"),
        "metrics": result.get("metrics"),
    }


def run_sweep(sweep: Sweep, out: Path, address: str = "", cpus: int = 0) -> list[dict[str, Any]]:
    """Run the sweep's unfinished cells on Ray (module docstring); every cell's record."""
    import ray

    check_writable(out / RESULTS_JSON, "--out")
    out.mkdir(parents=True, exist_ok=True)
    copy = out / SWEEP_COPY
    if copy.exists() and copy.read_text() != sweep.source:
        print(f"note: {copy} differs from the sweep file: cells of changed settings are refused")
    with atomic_path(copy) as temp:
        temp.write_text(sweep.source)
    records: dict[str, dict[str, Any]] = {}
    pending: list[Cell] = []
    for cell in sweep.cells:
        done = read_result(out / "cells" / cell.name, cell)
        if done is not None:
            records[cell.name] = _record(cell, done, 0)
        else:
            pending.append(cell)
    total = len(sweep.cells)
    print(f"sweep {sweep.name}: {total} cells, {total - len(pending)} finished, "
          f"{len(pending)} to run -> {out}", flush=True)  # fmt: skip
    if pending:
        # "local": a Ray of this sweep's own, even where another cluster runs on the machine
        # (a bare ray.init() would join that one).
        init: dict[str, Any] = {"address": address} if address else {
            "address": "local", "num_cpus": cpus or os.cpu_count(),
            "include_dashboard": False}  # fmt: skip
        try:
            ray.init(**init, log_to_driver=False, configure_logging=False)
        except ConnectionError as error:
            raise RuntimeError(
                f"could not join the Ray cluster at {address}: check it runs (`ray status "
                f"--address {address}`); a cluster with token authentication (Ray's default "
                "for `ray start`) needs RAY_AUTH_MODE=token in the driver's environment and "
                "its token in ~/.ray/auth_token or RAY_AUTH_TOKEN"
            ) from error
        began = time.perf_counter()
        try:
            _run_pending(pending, out, records, total)
            slots = float(ray.cluster_resources().get("CPU", 1.0))
        finally:
            ray.shutdown()
        wall = time.perf_counter() - began
        busy = sum(records[c.name].get("wall_s") or 0.0 for c in pending)
        print(f"ran {len(pending)} cells in {wall:.0f} s: the cells' own time fills "
              f"{busy / (wall * slots):.0%} of {slots:g} CPUs", flush=True)  # fmt: skip
    ordered = [records[c.name] for c in sweep.cells]
    _write_results(out, ordered)
    failed = [r for r in ordered if r["status"] != "done"]
    print(f"sweep {sweep.name}: {total - len(failed)} of {total} cells done; results in "
          f"{out / RESULTS_JSON} and {out / RESULTS_CSV}", flush=True)  # fmt: skip
    for record in failed:
        print(f"  FAILED {record['cell']['name']} after {record['attempts']} attempts: "
              f"{record['error']}")  # fmt: skip
    return ordered


def _run_pending(
    pending: list[Cell], out: Path, records: dict[str, dict[str, Any]], total: int
) -> None:
    import ray

    started = time.perf_counter()
    running: dict[Any, tuple[Cell, int, float]] = {}

    def submit(cell: Cell, attempt: int) -> None:
        task, device = _remote_cell(cell)
        ref = task.remote(cell.to_json(), str(out / "cells" / cell.name), device)
        running[ref] = (cell, attempt, time.perf_counter())

    for cell in pending:
        submit(cell, 1)
    last_beat = time.perf_counter()
    while running:
        ready, _ = ray.wait(list(running), num_returns=1, timeout=5.0)
        if not ready:
            if time.perf_counter() - last_beat >= HEARTBEAT_S:
                last_beat = time.perf_counter()
                oldest = min(running.values(), key=lambda item: item[2])
                print(
                    f"  [{time.perf_counter() - started:6.0f} s] {len(records)}/{total} done, "
                    f"{len(running)} running or queued (longest: {oldest[0].name}, "
                    f"{time.perf_counter() - oldest[2]:.0f} s)",
                    flush=True,
                )
            continue
        ref = ready[0]
        cell, attempt, began = running.pop(ref)
        try:
            result = ray.get(ref)
        except Exception as error:  # a cell's failure is reported, the others go on
            message = _task_error(error)
            if attempt < ATTEMPTS:
                print(f"  retrying {cell.name} (attempt {attempt} failed: {message})", flush=True)
                submit(cell, attempt + 1)
                continue
            folder = out / "cells" / cell.name
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(folder / "error.txt") as temp:
                temp.write_text(f"{message}\n\n{error}")
            records[cell.name] = _record(cell, None, attempt, message)
        else:
            records[cell.name] = _record(cell, result, attempt)
        done = len(records)
        status = records[cell.name]["status"]
        figure = ""
        if status == "done":
            figure = f", success {records[cell.name]['metrics']['success']:.2f}"
        print(f"[{done}/{total}] {cell.name}: {status} in {time.perf_counter() - began:.0f} s"
              f"{figure}", flush=True)  # fmt: skip


def sweep_command(options: SweepOptions) -> int:
    """Check the sweep file, run it, print the summary; exit status 1 if a cell failed."""
    if options.cpus < 0:
        raise ValueError(f"--cpus {options.cpus} must be at least 0 (0: every core)")
    sweep = load_sweep(options.file)
    out = Path(options.out or f"runs/sweeps/{sweep.name}")
    check_writable(out / RESULTS_JSON, "--out")
    records = run_sweep(sweep, out, options.address, options.cpus)
    return 0 if all(r["status"] == "done" for r in records) else 1
