"""``robopref train-policy``: an SB3 agent on obs ⊕ z with the reward model's scaled reward.

The latent policy (``--reward`` a VPL model) sees z per episode from the training users'
posterior means (each user's hidden goal set in the env, so the evaluation callback can
report true success); a BTL model gives the standard RLHF policy (z empty) in the same
harness; ``--oracle`` trains on the goal appended and the env's true reward instead, goals
drawn from ``--population`` (the upper bound). The PPO defaults are the tuned recipe of
``benchmarks/oracle_learning.py``. Files: see :mod:`robopref.policies.checkpoint`.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

import robopref.envs  # noqa: F401  (registers the envs)
from robopref.dataset import PreferenceDataset
from robopref.envs.wrappers import GoalObservation
from robopref.files import write_json_atomic
from robopref.policies.callbacks import CheckpointEvery, EvalUsers, ProgressBar
from robopref.policies.checkpoint import (
    ALGOS,
    FORMAT,
    read_meta,
    reward_fingerprint,
    save_model,
)
from robopref.policies.latent_env import (
    BatchedRewardVecEnv,
    LatentRewardEnv,
    LatentSource,
    PopulationGoals,
)
from robopref.policies.recipe import make_algo
from robopref.policies.rollout import task_env
from robopref.population import resolve_population
from robopref.queries import make_env
from robopref.reward.base import RewardModel
from robopref.reward.checkpoint import load_payload, load_reward_model
from robopref.reward.evaluation import few_shot_means, posterior_means
from robopref.reward.inputs import reward_input, reward_view
from robopref.reward.nets import resolve_device


@dataclass
class TrainPolicyOptions:
    """Train a latent-conditioned policy (or the oracle) with SB3 (defaults: the demo's VPL)."""

    reward: str = field(default="runs/demo/vpl.pt", metadata={"help": "reward-model checkpoint"})
    data: str = field(
        default="data/plate.npz", metadata={"help": "dataset whose users' posteriors give z"}
    )
    oracle: bool = field(default=False, metadata={"help": "train the oracle (true goal+reward)"})
    env: str = field(
        default="robopref/PlatePlacement-v0", metadata={"help": "task id (for --oracle)"}
    )
    population: str = field(default="two-modes", metadata={"help": "oracle goals: name or file"})
    algo: str = field(default="ppo", metadata={"help": "ppo or sac"})
    steps: int = field(default=300_000, metadata={"help": "env steps to train"})
    out: str = field(default="runs/demo/policy_vpl", metadata={"help": "policy folder to write"})
    name: str = field(default="", metadata={"help": "label (default: reward kind or oracle)"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    seed: int = field(default=0, metadata={"help": "seed of everything"})
    n_envs: int = field(default=8, metadata={"help": "parallel envs"})
    subproc: bool = field(default=False, metadata={"help": "one process per env (SubprocVecEnv)"})
    latent_source: str = field(
        default="few-shot",
        metadata={
            "help": "z per episode: few-shot (a training user's posterior means after 1, 2, 4, "
            "8, 16 active queries and all answers), users (all answers only) or prior"
        },
    )
    set_down: bool = field(
        default=True,
        metadata={"help": "let go once the lifted object rests on the table (SetDownOnContact)"},
    )
    val_fraction: float = field(
        default=0.1, metadata={"help": "held-out users (the reward model's split)"}
    )
    eval_every: int = field(default=50_000, metadata={"help": "steps between evaluations"})
    eval_episodes: int = field(default=20, metadata={"help": "held-out episodes per evaluation"})
    checkpoint_every: int = field(default=25_000, metadata={"help": "steps between checkpoints"})
    resume: bool = field(default=False, metadata={"help": "continue from out/checkpoint.zip"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})


def _latent_env(
    env_id: str, model: RewardModel, source: LatentSource, seed: int, set_down: bool
) -> gym.Env:
    torch.set_num_threads(1)
    base = task_env(env_id, set_down)
    return LatentRewardEnv(base, model, source, defer_reward=True, seed=seed)


def _oracle_env(
    env_id: str, goals: np.ndarray, groups: np.ndarray, seed: int, set_down: bool
) -> gym.Env:
    return GoalObservation(PopulationGoals(task_env(env_id, set_down), goals, groups, seed=seed))


def build_vec_env(factories: list[Any], subproc: bool, seed: int) -> VecEnv:
    """A Dummy or Subproc vec env of ``factories``, seeded ``seed + i``."""
    venv = SubprocVecEnv(factories) if subproc and len(factories) > 1 else DummyVecEnv(factories)
    venv.seed(seed)
    return venv


def _users(options: TrainPolicyOptions, model: RewardModel) -> tuple[LatentSource, LatentSource]:
    """Training and held-out users: the reward checkpoint's test users are held out (else a
    ``val_fraction`` split of ``--data``)."""
    dataset = reward_view(
        PreferenceDataset.load(options.data, expected_env=model.meta.get("env_id")),
        reward_input(model),
    )
    split = load_payload(options.reward).get("split") or {}
    if split.get("test_users") and split.get("n_users") == dataset.n_users:
        test = np.array(sorted(split["test_users"]), dtype=np.int64)
        rest = np.setdiff1d(np.arange(dataset.n_users), test)
        train, held_out = dataset.subset_users(rest), dataset.subset_users(test)
    else:
        train, held_out = dataset.split_users(options.val_fraction, 0)
    if options.latent_source == "few-shot":
        means, owner = few_shot_means(model, train, seed=options.seed)
        source = LatentSource(
            model.latent_dim, means, train.user_goal[owner], train.user_group[owner]
        )
    else:
        means = posterior_means(model, train)
        source = LatentSource(model.latent_dim, means, train.user_goal, train.user_group)
    # Held-out users are scored as evaluate serves a new user: z after 4 active queries.
    eval_means, owner = few_shot_means(
        model, held_out, ks=(4,), seed=options.seed + 1, with_all_answers=False
    )
    held = LatentSource(
        model.latent_dim, eval_means, held_out.user_goal[owner], held_out.user_group[owner]
    )
    return source, held


def _oracle_goals(options: TrainPolicyOptions, n: int, seed: int) -> LatentSource:
    env, _ = make_env(options.env)
    goals, groups = resolve_population(options.population, env).sample_goals(
        n, np.random.default_rng(seed)
    )
    return LatentSource(0, np.zeros((n, 0), np.float32), goals, groups)


def train_policy(options: TrainPolicyOptions) -> dict[str, Any]:
    """Train (or resume) the policy described by ``options``; returns its metadata."""
    torch.set_num_threads(1)
    device = str(resolve_device(options.device))
    out = Path(options.out)
    if options.steps < 1 or options.n_envs < 1:
        raise ValueError("--steps and --n-envs must be at least 1")
    meta: dict[str, Any] = {
        "format": FORMAT,
        "algo": options.algo,
        "seed": options.seed,
        "options": asdict(options),
        "set_down": options.set_down,
    }
    if options.oracle:
        train_users = _oracle_goals(options, 1000, options.seed)
        eval_users = _oracle_goals(options, options.eval_episodes, options.seed + 10_000)
        factories = [
            functools.partial(
                _oracle_env,
                options.env,
                train_users.goals,
                train_users.groups,
                options.seed + i,
                options.set_down,
            )
            for i in range(options.n_envs)
        ]
        meta.update(kind="oracle", name=options.name or "oracle", env_id=options.env)
        meta.update(latent_dim=0, reward_path=None, reward_fingerprint=None)
        reward_model = None
        venv = build_vec_env(factories, options.subproc, options.seed)
    else:
        reward_model = load_reward_model(options.reward, device="cpu")
        env_id = str(reward_model.meta.get("env_id", options.env))
        train_users, eval_users = _users(options, reward_model)
        if options.latent_source == "prior":
            train_users = LatentSource.prior(reward_model.latent_dim)
        elif options.latent_source not in ("users", "few-shot"):
            raise ValueError(
                f"--latent-source {options.latent_source!r}: use few-shot, users or prior"
            )
        factories = [
            functools.partial(
                _latent_env, env_id, reward_model, train_users, options.seed + i, options.set_down
            )
            for i in range(options.n_envs)
        ]
        meta.update(kind="latent", name=options.name or reward_model.kind, env_id=env_id)
        meta.update(latent_dim=reward_model.latent_dim, reward_path=options.reward)
        meta["reward_fingerprint"] = reward_fingerprint(reward_model)
        venv = build_vec_env(factories, options.subproc, options.seed)
        batch_model = load_reward_model(options.reward, device=device)
        venv = BatchedRewardVecEnv(venv, batch_model)
    algo_type = ALGOS.get(options.algo)
    if algo_type is None:
        raise ValueError(f"--algo {options.algo!r} is unknown: use one of {sorted(ALGOS)}")
    tb = str(out / "tb")
    history: list[dict[str, Any]] = []
    if options.resume:
        saved = read_meta_checkpoint(out)
        if saved.get("reward_fingerprint") != meta["reward_fingerprint"] or saved["algo"] != (
            options.algo
        ):
            raise ValueError(
                f"{out}/checkpoint.zip was made with another reward model or algorithm: "
                "resume with the original --reward and --algo, or drop --resume"
            )
        model = algo_type.load(out / "checkpoint.zip", env=venv, device=device)
        model.tensorboard_log = tb
        if options.algo == "sac" and (out / "replay.pkl").is_file():
            model.load_replay_buffer(out / "replay.pkl")
        history = list(saved.get("history", []))
        print(f"resuming {out} from step {model.num_timesteps}", flush=True)
    else:
        model = make_algo(options.algo, venv, options.seed, device, tb, options.steps)
    remaining = options.steps - model.num_timesteps
    began = time.perf_counter()
    callbacks = [
        ProgressBar(options.steps, model.num_timesteps, enabled=options.progress),
        EvalUsers(
            options.env if options.oracle else meta["env_id"],
            meta["kind"],
            reward_model,
            eval_users,
            options.eval_every,
            options.eval_episodes,
            history,
            set_down=options.set_down,
        ),
        CheckpointEvery(out, options.checkpoint_every, meta, history),
    ]
    if remaining > 0:
        model.learn(
            remaining,
            callback=callbacks,
            reset_num_timesteps=not options.resume,
            tb_log_name=meta["name"],
        )
    callbacks[1].evaluate(model)
    wall = time.perf_counter() - began
    meta.update(steps=int(model.num_timesteps), history=history, wall_s=round(wall, 1))
    meta["steps_per_s"] = round(max(remaining, 0) / wall) if wall > 0 else None
    save_model(model, out / "model.zip")
    write_json_atomic(out / "meta.json", meta)
    venv.close()
    return meta


def read_meta_checkpoint(out: Path) -> dict[str, Any]:
    """The metadata of ``out``'s last checkpoint, or a clear error when there is none."""
    path = out / "checkpoint.json"
    if not path.is_file() or not (out / "checkpoint.zip").is_file():
        raise FileNotFoundError(f"nothing to resume in {out}: run without --resume")
    return json.loads(path.read_text())


def train_policy_command(options: TrainPolicyOptions) -> int:
    """CLI entry: train, then print the final held-out success."""
    meta = train_policy(options)
    last = meta["history"][-1] if meta["history"] else {}
    print(
        f"{meta['name']} ({meta['algo']}, {meta['steps']} steps, {meta['wall_s']} s, "
        f"{meta['steps_per_s']} steps/s): held-out success {last.get('success', float('nan')):.2f}"
        f" -> {options.out}/model.zip"
    )
    _ = read_meta(options.out)
    return 0
