"""Many participants answering at once against a running study server (the load test).

:func:`start_server` runs ``robopref study serve`` in a subprocess on a free loopback port
and waits until it answers (the tests' and the benchmark's server).

:func:`answer_concurrently` runs one thread per participant token; each loads its page
(the HTML of the open query), fetches both clips, then answers through ``answer.json`` with
a random choice until it is done, timing every request. The test asserts on the database
afterwards (every answer stored once); ``benchmarks/study_load.py`` prints the latencies.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robopref.study.store import CHOICES


@dataclass
class LoadResult:
    """Seconds per request kind, answers stored, and failures (status and text)."""

    page_s: list[float] = field(default_factory=list)
    clip_s: list[float] = field(default_factory=list)
    answer_s: list[float] = field(default_factory=list)
    answers: int = 0
    failures: list[str] = field(default_factory=list)
    wall_s: float = 0.0


def _participant(
    base_url: str, token: str, result: LoadResult, lock: threading.Lock, seed: int, limit: int
) -> None:
    import httpx2 as httpx

    rng = random.Random(seed)
    with httpx.Client(base_url=base_url, timeout=60.0) as client:
        for _ in range(limit):
            start = time.perf_counter()
            page = client.get(f"/s/{token}")
            page_s = time.perf_counter() - start
            state = client.get(f"/s/{token}/next.json").json()
            if page.status_code != 200 or state.get("done"):
                break
            start = time.perf_counter()
            clips_ok = all(client.get(state[side]).status_code == 200 for side in ("left", "right"))
            clip_s = time.perf_counter() - start
            start = time.perf_counter()
            reply = client.post(
                f"/s/{token}/answer.json",
                json={"query": state["query"], "choice": rng.choice(CHOICES), "client_ms": 1.0},
            )
            answer_s = time.perf_counter() - start
            with lock:
                result.page_s.append(page_s)
                result.clip_s.append(clip_s)
                result.answer_s.append(answer_s)
                if reply.status_code == 200 and clips_ok:
                    result.answers += 1
                else:
                    result.failures.append(f"{reply.status_code} {reply.text[:200]}")


def answer_concurrently(
    base_url: str, tokens: list[str], queries: int, seed: int = 0, deadline_s: float = 300.0
) -> LoadResult:
    """Every token answers its ``queries`` at once, one thread each (module docstring)."""
    result, lock = LoadResult(), threading.Lock()
    threads = [
        threading.Thread(
            target=_participant, args=(base_url, token, result, lock, seed + i, queries + 1)
        )
        for i, token in enumerate(tokens)
    ]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(1.0, deadline_s - (time.perf_counter() - start)))
    if any(thread.is_alive() for thread in threads):
        result.failures.append(f"participants still answering after {deadline_s} s")
    result.wall_s = time.perf_counter() - start
    return result


#: the system Chromium (Debian's ``chromium``): Playwright cannot download its own here
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def launch_chromium(playwright: Any) -> Any:
    """The system Chromium through Playwright (``executable_path``), headless, playing
    muted clips without a click (the browser test's and the screenshots')."""
    if CHROMIUM is None:
        raise RuntimeError("no chromium on this machine: `apt-get install chromium`")
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
    )


def free_port() -> int:
    """A TCP port free on the loopback address now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(folder: str | Path, port: int, wait_s: float = 60.0) -> subprocess.Popen:
    """Start ``robopref study serve`` on ``port`` and wait until it answers.

    Its output goes to a temporary log file (a pipe nobody reads could fill and block the
    server), named by ``process.log_path``; a server that exits or does not answer within
    ``wait_s`` raises ``RuntimeError`` with the log.
    """
    import httpx2 as httpx

    with tempfile.NamedTemporaryFile(prefix="study_serve_", suffix=".log", delete=False) as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "robopref.cli", "study", "serve", "--study", str(folder),
             "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ},
        )  # fmt: skip
    process.log_path = log.name  # type: ignore[attr-defined]
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the study server exited: {Path(log.name).read_text()}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1.0)
            return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(
        f"the study server did not answer in {wait_s} s: {Path(log.name).read_text()}"
    )
