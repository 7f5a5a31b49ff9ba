"""``robopref train-reward`` and ``robopref eval-reward`` end to end on a toy dataset."""

from __future__ import annotations

import json

import pytest

from robopref.cli import main
from robopref.reward.train_command import TrainRewardOptions, model_config, train_settings
from tests.support.toy import toy_dataset


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


@pytest.fixture(scope="module")
def trained(toy_file, tmp_path_factory):
    """A two-epoch VPL checkpoint on the toy data."""
    out = tmp_path_factory.mktemp("trained") / "vpl.pt"
    args = ["train-reward", "--data", str(toy_file), "--out", str(out), "--epochs", "2"]
    assert main([*args, "--hidden", "8", "--device", "cpu"]) == 0
    return out


def _eval(toy_file, model, report, *extra):
    args = ["eval-reward", "--model", str(model), "--data", str(toy_file), "--json", str(report)]
    return main([*args, "--queries", "0,1", "--plot", "false", *extra])


def test_eval_reward_refuses_an_existing_report_before_evaluating(
    toy_file, trained, tmp_path, capsys
) -> None:
    report = tmp_path / "eval.json"
    assert _eval(toy_file, trained, report) == 0
    capsys.readouterr()
    before = report.read_text()
    assert _eval(toy_file, trained, report) == 2
    out, err = capsys.readouterr()
    assert f"--json {report}: the evaluation output already exists; pass --overwrite" in err
    assert "users of" not in out  # refused before the evaluation started
    assert report.read_text() == before
    assert _eval(toy_file, trained, report, "--overwrite") == 0
    # a plot left beside the JSON is an output too
    plotted = tmp_path / "plotted.json"
    plotted.with_suffix(".accuracy.png").write_bytes(b"old plot")
    assert _eval(toy_file, trained, plotted, "--plot", "true") == 2
    assert "plotted.accuracy.png: the evaluation output already exists" in capsys.readouterr().err
    assert not plotted.exists()


def test_eval_reward_refuses_an_unwritable_report_and_bad_numbers(
    toy_file, trained, tmp_path, capsys
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert _eval(toy_file, trained, blocker / "eval.json") == 2
    out, err = capsys.readouterr()
    assert f"{blocker} is a file, so no folder can be made inside it; choose another --json" in err
    assert "users of" not in out
    assert _eval(toy_file, trained, tmp_path / "t.json", "--threads=-1") == 2
    err = capsys.readouterr().err
    assert "--threads -1 is negative: pass 0 for torch's default or a positive number" in err
    assert _eval(toy_file, trained, tmp_path / "s.json", "--samples", "0") == 2
    assert "--samples 0: active queries need at least 1 posterior sample" in capsys.readouterr().err
    assert _eval(toy_file, trained, tmp_path / "p.json", "--posterior", "map") == 2
    assert "--posterior 'map': use one of ('likelihood', 'encoder')" in capsys.readouterr().err
    assert _eval(toy_file, trained, tmp_path / "q.json", "--queries=-1,2") == 2
    assert "query budgets must be 0 or more" in capsys.readouterr().err
    assert not any(tmp_path.glob("*.json"))


def test_eval_reward_refuses_a_read_only_folder(
    toy_file, trained, read_only_folder, capsys
) -> None:
    assert _eval(toy_file, trained, read_only_folder / "eval.json") == 2
    assert f"the folder {read_only_folder} is not writable" in capsys.readouterr().err


def test_train_reward_refuses_an_unwritable_out_before_training(toy_file, tmp_path, capsys) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    out = blocker / "runs" / "vpl.pt"
    assert main(["train-reward", "--data", str(toy_file), "--out", str(out), "--epochs", "1"]) == 2
    stdout, err = capsys.readouterr()
    assert f"--out {out}: {blocker} is a file, so no folder can be made inside it" in err
    assert "held-out users" not in stdout  # refused before the data was even split


def test_train_reward_overwrite_drops_the_old_runs_resume_state(
    toy_file, tmp_path, capsys, monkeypatch
) -> None:
    import robopref.reward.train_command as command

    out = tmp_path / "vpl.pt"
    stale = tmp_path / "vpl.pt.resume"
    stale.write_bytes(b"an older run's state")
    argv = ["train-reward", "--data", str(toy_file), "--out", str(out), "--epochs", "1"]
    assert main([*argv, "--resume", "--overwrite"]) == 2
    assert "pass one of them" in capsys.readouterr().err

    def killed_before_its_first_save(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(command, "train", killed_before_its_first_save)
    assert main([*argv, "--overwrite"]) == 2
    assert not stale.exists()  # a later --resume cannot continue the replaced run


def test_train_reward_options_reach_the_library_configs() -> None:
    options = TrainRewardOptions(
        model="vpl", lr=0.02, batch=3, hidden=[8, 4], decoder="mlp", free_nats=0.5,
        val_fraction=0.3, kl_delay=7, seed=5,
    )  # fmt: skip
    settings = train_settings(options)
    assert (settings.lr, settings.batch, settings.val_fraction, settings.seed) == (0.02, 3, 0.3, 5)
    assert settings.kl_delay == 7
    config = model_config(options)
    assert config["hidden"] == (8, 4) and config["decoder"] == "mlp"
    assert config["free_nats"] == 0.5
    btl = TrainRewardOptions(model="btl", hidden=[8], kl_delay=7)
    assert model_config(btl) == {"hidden": (8,)}
    assert (train_settings(btl).kl_delay, train_settings(btl).kl_warmup) == (0, 0)
