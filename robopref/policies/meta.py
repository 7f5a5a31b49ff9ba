"""``PolicyMeta``: a policy folder's ``meta.json``, read, written and checked here only.

Every command that writes a policy folder (``train-policy`` with ``--method rl``, ``cpl``
or ``guided``, and the loop) assembles the JSON object and writes it with
:meth:`PolicyMeta.write`, which checks it first; every command that serves one reads it with
:meth:`PolicyMeta.read` (or :func:`robopref.policies.checkpoint.read_meta`, its dict). The
checkpoint a run resumes from (``checkpoint.json``) is the same object plus the steps and
history so far, read with :meth:`PolicyMeta.from_json`.

The object keeps the JSON's keys in the order they were written (``data``), so a folder's
files stay what they were byte for byte; the properties read its fields with the defaults
that folders written before a key existed need (``method`` ``rl``, ``set_down`` False, no
``env_kwargs``, no history). The keys: docs/formats.md, "A policy folder".
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robopref.envs.wrappers import SetDown
from robopref.files import write_json_atomic

FORMAT = "robopref-policy"
#: latent: obs ⊕ z (a reward model's latent; z empty for BTL); oracle: obs ⊕ the true goal;
#: plain: the task's own observation only (the non-personalized CPL baseline: no reward model)
KINDS = ("latent", "oracle", "plain")
#: the algorithms a policy can be saved with (the keys of ``checkpoint.ALGOS``)
ALGO_NAMES = ("ppo", "sac")
#: the keys every ``meta.json`` holds, and those a latent policy adds (its reward model)
REQUIRED_KEYS = ("kind", "name", "algo", "env_id", "latent_dim")
LATENT_KEYS = ("reward_path", "reward_fingerprint")
META_FILE = "meta.json"


def retrain_hint(folder: Path) -> str:
    """The fix for a policy folder that cannot be read: train it again."""
    return f"retrain it with `robopref train-policy --out {folder} --overwrite`"


def read_json_file(path: Path, what: str, fix: str) -> dict[str, Any]:
    """The JSON object in ``path``; a ``ValueError`` naming the file, ``what`` it should be
    and ``fix`` when it is not JSON or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}): {fix}") from error
    if not isinstance(data, dict):
        raise ValueError(
            f"{path} holds a JSON {type(data).__name__}, not the object {what} is: {fix}"
        )
    return data


def reward_path_for(policy_folder: str | Path, reward: str | Path) -> str:
    """How a policy folder records its reward model ``reward``: relative to the folder
    (``../vpl.pt``), so that moving the run folder, or working from another folder, keeps
    it found; absolute when no relative path exists (another drive)."""
    target = os.path.abspath(reward)
    try:
        return Path(os.path.relpath(target, os.path.abspath(policy_folder))).as_posix()
    except ValueError:
        return target


def resolve_reward_path(folder: str | Path, recorded: str | None) -> str | None:
    """The reward model a policy folder ``folder`` recorded as ``recorded``, as a path from
    the working folder: relative to the policy folder, else as recorded (folders written
    before paths were relative to the policy folder), else the file of that name beside the
    policy folder. ``recorded`` itself (or None) when none of them exists."""
    if not recorded:
        return recorded
    folder = Path(folder)
    candidates = [folder / recorded, Path(recorded), folder.parent / Path(recorded).name]
    for candidate in candidates:
        if candidate.is_file():
            return os.path.normpath(candidate)
    return recorded


@dataclass
class PolicyMeta:
    """What a policy is: the ``meta.json`` object ``data`` (keys in their written order)."""

    data: dict[str, Any]

    @classmethod
    def from_json(
        cls, path: str | Path, what: str = "a policy description", fix: str = ""
    ) -> PolicyMeta:
        """The checked description in the JSON file ``path`` (a ``meta.json`` or a
        ``checkpoint.json``); ``fix``: what an unreadable file's error tells to do (default:
        retrain)."""
        path = Path(path)
        fix = fix or retrain_hint(path.parent)
        return cls(read_json_file(path, what, fix)).check(path)

    @classmethod
    def read(cls, folder: str | Path) -> PolicyMeta:
        """The checked ``meta.json`` of a policy folder, with a clear error when it is not
        one; ``reward_path`` resolved
        (:func:`resolve_reward_path`; as written in ``reward_path_recorded``)."""
        folder = Path(folder)
        if not (folder / META_FILE).is_file():
            raise FileNotFoundError(
                f"{folder} is not a trained policy (no meta.json): train one with "
                f"`robopref train-policy --out {folder}`"
            )
        meta = cls.from_json(folder / META_FILE)
        if meta.data.get("reward_path"):
            meta.data["reward_path_recorded"] = meta.data["reward_path"]
            meta.data["reward_path"] = resolve_reward_path(folder, meta.data["reward_path"])
        return meta

    def write(self, folder: str | Path, name: str = META_FILE) -> Path:
        """Check, then write ``folder/name`` atomically (``checkpoint.json`` for a run's
        resumable state); returns the path."""
        path = Path(folder) / name
        self.check(path)
        write_json_atomic(path, self.data)
        return path

    def check(self, path: str | Path) -> PolicyMeta:
        """Itself if it describes a policy this robopref can load, else a ``ValueError``
        that names the file ``path``, the field and the known values."""
        path = Path(path)
        fix = retrain_hint(path.parent)
        meta = self.data
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a robopref policy description: {fix}")
        missing = [key for key in REQUIRED_KEYS if key not in meta]
        if meta.get("kind") == "latent":
            missing += [key for key in LATENT_KEYS if key not in meta]
        if missing:
            raise ValueError(f"{path} lacks the field(s) {', '.join(missing)}: {fix}")
        if meta["kind"] not in KINDS:
            raise ValueError(
                f'{path} names the unknown kind {meta["kind"]!r}: set "kind" to one of '
                f"{', '.join(KINDS)}, or {fix}"
            )
        if meta["algo"] not in ALGO_NAMES:
            raise ValueError(
                f'{path} names the unknown algorithm {meta["algo"]!r}: set "algo" to one '
                f"of {', '.join(sorted(ALGO_NAMES))}, or {fix}"
            )
        if not isinstance(meta["latent_dim"], int) or meta["latent_dim"] < 0:
            raise ValueError(
                f'{path}: "latent_dim" is {meta["latent_dim"]!r}, not a size (an integer '
                f"0 or above): {fix}"
            )
        return self

    @property
    def kind(self) -> str:
        """``latent`` (obs ⊕ z), ``oracle`` (obs ⊕ goal) or ``plain`` (obs alone)."""
        return str(self.data["kind"])

    @property
    def name(self) -> str:
        """Its label in tables (``vpl``, ``btl``, ``oracle``, ...)."""
        return str(self.data["name"])

    @property
    def algo(self) -> str:
        """``ppo`` or ``sac``."""
        return str(self.data["algo"])

    @property
    def env_id(self) -> str:
        """The task it was trained on."""
        return str(self.data["env_id"])

    @property
    def latent_dim(self) -> int:
        """The size of z (0 for BTL, the oracle and plain)."""
        return int(self.data["latent_dim"])

    @property
    def method(self) -> str:
        """``rl``, ``cpl`` or ``guided`` (absent before CPL: ``rl``)."""
        return str(self.data.get("method", "rl"))

    @property
    def set_down(self) -> SetDown:
        """The set-down primitive it acted under (stored ``"place"``, true or false; absent:
        off)."""
        return SetDown.read(self.data.get("set_down"))

    @property
    def env_kwargs(self) -> dict[str, Any]:
        """The env kwargs it was trained with (a copy; none before they were recorded)."""
        return dict(self.data.get("env_kwargs") or {})

    @property
    def population(self) -> str | None:
        """The population it was trained for (its options' ``population``), if recorded."""
        options = self.data.get("options")
        population = options.get("population") if isinstance(options, dict) else None
        return str(population) if population else None

    @property
    def history(self) -> list[dict[str, Any]]:
        """The held-out checks so far (none recorded: empty)."""
        return list(self.data.get("history", []))
