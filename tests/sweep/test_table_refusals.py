"""`robopref table`: a re-run does not replace table.md/png silently, an --out that cannot be
written is refused before work, and a damaged results.json is named with the fix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from robopref.cli import main
from robopref.sweep.table import TableOptions, load_cells, table_command


def _cell(method: str, seed: int = 0) -> dict:
    return {
        "name": f"PlatePlacement-two-modes-{method}-s{seed}", "task": "robopref/PlatePlacement-v0",
        "env_kwargs": [], "population": "two-modes", "method": method, "seed": seed, "grid": {},
    }  # fmt: skip


def _sweep(tmp_path: Path) -> Path:
    """A finished two-cell sweep folder as `robopref sweep` leaves it (no training)."""
    folder = tmp_path / "sweep"
    records = []
    for method, success in (("vpl", 1.0), ("btl", 0.5)):
        cell = _cell(method)
        episodes = [{"user": u, "group": u % 2, "episode": 0, "success": success,
                     "return": success * u} for u in range(4)]  # fmt: skip
        result = folder / "cells" / cell["name"] / "result.json"
        result.parent.mkdir(parents=True)
        result.write_text(json.dumps({"cell": cell, "episodes": episodes}))
        metrics = {"success": success, "answers_per_user": 7, "accuracy_of_ceiling": 0.9}
        records.append({"cell": cell, "status": "done", "wall_s": 3.0, "metrics": metrics})
    (folder / "results.json").write_text(json.dumps({"cells": records}))
    return folder


def test_a_rerun_does_not_replace_the_table_without_overwrite(tmp_path, capsys):
    sweep = _sweep(tmp_path)
    assert table_command(TableOptions(sweep=str(sweep))) == 0
    (sweep / "table.md").write_text("my edited table")
    assert main(["table", "--sweep", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert "table (table.md/png) already exists; pass --overwrite" in err
    assert (sweep / "table.md").read_text() == "my edited table"
    assert table_command(TableOptions(sweep=str(sweep), overwrite=True)) == 0
    assert "| PlatePlacement-v0 | two-modes | VPL | 1 |" in (sweep / "table.md").read_text()


def test_an_out_behind_a_file_is_refused_before_work(tmp_path, capsys):
    sweep = _sweep(tmp_path)
    (tmp_path / "afile").write_text("in the way")
    assert main(["table", "--sweep", str(sweep), "--out", str(tmp_path / "afile" / "t")]) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and "choose another --out" in err and "Traceback" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_a_read_only_out_is_refused_before_work(tmp_path, capsys):
    sweep = _sweep(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(["table", "--sweep", str(sweep), "--out", str(locked / "t")]) == 2
    finally:
        locked.chmod(0o755)
    assert "not writable" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: "{not json", "results.json is damaged \\(not JSON"),
        (lambda data: json.dumps({"cells": [{"status": "done"}]}), "without its 'cell'"),
        (lambda data: json.dumps([1]), "has no list of 'cells'"),
        (
            lambda data: json.dumps({"cells": [{**data["cells"][0], "metrics": {}}]}),
            "without its 'metrics'",
        ),
    ],
)
def test_a_damaged_results_json_is_named_with_the_fix(tmp_path, capsys, damage, message):
    sweep = _sweep(tmp_path)
    path = sweep / "results.json"
    path.write_text(damage(json.loads(path.read_text())))
    with pytest.raises(ValueError, match=message + ".*run the sweep again"):
        load_cells(sweep)
    assert main(["table", "--sweep", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err


def test_a_damaged_cell_result_is_named_with_the_fix(tmp_path):
    sweep = _sweep(tmp_path)
    result = sweep / "cells" / _cell("vpl")["name"] / "result.json"
    result.write_text("")
    with pytest.raises(ValueError, match=f"{result} is damaged"):
        load_cells(sweep)
