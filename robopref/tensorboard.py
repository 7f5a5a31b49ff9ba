"""TensorBoard logging, one opt-in ``--tb`` for every command that trains.

TensorBoard is an optional dependency (``pip install "robopref[tb]"``; the ``dev`` extra
has it too): a plain ``pip install robopref`` trains without it. A command logs to
TensorBoard only when asked (``--tb``), and then refuses, before any work starts, an
install that lacks it, naming the fix.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import field
from pathlib import Path
from typing import Any

#: the fix named when ``--tb`` is asked for without tensorboard installed
INSTALL_HINT = 'pip install "robopref[tb]" (or pip install tensorboard), or drop --tb'


def tb_option() -> Any:
    """The ``--tb`` field of a command's options dataclass (one home for its help)."""
    return field(
        default=False,
        metadata={
            "help": "log to TensorBoard in OUT's tb/ folder (needs the tensorboard package: "
            'pip install "robopref[tb]"); view with tensorboard --logdir OUT'
        },
    )


def tensorboard_available() -> bool:
    """Whether the ``tensorboard`` package can be imported."""
    return importlib.util.find_spec("tensorboard") is not None


def tensorboard_dir(requested: bool, folder: str | os.PathLike[str]) -> str | None:
    """``folder`` when ``--tb`` was given (None when not); refuses a missing tensorboard."""
    if not requested:
        return None
    if not tensorboard_available():
        raise ValueError(f"--tb logs to TensorBoard, which is not installed: {INSTALL_HINT}")
    return str(Path(folder))


def summary_writer(log_dir: str | None) -> Any:
    """A ``torch.utils.tensorboard.SummaryWriter`` on ``log_dir``, or None for no logging."""
    if log_dir is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=log_dir)
