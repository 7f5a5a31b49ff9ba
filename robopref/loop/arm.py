"""One method of the loop (VPL or BTL): its answers, its reward model and its policy.

Each method asks its own questions (about its own policy's behaviour), so each keeps its own
answers (:class:`Answers`), refits its own reward model on them every round
(:func:`fit_reward`: from scratch in round 0, warm-started after) and trains its own SB3
policy on rewards relabelled by that model (:func:`train_policy_round`: the same model,
continued, its learning rate annealed over the whole loop by :class:`LoopSchedule`).
The answers become a :class:`~robopref.data.dataset.PreferenceDataset` whose hidden fields
(goals, groups, noise-free labels, answer probabilities) are blank: the loop never knew them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm

from robopref.data.dataset import SEGMENT_FIELDS, PreferenceDataset, SegmentPairs
from robopref.envs.wrappers import SetDown
from robopref.policies.checkpoint import ALGOS
from robopref.policies.latent_env import BatchedRewardVecEnv, LatentSource
from robopref.policies.recipe import PPO_LEARNING_RATE, make_algo
from robopref.policies.rl_train import latent_env
from robopref.policies.vec_env import build_vec_env
from robopref.reward.base import RewardModel
from robopref.reward.evaluation import few_shot_means
from robopref.reward.inputs import reward_view
from robopref.reward.registry import MODEL_KINDS, build_model
from robopref.reward.training import TrainResult, TrainSettings, kl_schedule

#: the set-down primitive the loop's policies train and act under (recorded in their meta)
SET_DOWN = SetDown.PLACE
#: the first fit's (round 0's) most epochs: the reward command's default
FIT_EPOCHS = TrainSettings().epochs
#: the warm-started refits after round 0: fewer epochs, and the KL term is on from the start
REFIT_EPOCHS = 120
REFIT = {"patience": 30, "kl_delay": 0, "kl_warmup": 0}


@dataclass
class Answers:
    """Every pair one method asked so far and its answers, users' pairs in the order asked."""

    obs_a: list[np.ndarray] = field(default_factory=list)
    obs_b: list[np.ndarray] = field(default_factory=list)
    feat_a: list[np.ndarray] = field(default_factory=list)
    feat_b: list[np.ndarray] = field(default_factory=list)
    act_a: list[np.ndarray] = field(default_factory=list)
    act_b: list[np.ndarray] = field(default_factory=list)
    label: list[np.ndarray] = field(default_factory=list)
    user: list[np.ndarray] = field(default_factory=list)

    def add(self, pool: Any, index: np.ndarray, labels: np.ndarray, user: np.ndarray) -> None:
        """Record pairs ``index`` of ``pool`` asked of ``user`` (one entry per pair)."""
        for name in SEGMENT_FIELDS:
            getattr(self, name).append(np.asarray(getattr(pool, name)[index], np.float32))
        self.label.append(np.asarray(labels, np.float32))
        self.user.append(np.asarray(user, np.int64))

    def dataset(
        self, env_id: str, feature_names: tuple[str, ...], n_users: int, meta: dict[str, Any]
    ) -> PreferenceDataset:
        """The answers as a dataset (hidden fields blank; users 0..n_users-1)."""
        user = np.concatenate(self.user)
        order = np.argsort(user, kind="stable")  # each user's pairs together, in asked order
        asked = SegmentPairs(*(np.concatenate(getattr(self, k)) for k in SEGMENT_FIELDS))
        data = PreferenceDataset.from_answers(
            asked, np.concatenate(self.label)[order], user[order], pairs=order,
            env_id=env_id, feature_names=feature_names, n_users=n_users,
            meta={**meta, "hidden_fields": "blank: asked by robopref loop, goals never read"},
        )  # fmt: skip
        data.validate()
        return data

    @classmethod
    def from_dataset(cls, dataset: PreferenceDataset) -> Answers:
        """The answers of a dataset written by :meth:`dataset` (to resume a loop)."""
        answers = cls()
        answers.add(dataset, np.arange(dataset.n_pairs), dataset.label, dataset.user)
        return answers

    def context(self, user: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``user``'s pairs so far as (feat_a, feat_b, label), the input the model reads."""
        users = np.concatenate(self.user)
        rows = np.flatnonzero(users == user)
        return (
            np.concatenate(self.feat_a)[rows],
            np.concatenate(self.feat_b)[rows],
            np.concatenate(self.label)[rows],
        )


def fit_reward(
    kind: str,
    dataset: PreferenceDataset,
    previous: RewardModel | None,
    config: dict[str, Any],
    seed: int,
    epochs: int,
    val_fraction: float = 0.1,
    device: str = "cpu",
) -> tuple[RewardModel, TrainResult]:
    """Fit ``kind`` on the answers (the model reads features) for at most ``epochs``: a
    fresh model when ``previous`` is None, else ``previous`` refitted from its weights
    (:data:`REFIT`).
    Early stopping holds out a ``val_fraction`` of the training users' answers; the model
    is fitted on ``device`` and stays there."""
    view = reward_view(dataset, "features")
    train_set, val_set = view.split_users(val_fraction, seed)
    if previous is None:
        torch.manual_seed(seed)
        model = build_model(kind, view.obs_a.shape[-1], config)
        settings = TrainSettings(seed=seed, epochs=epochs)
    else:
        model = previous
        settings = TrainSettings(seed=seed, epochs=epochs, **REFIT)
    settings = kl_schedule(settings, has_kl=MODEL_KINDS[kind][0].has_kl)
    result = model.fit(
        train_set, val_dataset=val_set, settings=settings, device=device,
        log=lambda _line: None, warm_start=previous is not None,
    )  # fmt: skip
    model.meta["reward_input"] = "features"
    return model.eval(), result


def policy_latents(
    model: RewardModel, dataset: PreferenceDataset, seed: int, posterior: str
) -> LatentSource:
    """The z a policy trains on: the training users' posterior means (by ``posterior``) after
    1, 2, 4, 8, 16 active answers and after all of them (as ``train-policy --latent-source
    few-shot``)."""
    if model.latent_dim == 0:
        return LatentSource(0, np.zeros((1, 0), np.float32))
    view = reward_view(dataset, "features")
    means, _ = few_shot_means(model, view, seed=seed, posterior=posterior)
    return LatentSource(model.latent_dim, means)


@dataclass
class LoopSchedule:
    """PPO's learning rate over the whole loop: ``start`` annealed linearly to 0 across
    ``rounds`` calls of ``learn`` (SB3 restarts its progress at every call)."""

    start: float
    round: int
    rounds: int

    def __call__(self, remaining: float) -> float:
        """The rate at SB3's progress ``remaining`` (1 to 0) of this round's ``learn``."""
        overall = (self.rounds - self.round - 1 + max(remaining, 0.0)) / self.rounds
        return self.start * overall


def train_policy_round(
    policy_path: Path | None,
    env_id: str,
    model: RewardModel,
    latents: LatentSource,
    steps: int,
    round_index: int,
    rounds: int,
    seed: int,
    n_envs: int = 8,
    set_down: SetDown = SET_DOWN,
    env_kwargs: dict[str, Any] | None = None,
    final: bool = False,
) -> BaseAlgorithm:
    """Train the method's policy ``steps`` env steps on ``model``'s rewards.

    A round's *scout* (the policy the next round's questions are about) continues the policy
    saved at ``policy_path`` under :class:`LoopSchedule` (a new one from the recipe when
    None). The ``final`` policy is new, from the recipe with its own annealed rate, exactly
    what ``robopref train-policy`` trains: measured on plate two-modes seed 0, a policy
    continued over five rounds ended at 0.57 success (one group set down 7 cm off) where a
    new one on the same final reward reached 0.94. Envs and random state are seeded by
    ``seed`` and the round, so a resumed loop repeats the round.
    """
    round_seed = seed + 1000 * round_index
    factories = [
        functools.partial(latent_env, env_id, model, latents, round_seed + i, set_down, env_kwargs)
        for i in range(n_envs)
    ]
    venv = BatchedRewardVecEnv(build_vec_env(factories, 0, round_seed), model)
    if final or policy_path is None:
        algo = make_algo("ppo", venv, seed, "cpu", None, steps)
    else:
        algo = ALGOS["ppo"].load(policy_path, env=venv, device="cpu")
    algo.set_random_seed(round_seed)
    if not final:
        algo.lr_schedule = LoopSchedule(PPO_LEARNING_RATE, round_index, rounds)
    algo.learn(steps, reset_num_timesteps=False)
    venv.close()
    return algo
