"""``robopref train-policy --method cpl``: the command around :mod:`robopref.policies.cpl_train`.

:func:`train_cpl_policy` checks everything first (the dataset's actions, the reward model
for z, the output folder), builds the same SB3 actor as the RL policies on the env a latent
(or, for ``--cpl-latent none``, plain) policy acts in, trains it with CPL, runs
``evaluate``'s held-out check once at the end (``--eval-episodes`` new users of
``--population``) and writes the policy folder of :mod:`robopref.policies.checkpoint`
(``meta.json``: ``method: cpl``, its settings, the training fit, wall time). With ``--tb``
the CPL and BC losses (``cpl/loss``, ``cpl/bc_loss`` every 500 gradient steps), the fit and
the held-out check go to ``OUT/tb``.

A CPL run takes minutes (measured in the README), so it has no ``--resume``: a killed run
leaves nothing half-written (``model.zip`` and ``meta.json`` are written atomically, the
description last) and is simply run again.
"""

from __future__ import annotations

import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

from robopref.data.dataset import PreferenceDataset
from robopref.data.rollouts import make_env
from robopref.env_kwargs import check_env_kwargs, parse_env_kwargs
from robopref.envs.wrappers import SetDown
from robopref.files import check_writable
from robopref.policies.callbacks import EvalUsers
from robopref.policies.cpl import CPLSettings
from robopref.policies.cpl_train import (
    LATENTS,
    CPLTraining,
    check_actions,
    cpl_data,
    describe,
    plain_latents,
    preference_accuracy,
    train_cpl,
    training_latents,
)
from robopref.policies.meta import FORMAT, reward_path_for
from robopref.policies.recipe import make_algo
from robopref.policies.rl_train import check_policy_output, save_policy, without_reward_test_users
from robopref.policies.rollout import make_eval_env
from robopref.reward import load_reward_model
from robopref.reward.base import RewardModel
from robopref.reward.checkpoint import load_payload
from robopref.reward.evaluation import few_shot_means
from robopref.reward.inputs import reward_input, reward_view
from robopref.reward.nets import resolve_device
from robopref.tensorboard import summary_writer, tensorboard_dir
from robopref.users.population import resolve_population

Config = TypeVar("Config", CPLSettings, CPLTraining)


class CPLOptions(Protocol):
    """What a CPL run reads of the ``train-policy`` command's options (its
    ``TrainPolicyOptions``, a dataclass: ``meta.json`` records them all)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]
    reward: str
    data: str
    oracle: bool
    env: str
    env_kwargs: list[str]
    population: str
    algo: str
    out: str
    name: str
    device: str
    seed: int
    set_down: bool
    eval_episodes: int
    resume: bool
    overwrite: bool
    progress: bool
    tb: bool
    cpl_latent: str
    cpl_alpha: float
    cpl_gamma: float
    cpl_conservative: float
    cpl_bc_weight: float
    cpl_steps: int
    cpl_bc_steps: int
    cpl_batch: int
    cpl_lr: float
    cpl_std: float
    cpl_bc_data: str
    cpl_loss: str


def cpl_settings(options: CPLOptions) -> tuple[CPLSettings, CPLTraining]:
    """The objective's and the optimisation's settings of ``options`` (checked)."""
    return _from_options(CPLSettings, options), _from_options(CPLTraining, options)


def _from_options(config_type: type[Config], options: CPLOptions) -> Config:
    """``config_type`` built from the options named ``cpl_<field>`` (its checks run)."""
    return config_type(**{item.name: getattr(options, f"cpl_{item.name}")
                          for item in fields(config_type)})  # type: ignore[arg-type]  # fmt: skip


def check_cpl_options(options: CPLOptions) -> PreferenceDataset:
    """Every refusal of a CPL run, before any work; returns the dataset."""
    if options.oracle:
        raise ValueError(
            "--method cpl learns from users' answers; --oracle trains on the true reward: "
            "drop one of them"
        )
    if options.cpl_latent not in LATENTS:
        raise ValueError(f"--cpl-latent {options.cpl_latent!r}: use one of {', '.join(LATENTS)}")
    if options.algo != "ppo":
        raise ValueError(
            "--method cpl trains the PPO recipe's actor (saved as a PPO model): use --algo ppo"
        )
    if options.resume:
        raise ValueError(
            "--method cpl has no --resume (a run takes minutes; nothing is left half-written): "
            "run it again, with --overwrite if --out holds its files"
        )
    positive = {"--cpl-batch": options.cpl_batch, "--cpl-lr": options.cpl_lr}
    for flag, value in positive.items():
        if not value > 0:
            raise ValueError(f"{flag} {value} must be above 0 (defaults: --cpl-batch 128, "
                             "--cpl-lr 0.0003)")  # fmt: skip
    not_negative = {
        "--cpl-steps": options.cpl_steps,
        "--cpl-bc-steps": options.cpl_bc_steps,
        "--cpl-std": options.cpl_std,
    }
    for flag, value in not_negative.items():
        if value < 0:
            raise ValueError(f"{flag} {value} must be 0 or above")
    cpl_settings(options)  # the objective's values are refused here
    if options.eval_episodes < 0:
        raise ValueError(
            f"--eval-episodes {options.eval_episodes} must be 0 (no held-out check) or above"
        )
    tensorboard_dir(options.tb, Path(options.out) / "tb")
    check_policy_output(Path(options.out), options.resume, options.overwrite)
    dataset = PreferenceDataset.load(options.data)
    check_actions(dataset, options.data)
    raw, _ = make_env(dataset.env_id, parse_env_kwargs(options.env_kwargs))
    resolve_population(options.population, raw)  # a typo is refused before any work
    raw.close()
    if options.cpl_latent == "vpl":
        payload = load_payload(options.reward)
        meta = payload.get("meta", {})
        if int(payload.get("latent_dim") or 0) == 0:
            raise ValueError(
                f"--cpl-latent vpl takes z from a VPL reward model's encoder; {options.reward} "
                "has no latent (a BTL model?): pass a VPL model as --reward, or "
                "--cpl-latent none for the non-personalized baseline"
            )
        if meta.get("env_id") not in (None, dataset.env_id):
            raise ValueError(
                f"the reward model {options.reward} is for {meta.get('env_id')}, the dataset "
                f"{options.data} for {dataset.env_id}: pass the pair a loop or collect wrote"
            )
    if options.env and options.env != dataset.env_id:
        raise ValueError(
            f"--env {options.env} is not the dataset's task {dataset.env_id}: omit --env"
        )
    return dataset


def _latents(
    options: CPLOptions, dataset: PreferenceDataset
) -> tuple[PreferenceDataset, np.ndarray, RewardModel | None]:
    """The training users' pairs, their latents ``(U, R, Z)`` and the reward model (None for
    the plain baseline). The reward checkpoint's own test users, if it kept any, are left
    out, as train-policy's RL policies do; otherwise every user trains (a loop's model keeps
    none back: its held-out check draws new users)."""
    if options.cpl_latent == "none":
        return dataset, plain_latents(dataset.n_users), None
    model = load_reward_model(options.reward, device="cpu")
    dataset = without_reward_test_users(options.reward, dataset) or dataset
    view = reward_view(dataset, reward_input(model))
    means, owners = few_shot_means(model, view, seed=options.seed)
    return dataset, training_latents(means, owners, dataset.n_users), model


def _meta(
    options: CPLOptions, dataset: PreferenceDataset, model: RewardModel | None
) -> dict[str, Any]:
    settings, training = cpl_settings(options)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "algo": "ppo",
        "method": "cpl",
        "seed": options.seed,
        "options": asdict(options),
        "set_down": (SetDown.PLACE if options.set_down else SetDown.OFF).stored,
        "env_id": dataset.env_id,
        "data_path": options.data,
        "cpl": describe(settings, training, options.cpl_latent),
    }
    recorded = dataset.meta.get("env_kwargs") or {}
    if model is not None:
        recorded = model.meta.get("env_kwargs") or recorded
    given = parse_env_kwargs(options.env_kwargs)
    meta["env_kwargs"] = check_env_kwargs(recorded, given, f"the dataset {options.data}")
    if model is None:
        meta.update(kind="plain", name=options.name or "cpl-plain", latent_dim=0)
        meta.update(reward_path=None, reward_fingerprint=None)
    else:
        meta.update(kind="latent", name=options.name or "cpl", latent_dim=model.latent_dim)
        meta["reward_path"] = reward_path_for(options.out, options.reward)
        meta["reward_fingerprint"] = model.fingerprint()
    return meta


def train_cpl_policy(options: CPLOptions) -> dict[str, Any]:
    """Train the CPL policy of ``options`` (module docstring); returns its metadata."""
    dataset = check_cpl_options(options)
    torch.set_num_threads(1)
    torch.manual_seed(options.seed)
    device = str(resolve_device(options.device))
    began = time.perf_counter()
    dataset, latents, model = _latents(options, dataset)
    meta = _meta(options, dataset, model)
    env = make_eval_env(
        meta["env_id"], meta["kind"], model, set_down=SetDown.read(meta["set_down"]),
        env_kwargs=meta["env_kwargs"],
    )  # fmt: skip
    algo = make_algo("ppo", DummyVecEnv([lambda: env]), options.seed, device, None, 1)
    settings, training = cpl_settings(options)
    data = cpl_data(dataset, latents, training.loss == "rankings", options.data)
    log = train_cpl(algo.policy, data, settings, training, options.seed, options.progress)
    algo.num_timesteps = training.bc_steps + training.steps
    fit = preference_accuracy(algo.policy, data, settings)
    wall = time.perf_counter() - began
    history: list[dict[str, Any]] = []
    if options.eval_episodes > 0:
        raw, _ = make_env(meta["env_id"], meta["env_kwargs"])
        population = resolve_population(options.population, raw)
        EvalUsers(meta, model, population, 0, options.eval_episodes, options.seed, history
                  ).evaluate(algo)  # fmt: skip
    meta.update(
        steps=int(algo.num_timesteps), history=history, wall_s=round(wall, 1),
        train_preference_accuracy=round(fit, 4), pairs=data.n_pairs, users=dataset.n_users,
        loss=log,
    )  # fmt: skip
    check_writable(Path(options.out) / "model.zip", "--out")
    _log_tensorboard(tensorboard_dir(options.tb, Path(options.out) / "tb"), meta)
    save_policy(algo, Path(options.out), meta)
    return meta


def _log_tensorboard(log_dir: str | None, meta: dict[str, Any]) -> None:
    """The run's losses, fit and held-out check as TensorBoard scalars (``--tb``)."""
    writer = summary_writer(log_dir)
    if writer is None:
        return
    for row in meta["loss"]:
        writer.add_scalar("cpl/bc_loss" if row["bc"] else "cpl/loss", row["loss"], row["step"])
    writer.add_scalar("cpl/train_preference_accuracy", meta["train_preference_accuracy"], 0)
    for row in meta["history"]:
        writer.add_scalar("eval/success", row["success"], meta["steps"])
        writer.add_scalar("eval/true_return", row["true_return"], meta["steps"])
    writer.close()
