"""`robopref loop`: refusals before work (a folder that is not a loop's, a damaged loop.json),
Ctrl-C ending in one line with no worker left behind, and ``--tb``."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import robopref.loop.run as loop_run
from robopref.cli import main
from robopref.loop import LoopOptions, run_loop

#: the loop test's tiny budgets (tests/test_loop.py): two rounds, PPO's smallest update
TINY = {
    "users": 10, "answers": 7, "first_answers": 4, "per_round": 3, "steps": 4096,
    "scout_steps": 4096, "episodes": 16, "candidates": 8, "eval_users": 2, "fit_epochs": 25,
    "refit_epochs": 5, "progress": False, "workers": 1,
}  # fmt: skip


def tiny(out: Path, **changes: object) -> LoopOptions:
    return LoopOptions(out=str(out), **{**TINY, **changes})


def tiny_argv(out: Path, *more: str) -> list[str]:
    argv = ["loop", "--out", str(out)]
    for key, value in TINY.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return [*argv, *more]


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_that_is_not_a_loops_is_refused_even_with_overwrite(tmp_path, overwrite):
    out = tmp_path / "userdir"
    out.mkdir()
    (out / "vpl.pt").write_bytes(b"my own model")
    with pytest.raises(ValueError, match="not a loop's folder .*vpl.pt.*choose another --out"):
        run_loop(tiny(out, overwrite=overwrite))
    assert (out / "vpl.pt").read_bytes() == b"my own model"


def test_an_empty_folder_or_a_loops_unfinished_first_round_is_accepted(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    loop_run.check_loop_options(tiny(empty))
    started = tmp_path / "started"  # killed in round 0: no loop.json yet
    (started / "round_00").mkdir(parents=True)
    (started / ".loop.json.abcdefgh.tmp.json").write_text("{")
    loop_run.check_loop_options(tiny(started))
    # what the calling command (the demo) made there is left alone
    (started / "policy_oracle").mkdir()
    with pytest.raises(ValueError, match="policy_oracle"):
        loop_run.check_loop_options(tiny(started))
    loop_run.check_loop_options(tiny(started), others=("policy_oracle",))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"options": {}\n', "loop.json is damaged \\(not JSON"),
        ('{"rounds": 2, "done": 1, "history": []}', "loop.json has no 'options'"),
        ("[1, 2]", "loop.json has no 'options'"),
        ('{"options": {}}', "loop.json lacks 'rounds'"),
    ],
)
@pytest.mark.parametrize("resume", [False, True])
def test_a_damaged_loop_json_is_named_with_the_fix(tmp_path, capsys, text, message, resume):
    out = tmp_path / "run"
    out.mkdir()
    (out / "loop.json").write_text(text)
    with pytest.raises(ValueError, match=message + ".*pass --overwrite"):
        run_loop(tiny(out, resume=resume))
    assert main(tiny_argv(out, *(["--resume"] if resume else []))) == 2
    err = capsys.readouterr().err
    assert "robopref loop: error:" in err and "loop.json" in err and "Traceback" not in err
    with pytest.raises(ValueError, match="has no 'options'|is damaged|lacks"):
        loop_run.saved_options(out)


def test_ctrl_c_in_the_loop_ends_with_the_resume_hint(tmp_path, capsys, monkeypatch):
    def interrupted(options):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(loop_run, "shared_setup", interrupted)
    out = tmp_path / "run"
    assert main(tiny_argv(out)) == 130
    err = capsys.readouterr().err
    assert "robopref loop: interrupted: continue with the same command and --resume" in err
    assert str(out) in err and "Traceback" not in err


def _worker_job(started: str, seconds: float) -> tuple[int, bool]:
    Path(started).write_text(str(os.getpid()))
    time.sleep(seconds)
    return os.getpid(), signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_ctrl_c_ends_the_arm_workers_too(tmp_path):
    """The arms' worker processes ignore Ctrl-C (an idle one would print a traceback of its
    own) and the main process ends them when it is interrupted, mid-job: none is left."""
    options = tiny(tmp_path / "run", workers=2)
    began = time.time()
    with pytest.raises(KeyboardInterrupt), loop_run._workers(options) as pool:
        assert pool is not None
        pid, ignores = pool.submit(_worker_job, str(tmp_path / "first"), 0.0).result(120)
        assert ignores, "a worker must leave Ctrl-C to the main process"
        pool.submit(_worker_job, str(tmp_path / "long"), 600.0)
        while not (tmp_path / "long").exists():
            time.sleep(0.05)
        raise KeyboardInterrupt
    assert time.time() - began < 120, "the interrupted loop waited for its workers' jobs"
    pids = {pid, int((tmp_path / "long").read_text())}
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs POSIX process groups")
def test_a_real_ctrl_c_with_two_workers_prints_one_line(tmp_path):
    """SIGINT to the whole process group (what Ctrl-C in a terminal sends) while the two
    arms run in their worker processes: exit 130, the hint, no traceback, no process left."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "robopref", *tiny_argv(out, "--workers", "2")]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.time() + 240
    while time.time() < deadline and not (out / "round_00").is_dir():
        if process.poll() is not None:
            break
        time.sleep(0.2)
    assert (out / "round_00").is_dir(), process.communicate()
    time.sleep(1.0)  # the arms are fitting in their workers now
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted: continue with the same command and --resume" in err
    assert "Traceback" not in err, err
    deadline, left = time.time() + 15, ["?"]
    while time.time() < deadline and left:  # multiprocessing's resource tracker exits last
        listing = subprocess.run(["ps", "-eo", "pid=,pgid=,args="], capture_output=True, text=True)
        left = [line for line in listing.stdout.splitlines() if line.split()[1] == str(process.pid)]
        time.sleep(0.2)
    assert not left, f"processes left in the group: {left}"


@pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is None,
    reason="LOUD SKIP: tensorboard is not installed (pip install -e '.[dev]'): --tb untested",
)
def test_tb_logs_each_rounds_fit_and_heldout_figures(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    state = run_loop(tiny(out, methods=["btl"], tb=True))
    assert state["finished"]
    events = list((out / "tb").glob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file in OUT/tb"
    accumulator = EventAccumulator(str(out / "tb"))
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    for tag in ("fit/btl/best_val_accuracy", "fit/btl/best_val_nll", "heldout/btl/success",
                "heldout/btl/accuracy", "heldout/btl/success_group_0"):  # fmt: skip
        assert tag in tags, sorted(tags)
    steps = [e.step for e in accumulator.Scalars("heldout/btl/success")]
    assert steps == [4, 7]  # answers per training user after each round
    row = json.loads((out / "loop.json").read_text())["history"][-1]
    assert set(row["fit"]["btl"]) == set(loop_run.FIT_FIGURES)
