"""The command line's own conventions: ``python -m robopref``, Ctrl-C, non-finite numbers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from robopref import cli


def test_python_dash_m_runs_the_command_line():
    done = subprocess.run(
        [sys.executable, "-m", "robopref", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "usage: robopref" in done.stdout and "train-policy" in done.stdout


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_float_options_are_refused_by_name(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train-reward", "--data", "x.npz", "--out", "x.pt", f"--kl-weight={value}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--kl-weight" in err and "finite number" in err


def test_a_word_for_a_float_option_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train-reward", "--data", "x.npz", "--out", "x.pt", "--kl-weight", "lots"])
    assert exit_info.value.code == 2
    assert "expected a number, got 'lots'" in capsys.readouterr().err


def _interrupting(monkeypatch, command: str) -> None:
    module, _, function, _ = cli.COMMANDS[command]
    loaded = __import__(module, fromlist=[function])

    def interrupted(options):
        raise KeyboardInterrupt

    monkeypatch.setattr(loaded, function, interrupted)


def test_ctrl_c_on_a_resumable_command_says_how_to_continue(monkeypatch, capsys):
    _interrupting(monkeypatch, "train-reward")
    code = cli.main(["train-reward", "--data", "d.npz", "--out", "rm/x.pt"])
    assert code == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "--resume" in err and "rm/x.pt" in err
    assert "Traceback" not in err


def test_ctrl_c_on_a_one_shot_command_says_nothing_was_half_written(monkeypatch, capsys):
    _interrupting(monkeypatch, "collect")
    code = cli.main(["collect", "--out", "d.npz"])
    assert code == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "--resume" not in err


def test_ctrl_c_on_the_demo_says_to_run_it_again(monkeypatch, capsys):
    _interrupting(monkeypatch, "demo")
    assert cli.main(["demo"]) == 130
    assert "run the same command again to continue" in capsys.readouterr().err


def test_a_kill_ends_a_command_as_ctrl_c_does_and_the_handler_is_restored(monkeypatch, capsys):
    """SIGTERM (``kill``, a scheduler's stop) raises KeyboardInterrupt where the command is,
    so its worker processes are ended and the same hint is printed."""
    module, _, function, _ = cli.COMMANDS["train-reward"]
    loaded = __import__(module, fromlist=[function])

    def killed(options):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this
        return 0

    monkeypatch.setattr(loaded, function, killed)
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["train-reward", "--data", "d.npz", "--out", "rm/x.pt"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_os_error_is_one_line_with_exit_status_2(monkeypatch, capsys):
    module, _, function, _ = cli.COMMANDS["collect"]
    loaded = __import__(module, fromlist=[function])

    def read_only(options):
        raise OSError(30, "Read-only file system", "rofs/d.npz")

    monkeypatch.setattr(loaded, function, read_only)
    assert cli.main(["collect", "--out", "d.npz"]) == 2
    assert "Read-only file system: 'rofs/d.npz'" in capsys.readouterr().err


def test_an_option_that_documents_infinity_takes_it_but_never_nan():
    parser = cli.build_parser(["collect"])
    args = parser.parse_args(["collect", "--out", "d.npz", "--beta", "inf"])
    assert args.beta == float("inf")
    with pytest.raises(SystemExit):
        parser.parse_args(["collect", "--out", "d.npz", "--beta", "nan"])
