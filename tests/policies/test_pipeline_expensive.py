"""The issue's policy targets, end to end: ``robopref demo --retrain`` (the loop, then the
oracle) on PlatePlacement (about 15 minutes on 2 CPU cores; seeds 0 and 1) and on BlockSort
with 1M PPO steps per policy (about 40 minutes). Run with ``make test-expensive``;
deselected from ``make test``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robopref.demo import DemoOptions, demo_command
from robopref.policies.evaluate_command import EvaluateOptions, evaluate_command


def _rows(path: Path) -> dict[tuple[str, str], dict]:
    rows = json.loads(path.read_text())["results"]
    return {(row["policy"], row["group"]): row for row in rows}


def assert_targets(rows: dict[tuple[str, str], dict]) -> None:
    """The issue's targets: VPL >= 0.9 per group, BTL <= 0.55, oracle >= 0.95, win >= 0.8."""
    for group in ("group_0", "group_1"):
        assert rows[("vpl", group)]["success"] >= 0.9
    assert rows[("btl", "all")]["success"] <= 0.55
    assert rows[("oracle", "all")]["success"] >= 0.95
    assert rows[("vpl", "all")]["win_rate_vs_btl"] >= 0.8


@pytest.mark.expensive
@pytest.mark.parametrize("seed", [0, 1])
def test_demo_retrain_meets_the_policy_targets(tmp_path: Path, seed: int) -> None:
    assert demo_command(DemoOptions(out=str(tmp_path), retrain=True, video="", seed=seed)) == 0
    assert_targets(_rows(tmp_path / "evaluate.json"))


@pytest.mark.expensive
def test_blocksort_retrain_meets_the_policy_targets(tmp_path: Path) -> None:
    options = DemoOptions(
        env="robopref/BlockSort-v0", steps=1_000_000, out=str(tmp_path), retrain=True, video=""
    )
    assert demo_command(options) == 0
    # 100 new users: the demo's 20-user table is too small a sample for a 0.95 bar.
    evaluate_command(
        EvaluateOptions(
            policy=[str(tmp_path / f"policy_{name}") for name in ("vpl", "btl", "oracle")],
            reward=str(tmp_path / "vpl.pt"),
            users=100,
            seed=3,
            json=str(tmp_path / "evaluate100.json"),
        )
    )
    assert_targets(_rows(tmp_path / "evaluate100.json"))
