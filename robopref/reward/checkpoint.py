"""The reward-model checkpoint file: what it holds, its atomic write and its checked read.

A checkpoint is a ``torch.save``d dict holding only tensors and plain Python values
(loadable with ``weights_only=True``): the model kind, its configuration, the observation
size, the dataset's env id, feature names, schema version and fingerprint, the user split,
the training settings and history, and the weights. This module knows the file, not the
model classes: :mod:`robopref.reward.registry` rebuilds a model from the dict (and
``load_reward_model`` refuses a file of another model kind, env or observation size).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from robopref.files import atomic_path

if TYPE_CHECKING:
    from robopref.reward.base import RewardModel

FORMAT = "robopref-reward-model"
#: 2: VPL's decoder weights under their module's names (``decoder.psi.*``, ``decoder.net.*``)
#: and fingerprints taken on those names; version 1 files may hold the names of before the
#: decoder modules, so they are refused, not read
FORMAT_VERSION = 2


def save_payload(payload: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """``torch.save`` ``payload`` to ``path`` atomically (:func:`robopref.files.atomic_path`)."""
    with atomic_path(path) as temp:
        torch.save(payload, temp)


def is_resume_state(payload: dict[str, Any]) -> bool:
    """Whether a checkpoint dict is a run's resumable state (``PATH.resume``), not a model."""
    return "optimizer" in payload and "best_state_dict" in payload


def load_payload(path: str | os.PathLike[str], resume_state: bool = False) -> dict[str, Any]:
    """The dict in a checkpoint file; ``ValueError`` if it is unreadable or not ours.

    A run's resumable state (``PATH.resume``: the last epoch's weights, the optimizer, ...)
    is refused as a model, naming the checkpoint to use instead; ``resume_state=True`` (the
    training loop resuming) asks for exactly such a file.
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(
            f"no reward-model checkpoint at {source}: train one with `robopref train-reward`"
        )
    try:
        payload = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for damaged files
        raise ValueError(
            f"{source} is not a readable reward-model checkpoint (corrupt or truncated? "
            f"{type(error).__name__}): retrain it, or resume from its .resume file"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{source} is not a robopref reward-model checkpoint")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{source} has reward-model checkpoint format version {version}, this robopref "
            f"reads version {FORMAT_VERSION} only (version 2 renamed VPL's decoder weights and "
            "the fingerprints latent policies record): re-train the model with the command that "
            "wrote it (`robopref train-reward` or `robopref loop`), and the latent policies "
            "trained on it"
        )
    if is_resume_state(payload) and not resume_state:
        model = source.with_name(source.name.removesuffix(".resume"))
        raise ValueError(
            f"{source} is the resumable state of a train-reward run (its last epoch's weights, "
            f"not the best), not a reward model: pass the checkpoint {model} instead (finish "
            "an interrupted run first with the same train-reward command and --resume)"
        )
    if resume_state and not is_resume_state(payload):
        raise ValueError(
            f"{source} is a reward model, not a run's resumable state: start afresh with "
            "--overwrite"
        )
    return payload


def model_payload(model: RewardModel, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint dict of ``model`` (weights on CPU) plus ``extra`` entries."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": model.kind,
        "obs_dim": model.obs_dim,
        "latent_dim": model.latent_dim,
        "config": dataclasses.asdict(model.config),
        "meta": dict(model.meta),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "torch_version": str(torch.__version__),
        **(extra or {}),
    }
