"""The README stays a short guide and every relative link in it and in docs/ leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]


def test_the_readme_is_a_short_guide_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    assert "make demo" in text and "make test" in text


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_exists(page: Path):
    broken = []
    for link in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        path = link.split("#")[0]
        if re.match(r"[a-z]+:", link) or not path:
            continue
        if not (page.parent / path).exists():
            broken.append(link)
    assert not broken, f"{page.relative_to(ROOT)} links to missing files: {broken}"
