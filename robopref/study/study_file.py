"""A study file (``robopref study create --file STUDY.yaml``): what a study with people asks.

Everything is checked before any episode is run; an unknown key, a value of the wrong
kind, a question type that does not exist or a model path that is not there is refused
with the key and the fix. Paths are relative to the study file's folder. Example (every key
but ``title`` and ``task`` may be left out; the defaults are ``study create``'s)::

    title: Where should the robot put the plate?
    task:
      description: >
        A robot arm sets a plate down on a table. People differ in where they want it.
      instructions: >
        You will watch short clips of the robot and say which you prefer. There are no
        right answers: answer for how *you* would want your own table laid.
    consent: >
      Your answers are stored without your name and used for research on robot learning.
      You may stop at any time.
    practice: 2                      # practice queries first, never recorded as data
    questions: [pair, about-equal, ranking:4, end-state, rating]   # asked in turn
    queries: 10                      # recorded queries per participant
    participants: 20
    strategy: active                 # BALD on the reward model (pair types), or random
    final:                           # the robots shown at the end (blind, in random order)
      reward: ../robopref/policies/checkpoints/vpl.pt
      policy: ../robopref/policies/checkpoints/policy_vpl
      btl_policy: ../robopref/policies/checkpoints/policy_btl
      btl_reward: ../robopref/policies/checkpoints/btl.pt
    episodes: 24                     # and env, env_kwargs, pairs, segment, seed, base_url

A value given both in the file and on the command line (other than its default there) is
refused: one study, one source for each setting.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from robopref.study.questions import parse_question

#: the text keys of a file (under ``task``: description, instructions)
TEXT_KEYS = ("title", "consent")
TASK_KEYS = ("description", "instructions")
#: the models of the end, under ``final``
FINAL_KEYS = ("reward", "policy", "btl_policy", "btl_reward")
#: create's settings a file may carry at its top level
SETTING_KEYS = (
    "env", "env_kwargs", "participants", "queries", "strategy", "episodes", "pairs",
    "segment", "base_url", "seed", "practice", "questions",
)  # fmt: skip


@dataclass(frozen=True)
class StudyTexts:
    """What a participant reads: the welcome page's title, task description and
    instructions, and the consent text (empty: no consent page)."""

    title: str = ""
    description: str = ""
    instructions: str = ""
    consent: str = ""


def _text(path: Path, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{path}: {key} must be text (got {value!r}): write it as a string")
    return value.strip()


def read_study_file(path: str | Path) -> tuple[dict[str, Any], StudyTexts]:
    """The create settings (by option name) and the texts of a study file, checked (module
    docstring); model paths made absolute from the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--file {path}: no such study file (a YAML file, see `study`)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of settings (title:, task:, ...)")
    known = {*TEXT_KEYS, "task", "final", *SETTING_KEYS}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}: the keys are {sorted(known)}")
    if "title" not in data or "task" not in data:
        raise ValueError(
            f"{path}: a study file needs a title and a task (description, instructions): "
            "what participants read before the first query"
        )
    task = data["task"]
    if not isinstance(task, dict) or sorted(task) != sorted(TASK_KEYS):
        raise ValueError(f"{path}: task must have exactly the keys {list(TASK_KEYS)}")
    texts = StudyTexts(
        title=_text(path, "title", data["title"]),
        description=_text(path, "task.description", task["description"]),
        instructions=_text(path, "task.instructions", task["instructions"]),
        consent=_text(path, "consent", data["consent"]) if "consent" in data else "",
    )
    settings: dict[str, Any] = {key: data[key] for key in SETTING_KEYS if key in data}
    if "questions" in settings:
        names = settings["questions"]
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not names:
            raise ValueError(f"{path}: questions must be a list of types, like [pair, rating]")
        for name in names:
            try:
                parse_question(str(name))
            except ValueError as error:
                raise ValueError(f"{path}: questions: {error}") from error
        settings["questions"] = ",".join(str(n) for n in names)
    if "env_kwargs" in settings:
        kwargs = settings["env_kwargs"]
        if not isinstance(kwargs, dict):
            raise ValueError(f"{path}: env_kwargs must be a mapping (name: value)")
        settings["env_kwargs"] = [f"{k}={v}" for k, v in kwargs.items()]
    final = data.get("final") or {}
    if not isinstance(final, dict) or set(final) - set(FINAL_KEYS):
        raise ValueError(f"{path}: final may have the keys {list(FINAL_KEYS)} (model paths)")
    for key, value in final.items():
        model = (path.parent / str(value)).resolve()
        if not model.exists():
            raise FileNotFoundError(
                f"{path}: final.{key} {value} does not exist ({model}; paths are relative "
                "to the study file's folder)"
            )
        settings[key] = str(model)
    return settings, texts


def merge_study_file(options: Any, path: str | Path) -> tuple[Any, StudyTexts]:
    """``options`` (a :class:`~robopref.study.create.StudyCreateOptions`) with the file's
    settings, refusing a setting given both there and on the command line."""
    settings, texts = read_study_file(path)
    defaults = {f.name: f.default for f in dataclasses.fields(options)}
    defaults.update(
        {
            f.name: f.default_factory()  # type: ignore[misc]
            for f in dataclasses.fields(options)
            if f.default_factory is not dataclasses.MISSING
        }
    )
    types = {f.name: f.type for f in dataclasses.fields(options)}
    both = [
        key for key in settings if getattr(options, key) != defaults.get(key, getattr(options, key))
    ]
    if both:
        flags = ", ".join(f"--{key.replace('_', '-')}" for key in both)
        raise ValueError(
            f"{flags} given both on the command line and in {path}: give each setting once"
        )
    for key, value in settings.items():
        wanted = str(types[key])
        if wanted == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{path}: {key} must be a whole number, not {value!r}")
        if wanted == "str" and not isinstance(value, str):
            raise ValueError(f"{path}: {key} must be text, not {value!r}")
    return dataclasses.replace(options, **settings), texts


#: a small study file (the tests', the screenshots' and the synthetic benchmark's): the
#: shipped two-modes checkpoints under ``{checkpoints}``
EXAMPLE_STUDY_FILE = """
title: Where should the robot put the plate?
task:
  description: >
    A robot arm picks up a plate and sets it down on the table.
    People differ in where they want their plate.
  instructions: >
    Watch the clips and answer for how you would want your own table laid.
    There are no right answers.
consent: >
  Your answers are stored without your name, for research on robot learning.
  You may stop at any time.
practice: {practice}
questions: [{questions}]
queries: {queries}
participants: {participants}
strategy: {strategy}
episodes: {episodes}
pairs: {pairs}
seed: {seed}
final:
  reward: {checkpoints}/vpl.pt
  policy: {checkpoints}/policy_vpl
  btl_policy: {checkpoints}/policy_btl
  btl_reward: {checkpoints}/btl.pt
"""


def example_study_file(
    checkpoints: str | Path,
    *,
    practice: int = 1,
    questions: str = 'pair, "ranking:3", end-state, rating',
    queries: int = 4,
    participants: int = 3,
    strategy: str = "active",
    episodes: int = 6,
    pairs: int = 12,
    seed: int = 0,
) -> str:
    """:data:`EXAMPLE_STUDY_FILE` with its settings (a small study of every type)."""
    return EXAMPLE_STUDY_FILE.format(
        checkpoints=Path(checkpoints).resolve(), practice=practice, questions=questions,
        queries=queries, participants=participants, strategy=strategy, episodes=episodes,
        pairs=pairs, seed=seed,
    )  # fmt: skip
