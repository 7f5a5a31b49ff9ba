"""``robopref train-reward`` and ``robopref eval-reward`` end to end on a toy dataset."""

from __future__ import annotations

import json

import pytest

from robopref.cli import main
from robopref.reward.toy import toy_dataset


@pytest.fixture(scope="module")
def toy_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "toy.npz"
    toy_dataset(n_users=30, pairs_per_user=8, segment_length=3, seed=3).save(path)
    return path


def test_train_then_eval_writes_checkpoints_json_and_plots(toy_file, tmp_path, capsys) -> None:
    small = ["--epochs", "3", "--hidden", "16", "16", "--device", "cpu"]
    for kind in ("vpl", "btl"):
        out = tmp_path / f"{kind}.pt"
        args = ["train-reward", "--data", str(toy_file), "--model", kind, "--out", str(out)]
        assert main([*args, *small]) == 0
        assert out.is_file() and out.with_name(f"{kind}.pt.resume").is_file()
    # a second run refuses to overwrite; --resume continues; a finished run stays finished
    vpl_args = ["train-reward", "--data", str(toy_file), "--out", str(tmp_path / "vpl.pt")]
    assert main([*vpl_args, *small]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main([*vpl_args, *small, "--resume"]) == 0
    report = tmp_path / "eval" / "eval.json"
    code = main(
        ["eval-reward", "--model", str(tmp_path / "vpl.pt"), str(tmp_path / "btl.pt"),
         "--data", str(toy_file), "--queries", "0,2,4", "--json", str(report)]
    )  # fmt: skip
    assert code == 0
    results = json.loads(report.read_text())["results"]
    assert {(r["model"], r["strategy"], r["k"], r["subset"]) for r in results} == {
        (m, s, k, sub)
        for m in ("vpl", "btl")
        for s in ("active", "random")
        for k in (0, 2, 4)
        for sub in ("all", "contested")
    }
    for row in results:
        assert 0 <= row["accuracy"] <= 1 and 0.5 <= row["ceiling"] <= 1 and row["n_pairs"] > 0
        assert row["fraction_of_ceiling"] == pytest.approx(row["accuracy"] / row["ceiling"], 0.05)
    assert report.with_suffix(".accuracy.png").stat().st_size > 1000
    assert report.with_suffix(".latent.png").stat().st_size > 1000
    assert "contested acc" in capsys.readouterr().out


def test_command_errors_are_clean(toy_file, tmp_path, capsys) -> None:
    out = tmp_path / "x.pt"
    base = ["train-reward", "--data", str(toy_file), "--out", str(out), "--epochs", "1"]
    assert main([*base, "--model", "gp"]) == 2
    assert "must be one of" in capsys.readouterr().err
    assert main([*base, "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(["train-reward", "--data", str(tmp_path / "none.npz"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    other = tmp_path / "other.npz"
    toy_dataset(n_users=12, pairs_per_user=4, segment_length=3, seed=9).save(other)
    assert main([*base, "--model", "btl"]) == 0
    assert main(["eval-reward", "--model", str(out), "--data", str(other)]) == 2
    assert "--users all" in capsys.readouterr().err
    assert (
        main(["eval-reward", "--model", str(out), "--data", str(toy_file), "--queries", "a"]) == 2
    )
