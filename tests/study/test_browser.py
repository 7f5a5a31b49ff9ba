"""A real browser: Playwright driving the system Chromium through a participant's link.

Playwright cannot download its own browsers here, so it launches Debian's Chromium
(``apt-get install chromium``; ``.ci/run`` installs it when missing). Without it the test
is skipped with a loud warning in the summary (see ``conftest.pytest_terminal_summary``).

One participant of the typed study goes through every page, by click and by keyboard:
welcome, consent, the practice pair, a pair, a ranking of three, end-state pictures, a
rating, "preparing your robot", the blind final choice and its ratings, thanks; one page
is checked at a phone's width. Then the database, the report and the export are checked
against what was pressed.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from robopref.study.export import study_dataset
from robopref.study.load import CHROMIUM, free_port, launch_chromium, start_server
from robopref.study.report import study_report
from robopref.study.spec import read_links
from robopref.study.store import StudyStore

NO_BROWSER = (
    "NO BROWSER: the study's browser test did not run. Install Debian's Chromium "
    "(`apt-get install chromium`, as .ci/run does) to run it."
)
#: the desktop and the phone viewports
DESKTOP = {"width": 1000, "height": 900}
PHONE = {"width": 390, "height": 844}


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


def _fits_phone(page) -> None:
    """Nothing on the page overflows horizontally at a phone's width."""
    page.set_viewport_size(PHONE)
    try:
        widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1] + 1, f"the page overflows a phone: {widths}"
    finally:
        page.set_viewport_size(DESKTOP)


def _on(page, selector: str, timeout_s: float = 30.0) -> None:
    page.wait_for_selector(selector, timeout=timeout_s * 1000)


@pytest.mark.skipif(CHROMIUM is None, reason=NO_BROWSER)
def test_a_participant_goes_through_every_page_in_chromium(typed_study):
    from playwright.sync_api import sync_playwright

    port = free_port()
    token = next(iter(read_links(typed_study).values()))
    link = f"http://127.0.0.1:{port}/s/{token}"
    server = start_server(typed_study, port)
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page(viewport=DESKTOP)
            page.goto(link)

            # welcome: the example clip plays; start by click
            _on(page, "body[data-page=welcome]")
            assert _wait_playing(page, "video#example")["width"] == 320
            page.click("#start")

            # consent: "I agree" has the focus, Enter agrees
            _on(page, "body[data-page=consent]")
            assert page.evaluate("document.activeElement.id") == "agree"
            page.keyboard.press("Enter")

            # the practice pair, marked, answered by key; checked at a phone's width
            _on(page, "body[data-page=query][data-kind=pair] #practice")
            assert page.inner_text("#progress-text") == "Practice 1 of 1"
            assert page.is_visible("#practice")
            for selector in ("#left", "#right"):
                _wait_playing(page, selector)
            _fits_phone(page)
            page.keyboard.press("a")

            # the recorded pair, by click
            _on(page, "body[data-page=query][data-kind=pair] >> text=Query 1 of 4")
            assert page.query_selector("#practice") is None
            for selector in ("#left", "#right"):
                _wait_playing(page, selector)
            page.wait_for_timeout(300)  # a person watches before answering
            page.click("#choice-left")

            # the ranking: key 2, undo, key 3, a click on clip 1; the last is placed
            _on(page, "body[data-page=query][data-kind=ranking]")
            assert page.inner_text("#progress-text") == "Query 2 of 4"
            for i in range(3):
                _wait_playing(page, f"#item-{i} video")
            _fits_phone(page)
            assert page.is_disabled("#submit-ranking")
            page.keyboard.press("2")
            assert page.inner_text("#item-1 .rank") == "1"
            page.keyboard.press("Backspace")
            assert page.inner_text("#item-1 .rank") == ""
            page.keyboard.press("3")
            page.click("#item-0")
            assert page.input_value("#order") == "2,0,1"
            ranks = [page.inner_text(f"#item-{i} .rank") for i in range(3)]
            assert ranks == ["2", "3", "1"]
            page.keyboard.press("Enter")

            # the end-state pictures: both load; E for about equal
            _on(page, "body[data-page=query][data-kind=end-state]")
            assert page.inner_text("#progress-text") == "Query 3 of 4"
            page.wait_for_function(
                "['left', 'right'].every(id => { const img = document.getElementById(id);"
                " return img.complete && img.naturalWidth > 0; })"
            )
            assert page.eval_on_selector("#left", "img => img.tagName") == "IMG"
            page.keyboard.press("e")

            # the rating: 6, Enter
            _on(page, "body[data-page=query][data-kind=rating]")
            assert page.inner_text("#progress-text") == "Query 4 of 4"
            _wait_playing(page, "#clip")
            page.keyboard.press("6")
            assert page.input_value("#rating") == "6"
            assert page.inner_text("#rating-value") == "6"
            page.keyboard.press("Enter")

            # preparing the robots: the page reloads itself when they are ready
            _on(page, "body[data-page=robot]")
            assert "Preparing your robot" in page.inner_text("body")
            _on(page, "body[data-page=final]", timeout_s=180)

            # the blind final choice: both robots play, unnamed; 1 picks the left one
            for side in ("left", "right"):
                assert _wait_playing(page, f"#robot-{side}")["width"] == 320
            text = page.inner_text("body")
            assert "VPL" not in text.upper() and "BTL" not in text.upper()
            for side in ("left", "right"):
                src = page.get_attribute(f"#robot-{side}", "src")
                assert src.endswith(f"/final/{side}"), src
            _fits_phone(page)
            page.keyboard.press("1")

            # the ratings: left 6 (two steps up from 4), right 3 (one down)
            _on(page, "body[data-page=final-rating]")
            assert page.input_value("#rating_left") == page.input_value("#rating_right") == "4"
            page.focus("#rating_left")
            page.keyboard.press("ArrowRight")
            page.keyboard.press("ArrowRight")
            page.focus("#rating_right")
            page.keyboard.press("ArrowLeft")
            assert page.input_value("#rating_left") == "6"
            assert page.input_value("#rating_right") == "3"
            assert page.inner_text("#rating_left-value") == "6"
            page.keyboard.press("Enter")

            _on(page, "body[data-page=thanks]")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)

    store = StudyStore(typed_study)
    participant = store.participant(token)
    rows = store.all_answers()
    assert [r["kind"] for r in rows] == ["pair", "ranking", "end-state", "rating"]
    assert [r["choice"] for r in rows] == ["left", "ranked", "equal", "rated"]
    assert all(r["client_ms"] is not None for r in rows)  # the page's own clock was sent
    assert rows[0]["client_ms"] >= 300
    shown = rows[1]["items"]
    assert len(shown) == 3 and rows[1]["answer"] == [shown[2], shown[0], shown[1]]
    assert rows[2]["label"] == 0.5
    assert rows[3]["answer"] == 6
    practice = store.all_answers(practice=True)
    assert [(r["kind"], r["choice"]) for r in practice] == [("pair", "left")]
    assert practice[0]["position"] == 0 and all(r["position"] > 0 for r in rows)
    assert {"welcome", "consent"} <= store.steps(participant.id)
    final = store.final(participant.id)
    assert final["choice"] == "left" and final["left"] in ("vpl", "btl")
    assert (final["rating_left"], final["rating_right"]) == (6, 3)
    assert final["rated_at"] is not None

    report = study_report(typed_study)
    assert report["final"]["chose"] == 1
    assert report["final"]["win_rate"] == (1.0 if final["left"] == "vpl" else 0.0)
    rated = {final["left"]: 6, ({"vpl", "btl"} - {final["left"]}).pop(): 3}
    for kind, rating in rated.items():
        assert report["final"]["ratings"][kind]["mean"] == rating
    assert set(report["answer_seconds"]["median_s"]) == {"pair", "ranking:3", "end-state", "rating"}

    data = study_dataset(typed_study)
    data.validate()
    assert data.meta["kind"] == ["pair", "ranking", "end-state", "rating"]
    assert set(data.question.tolist()) == {0, 1, 2}  # one rating implies no pair
    assert data.n_pairs == 5
    ranking = data.label[data.question == 1]
    assert len(ranking) == 3 and np.all(ranking == 1.0)
    assert data.label[data.question == 2].tolist() == [0.5]
