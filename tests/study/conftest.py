"""Shared studies for the study tests: created once per session (about 10 s each).

* ``active_study``: PlatePlacement with the shipped two-modes checkpoints (VPL reward and
  policy, BTL policy): BALD queries and "your robot" clips.
* ``random_study``: no reward model, 20 participants, random queries: the load test's.
* ``typed_study``: made from a study file (:data:`TYPED_STUDY_FILE`): welcome, consent, one
  practice query, then a pair, a ranking of three, an end-state picture and a rating, and
  the blind final choice between the shipped VPL and BTL policies.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from robopref.study.create import StudyCreateOptions, create_study
from robopref.study.study_file import example_study_file

CHECKPOINTS = Path(__file__).resolve().parents[2] / "robopref" / "policies" / "checkpoints"


def _make(folder: Path, **kwargs) -> Path:
    create_study(StudyCreateOptions(out=str(folder), **kwargs), progress=False)
    return folder


@pytest.fixture(scope="session")
def active_study_template(tmp_path_factory) -> Path:
    """An active study nobody has answered (copy it before writing: ``active_study``)."""
    return _make(
        tmp_path_factory.mktemp("studies") / "active",
        reward=str(CHECKPOINTS / "vpl.pt"),
        policy=str(CHECKPOINTS / "policy_vpl"),
        btl_policy=str(CHECKPOINTS / "policy_btl"),
        btl_reward=str(CHECKPOINTS / "btl.pt"),
        participants=3,
        queries=4,
        strategy="active",
        episodes=6,
        pairs=12,
    )


@pytest.fixture
def active_study(active_study_template, tmp_path) -> Path:
    """A fresh copy of the active study for one test."""
    return Path(shutil.copytree(active_study_template, tmp_path / "study"))


@pytest.fixture(scope="session")
def random_study_template(tmp_path_factory) -> Path:
    """A random-query study of 20 participants without a robot."""
    return _make(
        tmp_path_factory.mktemp("studies") / "random",
        participants=20,
        queries=4,
        strategy="random",
        episodes=6,
        pairs=12,
    )


@pytest.fixture
def random_study(random_study_template, tmp_path) -> Path:
    """A fresh copy of the random study for one test."""
    return Path(shutil.copytree(random_study_template, tmp_path / "study"))


#: the typed study's file (the library's small example study file)
TYPED_STUDY_FILE = example_study_file(CHECKPOINTS)


@pytest.fixture(scope="session")
def typed_study_template(tmp_path_factory) -> Path:
    """The study file's study, nobody has answered (copy it: ``typed_study``)."""
    folder = tmp_path_factory.mktemp("studies")
    study_file = folder / "study.yaml"
    study_file.write_text(TYPED_STUDY_FILE)
    return _make(folder / "typed", file=str(study_file))


@pytest.fixture
def typed_study(typed_study_template, tmp_path) -> Path:
    """A fresh copy of the typed study for one test."""
    return Path(shutil.copytree(typed_study_template, tmp_path / "study"))


def pytest_terminal_summary(terminalreporter) -> None:
    """Say loudly when the browser test could not run (no Chromium on this machine)."""
    from .test_browser import CHROMIUM, NO_BROWSER

    if CHROMIUM is None:
        terminalreporter.write_sep("!", NO_BROWSER, red=True, bold=True)
