"""Reward-model checkpoints: written atomically, loaded with checks.

A checkpoint is a ``torch.save``d dict holding only tensors and plain Python values
(loadable with ``weights_only=True``): the model kind, its configuration, the observation
size, the dataset's env id, feature names, schema version and fingerprint, the user split,
the training settings and history, and the weights. ``load_reward_model`` refuses a file of
another model kind, env or observation size, and a corrupt or foreign file, with an error
that says what was expected.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from robopref.reward.base import RewardModel
from robopref.reward.btl import BTLConfig, BTLRewardModel
from robopref.reward.dpl import DPLConfig, DPLRewardModel
from robopref.reward.vpl import VPLConfig, VPLRewardModel

FORMAT = "robopref-reward-model"
FORMAT_VERSION = 1
#: model kind -> (model class, its config dataclass)
MODEL_KINDS: dict[str, tuple[type[RewardModel], type]] = {
    "btl": (BTLRewardModel, BTLConfig),
    "dpl": (DPLRewardModel, DPLConfig),
    "vpl": (VPLRewardModel, VPLConfig),
}


def build_model(kind: str, obs_dim: int, config: dict[str, Any] | None = None) -> RewardModel:
    """A fresh model of ``kind`` (``btl``, ``dpl``, ``vpl``) with config fields ``config``."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"model kind {kind!r} is unknown: choose one of {sorted(MODEL_KINDS)}")
    model_type, config_type = MODEL_KINDS[kind]
    known = {f.name for f in dataclasses.fields(config_type)}
    unknown = set(config or {}) - known
    if unknown:
        raise ValueError(
            f"{kind} models have no setting(s) {sorted(unknown)}; known: {sorted(known)}"
        )
    return model_type(obs_dim, config_type(**(config or {})))


def atomic_save(payload: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """``torch.save`` to a temporary file in the same folder, then ``os.replace`` it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(payload, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp, 0o666 & ~current_umask())  # mkstemp makes it private (0600)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process's file-creation mask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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


def model_from_payload(payload: dict[str, Any], device: str | torch.device = "cpu") -> RewardModel:
    """Rebuild the model stored in a checkpoint dict."""
    model = build_model(payload["kind"], int(payload["obs_dim"]), payload["config"])
    state = payload["state_dict"]
    model.comparison_obs = torch.zeros_like(state["comparison_obs"])
    model.load_state_dict(state)
    model.meta = dict(payload.get("meta", {}))
    return model.to(device).eval()


def load_reward_model(
    path: str | os.PathLike[str],
    expected_kind: str | None = None,
    expected_env: str | None = None,
    obs_dim: int | None = None,
    device: str | torch.device = "cpu",
) -> RewardModel:
    """Load a reward model, refusing another kind, env or observation size (``ValueError``)."""
    return load_checkpoint(path, expected_kind, expected_env, obs_dim, device)[0]


def load_checkpoint(
    path: str | os.PathLike[str],
    expected_kind: str | None = None,
    expected_env: str | None = None,
    obs_dim: int | None = None,
    device: str | torch.device = "cpu",
) -> tuple[RewardModel, dict[str, Any]]:
    """``(model, checkpoint dict)`` with the checks of :func:`load_reward_model`."""
    payload = load_payload(path)
    kind, env = payload.get("kind"), payload.get("meta", {}).get("env_id")
    if expected_kind is not None and kind != expected_kind:
        raise ValueError(
            f"{path} holds a {kind!r} reward model, not the {expected_kind!r} model asked for: "
            f"pass a {expected_kind} checkpoint or train one with --model {expected_kind}"
        )
    if expected_env is not None and env != expected_env:
        raise ValueError(
            f"{path} was trained on env {env!r}, not {expected_env!r}: use a model trained on "
            f"{expected_env} data"
        )
    if obs_dim is not None and int(payload.get("obs_dim", -1)) != int(obs_dim):
        raise ValueError(
            f"{path} expects observations of size {payload.get('obs_dim')}, not {obs_dim}: it "
            "was trained on another task or env version"
        )
    try:
        return model_from_payload(payload, device), payload
    except (KeyError, RuntimeError, TypeError) as error:
        raise ValueError(f"{path} is damaged or from an incompatible robopref: {error}") from error
