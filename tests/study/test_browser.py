"""A real browser: Playwright driving the system Chromium through a participant's link.

Playwright cannot download its own browsers here, so it launches Debian's Chromium
(``apt-get install chromium``; ``.ci/run`` installs it when missing). Without it the test
is skipped with a loud warning in the summary (see ``conftest.pytest_terminal_summary``).
"""

from __future__ import annotations

import shutil
import time

import pytest

from robopref.study.export import study_dataset
from robopref.study.load import free_port, start_server
from robopref.study.spec import read_links
from robopref.study.store import StudyStore

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NO_BROWSER = (
    "NO BROWSER: the study's browser test did not run. Install Debian's Chromium "
    "(`apt-get install chromium`, as .ci/run does) to run it."
)


def _video_state(page, selector: str) -> dict:
    return page.eval_on_selector(
        selector,
        "v => ({ready: v.readyState, time: v.currentTime, width: v.videoWidth, error: !!v.error})",
    )


def _wait_playing(page, selector: str, seconds: float = 30.0) -> dict:
    deadline = time.monotonic() + seconds
    state = _video_state(page, selector)
    while time.monotonic() < deadline:
        state = _video_state(page, selector)
        if state["ready"] >= 2 and state["time"] > 0 and not state["error"]:
            return state
        time.sleep(0.2)
    raise AssertionError(f"{selector} did not play: {state}")


@pytest.mark.skipif(CHROMIUM is None, reason=NO_BROWSER)
def test_a_participant_answers_in_chromium_by_click_and_keyboard(active_study):
    from playwright.sync_api import sync_playwright

    port = free_port()
    token = next(iter(read_links(active_study).values()))
    link = f"http://127.0.0.1:{port}/s/{token}"
    server = start_server(active_study, port)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
            )
            page = browser.new_page()
            page.goto(link)
            assert page.inner_text("#progress-text") == "Query 1 of 4"
            left, right = _wait_playing(page, "#left"), _wait_playing(page, "#right")
            assert left["width"] == right["width"] == 320  # the WebM clips decode and play
            times = page.evaluate(
                "[document.getElementById('left').currentTime,"
                " document.getElementById('right').currentTime]"
            )
            assert abs(times[0] - times[1]) < 0.5  # started together
            page.wait_for_timeout(300)  # a person watches before answering
            page.click("#choice-left")
            page.wait_for_selector("text=Query 2 of 4")
            for key, next_text in (("b", "Query 3 of 4"), ("e", "Query 4 of 4")):
                _wait_playing(page, "#left")
                page.keyboard.press(key)
                page.wait_for_selector(f"text={next_text}")
            page.keyboard.press("c")
            page.wait_for_selector("text=All 4 answers are recorded.")
            page.wait_for_selector("#robot-vpl", timeout=120_000)  # the page reloads when ready
            for kind in ("vpl", "btl"):
                assert _wait_playing(page, f"#robot-{kind}")["width"] == 320
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    rows = StudyStore(active_study).all_answers()
    assert [r["choice"] for r in rows] == ["left", "right", "equal", "cant_tell"]
    assert all(r["client_ms"] is not None and r["client_ms"] >= 300 for r in rows[:1])
    assert all(r["client_ms"] is not None for r in rows)  # the page's own clock was sent
    data = study_dataset(active_study)
    assert data.meta["choice"] == ["left", "right", "equal", "cant_tell"]
    assert data.label[2] == 0.5 and data.label[3] != data.label[3]  # equal; can't tell: NaN
