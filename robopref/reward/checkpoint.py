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
FORMAT_VERSION = 1


def save_payload(payload: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """``torch.save`` ``payload`` to ``path`` atomically (:func:`robopref.files.atomic_path`)."""
    with atomic_path(path) as temp:
        torch.save(payload, temp)


def load_payload(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The dict in a checkpoint file; ``ValueError`` if it is unreadable or not ours."""
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
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{source} has checkpoint format version {payload.get('format_version')}, this "
            f"robopref reads version {FORMAT_VERSION}: retrain the model"
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
