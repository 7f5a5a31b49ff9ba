"""The issue's policy targets, end to end: ``robopref demo --retrain`` (about 10 minutes on
2 CPU cores). Run with ``make test-expensive``; deselected from ``make test``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robopref.demo import DemoOptions, demo_command


def _rows(path: Path) -> dict[tuple[str, str], dict]:
    rows = json.loads(path.read_text())["results"]
    return {(row["policy"], row["group"]): row for row in rows}


@pytest.mark.expensive
def test_demo_retrain_meets_the_policy_targets(tmp_path: Path) -> None:
    assert demo_command(DemoOptions(out=str(tmp_path), retrain=True, video="")) == 0
    rows = _rows(tmp_path / "evaluate.json")
    for group in ("group_0", "group_1"):
        assert rows[("vpl", group)]["success"] >= 0.9
    assert rows[("btl", "all")]["success"] <= 0.55
    assert rows[("oracle", "all")]["success"] >= 0.95
    assert rows[("vpl", "all")]["win_rate_vs_btl"] >= 0.8
