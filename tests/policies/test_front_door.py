"""train-policy at the front door: TensorBoard opt-in, inputs checked before --out is touched,
truncated model zips, and reward paths that survive a moved run folder."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

import robopref.tensorboard
from robopref.cli import main
from robopref.demo import SHIPPED
from robopref.policies.checkpoint import read_meta

ORACLE = ["--oracle", "--n-envs", "2", "--eval-every", "0", "--eval-episodes", "1"]
QUICK = ["--progress", "false", "--device", "cpu"]


def _error(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """Run the CLI, check it failed with status 2 and no traceback; its error message."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def _latent_argv(reward: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train-policy", "--reward", str(reward), "--data", str(data), "--out", str(out),
        "--steps", "128", "--n-envs", "2", "--eval-every", "0", "--eval-episodes", "1",
        *QUICK, *extra,
    ]  # fmt: skip


# ---------------------------------------------------------------- TensorBoard: opt-in


def test_tb_logs_the_training_returns(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "oracle"
    assert main(["train-policy", *ORACLE, *QUICK, "--steps", "600", "--out", str(out), "--tb"]) == 0
    runs = list((out / "tb").iterdir())
    assert len(runs) == 1
    events = EventAccumulator(str(runs[0]))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    # The monitor's return (the reward trained on) and the env's own (here the same).
    assert {"rollout/ep_rew_mean", "rollout/ep_len_mean", "rollout/true_ep_rew_mean"} <= tags
    assert "eval/success" in tags
    learned = events.Scalars("rollout/ep_rew_mean")[-1].value
    assert learned == pytest.approx(events.Scalars("rollout/true_ep_rew_mean")[-1].value)


def test_no_tb_no_tensorboard_needed(
    tiny_vpl: Path,
    tiny_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.setattr(robopref.tensorboard, "tensorboard_available", lambda: False)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard: ImportError
    out = tmp_path / "p"
    assert main(_latent_argv(tiny_vpl, tiny_data, out)) == 0
    assert (out / "model.zip").is_file() and not (out / "tb").exists()
    err = _error(_latent_argv(tiny_vpl, tiny_data, tmp_path / "q", "--tb"), capsys)
    assert 'not installed: pip install "robopref[tb]"' in err and "drop --tb" in err
    assert not (tmp_path / "q").exists()


# ---------------------------------------------------------------- refused before any work


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--eval-episodes", "-3"], "--eval-episodes -3 must be 0"),
        (["--eval-every", "-1"], "--eval-every -1 and"),
        (["--val-fraction", "5"], "--val-fraction 5.0 is the share of users held out"),
        (["--val-fraction", "-0.1"], "use a value in [0, 1)"),
        (["--checkpoint-minutes", "-1"], "--checkpoint-minutes must be 0 or above"),
        (["--population", "two-mode"], "population 'two-mode' is neither a name"),
    ],
)
def test_bad_values_are_refused(
    extra: list[str],
    message: str,
    tiny_vpl: Path,
    tiny_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    err = _error(_latent_argv(tiny_vpl, tiny_data, tmp_path / "p", *extra), capsys)
    assert message in err
    assert not (tmp_path / "p").exists()


def test_oracle_with_a_reward_is_refused(
    tiny_vpl: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["train-policy", *ORACLE, *QUICK, "--out", str(tmp_path / "p")]
    err = _error([*argv, "--reward", str(tiny_vpl)], capsys)
    assert "--oracle trains on the env's true reward and reads no reward model" in err
    assert f"but --reward {tiny_vpl} was given" in err
    assert "drop --reward, or drop --oracle" in err


def test_overwrite_with_bad_inputs_keeps_the_unfinished_run(
    tiny_vpl: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "p"
    out.mkdir()
    kept = {"checkpoint.zip": b"zip", "checkpoint.json": b"{}"}
    for name, data in kept.items():
        (out / name).write_bytes(data)
    bad = [
        ("--population", str(tmp_path / "offtable.yaml")),
        ("--reward", str(tmp_path / "none.pt")),
        ("--eval-episodes", "-3"),
    ]
    for flag, value in bad:  # given twice, the last one counts
        _error(_latent_argv(tiny_vpl, tiny_data, out, "--overwrite", flag, value), capsys)
        assert {p.name: p.read_bytes() for p in out.iterdir()} == kept, flag


# ---------------------------------------------------------------- truncated model zips


def test_truncated_zips_are_a_clear_error(
    tiny_vpl: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    trunc = tmp_path / "trunc"
    shutil.copytree(SHIPPED / "policy_oracle", trunc)
    (trunc / "model.zip").write_bytes(
        (SHIPPED / "policy_oracle" / "model.zip").read_bytes()[:20000]
    )
    err = _error(["evaluate", "--policy", str(trunc), "--json", str(tmp_path / "e.json")], capsys)
    assert f"{trunc / 'model.zip'} is not a readable ppo model, damaged or cut short" in err
    assert "restore" in err and "train-policy --out" in err

    vpl = tmp_path / "vpl"
    shutil.copytree(SHIPPED / "policy_vpl", vpl)
    (vpl / "model.zip").write_bytes((SHIPPED / "policy_vpl" / "model.zip").read_bytes()[:20000])
    argv = ["video", "--policy", str(vpl), "--reward", str(SHIPPED / "vpl.pt")]
    err = _error([*argv, "--out", str(tmp_path / "v.mp4")], capsys)
    assert f"{vpl / 'model.zip'} is not a readable ppo model, damaged or cut short" in err

    out = tmp_path / "p"
    argv = _latent_argv(tiny_vpl, tiny_data, out, "--checkpoint-every", "64")
    assert main([*argv, "--steps", "64"]) == 0
    capsys.readouterr()
    (out / "model.zip").unlink()
    (out / "checkpoint.zip").write_bytes((out / "checkpoint.zip").read_bytes()[:20000])
    err = _error([*argv, "--resume"], capsys)
    assert f"{out / 'checkpoint.zip'} is not a readable ppo model, damaged or cut short" in err
    assert "--overwrite instead of --resume" in err


# ---------------------------------------------------------------- reward paths


def test_shipped_policies_find_their_reward_models_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("vpl", "btl"):
        meta = read_meta(SHIPPED / f"policy_{name}")
        assert meta["reward_path_recorded"] == f"../{name}.pt"
        assert Path(meta["reward_path"]).resolve() == (SHIPPED / f"{name}.pt").resolve()


def test_a_moved_run_folder_still_finds_its_reward_model(
    tiny_btl: Path,
    tiny_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny_btl, run / "btl.pt")
    monkeypatch.chdir(tmp_path)  # relative paths, as a user types them
    assert main(_latent_argv(Path("run/btl.pt"), tiny_data, Path("run/policy_btl"))) == 0
    recorded = json.loads((run / "policy_btl" / "meta.json").read_text())["reward_path"]
    assert recorded == "../btl.pt"
    shutil.move(run, tmp_path / "moved")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    argv = ["evaluate", "--policy", "../moved/policy_btl", "--users", "1", "--episodes", "1"]
    assert main([*argv, "--population", "two-modes", "--json", "e.json"]) == 0
    capsys.readouterr()
    # Without its reward model, the error names the flag that points at it.
    lone = tmp_path / "lone" / "policy_btl"
    shutil.copytree(tmp_path / "moved" / "policy_btl", lone)
    (tmp_path / "moved" / "btl.pt").unlink()
    err = _error(["evaluate", "--policy", str(lone), "--json", "f.json"], capsys)
    assert "--btl-reward PATH" in err
    argv = ["evaluate", "--policy", str(lone), "--btl-reward", str(tiny_btl), "--users", "1"]
    assert main([*argv, "--episodes", "1", "--population", "two-modes", "--json", "g.json"]) == 0
    capsys.readouterr()
    argv = ["video", "--policy", str(SHIPPED / "policy_vpl"), "--btl-policy", str(lone)]
    err = _error([*argv, "--out", "v.mp4"], capsys)
    assert "--btl-reward PATH" in err and str(lone) in err
