"""``robopref evaluate`` serves the population the policies were trained for, and refuses to
guess when they disagree."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from robopref.cli import main
from robopref.demo import SHIPPED
from robopref.policies.checkpoint import read_meta
from robopref.policies.evaluate_command import EvaluateOptions, default_population, evaluate


def _oracle(folder: Path, population: str | None, name: str = "oracle") -> Path:
    """A copy of the shipped oracle recording ``population`` (None: none) and ``name``."""
    shutil.copytree(SHIPPED / "policy_oracle", folder)
    meta = json.loads((folder / "meta.json").read_text())
    meta["options"]["population"] = population
    meta["name"] = name
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def test_default_population_is_the_policys(tmp_path: Path) -> None:
    folder = _oracle(tmp_path / "uni", "continuous")
    result = evaluate(
        EvaluateOptions(policy=[str(folder)], users=2, episodes=1, json=str(tmp_path / "e.json"))
    )
    assert result["population"] == "continuous"
    given = EvaluateOptions(
        policy=[str(folder)], users=2, episodes=1, population="two-modes", json="unused.json"
    )
    result = evaluate(given)
    assert result["population"] == "two-modes"
    assert {"group_0", "group_1"} & {row["group"] for row in result["results"]}


def test_disagreeing_populations_need_an_explicit_one(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    a = _oracle(tmp_path / "a", "two-modes", "a")
    b = _oracle(tmp_path / "b", "continuous", "b")
    argv = ["evaluate", "--policy", str(a), str(b), "--users", "1", "--episodes", "1"]
    assert main([*argv, "--json", str(tmp_path / "e.json")]) == 2
    err = capsys.readouterr().err
    assert "made for different populations" in err and "pass --population" in err
    assert f"{a}: two-modes" in err and f"{b}: continuous" in err
    assert main([*argv, "--json", str(tmp_path / "e.json"), "--population", "continuous"]) == 0


def test_no_recorded_population_needs_one(tmp_path: Path) -> None:
    folder = _oracle(tmp_path / "none", None)
    metas = {str(folder): read_meta(folder)}
    with pytest.raises(ValueError, match="no population they were trained for: pass --population"):
        default_population(metas)
    assert default_population(metas, given="two-modes") == "two-modes"


def test_shipped_vpl_and_btl_evaluate_from_a_fresh_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """No --reward, no --population, no runs/demo: the recorded ones, found beside them."""
    monkeypatch.chdir(tmp_path)
    policies = [str(SHIPPED / "policy_btl"), str(SHIPPED / "policy_oracle")]
    argv = ["evaluate", "--policy", *policies, "--users", "1", "--episodes", "1"]
    assert main([*argv, "--json", "e.json"]) == 0
    assert json.loads(Path("e.json").read_text())["population"] == "two-modes"


def test_query_sets_take_one_budget_of_pairs(tmp_path: Path, capsys) -> None:
    argv = ["evaluate", "--policy", str(SHIPPED / "policy_vpl"), "--reward",
            str(SHIPPED / "vpl.pt"), "--users", "1"]  # fmt: skip
    argv += ["--json", str(tmp_path / "e.json")]
    assert main([*argv, "--strategy", "sets", "--queries", "2,4"]) == 2
    assert "give one --queries" in capsys.readouterr().err
    assert main([*argv, "--strategy", "sets", "--question", "ranking:4"]) == 2
    assert "pair questions" in capsys.readouterr().err
    assert main([*argv, "--strategy", "greedy"]) == 2
    assert "use one of active, random, sets" in capsys.readouterr().err
    assert not (tmp_path / "e.json").exists()
