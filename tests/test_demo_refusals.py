"""`robopref demo`: every option is refused before any step runs; --out must be the demo's;
a --video the demo did not write is replaced only with --overwrite."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import robopref.demo as demo
from robopref.cli import main
from robopref.demo import DemoOptions, check_demo_options, demo_command


@pytest.fixture
def no_steps(monkeypatch):
    """Any step of the pipeline running fails the test: refusals come first."""

    def step(*args, **kwargs):
        raise AssertionError("a demo step ran before the options were refused")

    for name in ("_run_loop", "evaluate_command", "video_command", "train_policy_command"):
        monkeypatch.setattr(demo, name, step)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--users", "0"], "--users 0: the evaluation needs at least 1 new user"),
        (["--steps", "0"], "--steps must be at least 1"),
        (["--answers", "47"], "multiple of --per-round"),
        (["--segment", "0"], "--segment 0 must lie in"),
        (["--decoder", "nonsense"], "decoder='nonsense' must be one of"),
        (["--latent-dim", "0"], "latent_dim"),
        (["--population", "two-mode"], "neither a name"),
        (["--seed", "-1"], "--seed -1 must be at least 0"),
        (["--device", "tpu"], "device='tpu' is not one of"),
        (["--video", "out.avi"], "must end in .mp4"),
        (["--env", "robopref/Nope-v0"], "Nope"),
    ],
)
def test_every_option_is_refused_before_any_step(tmp_path, capsys, no_steps, argv, message):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert "robopref demo: error:" in err and "Traceback" not in err
    assert message in err, err
    assert not out.exists()


def test_an_out_behind_a_file_is_refused_before_work(tmp_path, capsys, no_steps):
    (tmp_path / "afile").write_text("in the way")
    assert main(["demo", "--out", str(tmp_path / "afile" / "demo")]) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and "choose another --out" in err and "Traceback" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_a_read_only_out_is_refused_before_work(tmp_path, capsys, no_steps):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(["demo", "--out", str(locked / "demo")]) == 2
    finally:
        locked.chmod(0o755)
    assert "not writable" in capsys.readouterr().err


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_out_holding_other_files_is_refused_even_with_overwrite(tmp_path, overwrite):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not a demo's folder and holds notes.txt"):
        check_demo_options(DemoOptions(out=str(out), overwrite=overwrite))
    assert (out / "notes.txt").read_text() == "mine"


def test_a_video_the_demo_did_not_write_needs_overwrite(tmp_path):
    out, video = tmp_path / "demo", tmp_path / "videos" / "personalized.mp4"
    video.parent.mkdir()
    video.with_suffix(".gif").write_text("my gif")
    options = DemoOptions(out=str(out), video=str(video))
    with pytest.raises(ValueError, match="was not written by the demo.*pass --overwrite"):
        check_demo_options(options)
    check_demo_options(DemoOptions(out=str(out), video=str(video), overwrite=True))


def _fakes(monkeypatch) -> list:
    """The evaluation and the video as fakes that write their files (no episodes)."""
    calls: list = []

    def evaluate_command(options):
        Path(options.json).write_text("{}")
        calls.append(("evaluate", options))

    def video_command(options):
        Path(options.out).parent.mkdir(parents=True, exist_ok=True)
        Path(options.out).write_bytes(b"mp4 " + str(len(calls)).encode())
        Path(options.out).with_suffix(".gif").write_bytes(b"gif " + str(len(calls)).encode())
        calls.append(("video", options))

    monkeypatch.setattr(demo, "evaluate_command", evaluate_command)
    monkeypatch.setattr(demo, "video_command", video_command)
    return calls


@pytest.mark.skipif(not (demo.SHIPPED / "vpl.pt").exists(), reason="no shipped checkpoints")
def test_the_demo_replaces_only_its_own_video(tmp_path, monkeypatch, capsys):
    """With the shipped checkpoints (copied, nothing trains) and a fake evaluation and
    video: the video goes into --out by default; a --video elsewhere is recorded in
    demo.json and replaced by the next run, but not once someone changed it."""
    calls = _fakes(monkeypatch)
    out = tmp_path / "demo"
    assert demo_command(DemoOptions(out=str(out))) == 0
    assert (out / "personalized.mp4").is_file() and (out / "personalized.gif").is_file()
    assert demo_command(DemoOptions(out=str(out))) == 0  # its own, in --out: replaced
    video = tmp_path / "videos" / "personalized.mp4"
    assert demo_command(DemoOptions(out=str(out), video=str(video))) == 0
    record = json.loads((out / "demo.json").read_text())["video"]
    assert str(video.resolve()) in record and str(video.with_suffix(".gif").resolve()) in record
    assert demo_command(DemoOptions(out=str(out), video=str(video))) == 0  # recorded: replaced
    assert len([c for c in calls if c[0] == "video"]) == 4
    video.write_bytes(b"my own video, do not touch")
    assert main(["demo", "--out", str(out), "--video", str(video)]) == 2
    assert "was not written by the demo" in capsys.readouterr().err
    assert video.read_bytes() == b"my own video, do not touch"
    assert demo_command(DemoOptions(out=str(out), video=str(video), overwrite=True)) == 0
    assert video.read_bytes() != b"my own video, do not touch"


def test_tb_reaches_the_loop_and_the_oracle(tmp_path):
    options = DemoOptions(out=str(tmp_path / "demo"), tb=True)
    assert demo._loop_options(options, tmp_path / "demo", False).tb
    assert demo._oracle_options(options, tmp_path / "demo" / "policy_oracle").tb


@pytest.mark.skipif(not (demo.SHIPPED / "vpl.pt").exists(), reason="no shipped checkpoints")
def test_a_demo_of_other_options_in_out_is_not_reused(tmp_path, monkeypatch, capsys):
    """The shipped two-modes demo in --out, then a run for another population there: refused
    (it would skip every step and evaluate the two-modes policies on the new users)."""
    _fakes(monkeypatch)
    out = tmp_path / "demo"
    assert demo_command(DemoOptions(out=str(out), video="")) == 0
    assert main(["demo", "--out", str(out), "--population", "modes", "--video", ""]) == 2
    err = capsys.readouterr().err
    assert "holds a demo made with other options" in err and "--population 'two-modes'" in err
    assert "its own --out" in err and "--retrain" in err
    assert demo_command(DemoOptions(out=str(out), video="")) == 0  # the same options: reused
