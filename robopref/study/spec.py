"""A study folder: what ``robopref study create`` writes and every other study command reads.

Layout::

    STUDY/
      study.json        the settings (StudySpec), written once
      pool.npz          the candidate pairs (a QueryPool) and each pair's two clip names
      clips/*.webm      one clip per segment, rendered once at creation
      robot/*.webm      each participant's "your robot" clips (rendered by the server)
      study.sqlite      participants, queries shown, answers (robopref.study.store)
      links.txt         one private link per participant (keep it private: the tokens)

Clip names are generated here and checked by :func:`clip_path` before any file is read:
a name that is not a plain file name, or a path that resolves outside the folder, is refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robopref.files import atomic_path
from robopref.queries import QueryPool
from robopref.study.store import StudyRefusedError

SPEC_NAME = "study.json"
POOL_NAME = "pool.npz"
CLIPS_DIR = "clips"
ROBOT_DIR = "robot"
LINKS_NAME = "links.txt"
FORMAT = "robopref.Study"
FORMAT_VERSION = 1
#: what a clip's file name may look like (no separators, no "..")
CLIP_NAME = re.compile(r"^[A-Za-z0-9_-]+\.webm$")


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
    format: str = FORMAT
    version: int = FORMAT_VERSION
    notes: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: Path) -> None:
        """Write ``study.json`` atomically."""
        with atomic_path(folder / SPEC_NAME) as temp:
            temp.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, folder: str | Path) -> StudySpec:
        """Read a study's settings, refusing a folder that is not a study with the fix."""
        path = Path(folder) / SPEC_NAME
        if not path.is_file():
            raise FileNotFoundError(
                f"{folder} is not a study folder (no {SPEC_NAME}): create one with "
                f"`robopref study create --out {folder}`"
            )
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT or data.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"{path} is not a version-{FORMAT_VERSION} robopref study: re-create the study"
            )
        return cls(**data)


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
        """Read ``pool.npz``."""
        with np.load(Path(folder) / POOL_NAME, allow_pickle=False) as data:
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
            return cls(pool, [str(c) for c in data["clip_a"]], [str(c) for c in data["clip_b"]])

    def __len__(self) -> int:
        return len(self.pool)


def _actions(data: Any) -> tuple[np.ndarray, np.ndarray]:
    """A pool file's segment actions; a study created before they were kept has none (NaN,
    one per state), which policy learning without a reward (CPL) refuses by name."""
    if "act_a" in data.files:
        return data["act_a"], data["act_b"]
    missing = np.full(data["obs_a"].shape[:2] + (1,), np.nan, np.float32)
    return missing, missing.copy()


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
