"""Helpers of the study tests: a free port and a real ``robopref study serve`` process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(folder: Path, port: int) -> subprocess.Popen:
    """Start ``robopref study serve`` and wait until it answers (or fail with its output)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "robopref.cli", "study", "serve", "--study", str(folder),
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {process.stdout.read().decode()}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1.0)
            return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError("the server did not start within 60 s")
