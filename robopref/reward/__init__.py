"""Reward models learnt from preferences: one reward for all (BTL, DPL) or one per user (VPL).

Every model has the same interface (:class:`robopref.reward.base.RewardModel`): ``fit``,
``reward(obs, z)``, ``scaled_reward(obs, z)``, ``posterior(context) -> (mean, std)``.
:func:`infer_user` asks a new user a few (actively chosen) queries and returns the
posterior over z; :func:`load_reward_model` reads a checkpoint written by
``robopref train-reward``.
"""

from robopref.reward.active import InferenceResult, infer_user
from robopref.reward.base import RewardModel
from robopref.reward.btl import BTLConfig, BTLRewardModel
from robopref.reward.data import PairContext
from robopref.reward.dpl import DPLConfig, DPLRewardModel
from robopref.reward.registry import build_model, load_reward_model
from robopref.reward.training import TrainResult, TrainSettings
from robopref.reward.vpl import VPLConfig, VPLRewardModel

__all__ = [
    "BTLConfig",
    "BTLRewardModel",
    "DPLConfig",
    "DPLRewardModel",
    "InferenceResult",
    "PairContext",
    "RewardModel",
    "TrainResult",
    "TrainSettings",
    "VPLConfig",
    "VPLRewardModel",
    "build_model",
    "infer_user",
    "load_reward_model",
]
