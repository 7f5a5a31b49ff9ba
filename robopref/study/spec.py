"""A study folder: what ``robopref study create`` writes and every other study command reads.

Layout::

    STUDY/
      study.json        the settings (StudySpec), written once
      pool.npz          the candidate pairs (a QueryPool) and each pair's two clip names
      clips/*.webm      one clip per segment, rendered once at creation
      robot/*.webm      each participant's "your robot" clips (rendered by the server)
      study.sqlite      participants, queries shown, answers (robopref.study.store), 0600
      links.txt         one private link per participant (the tokens: written 0600)

``robopref study create`` builds the folder under a hidden sibling name and renames it into
place when it is complete, so a folder with this name is always a whole study.
:func:`check_study_folder` is what every other command calls first: it refuses a folder
that is not a study, or a damaged one, naming the file and the fix.

Clip names are generated here and checked by :func:`clip_path` before any file is read:
a name that is not a plain file name, or a path that resolves outside the folder, is refused.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from robopref.data.queries import QueryPool
from robopref.files import atomic_path
from robopref.study.store import StudyRefusedError

SPEC_NAME = "study.json"
POOL_NAME = "pool.npz"
CLIPS_DIR = "clips"
ROBOT_DIR = "robot"
LINKS_NAME = "links.txt"
FORMAT = "robopref.Study"
FORMAT_VERSION = 1
#: what a clip's (or an end-state picture's) file name may look like (no separators, no "..")
CLIP_NAME = re.compile(r"^[A-Za-z0-9_-]+\.(webm|png)$")


@dataclass
class StudySpec:
    """The settings of a study (``study.json``)."""

    env_id: str
    env_kwargs: dict[str, Any]
    queries: int
    strategy: str
    segment: int
    fps: float
    seed: int
    participants: int
    reward: str | None = None
    policy: str | None = None
    btl_policy: str | None = None
    btl_reward: str | None = None
    base_url: str = "http://127.0.0.1:8000"
    #: what a participant reads before the first query (empty: no welcome page)
    title: str = ""
    description: str = ""
    instructions: str = ""
    #: the clip the welcome page shows as an example (a name under clips/)
    example_clip: str | None = None
    #: the consent text (empty: no consent page)
    consent: str = ""
    #: practice queries before the recorded ones (never exported or reported)
    practice: int = 0
    #: the question types, asked in turn (robopref.study.questions)
    questions: list[str] = field(default_factory=lambda: ["about-equal"])
    format: str = FORMAT
    version: int = FORMAT_VERSION
    notes: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: Path) -> None:
        """Write ``study.json`` atomically."""
        with atomic_path(folder / SPEC_NAME) as temp:
            temp.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, folder: str | Path) -> StudySpec:
        """Read a study's settings, refusing a folder that is not a study, or a damaged
        ``study.json``, with the file and the fix."""
        folder = Path(folder)
        path = folder / SPEC_NAME
        if not path.is_file():
            if half_built(folder):
                raise FileNotFoundError(half_built_message(folder))
            raise FileNotFoundError(
                f"{folder} is not a study folder (no {SPEC_NAME}): create one with "
                f"`robopref study create --out {folder}`"
            )
        fix = f"restore {SPEC_NAME} from a backup (it is written once, by `study create`)"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{path} is damaged: not valid JSON ({error}); {fix}") from error
        if not isinstance(data, dict):
            raise ValueError(f"{path} holds a JSON {type(data).__name__}, not settings: {fix}")
        if data.get("format") != FORMAT or data.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"{path} is not a version-{FORMAT_VERSION} robopref study: re-create the study"
            )
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(
                f"{path} has unknown key(s) {unknown}: remove them (its keys are "
                f"{sorted(known)}), or {fix}"
            )
        required = [name for name, f in known.items() if _required(f)]
        missing = [name for name in required if name not in data]
        if missing:
            raise ValueError(f"{path} lacks the key(s) {missing}: {fix}")
        for name, value in data.items():
            wanted = _FIELD_CHECKS.get(name)
            if wanted is not None and not wanted[0](value):
                raise ValueError(
                    f'{path}: "{name}" is {value!r}, not {wanted[1]}: set it right, or {fix}'
                )
        return cls(**data)


def _required(f: Any) -> bool:
    from dataclasses import MISSING

    return f.default is MISSING and f.default_factory is MISSING


def _is_int(value: Any, low: int | None = None) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and (low is None or value >= low)


def _optional_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _question_names(value: Any) -> bool:
    from robopref.study.questions import parse_question

    if not isinstance(value, list) or not value:
        return False
    try:
        for name in value:
            parse_question(name)
    except ValueError:
        return False
    return True


def _strategy(value: Any) -> bool:
    from robopref.reward.active import STRATEGIES

    return value in STRATEGIES


#: what each ``study.json`` value must be: a test and its description
_FIELD_CHECKS: dict[str, tuple[Any, str]] = {
    "env_id": (lambda v: isinstance(v, str) and bool(v), "a task id (text)"),
    "env_kwargs": (lambda v: isinstance(v, dict), "an object of env arguments"),
    "queries": (lambda v: _is_int(v, 1), "a whole number of queries (1 or more)"),
    "strategy": (_strategy, "a query strategy (random or active)"),
    "segment": (lambda v: _is_int(v, 1), "a whole number of states (1 or more)"),
    "fps": (
        lambda v: (
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        ),
        "a positive number of frames per second",
    ),
    "seed": (lambda v: _is_int(v), "a whole number"),
    "participants": (lambda v: _is_int(v, 1), "a whole number of participants (1 or more)"),
    "reward": (_optional_str, "a path or null"),
    "policy": (_optional_str, "a path or null"),
    "btl_policy": (_optional_str, "a path or null"),
    "btl_reward": (_optional_str, "a path or null"),
    "base_url": (lambda v: isinstance(v, str), "an address (text)"),
    "title": (lambda v: isinstance(v, str), "text"),
    "description": (lambda v: isinstance(v, str), "text"),
    "instructions": (lambda v: isinstance(v, str), "text"),
    "example_clip": (
        lambda v: v is None or (isinstance(v, str) and bool(CLIP_NAME.match(v))),
        "a clip name or null",
    ),
    "consent": (lambda v: isinstance(v, str), "text"),
    "practice": (lambda v: _is_int(v, 0), "a whole number of practice queries (0 or more)"),
    "questions": (lambda v: _question_names(v), "a list of question types"),
    "notes": (lambda v: isinstance(v, dict), "an object"),
}


def half_built(folder: Path) -> bool:
    """Whether ``folder`` is what a ``study create`` killed before it finished left (before
    creation became atomic): clips or a pool, but no settings and no database."""
    from robopref.study.store import DB_NAME

    return (
        folder.is_dir()
        and not (folder / SPEC_NAME).exists()
        and not (folder / DB_NAME).exists()
        and ((folder / CLIPS_DIR).is_dir() or (folder / POOL_NAME).exists())
    )


def half_built_message(folder: Path) -> str:
    """What to say about a :func:`half_built` folder."""
    return (
        f"{folder} is a half-built study ({CLIPS_DIR}/ but no {SPEC_NAME} and no database): "
        f"a `study create` was stopped before it finished, and nobody answered there. "
        f"Delete it (rm -r {folder}) and run `robopref study create --out {folder}` again"
    )


@dataclass
class StudyPool:
    """The candidate pairs and, for each pair, the clip names of its segments A and B."""

    pool: QueryPool
    clip_a: list[str]
    clip_b: list[str]

    def save(self, folder: Path) -> None:
        """Write ``pool.npz`` atomically."""
        with atomic_path(folder / POOL_NAME) as temp, open(temp, "wb") as handle:
            np.savez(
                handle,
                obs_a=self.pool.obs_a,
                obs_b=self.pool.obs_b,
                feat_a=self.pool.feat_a,
                feat_b=self.pool.feat_b,
                origin=self.pool.origin,
                act_a=self.pool.act_a,
                act_b=self.pool.act_b,
                clip_a=np.asarray(self.clip_a),
                clip_b=np.asarray(self.clip_b),
                header=np.asarray(
                    json.dumps(
                        {"env_id": self.pool.env_id, "feature_names": self.pool.feature_names}
                    )
                ),
            )

    @classmethod
    def load(cls, folder: str | Path) -> StudyPool:
        """Read ``pool.npz``, refusing a missing or damaged one with the fix."""
        path = Path(folder) / POOL_NAME
        if not path.is_file():
            raise FileNotFoundError(
                f"{folder} has no {POOL_NAME} (the candidate pairs every query is drawn "
                f"from): the study folder is incomplete; restore {POOL_NAME} from a backup"
            )
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                pool = QueryPool(
                    header["env_id"],
                    tuple(header["feature_names"]),
                    data["obs_a"],
                    data["obs_b"],
                    data["feat_a"],
                    data["feat_b"],
                    data["origin"],
                    *_actions(data),
                )
                clips = [str(c) for c in data["clip_a"]], [str(c) for c in data["clip_b"]]
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(
                f"{path} is damaged ({type(error).__name__}: {error}): restore {POOL_NAME} "
                "from a backup"
            ) from error
        return cls(pool, *clips)

    def __len__(self) -> int:
        return len(self.pool)


def _actions(data: Any) -> tuple[np.ndarray, np.ndarray]:
    """A pool file's segment actions; a study created before they were kept has none (NaN,
    one per state), which policy learning without a reward (CPL) refuses by name."""
    if "act_a" in data.files:
        return data["act_a"], data["act_b"]
    missing = np.full(data["obs_a"].shape[:2] + (1,), np.nan, np.float32)
    return missing, missing.copy()


def check_study_folder(folder: str | Path) -> tuple[StudySpec, StudyPool]:
    """The settings and pool of the study in ``folder`` after checking every part a command
    reads (``study.json``, ``pool.npz``, the database); a clear error with the fix else."""
    from robopref.study.store import StudyStore

    spec = StudySpec.load(folder)
    pool = StudyPool.load(folder)
    StudyStore(folder).check()
    if spec.queries + spec.practice > len(pool):
        raise ValueError(
            f'{Path(folder) / SPEC_NAME}: "queries" and "practice" are {spec.queries} + '
            f"{spec.practice}, more than the {len(pool)} candidate pairs in {POOL_NAME} (each "
            f"participant is asked distinct pairs): ask {len(pool)} or fewer in all"
        )
    return spec, pool


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by its owner only (0600) from the
    first byte: the temporary is created private, filled, then renamed into place."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp, 0o600)  # mkstemp's mode already; said for the reader
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def read_links(folder: str | Path) -> dict[str, str]:
    """``{participant name: token}`` from the study's ``links.txt`` (the database keeps
    only the tokens' hashes)."""
    links = {}
    for line in (Path(folder) / LINKS_NAME).read_text(encoding="utf-8").splitlines():
        if line.strip():
            name, url = line.split()
            links[name] = url.rsplit("/s/", 1)[1]
    return links


def write_links(folder: str | Path, base_url: str) -> Path:
    """Rewrite the study's ``links.txt`` (privately, atomically) with every participant's
    link under ``base_url``, the address the study is served at; the tokens stay."""
    links = read_links(folder)
    base = base_url.rstrip("/")
    path = Path(folder) / LINKS_NAME
    write_private(path, "".join(f"{name} {base}/s/{token}\n" for name, token in links.items()))
    return path


def clip_path(folder: Path, directory: str, name: str) -> Path:
    """The file of clip ``name`` in ``folder/directory``; anything else is refused (403)."""
    root = (folder / directory).resolve()
    if not CLIP_NAME.match(name):
        raise StudyRefusedError(403, f"{name!r} is not a clip name: clips are plain names.webm")
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise StudyRefusedError(403, f"{name!r} lies outside the study's clips")
    if not path.is_file():
        raise StudyRefusedError(404, f"no clip {name!r}")
    return path


def segment_clip_name(episode: int, start: int) -> str:
    """The clip file name of the segment of ``episode`` starting at state ``start``."""
    return f"seg_e{episode:04d}_t{start:04d}.webm"


def end_state_name(clip: str) -> str:
    """The picture of a clip's last frame (an end-state question shows it)."""
    return clip.removesuffix(".webm") + ".png"
