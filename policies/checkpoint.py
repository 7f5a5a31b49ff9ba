"""Policy checkpoints: an SB3 model zip plus a JSON of metadata, written atomically.

A policy folder (``--out`` of ``robopref train-policy``) holds

* ``model.zip``: the final SB3 model (``PPO``/``SAC`` ``.save``),
* ``meta.json``: what it is (``kind``: ``latent`` or ``oracle``; ``name``; ``algo``; env id;
  latent size; the reward model's path and :func:`reward_fingerprint`; steps; history),
* ``checkpoint.zip`` + ``checkpoint.json`` (+ ``replay.pkl`` for SAC): the last periodic
  state, from which ``--resume`` continues,
* ``tb/``: TensorBoard logs.

:func:`load_policy` refuses a latent policy whose reward model is not the one given (its
latent space would mean something else) with an error naming both.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm

from robopref.reward.base import RewardModel

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC}
FORMAT = "robopref-policy"


def reward_fingerprint(model: RewardModel) -> str:
    """A short hash of a reward model's kind and weights: which latent space z lives in."""
    digest = hashlib.sha256(model.kind.encode())
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def save_atomic(write: Callable[[Path], None], path: Path) -> None:
    """Call ``write(temp)`` for a temporary file with ``path``'s suffix, then rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(handle)
    try:
        write(Path(temp))
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def save_model(model: BaseAlgorithm, path: Path) -> None:
    """``model.save`` to ``path`` (a ``.zip``) atomically."""
    save_atomic(lambda temp: model.save(temp), path)


def read_meta(folder: str | Path) -> dict[str, Any]:
    """The ``meta.json`` of a policy folder, with a clear error when it is not one."""
    meta_path = Path(folder) / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"{folder} is not a trained policy (no meta.json): train one with "
            "`robopref train-policy --out " + str(folder) + "`"
        )
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path} is not a robopref policy description")
    return meta


@dataclass
class LoadedPolicy:
    """A trained policy and what it needs: ``predict(obs ⊕ z or obs ⊕ goal)``."""

    model: BaseAlgorithm
    meta: dict[str, Any]
    folder: Path

    @property
    def name(self) -> str:
        """Its label in tables (``vpl``, ``btl``, ``oracle``, ...)."""
        return str(self.meta["name"])

    @property
    def kind(self) -> str:
        """``latent`` (obs ⊕ z, reward-model trained) or ``oracle`` (obs ⊕ goal)."""
        return str(self.meta["kind"])

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The deterministic action for one (augmented) observation."""
        action, _ = self.model.predict(obs, deterministic=True)
        return np.asarray(action, dtype=np.float32)


def load_policy(
    folder: str | Path,
    reward_model: RewardModel | None = None,
    device: str = "cpu",
    checkpoint: bool = False,
) -> LoadedPolicy:
    """Load a policy folder; a latent policy is checked against ``reward_model`` if given."""
    folder = Path(folder)
    meta = read_meta(folder)
    if (
        reward_model is not None
        and meta["kind"] == "latent"
        and meta["reward_fingerprint"] != reward_fingerprint(reward_model)
    ):
        raise ValueError(
            f"the policy {folder} was trained with the reward model {meta['reward_path']} "
            f"(fingerprint {meta['reward_fingerprint']}), not the one given "
            f"({reward_fingerprint(reward_model)}): its z means something else. Pass "
            f"--reward {meta['reward_path']} or retrain the policy with this reward model"
        )
    path = folder / ("checkpoint.zip" if checkpoint else "model.zip")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the training run has not finished")
    model = ALGOS[meta["algo"]].load(path, device=device)
    return LoadedPolicy(model, meta, folder)
