"""The reward-model kinds: build a fresh model by name, or rebuild one from a checkpoint.

``MODEL_KINDS`` maps each kind (``btl``, ``dpl``, ``vpl``, ``lowrank``, ``mixture``) to
its class and config dataclass. :func:`load_reward_model` reads a checkpoint (the file format is
:mod:`robopref.reward.checkpoint`) and refuses a file of another model kind, env or
observation size, and a corrupt or foreign file, with an error that says what was expected.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch

from robopref.reward.base import RewardModel
from robopref.reward.basis import BasisConfig
from robopref.reward.btl import BTLConfig, BTLRewardModel
from robopref.reward.checkpoint import load_payload
from robopref.reward.dpl import DPLConfig, DPLRewardModel
from robopref.reward.lowrank import LowRankRewardModel
from robopref.reward.mixture import MixtureRewardModel
from robopref.reward.vpl import VPLConfig, VPLRewardModel

#: model kind -> (model class, its config dataclass)
MODEL_KINDS: dict[str, tuple[type[RewardModel], type]] = {
    "btl": (BTLRewardModel, BTLConfig),
    "dpl": (DPLRewardModel, DPLConfig),
    "vpl": (VPLRewardModel, VPLConfig),
    "lowrank": (LowRankRewardModel, BasisConfig),
    "mixture": (MixtureRewardModel, BasisConfig),
}


def build_model(kind: str, obs_dim: int, config: dict[str, Any] | None = None) -> RewardModel:
    """A fresh model of ``kind`` (a key of ``MODEL_KINDS``) with config fields ``config``."""
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
