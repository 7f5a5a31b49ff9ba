"""The benchmark's sweep files: the full one covers every task, named population, method and
three seeds; its tiny variant the same cells at one seed; a tiny cell of each reward model
that followed VPL runs through the sweep and the table."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from robopref.sweep.grid import load_sweep
from robopref.sweep.run import run_sweep
from robopref.sweep.table import benchmark_rows, load_cells

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks" / "sweeps"
POPULATIONS = {
    ("robopref/PlatePlacement-v0", ""): {"two-modes", "modes", "continuous", "norms-and-goals"},
    ("robopref/BlockSort-v0", ""): {"two-modes"},
    ("robopref/BlockSort-v0", "n_zones=3"): {"benchmarks/populations/block_three_zones.yaml"},
    ("robopref/TableSetting-v0", "control=place"): {"arrangements", "arrangements-continuous"},
}
METHODS = {"vpl", "lowrank", "mixture", "dpl", "btl", "cpl", "oracle"}


def _coverage(cells) -> dict:
    found: dict = {}
    for cell in cells:
        key = (cell.task, ",".join(cell.env_kwargs))
        found.setdefault(key, {}).setdefault(cell.population, set()).add((cell.method, cell.seed))
    return found


def test_the_benchmark_covers_every_task_population_and_method() -> None:
    full, tiny = (load_sweep(BENCHMARKS / f) for f in ("benchmark.yaml", "benchmark_tiny.yaml"))
    for sweep, seeds in ((full, {0, 1, 2}), (tiny, {0})):
        found = _coverage(sweep.cells)
        assert {k: set(v) for k, v in found.items()} == POPULATIONS
        for populations in found.values():
            for runs in populations.values():
                assert runs == {(m, s) for m in METHODS for s in seeds}
    table = [c for c in full.cells if c.task == "robopref/TableSetting-v0"]
    assert all(c.loop_options()["segment"] == 4 for c in table)  # the task's own options


def test_a_tiny_cell_of_each_new_reward_model_runs_and_tabulates(tmp_path) -> None:
    tiny = load_sweep(BENCHMARKS / "benchmark_tiny.yaml")
    cells = [
        c for c in tiny.cells
        if c.task == "robopref/PlatePlacement-v0" and c.population == "two-modes"
        and c.method in ("lowrank", "mixture")
    ]  # fmt: skip
    records = run_sweep(dataclasses.replace(tiny, cells=cells), tmp_path, cpus=2)
    assert [r["status"] for r in records] == ["done", "done"]
    results = json.loads((tmp_path / "results.json").read_text())["cells"]
    for record in results:
        metrics = record["metrics"]
        assert 0.0 <= metrics["success"] <= 1.0 and metrics["answers_per_user"] == 7
        assert 0.0 < metrics["accuracy_of_ceiling"] <= 1.5
    rows, left_out = benchmark_rows(load_cells(tmp_path))
    assert left_out == 0 and {r["method"] for r in rows} == {"lowrank", "mixture"}


def test_the_core_benchmark_is_the_full_ones_first_seed() -> None:
    """benchmark_core.yaml's cells are benchmark.yaml's (same settings, so same folders)."""
    full = {c.name: c.fingerprint() for c in load_sweep(BENCHMARKS / "benchmark.yaml").cells}
    core = load_sweep(BENCHMARKS / "benchmark_core.yaml").cells
    assert len(core) == 12 and all(full[c.name] == c.fingerprint() for c in core)
