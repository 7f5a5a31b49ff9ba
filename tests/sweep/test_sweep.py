"""Sweeps on local Ray: tiny cells run, write results and a table; a resumed sweep skips
finished cells; a failing cell is retried once and reported while the others finish."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from robopref.cli import main
from robopref.sweep.grid import load_sweep
from robopref.sweep.run import run_sweep
from robopref.sweep.table import TableOptions, benchmark_rows, load_cells, mean_ci, table_command

#: the loop test's tiny budgets: two rounds, PPO's smallest update (seconds per cell)
TINY = {
    "users": 10, "answers": 7, "first_answers": 4, "per_round": 3, "steps": 4096,
    "scout_steps": 4096, "episodes": 16, "candidates": 8, "eval_users": 2, "fit_epochs": 25,
    "refit_epochs": 5,
}  # fmt: skip


def _file(tmp_path: Path, **changes) -> Path:
    data = {
        "name": "tiny",
        "tasks": ["robopref/PlatePlacement-v0"],
        "populations": ["two-modes"],
        "methods": ["vpl", "btl", "cpl"],
        "seeds": [0],
        "options": TINY,
        "cpl": {"steps": 20, "bc_steps": 10, "batch": 16},
        "evaluate": {"users": 3, "queries": 2, "episodes": 1},
        **changes,
    }
    if "cpl" not in data["methods"] and "cpl" not in changes:  # refused without a cpl cell
        del data["cpl"]
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path, list]:
    folder = tmp_path_factory.mktemp("sweep")
    path = _file(folder)
    out = folder / "out"
    records = run_sweep(load_sweep(path), out, cpus=2)
    return path, out, records


def test_a_tiny_sweep_writes_results_and_a_table(finished, capsys):
    _, out, records = finished
    assert [r["status"] for r in records] == ["done", "done", "done"]
    results = json.loads((out / "results.json").read_text())["cells"]
    assert {r["cell"]["method"] for r in results} == {"vpl", "btl", "cpl"}
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 4 and "success" in csv_lines[0]
    for record in results:
        metrics = record["metrics"]
        assert 0.0 <= metrics["success"] <= 1.0 and metrics["answers_per_user"] == 7
        if record["cell"]["method"] == "cpl":  # its VPL model's accuracy is not the policy's
            assert metrics["accuracy_of_ceiling"] is None
            cpl_folder = out / "cells" / record["cell"]["name"]
            meta = json.loads((cpl_folder / "policy_cpl" / "meta.json").read_text())
            assert meta["method"] == "cpl" and meta["steps"] == 30  # the sweep's cpl settings
        else:
            assert 0.0 < metrics["accuracy_of_ceiling"] <= 1.5
    assert table_command(TableOptions(sweep=str(out))) == 0
    table = (out / "table.md").read_text()
    assert "| PlatePlacement-v0 | two-modes | VPL | 1 |" in table
    assert (out / "table.png").stat().st_size > 1000
    rows, left_out = benchmark_rows(load_cells(out))
    vpl = next(r for r in rows if r["method"] == "vpl")
    assert left_out == 0 and vpl["win_rate_vs_btl"][2] == 1  # paired with BTL's episodes
    cpl = next(r for r in rows if r["method"] == "cpl")
    assert cpl["win_rate_vs_btl"][2] == 1 and cpl["wall_s"][0] > 0
    assert "| PlatePlacement-v0 | two-modes | CPL | 1 |" in table


def test_a_resumed_sweep_skips_finished_cells(finished, capsys, monkeypatch):
    path, out, _ = finished
    import ray

    def no_ray(*args, **kwargs):  # nothing is left to run: Ray must not even start
        raise AssertionError("ray.init called for a finished sweep")

    monkeypatch.setattr(ray, "init", no_ray)
    records = run_sweep(load_sweep(path), out)
    assert [r["status"] for r in records] == ["done", "done", "done"]
    assert "3 finished, 0 to run" in capsys.readouterr().out


def test_a_changed_cell_is_refused_not_overwritten(finished, tmp_path):
    _, out, _ = finished
    changed = _file(tmp_path, options={**TINY, "fit_epochs": 26})
    with pytest.raises(ValueError, match="other settings"):
        run_sweep(load_sweep(changed), out)


def test_a_failing_cell_is_retried_once_and_reported(tmp_path, capsys):
    # a population file that passes the file's check, then is gone when the cell runs
    missing = str(tmp_path / "no_such_population.yaml")
    shutil.copy("benchmarks/populations/plate_single_goal.yaml", missing)
    path = _file(tmp_path, populations=["two-modes", missing], methods=["btl"])
    sweep = load_sweep(path)
    os.remove(missing)
    records = run_sweep(sweep, tmp_path / "out", cpus=2)
    by_population = {r["cell"]["population"]: r for r in records}
    assert by_population["two-modes"]["status"] == "done"
    failed = by_population[missing]
    assert failed["status"] == "failed" and failed["attempts"] == 2
    assert "no_such_population" in failed["error"]
    assert (tmp_path / "out" / "cells" / failed["cell"]["name"] / "error.txt").is_file()
    printed = capsys.readouterr().out
    assert "retrying" in printed and "FAILED" in printed
    rows, left_out = benchmark_rows(load_cells(tmp_path / "out"))
    assert left_out == 1 and len(rows) == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"methods": ["vpl", "ppo"]}, "at most once"),
        ({"options": {"stepz": 3}}, "not a robopref loop option"),
        ({"options": {"seed": 3}}, "set by the sweep"),
        ({"tasks": ["robopref/Nope-v0"]}, "unknown task"),
        ({"colour": "red"}, "unknown keys"),
        ({"seeds": []}, "non-empty list"),
        ({"grid": {"decoder": "mlp"}}, "non-empty list of values"),
        ({"cpl": {"stepz": 3}}, "'cpl' takes"),
        ({"cpl": {"conservative": 2.0}}, "cpl: conservative=2.0"),
        ({"methods": ["vpl"], "cpl": {"steps": 3}}, "none is in methods"),
    ],
)
def test_bad_sweep_files_are_refused_before_anything_runs(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        load_sweep(_file(tmp_path, **changes))


def test_the_cpl_key_learning_rate_of_older_sweeps_is_read_as_lr(tmp_path):
    """CPLTraining's ``learning_rate`` became ``lr`` (train-policy's ``--cpl-lr``): a sweep
    file or cell.json of before still reads, and its cells get ``--cpl-lr``."""
    from robopref.sweep.grid import Cell

    old = load_sweep(_file(tmp_path, cpl={"steps": 20, "learning_rate": 0.001}))
    new = load_sweep(_file(tmp_path, cpl={"steps": 20, "lr": 0.001}))
    cell = next(c for c in old.cells if c.method == "cpl")
    assert cell.cpl == (("lr", 0.001), ("steps", 20))
    assert [c.cpl for c in old.cells] == [c.cpl for c in new.cells]
    written = cell.to_json()
    written["cpl"] = {"steps": 20, "learning_rate": 0.001}  # a cell.json of before
    assert Cell.from_json(written) == cell


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"evaluate": {"users": 0}}, "evaluate.users is 0: give a whole number of at least 1"),
        ({"evaluate": {"episodes": 0}}, "evaluate.episodes is 0"),
        ({"evaluate": {"queries": "4"}}, "evaluate.queries is '4'"),
        ({"populations": ["two-mode"]}, "two-mode.*neither a name"),
        ({"grid": {"decoder": ["bilinear", "nonsense"]}}, "decoder='nonsense' must be one of"),
        (
            {"methods": ["btl", "oracle"], "grid": {"decoder": ["bilinear", "nonsense"]}},
            "decoder='nonsense' must be one of",
        ),
        ({"resources": {"cpus": float("nan")}}, "resources.cpus is nan: give a number above 0"),
        ({"resources": {"cpus": "1"}}, "resources.cpus is '1': give a number above 0"),
        ({"resources": {"cpus": 0}}, "resources.cpus is 0"),
        ({"resources": {"gpus": -1}}, "resources.gpus is -1"),
        ({"options": {**TINY, "steps": "many"}}, "options.steps is 'many', not a whole number"),
        ({"options": {**TINY, "kl_weight": float("nan")}}, "options.kl_weight is nan"),
        ({"options": {**TINY, "answers": 8}}, "would be refused.*multiple of --per-round"),
        ({"options": {**TINY, "segment": 0}}, "would be refused.*--segment 0"),
        ({"grid": {"hidden": [[64, "x"]]}}, "grid.hidden is 'x', not a whole number"),
        ({"tasks": [{"id": "robopref/PlatePlacement-v0", "env_kwargs": "a=1"}]}, "KEY=VALUE"),
        ({"seeds": [-1]}, "seeds \\[-1\\]: give whole numbers of at least 0"),
        ({"name": "../../elsewhere"}, "name '../../elsewhere' must be one plain folder name"),
        ({"name": "a/b"}, "plain folder name"),
        ({"name": ".."}, "plain folder name"),
    ],
)
def test_bad_values_are_refused_with_the_file_and_key_before_ray(tmp_path, changes, message):
    path = _file(tmp_path, **changes)
    with pytest.raises(ValueError, match=f"sweep file {path}: .*{message}"):
        load_sweep(path)


def test_a_bad_sweep_value_is_one_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    import ray

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray started for a file that should have been refused")

    monkeypatch.setattr(ray, "init", no_ray)
    path = _file(tmp_path, resources={"cpus": "1"})
    assert main(["sweep", "--file", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "robopref sweep: error: sweep file" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_sweep_out_that_cannot_be_written_is_refused_before_ray(tmp_path, capsys, monkeypatch):
    import ray

    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray started"))
    (tmp_path / "afile").write_text("in the way")
    path = _file(tmp_path)
    out = tmp_path / "afile" / "sweep"
    assert main(["sweep", "--file", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and "choose another --out" in err and "Traceback" not in err
    with pytest.raises(ValueError, match="is a file"):
        run_sweep(load_sweep(path), out)


def test_grid_axes_multiply_the_cells(tmp_path):
    sweep = load_sweep(_file(tmp_path, grid={"decoder": ["bilinear", "mlp"]}, seeds=[0, 1]))
    assert len(sweep.cells) == 2 * 2 * 3
    assert "PlatePlacement-two-modes-vpl-s1-decoder=mlp" in {c.name for c in sweep.cells}


def test_the_interval_is_students_t():
    mean, half, n = mean_ci([0.8, 1.0])
    assert (mean, n) == (pytest.approx(0.9), 2)
    assert half == pytest.approx(12.706 * 0.1414214 / 1.4142136, rel=1e-4)
    assert mean_ci([0.5])[2] == 1 and mean_ci([])[2] == 0
