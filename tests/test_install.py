"""A plain ``pip install robopref`` (no extras) trains and evaluates policies.

TensorBoard is the optional ``tb`` extra: without ``--tb`` nothing imports it. The commands
run here in a fresh interpreter where ``import tensorboard`` fails, as on an install without
the extra (the ``dev`` extra of the test environment has it, so it is blocked first).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: run ``robopref ARGS`` in an interpreter where tensorboard cannot be imported
WITHOUT_TENSORBOARD = """
import sys
sys.modules["tensorboard"] = None  # import tensorboard -> ImportError; find_spec -> None
try:
    import tensorboard  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("tensorboard was not blocked")
from robopref.cli import main
sys.exit(main(sys.argv[1:]))
"""


def robopref(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``robopref ARGS`` in ``cwd`` without tensorboard."""
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_TENSORBOARD, *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_train_policy_and_evaluate_without_tensorboard(tmp_path: Path) -> None:
    quick = ["--steps", "300", "--n-envs", "2", "--eval-episodes", "1", "--progress", "false"]
    done = robopref("train-policy", "--oracle", *quick, "--out", "pol", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "held-out success" in done.stdout
    assert (tmp_path / "pol" / "model.zip").is_file() and not (tmp_path / "pol" / "tb").exists()
    done = robopref(
        "evaluate", "--policy", "pol", "--users", "1", "--episodes", "1", "--json", "e.json",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # Asked for, TensorBoard is refused before any work, with the fix.
    done = robopref("train-policy", "--oracle", *quick, "--out", "tb", "--tb", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert 'pip install "robopref[tb]"' in done.stderr
    assert not (tmp_path / "tb").exists()
