"""The speed benchmarks run (tiny) so that they are ready: the GPU script on the CPU where
no GPU is lent, the PPO profile's parts add up to its wall time."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str):
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_script_runs_tiny_on_the_cpu(tmp_path: Path) -> None:
    gpu_speed = _load("gpu_speed")
    out = tmp_path / "gpu.json"
    argv = ["--device", "cpu", "--ppo-steps", "2048", "--users", "10", "--loop-steps", "2048"]
    results = gpu_speed.main([*argv, "--json", str(out)])
    row = results["devices"]["cpu"]
    assert row["ppo_steps_per_s"] > 0 and row["loop_s"] > 0
    # every stage of both arms timed, in each of the two rounds
    assert {"vpl fit", "vpl policy", "btl fit", "btl policy", "heldout"} <= set(row["stages_s"])
    assert json.loads(out.read_text())["devices"]["cpu"]["loop_s"] == row["loop_s"]


def test_ppo_profile_parts_add_up() -> None:
    ppo_speed = _load("ppo_speed")
    run = ppo_speed.ppo_run("lean", 2048, seed=0)
    parts = run["breakdown_s"]
    assert parts["gradient steps"] > 0 and parts["env stepping"] > 0
    assert sum(parts.values()) == pytest.approx(run["seconds"], rel=0.02)
    assert run["physics_in_training_steps_per_s"] > 0
