"""What a reward model reads: the env's task features (default) or its raw observations.

The env exposes the state a user judges as ``info["features"]`` (see the Env contract in
DESIGN.md), so reward models learn r(features, z) by default: the features hold what the
observation cannot (the height a plate was released from, whether it rests on the table),
and on PlatePlacement two-modes a reward on features is far more accurate (VPL, k = 4 active
queries, contested pairs: 0.83 vs 0.69 accuracy). ``--input observations`` keeps the VPL
paper's r(s, z) on raw observations. A model records its input in ``meta["reward_input"]``;
everything that feeds it (policy wrappers, personalization, evaluation) asks
:func:`reward_input` which array to pass.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from robopref.data.dataset import PreferenceDataset

REWARD_INPUTS = ("features", "observations")


def check_reward_input(name: str) -> str:
    """``name`` if it is a known reward input, else a ``ValueError`` naming the choices."""
    if name not in REWARD_INPUTS:
        raise ValueError(f"reward input {name!r} is unknown: use one of {list(REWARD_INPUTS)}")
    return name


def reward_input(model: Any) -> str:
    """The input a trained reward model reads (models from before the choice: observations)."""
    return check_reward_input(str(getattr(model, "meta", {}).get("reward_input", "observations")))


def reward_view(dataset: PreferenceDataset, name: str) -> PreferenceDataset:
    """``dataset`` as a reward model reading ``name`` sees it: that input in ``obs_a/obs_b``."""
    if check_reward_input(name) == "observations":
        return dataset
    return dataset_with_input(dataset, dataset.feat_a, dataset.feat_b, name)


def dataset_with_input(
    dataset: PreferenceDataset, input_a: np.ndarray, input_b: np.ndarray, name: str
) -> PreferenceDataset:
    """A shallow copy of ``dataset`` whose ``obs_a/obs_b`` are ``input_a/input_b``."""
    return dataclasses.replace(
        dataset, obs_a=input_a, obs_b=input_b, meta={**dataset.meta, "reward_input": name}
    )


def model_inputs(model: Any, observation: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """What ``model`` reads for one step: ``info["features"]`` or the observation."""
    if reward_input(model) == "features":
        return np.asarray(info["features"], dtype=np.float32)
    return np.asarray(observation, dtype=np.float32)


def candidate_inputs(model: Any, pool: Any) -> tuple[np.ndarray, np.ndarray]:
    """The two sides of candidate queries (a ``QueryPool``) as ``model`` reads them."""
    if reward_input(model) == "features":
        return pool.feat_a, pool.feat_b
    return pool.obs_a, pool.obs_b
