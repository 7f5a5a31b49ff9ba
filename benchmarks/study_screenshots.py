"""Screenshots of every page a study participant sees, taken in Chromium (for the docs).

Creates the typed study of ``tests/study/conftest.py`` (a study file with a title, consent,
one practice query, then a pair, a ranking of three, end-state pictures and a rating, and
the blind final choice between the shipped VPL and BTL policies) in a temporary folder,
serves it with ``robopref study serve`` on a free port and drives the system Chromium
(through Playwright) through one participant's link, at a 1000x900 desktop viewport. Each
page's full-page PNG is taken once its clips play (a frame from the middle of the clips):

    welcome.png  consent.png  practice.png  pair.png  ranking.png (two of three ranked, so
    the last is placed and every rank shows)  end-state.png  rating.png  final.png
    final-rating.png  thanks.png  phone.png (the pair's page at a 390x844 phone viewport)

PNGs are quantized to 256 colours (they are committed). Needs Debian's Chromium
(``apt-get install chromium``); refuses to run without it.

    python benchmarks/study_screenshots.py --out docs/figures/study
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

from robopref.study.create import StudyCreateOptions, create_study
from robopref.study.load import CHROMIUM, free_port, launch_chromium, start_server
from robopref.study.spec import read_links
from robopref.study.study_file import example_study_file

CHECKPOINTS = Path(__file__).resolve().parents[1] / "robopref" / "policies" / "checkpoints"
DESKTOP = {"width": 1000, "height": 900}
PHONE = {"width": 390, "height": 844}


def _wait_mid_clip(page, selector: str, seconds: float = 60.0) -> None:
    """Wait until the video plays and is past its first second (or half its length)."""
    page.wait_for_function(
        """selector => {
            const v = document.querySelector(selector);
            if (!v || v.error || v.readyState < 2 || !isFinite(v.duration)) return false;
            return v.currentTime >= Math.min(1.0, v.duration / 2);
        }""",
        arg=selector,
        timeout=seconds * 1000,
    )


def _wait_pictures(page) -> None:
    page.wait_for_function(
        "[...document.querySelectorAll('img.picture')].every(i => i.complete && i.naturalWidth)"
    )


def _shoot(page, out: Path, name: str) -> Path:
    """A full-page PNG of the page, quantized to 256 colours."""
    from PIL import Image

    raw = page.screenshot(full_page=True, type="png")
    image = Image.open(io.BytesIO(raw)).convert("RGB")
    path = out / f"{name}.png"
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path}: {image.width}x{image.height}, {path.stat().st_size // 1024} KB")
    return path


def _on(page, selector: str, timeout_s: float = 60.0) -> None:
    page.wait_for_selector(selector, timeout=timeout_s * 1000)


def walk(link: str, out: Path) -> list[Path]:
    """One participant through every page, a screenshot of each (module docstring)."""
    from playwright.sync_api import sync_playwright

    shots = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport=DESKTOP)
        page.goto(link)
        _on(page, "body[data-page=welcome]")
        _wait_mid_clip(page, "#example")
        shots.append(_shoot(page, out, "welcome"))
        page.click("#start")

        _on(page, "body[data-page=consent]")
        shots.append(_shoot(page, out, "consent"))
        page.click("#agree")

        _on(page, "body[data-page=query][data-kind=pair] #practice")
        for selector in ("#left", "#right"):
            _wait_mid_clip(page, selector)
        shots.append(_shoot(page, out, "practice"))
        page.keyboard.press("a")

        _on(page, "body[data-page=query][data-kind=pair] >> text=Query 1 of 4")
        for selector in ("#left", "#right"):
            _wait_mid_clip(page, selector)
        shots.append(_shoot(page, out, "pair"))
        page.set_viewport_size(PHONE)
        _wait_mid_clip(page, "#left")
        shots.append(_shoot(page, out, "phone"))
        page.set_viewport_size(DESKTOP)
        page.click("#choice-left")

        _on(page, "body[data-page=query][data-kind=ranking]")
        for i in range(3):
            _wait_mid_clip(page, f"#item-{i} video")
        page.keyboard.press("2")
        page.click("#item-0")  # the third is placed last at once
        shots.append(_shoot(page, out, "ranking"))
        page.keyboard.press("Enter")

        _on(page, "body[data-page=query][data-kind=end-state]")
        _wait_pictures(page)
        shots.append(_shoot(page, out, "end-state"))
        page.keyboard.press("e")

        _on(page, "body[data-page=query][data-kind=rating]")
        _wait_mid_clip(page, "#clip")
        page.keyboard.press("6")
        shots.append(_shoot(page, out, "rating"))
        page.keyboard.press("Enter")

        _on(page, "body[data-page=robot], body[data-page=final]")
        _on(page, "body[data-page=final]", timeout_s=300)
        for selector in ("#robot-left", "#robot-right"):
            _wait_mid_clip(page, selector)
        shots.append(_shoot(page, out, "final"))
        page.keyboard.press("1")

        _on(page, "body[data-page=final-rating]")
        page.fill("#rating_left", "6")
        page.fill("#rating_right", "3")
        for selector in ("#robot-left", "#robot-right"):
            _wait_mid_clip(page, selector)
        shots.append(_shoot(page, out, "final-rating"))
        page.keyboard.press("Enter")

        _on(page, "body[data-page=thanks]")
        shots.append(_shoot(page, out, "thanks"))
        browser.close()
    return shots


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/figures/study", help="folder for the PNGs")
    args = parser.parse_args(argv)
    if CHROMIUM is None:
        sys.exit(
            "study_screenshots: no Chromium found (`chromium` or `chromium-browser` on PATH). "
            "Install Debian's Chromium (`apt-get install chromium`, as .ci/run does); "
            "Playwright cannot download its own browser here."
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="study_screenshots_") as tmp:
        study_file = Path(tmp) / "study.yaml"
        study_file.write_text(example_study_file(CHECKPOINTS))
        folder = Path(tmp) / "study"
        create_study(StudyCreateOptions(out=str(folder), file=str(study_file)), progress=False)
        token = next(iter(read_links(folder).values()))
        port = free_port()
        server = start_server(folder, port)
        try:
            shots = walk(f"http://127.0.0.1:{port}/s/{token}", out)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"{len(shots)} screenshots in {out} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
