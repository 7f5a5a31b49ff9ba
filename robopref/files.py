"""Output files: the one atomic writer, stale-temp cleanup, and checks made before long work.

Every file robopref writes goes through :func:`atomic_path`: a temporary file in the same
folder (hidden, named ``.<name>.<random>.tmp<suffix>``), renamed over the target once it
is complete, with the usual file mode (``0o666`` less the umask; ``mkstemp`` alone makes
files private). Readers never see half a file. A process killed by ``kill -9`` mid-write
leaves its temporary behind; :func:`clean_stale_temps` removes those, and every writer calls
it, so the next run of the same output cleans up.

:func:`check_output` is what a command calls before its work starts: it refuses an output
that exists (unless ``--overwrite``) or that cannot be written, with the fix in the message.
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".tmp"


def current_umask() -> int:
    """The process's file-creation mask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def clean_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporaries an interrupted write of ``path`` left behind; return them.

    Only files named like this module's temporaries for exactly ``path`` are touched.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    stale = [
        p
        # mkstemp's random part is 8 characters; the name is escaped, not a pattern.
        for p in path.parent.glob(
            f"{glob.escape(_temp_prefix(path))}????????{TEMP_SUFFIX}{glob.escape(path.suffix)}"
        )
        if p.is_file() and not p.is_symlink()
    ]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (ending in ``path``'s suffix); rename on success.

    The caller writes the temporary (by name, so libraries that append nothing, such as
    ``torch.save`` or ``imageio``, work); on an exception it is removed and ``path`` is left
    as it was. Stale temporaries of ``path`` from killed runs are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(path)
    # The target's suffix stays last: writers that pick a format by the extension (imageio)
    # or append one when it is missing (SB3's .zip) then write the temporary as they would
    # the target.
    handle, temp = tempfile.mkstemp(
        dir=path.parent, prefix=_temp_prefix(path), suffix=TEMP_SUFFIX + path.suffix
    )
    os.close(handle)
    try:
        yield Path(temp)
        with open(temp, "rb") as written:  # on disk before the rename makes it the target
            os.fsync(written.fileno())
        os.chmod(temp, 0o666 & ~current_umask())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as temp:
        temp.write_bytes(data)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` so that readers never see half a file."""
    write_bytes_atomic(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))


def save_figure_atomic(figure: Any, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Save a matplotlib ``figure`` as PNG at ``path`` atomically, then close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as temp:
        figure.savefig(temp, dpi=dpi, format="png")
    plt.close(figure)
    return Path(path)


def _nearest_existing(path: Path) -> Path:
    probe = path.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def check_writable(path: str | os.PathLike[str], flag: str = "--out") -> None:
    """Raise ``ValueError`` now if ``path`` (a file or folder to create) cannot be written.

    Checks what can be known before the work starts: no file stands where a folder on the
    way must be, and the nearest existing folder is writable by this process.
    """
    path = Path(path)
    existing = _nearest_existing(path.parent if not path.is_dir() else path)
    if not existing.is_dir():
        raise ValueError(
            f"{flag} {path}: {existing} is a file, so no folder can be made inside it; "
            f"choose another {flag}"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"{flag} {path}: the folder {existing} is not writable by this user; "
            f"choose a writable {flag} or change the folder's permissions"
        )


def check_output(
    path: str | os.PathLike[str],
    overwrite: bool,
    what: str = "output",
    flag: str = "--out",
    exists: bool | None = None,
) -> None:
    """Refuse, before any work, an output that exists (without ``overwrite``) or can't be written.

    ``exists`` overrides the existence test (a policy folder "exists" when it holds a
    finished model, not when it is an empty folder).
    """
    path = Path(path)
    present = path.exists() if exists is None else exists
    if present and not overwrite:
        raise ValueError(
            f"{flag} {path}: the {what} already exists; pass --overwrite to replace it, "
            f"or choose another {flag}"
        )
    check_writable(path, flag)
