"""``PreferenceDataset``: per-user context sets of labelled pairs of trajectory segments.

This is the contract between the users/queries side (which writes datasets) and the reward
models (which read them). Arrays, with P pairs, T steps per segment, U users:

========================  ===============  ==================================================
field                     shape, dtype     meaning
========================  ===============  ==================================================
``obs_a``, ``obs_b``      (P, T, O) f32    observations of segment A and segment B
``feat_a``, ``feat_b``    (P, T, F) f32    ``info["features"]`` of the same steps
``act_a``, ``act_b``      (P, T, A) f32    the action taken in each of those states (NaN
                                           where none was: an episode's last state, or a
                                           source that records none, such as a study);
                                           read by policy learning without a reward (CPL)
``label``                 (P,) f32         the answer: P(A preferred) as given by the user;
                                           1 = A, 0 = B, 0.5 = tie, in between = soft label,
                                           NaN = skipped (no answer)
``user``                  (P,) i64         the answering user's index in [0, U); each user's
                                           pairs are contiguous and in the order asked
``user_goal``             (U, G) f64       hidden goal of each user (evaluation only)
``user_group``            (U,) i64         mode index of each user, -1 if none (evaluation)
``true_label``            (P,) f32         noise-free answer: 1, 0 or 0.5 (evaluation only)
``answer_prob``           (P,) f32         the user's exact probability of answering A, with
                                           all noise (evaluation only: the Bayes ceiling)
``contested``             (P,) bool        users of the population disagree on this pair
                                           without noise (evaluation only)
``question``              (P,) i64         the question each pair came from: a pair asked
                                           as a pair is its own; the pairs a ranking or a
                                           best-of-k answer implies share one (rank
                                           breaking, ``meta["question"]`` names the type)
========================  ===============  ==================================================

``env_id`` names the task, ``feature_names`` the F features, and ``meta`` holds the rest of
the provenance (population, seed, segment length, behaviour mix, ...). Fields marked
"evaluation only" must never be read by a reward model's ``fit``.

On disk (:meth:`PreferenceDataset.save`, :meth:`PreferenceDataset.load`) a dataset is an
uncompressed ``.npz`` with one array per field above and a ``header`` array: the UTF-8 JSON
of ``{"format": "robopref.PreferenceDataset", "schema_version", "env_id", "feature_names",
"meta"}`` (``meta`` must therefore be JSON-serialisable; tuples come back as lists). It is
written atomically (:func:`robopref.files.atomic_path`: a reader never sees half a file, and
the temporaries of a killed write are removed by the next save to the same path). Loading
checks the format, the schema version, the env (``expected_env``) and every array's shape,
and turns a truncated or corrupt file into a ``ValueError`` naming the fix.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from robopref.files import atomic_path

if TYPE_CHECKING:
    from collections.abc import Sequence

    from robopref.users.synthetic import Labels, SyntheticUser

#: 2: the segments' actions (``act_a``, ``act_b``). Version-1 files lack them and are
#: refused with the fix (collect again): a CPL policy cannot learn from them.
#: 3: ``question``, the question each pair came from. Version-2 files are read as pairs
#: asked one by one (each its own question).
SCHEMA_VERSION = 3
FORMAT = "robopref.PreferenceDataset"
#: the array fields, their dtype and their leading dimension ("P" pairs or "U" users).
ARRAY_FIELDS: dict[str, tuple[type, str]] = {
    "obs_a": (np.float32, "P"),
    "obs_b": (np.float32, "P"),
    "feat_a": (np.float32, "P"),
    "feat_b": (np.float32, "P"),
    "act_a": (np.float32, "P"),
    "act_b": (np.float32, "P"),
    "label": (np.float32, "P"),
    "user": (np.int64, "P"),
    "user_goal": (np.float64, "U"),
    "user_group": (np.int64, "U"),
    "true_label": (np.float32, "P"),
    "answer_prob": (np.float32, "P"),
    "contested": (np.bool_, "P"),
    "question": (np.int64, "P"),
}

#: the fields with one entry per pair
PER_PAIR_FIELDS: tuple[str, ...] = tuple(n for n, (_, dim) in ARRAY_FIELDS.items() if dim == "P")


#: the segment arrays of a pair, A's and B's
SEGMENT_FIELDS = ("obs_a", "obs_b", "feat_a", "feat_b", "act_a", "act_b")


class SegmentPairs(NamedTuple):
    """P pairs of segments (the arrays of :data:`SEGMENT_FIELDS`), for
    :meth:`PreferenceDataset.from_answers` when they come from no query pool."""

    obs_a: np.ndarray
    obs_b: np.ndarray
    feat_a: np.ndarray
    feat_b: np.ndarray
    act_a: np.ndarray
    act_b: np.ndarray


def _recollect(path: Path) -> str:
    return f"re-create it with `robopref collect --out {path}`"


@dataclass
class PreferenceDataset:
    """Labelled segment pairs grouped by user (see the module docstring for the fields)."""

    env_id: str
    feature_names: tuple[str, ...]
    obs_a: np.ndarray
    obs_b: np.ndarray
    feat_a: np.ndarray
    feat_b: np.ndarray
    act_a: np.ndarray
    act_b: np.ndarray
    label: np.ndarray
    user: np.ndarray
    user_goal: np.ndarray
    user_group: np.ndarray
    true_label: np.ndarray
    answer_prob: np.ndarray
    contested: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    #: None: each pair its own question (``arange(P)``)
    question: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.question is None:
            self.question = np.arange(len(self.label), dtype=np.int64)

    @classmethod
    def from_answers(
        cls,
        pool: Any,
        answers: Labels | np.ndarray,
        user: np.ndarray,
        *,
        env_id: str,
        pairs: np.ndarray | None = None,
        feature_names: Sequence[str] | None = None,
        users: Sequence[SyntheticUser] | None = None,
        n_users: int | None = None,
        contested: np.ndarray | None = None,
        question: np.ndarray | None = None,
        meta: dict[str, Any] | None = None,
    ) -> PreferenceDataset:
        """The dataset of the pairs ``pairs`` of ``pool`` (None: all of its pairs, in order)
        answered ``answers`` by the users ``user`` (one entry per pair).

        ``pool``: where the segments come from, anything with the arrays of
        :data:`SEGMENT_FIELDS` (a :class:`~robopref.data.queries.QueryPool`, its ``subset``, or
        :class:`SegmentPairs`); ``feature_names``: by default the pool's. ``answers``:
        synthetic users' :class:`~robopref.users.synthetic.Labels` (the label, and the noise-free
        label and P(A) the evaluation reads), or the labels alone, whose truth nobody knows
        (``true_label`` and ``answer_prob`` blank: NaN). ``users``: the synthetic users
        (their goal and group fill ``user_goal`` and ``user_group``); without them,
        ``n_users`` users with blank hidden fields (no goal, group -1). ``contested``: by
        default no pair is; ``question``: by default each pair its own. The arrays are
        taken as given (no copy, no cast)."""
        segments = {name: getattr(pool, name) for name in SEGMENT_FIELDS}
        if pairs is not None:
            segments = {name: value[pairs] for name, value in segments.items()}
        if users is not None:
            user_goal = np.stack([u.goal for u in users])
            user_group = np.array([u.group for u in users], dtype=np.int64)
        else:
            if n_users is None:
                raise ValueError("from_answers needs the synthetic users or their number")
            user_goal = np.zeros((n_users, 0))
            user_group = np.full(n_users, -1, np.int64)
        if isinstance(answers, np.ndarray):
            label, n = answers, len(answers)
            true_label = np.full(n, np.nan, np.float32)
            answer_prob = np.full(n, np.nan, np.float32)
        else:
            label, true_label, answer_prob = answers
        return cls(
            env_id=env_id,
            feature_names=pool.feature_names if feature_names is None else feature_names,
            **segments,
            label=label,
            user=user,
            user_goal=user_goal,
            user_group=user_group,
            true_label=true_label,
            answer_prob=answer_prob,
            contested=np.zeros(len(label), bool) if contested is None else contested,
            meta={} if meta is None else meta,
            question=question,
        )

    @property
    def n_pairs(self) -> int:
        """Number of pairs P."""
        return int(self.label.shape[0])

    @property
    def n_users(self) -> int:
        """Number of users U."""
        return int(self.user_goal.shape[0])

    @property
    def segment_length(self) -> int:
        """Steps per segment T (1 means single states)."""
        return int(self.obs_a.shape[1])

    def user_indices(self, user: int) -> np.ndarray:
        """Indices of ``user``'s pairs, in the order they were asked."""
        return np.flatnonzero(self.user == user)

    def subset_users(self, users: np.ndarray) -> PreferenceDataset:
        """The pairs of ``users`` only, users renumbered 0..len(users)-1 in the given order."""
        users = np.asarray(users, dtype=np.int64)
        remap = np.full(self.n_users, -1, dtype=np.int64)
        remap[users] = np.arange(len(users))
        pairs = (
            np.concatenate([self.user_indices(int(u)) for u in users])
            if len(users)
            else (np.zeros(0, dtype=np.int64))
        )
        per_pair = [name for name in PER_PAIR_FIELDS if name != "user"]
        return PreferenceDataset(
            env_id=self.env_id,
            feature_names=self.feature_names,
            user=remap[self.user[pairs]],
            user_goal=self.user_goal[users],
            user_group=self.user_group[users],
            meta={**self.meta, "parent_users": users.tolist()},
            **{name: getattr(self, name)[pairs] for name in per_pair},
        )

    def subset_pairs(self, pairs: np.ndarray) -> PreferenceDataset:
        """The dataset restricted to ``pairs`` (indices); users keep their numbers."""
        pairs = np.asarray(pairs, dtype=np.int64)
        return dataclasses.replace(
            self, **{name: getattr(self, name)[pairs] for name in PER_PAIR_FIELDS}
        )

    def split_users(
        self, test_fraction: float, seed: int | np.random.Generator = 0
    ) -> tuple[PreferenceDataset, PreferenceDataset]:
        """Split by user into (train, test): held-out users' pairs are never in train."""
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction={test_fraction} must lie strictly between 0 and 1")
        order = np.random.default_rng(seed).permutation(self.n_users)
        n_test = max(1, int(round(test_fraction * self.n_users)))
        return self.subset_users(np.sort(order[n_test:])), self.subset_users(
            np.sort(order[:n_test])
        )

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field if the arrays do not fit together."""
        sizes = {"P": self.n_pairs, "U": self.n_users}
        for name, (_, dim) in ARRAY_FIELDS.items():
            value = getattr(self, name)
            if not isinstance(value, np.ndarray) or value.shape[:1] != (sizes[dim],):
                shape = getattr(value, "shape", type(value).__name__)
                raise ValueError(
                    f"field {name} has shape {shape}, expected {dim}={sizes[dim]} rows"
                )
        pair_shape = self.obs_a.shape
        if self.obs_b.shape != pair_shape or self.obs_a.ndim != 3:
            raise ValueError(
                f"obs_a {self.obs_a.shape} and obs_b {self.obs_b.shape} must be (P, T, O)"
            )
        expected_feat = (*pair_shape[:2], len(self.feature_names))
        if self.feat_a.shape != expected_feat or self.feat_b.shape != expected_feat:
            raise ValueError(
                f"feat_a {self.feat_a.shape} and feat_b {self.feat_b.shape} must be (P, T, F) = "
                f"{expected_feat} with F = len(feature_names)"
            )
        if self.act_a.shape[:2] != pair_shape[:2] or self.act_b.shape != self.act_a.shape:
            raise ValueError(
                f"act_a {self.act_a.shape} and act_b {self.act_b.shape} must be (P, T, A) over "
                f"the segments' (P, T) = {pair_shape[:2]}"
            )
        names = (
            "label",
            "user",
            "true_label",
            "answer_prob",
            "contested",
            "user_group",
            "question",
        )
        for name in names:
            if getattr(self, name).ndim != 1:
                raise ValueError(f"field {name} must be one-dimensional")
        if self.n_pairs and (self.user.min() < 0 or self.user.max() >= self.n_users):
            raise ValueError(f"user ids must lie in [0, {self.n_users}) (one user_goal row each)")

    def save(self, path: str | Path) -> Path:
        """Write the dataset to ``path`` (an ``.npz``) atomically; returns the path."""
        self.validate()
        path = Path(path)
        header = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "env_id": self.env_id,
            "feature_names": list(self.feature_names),
            "meta": self.meta,
        }
        try:
            header_bytes = json.dumps(header).encode("utf-8")
        except TypeError as error:
            raise ValueError(
                f"dataset meta is not JSON-serialisable ({error}): store plain values"
            ) from None
        arrays = {
            name: np.asarray(getattr(self, name), dtype=dtype)
            for name, (dtype, _) in ARRAY_FIELDS.items()
        }
        with atomic_path(path) as temp, open(temp, "wb") as handle:
            np.savez(handle, header=np.frombuffer(header_bytes, dtype=np.uint8), **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path, expected_env: str | None = None) -> PreferenceDataset:
        """Read a dataset written by :meth:`save`; with ``expected_env``, refuse other envs."""
        path = Path(path)
        fix = _recollect(path)
        if not path.is_file():
            raise FileNotFoundError(f"dataset {path} does not exist: {fix}")
        header, arrays = _read_npz(path)
        if header.get("format") != FORMAT:
            raise ValueError(f"{path} is not a robopref preference dataset: {fix}")
        version = header.get("schema_version")
        if version == 1:
            raise ValueError(
                f"dataset {path} has schema version 1, written before datasets kept the "
                f"segments' actions (version {SCHEMA_VERSION}): {fix}, or re-run the "
                "`robopref loop` that wrote it, to record them"
            )
        if version == 2:  # before questions of other types: each pair its own question
            arrays = {**arrays, "question": np.arange(len(arrays.get("label", [])))}
        elif version != SCHEMA_VERSION:
            raise ValueError(
                f"dataset {path} has schema version {version}, this robopref reads version "
                f"{SCHEMA_VERSION}: {fix} (or use the robopref that wrote it)"
            )
        if expected_env is not None and header.get("env_id") != expected_env:
            raise ValueError(
                f"dataset {path} is for {header.get('env_id')!r}, not {expected_env!r}: "
                f"collect one with `robopref collect --env {expected_env} --out PATH` or pass "
                "the right file"
            )
        missing = [name for name in ARRAY_FIELDS if name not in arrays]
        if missing:
            raise ValueError(f"dataset {path} lacks the arrays {missing}: it is corrupt; {fix}")
        dataset = cls(
            env_id=str(header["env_id"]),
            feature_names=tuple(header["feature_names"]),
            meta=dict(header.get("meta") or {}),
            **{name: arrays[name] for name in ARRAY_FIELDS},
        )
        try:
            dataset.validate()
        except ValueError as error:
            raise ValueError(f"dataset {path} is inconsistent ({error}): {fix}") from None
        return dataset


#: how a zip archive (and so an ``.npz``) starts: a local file header, or an empty archive
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
#: what some files that are not datasets start with, to name them in the refusal
_KNOWN_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"\x93NUMPY": "a single .npy array",
    b"\x80": "a Python pickle (never loaded: it could run code)",
    b"SQLite format 3": "an SQLite database",
    b"%PDF": "a PDF",
}


def _not_a_dataset(path: Path, start: bytes) -> ValueError:
    kind = next((name for magic, name in _KNOWN_MAGIC.items() if start.startswith(magic)), None)
    what = f"it is {kind}" if kind else "it is not an .npz archive"
    return ValueError(
        f"{path} is not a robopref preference dataset ({what}): pass the .npz file that "
        "`robopref collect --out PATH.npz` (or `robopref study export`) wrote"
    )


def _read_npz(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header and arrays of a dataset file; damage becomes a ``ValueError``.

    Only zip archives are opened (``np.load`` would otherwise try a non-zip file as a
    pickle), and never with pickles allowed: a dataset holds plain arrays only.
    """
    fix = _recollect(path)
    with open(path, "rb") as handle:
        start = handle.read(16)
    if not start.startswith(_ZIP_MAGIC):
        raise _not_a_dataset(path, start)
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files") or "header" not in data.files:
                raise ValueError(f"{path} is not a robopref preference dataset (no header): {fix}")
            header_bytes = data["header"].tobytes()
            arrays = {name: data[name] for name in data.files if name != "header"}
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error, KeyError) as error:
        raise ValueError(f"dataset {path} is truncated or corrupt ({error}): {fix}") from None
    except ValueError as error:
        if "robopref" in str(error):
            raise
        if "pickle" in str(error):  # numpy advises allow_pickle: unsafe for a stranger's file
            raise ValueError(
                f"dataset {path} holds Python objects (pickled arrays), which robopref never "
                f"loads (they can run code): it is not a robopref dataset; {fix}"
            ) from None
        raise ValueError(f"dataset {path} is truncated or corrupt ({error}): {fix}") from None
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"dataset {path} has a corrupt header ({error}): {fix}") from None
    if not isinstance(header, dict):
        raise ValueError(f"dataset {path} has a corrupt header: {fix}")
    return header, arrays
