"""``robopref train-policy``: an SB3 agent on obs ⊕ z with the reward model's scaled reward.

The latent policy (``--reward`` a VPL model) sees z per episode from the training users'
posterior means (each user's hidden goal set in the env, so the evaluation callback can
report true success); a BTL model gives the standard RLHF policy (z empty) in the same
harness; ``--oracle`` trains on the goal appended and the env's true reward instead, goals
drawn from ``--population`` (the upper bound). The PPO defaults are the one recipe of
:mod:`robopref.policies.recipe`. Files: see :mod:`robopref.policies.checkpoint`.

:func:`train_policy` runs the stages in order, each a function of its own:
:func:`check_train_options` (every refusal, before any work: bad values, an ``--env`` that is
not the reward model's task, an output that exists or cannot be written),
:func:`build_training` (the training users and the vectorized env), :func:`make_or_resume`
(a new SB3 model or the last checkpoint), :func:`learn` (with the progress, evaluation and
checkpoint callbacks; checkpoints every ``--checkpoint-every`` steps and every
``--checkpoint-minutes`` of wall time) and :func:`save_policy`.

TensorBoard (``--tb``, off by default: it needs the optional ``tensorboard`` package) logs
to ``OUT/tb``: SB3's own ``train/...`` figures; ``rollout/ep_rew_mean`` and
``rollout/ep_len_mean`` of the training episodes (a ``VecMonitor`` outside the reward
relabelling, so this is the return of the reward the agent is trained on: the reward
model's scaled reward for a latent policy, the env's own for ``--oracle``);
``rollout/true_ep_rew_mean``, the env's own return of the training episodes where it is
known (``info["true_reward"]``: always for ``--oracle``; for a latent policy only when the
env has a goal, which the training users, known by their answers alone, do not give it);
and ``eval/success``, ``eval/true_return`` of the held-out check.
"""

from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

from robopref.dataset import PreferenceDataset
from robopref.env_kwargs import check_env_kwargs, env_kwargs_option, parse_env_kwargs
from robopref.envs.wrappers import GoalObservation, SetDown
from robopref.files import check_writable
from robopref.options import DEFAULT_ENV, DEFAULT_POPULATION, config_option
from robopref.policies.callbacks import EvalUsers, ProgressBar, TrueReturn, checkpoint_callbacks
from robopref.policies.checkpoint import ALGOS, load_sb3, save_model
from robopref.policies.cpl import CPLSettings
from robopref.policies.cpl_train import CPLTraining
from robopref.policies.latent_env import (
    WIDEN_SCALE,
    WIDEN_SHARE,
    BatchedRewardVecEnv,
    LatentRewardEnv,
    LatentSource,
    PopulationGoals,
)
from robopref.policies.meta import FORMAT, PolicyMeta, reward_path_for
from robopref.policies.recipe import make_algo
from robopref.policies.rollout import task_env
from robopref.policies.vec_env import DEFAULT_WORKERS, build_vec_env
from robopref.population import resolve_population
from robopref.queries import make_env
from robopref.reward import load_reward_model
from robopref.reward.base import RewardModel
from robopref.reward.checkpoint import load_payload
from robopref.reward.evaluation import few_shot_means, posterior_means
from robopref.reward.inputs import reward_input, reward_view
from robopref.reward.nets import resolve_device
from robopref.tensorboard import tb_option, tensorboard_dir

LATENT_SOURCES = ("few-shot", "users", "prior")
#: rl: SB3 on the reward model's reward (or the oracle's); cpl: Contrastive Preference
#: Learning on the answers' recorded actions, no reward and no RL (policies/cpl_policy.py)
METHODS = ("rl", "cpl", "guided")
#: what ``--resume`` continues from (``replay.pkl``: SAC's buffer, when there is one)
CHECKPOINT_FILES = ("checkpoint.zip", "checkpoint.json", "replay.pkl")


#: ``--reward``'s default (``--oracle`` refuses any other: it reads no reward model)
DEFAULT_REWARD = "runs/demo/vpl.pt"


@dataclass
class TrainPolicyOptions:
    """Train a latent-conditioned policy (or the oracle) with SB3 (defaults: the demo's VPL)."""

    reward: str = field(
        default=DEFAULT_REWARD,
        metadata={"help": "reward-model checkpoint (for --method cpl: the VPL model giving z)"},
    )
    method: str = field(
        default="rl",
        metadata={
            "help": "rl (SB3 on the learned reward), cpl (contrastive preference learning "
            "straight from --data's answers and recorded actions: no reward, no RL) or guided "
            "(a goal-conditioned skill commanded to --reward's peak for each user's z)"
        },
    )
    data: str = field(
        default="data/plate.npz", metadata={"help": "dataset whose users' posteriors give z"}
    )
    oracle: bool = field(default=False, metadata={"help": "train the oracle (true goal+reward)"})
    env: str = field(
        default="",
        metadata={
            "help": "task id; empty: the reward model's task (for --oracle: "
            f"{DEFAULT_ENV}). A latent policy trains on its reward model's task only"
        },
    )
    env_kwargs: list[str] = env_kwargs_option()
    population: str = field(
        default="",
        metadata={
            "help": "the oracle's goals, and the held-out check's new users (recorded: "
            "evaluate and video serve it by default): name or file; empty: the population "
            f"--reward's answers came from (for --oracle, or where none is recorded: "
            f"{DEFAULT_POPULATION})"
        },
    )
    algo: str = field(default="ppo", metadata={"help": "ppo or sac"})
    steps: int = field(default=300_000, metadata={"help": "env steps to train"})
    out: str = field(default="runs/demo/policy_vpl", metadata={"help": "policy folder to write"})
    name: str = field(default="", metadata={"help": "label (default: reward kind or oracle)"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    seed: int = field(default=0, metadata={"help": "seed of everything"})
    n_envs: int = field(default=8, metadata={"help": "parallel envs"})
    workers: int = field(
        default=DEFAULT_WORKERS,
        metadata={
            "help": "processes that step the envs, a group of envs each (0: this process; "
            "on 2 cores the fastest, benchmarks/ppo_speed.py)"
        },
    )
    latent_widen: float = field(
        default=WIDEN_SHARE,
        metadata={
            "help": "share of episodes whose z comes from the training latents' Gaussian, "
            f"{WIDEN_SCALE} times wider (new users' z fall in the tails; 0: none)"
        },
    )
    latent_balance: bool = field(
        default=False,
        metadata={
            "help": "draw training users inversely to the density of their z (a sparse "
            "region, a minority's, gets as many episodes as a dense one)"
        },
    )
    latent_source: str = field(
        default="few-shot",
        metadata={
            "help": "z per episode: few-shot (a training user's posterior means after 1, 2, 4, "
            "8, 16 active queries and all answers), users (all answers only) or prior"
        },
    )
    set_down: bool = field(
        default=True,
        metadata={
            "help": "the set-down primitive (SetDownOnContact): a let-go request lowers the "
            "lifted object to the table, and it is let go once it rests there"
        },
    )
    val_fraction: float = field(
        default=0.1, metadata={"help": "held-out users (the reward model's split)"}
    )
    eval_every: int = field(default=50_000, metadata={"help": "steps between evaluations"})
    eval_episodes: int = field(
        default=20,
        metadata={
            "help": "new users (one episode each) per evaluation, as robopref evaluate (0: none)"
        },
    )
    checkpoint_every: int = field(
        default=25_000, metadata={"help": "steps between checkpoints (0: none by steps)"}
    )
    checkpoint_minutes: float = field(
        default=1.0,
        metadata={"help": "also checkpoint after this much wall time, in minutes (0: never)"},
    )
    resume: bool = field(default=False, metadata={"help": "continue from out/checkpoint.zip"})
    overwrite: bool = field(
        default=False,
        metadata={"help": "replace a finished policy (or start over an unfinished run) in --out"},
    )
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})
    tb: bool = tb_option()
    skill: str = field(
        default="",
        metadata={
            "help": "--method guided: the goal-conditioned skill's policy folder (empty: train "
            "one into OUT/skill, --oracle --population goal-space with --steps)"
        },
    )
    cpl_latent: str = field(
        default="vpl",
        metadata={
            "help": "--method cpl: vpl (z from --reward's encoder, as VPL + RL) or none (the "
            "non-personalized baseline: one policy for everyone)"
        },
    )
    cpl_alpha: float = config_option(CPLSettings, "alpha", "CPL: temperature alpha of scores")
    cpl_gamma: float = config_option(CPLSettings, "gamma", "CPL: discount over a segment")
    cpl_conservative: float = config_option(
        CPLSettings, "conservative", "CPL: weight lambda in (0, 1] of the dispreferred score"
    )
    cpl_bc_weight: float = config_option(
        CPLSettings, "bc_weight", "CPL: weight of the BC term on preferred segments"
    )
    cpl_steps: int = config_option(CPLTraining, "steps", "CPL: gradient steps of the CPL loss")
    cpl_bc_steps: int = config_option(
        CPLTraining, "bc_steps", "CPL: behaviour-cloning pretraining steps (all segments)"
    )
    cpl_batch: int = config_option(CPLTraining, "batch", "CPL: pairs per gradient step")
    cpl_lr: float = config_option(CPLTraining, "lr", "CPL: Adam learning rate")
    cpl_std: float = config_option(
        CPLTraining, "std", "CPL: the policy's action std, fixed while training (0: learned)"
    )


def latent_env(
    env_id: str,
    model: RewardModel,
    source: LatentSource,
    seed: int,
    set_down: SetDown,
    env_kwargs: dict[str, Any] | None = None,
) -> gym.Env:
    """One training env of a latent policy (rewards deferred to :class:`BatchedRewardVecEnv`)."""
    torch.set_num_threads(1)
    base = task_env(env_id, set_down, **(env_kwargs or {}))
    return LatentRewardEnv(base, model, source, defer_reward=True, seed=seed)


def _oracle_env(
    env_id: str,
    goals: np.ndarray,
    groups: np.ndarray,
    seed: int,
    set_down: SetDown,
    env_kwargs: dict[str, Any],
) -> gym.Env:
    base = task_env(env_id, set_down, **env_kwargs)
    return GoalObservation(PopulationGoals(base, goals, groups, seed=seed))


def without_reward_test_users(reward: str, dataset: PreferenceDataset) -> PreferenceDataset | None:
    """``dataset`` less the users the reward checkpoint ``reward`` kept back as its test users
    (a policy trains on the reward model's training users only); None when the checkpoint
    recorded no split of this dataset."""
    split = load_payload(reward).get("split") or {}
    if not (split.get("test_users") and split.get("n_users") == dataset.n_users):
        return None
    test = np.array(sorted(split["test_users"]), dtype=np.int64)
    return dataset.subset_users(np.setdiff1d(np.arange(dataset.n_users), test))


def _users(options: TrainPolicyOptions, model: RewardModel) -> LatentSource:
    """The training users' latents (the reward checkpoint's test users left out, else a
    ``val_fraction`` split of ``--data``). Their goals are not read: the training envs keep
    their own, and the held-out check draws new users."""
    dataset = reward_view(
        PreferenceDataset.load(options.data, expected_env=model.meta.get("env_id")),
        reward_input(model),
    )
    train = without_reward_test_users(options.reward, dataset)
    if train is None:
        train, _ = dataset.split_users(options.val_fraction, 0)
    if options.latent_source == "few-shot":
        means, _ = few_shot_means(model, train, seed=options.seed)
    else:
        means = posterior_means(model, train)
    return LatentSource(
        model.latent_dim, means, widen_share=options.latent_widen, balance=options.latent_balance
    )


def _oracle_goals(options: TrainPolicyOptions, env_id: str, n: int, seed: int) -> LatentSource:
    env, _ = make_env(env_id, parse_env_kwargs(options.env_kwargs))
    goals, groups = resolve_population(options.population, env).sample_goals(
        n, np.random.default_rng(seed)
    )
    return LatentSource(0, np.zeros((n, 0), np.float32), goals, groups)


def resolve_env(options: TrainPolicyOptions, model_env: str | None) -> str:
    """The task to train on: the reward model's (``model_env``; ``--env`` must be empty or
    the same), or ``--env`` (default :data:`DEFAULT_ENV`) for the oracle."""
    if options.oracle:
        return options.env or DEFAULT_ENV
    if model_env is None:
        if not options.env:
            raise ValueError(
                f"the reward model {options.reward} does not record its task: pass --env"
            )
        return options.env
    if options.env and options.env != model_env:
        raise ValueError(
            f"--env {options.env} is not the task of the reward model {options.reward} "
            f"({model_env}): a latent policy trains on its reward model's task. Omit --env, "
            f"pass --env {model_env}, or train a reward model on {options.env} data"
        )
    return model_env


def check_train_options(options: TrainPolicyOptions) -> str:
    """Every refusal :func:`train_policy` makes, made before any work; returns the task id.

    Refused: sizes below 1 (below 0 for ``--eval-every``, ``--eval-episodes`` and the
    checkpoint intervals), a ``--val-fraction`` outside [0, 1), an unknown ``--algo`` or
    ``--latent-source``, ``--oracle`` with a ``--reward``, an unknown ``--population``, an
    ``--env`` that is not the reward model's task, ``--tb`` without tensorboard, an ``--out``
    that cannot be written, and an ``--out`` holding a finished policy or an unfinished
    run's checkpoint (unless ``--overwrite`` or ``--resume``); ``--resume`` without a
    checkpoint. Nothing in ``--out`` is touched before all of them pass.
    """
    options = with_served_population(options)
    if options.steps < 1 or options.n_envs < 1:
        raise ValueError("--steps and --n-envs must be at least 1")
    if options.eval_every < 0 or options.eval_episodes < 0:
        raise ValueError(
            f"--eval-every {options.eval_every} and --eval-episodes {options.eval_episodes} "
            "must be 0 (no held-out check) or above"
        )
    if not 0.0 <= options.val_fraction < 1.0:
        raise ValueError(
            f"--val-fraction {options.val_fraction} is the share of users held out: use a "
            "value in [0, 1), like 0.1"
        )
    if options.oracle and options.reward != DEFAULT_REWARD:
        raise ValueError(
            f"--oracle trains on the env's true reward and reads no reward model, but "
            f"--reward {options.reward} was given: drop --reward, or drop --oracle to train "
            "on that reward model"
        )
    if options.algo not in ALGOS:
        raise ValueError(f"--algo {options.algo!r} is unknown: use one of {sorted(ALGOS)}")
    if not options.oracle and options.latent_source not in LATENT_SOURCES:
        raise ValueError(
            f"--latent-source {options.latent_source!r}: use one of {', '.join(LATENT_SOURCES)}"
        )
    if not 0.0 <= options.latent_widen <= 1.0:
        raise ValueError(f"--latent-widen {options.latent_widen} is a share: use [0, 1]")
    if options.checkpoint_every < 0 or options.checkpoint_minutes < 0:
        raise ValueError("--checkpoint-every and --checkpoint-minutes must be 0 or above")
    model_env, env_kwargs = None, parse_env_kwargs(options.env_kwargs)
    if not options.oracle:
        model_meta = load_payload(options.reward).get("meta", {})
        model_env = model_meta.get("env_id")
        # the env kwargs first: a population is checked against the env the model knows
        env_kwargs = check_env_kwargs(
            model_meta.get("env_kwargs") or {}, env_kwargs, f"the reward model {options.reward}"
        )
    env_id = resolve_env(options, model_env)
    env, _ = make_env(env_id, env_kwargs)
    resolve_population(options.population, env)  # a typo is refused before any work
    env.close()
    tensorboard_dir(options.tb, Path(options.out) / "tb")
    check_output(options)
    return env_id


def check_output(options: TrainPolicyOptions) -> None:
    """Refuse an ``--out`` that cannot be written, or that holds a finished policy or an
    unfinished run (unless ``--overwrite`` or ``--resume``); ``--resume`` without a run."""
    out = Path(options.out)
    check_writable(out / "model.zip", "--out")
    if options.resume and options.overwrite:
        raise ValueError(
            "--resume continues the run in --out and --overwrite replaces it: pass one of them"
        )
    if options.resume:
        read_meta_checkpoint(out)
    elif not options.overwrite:
        resumable = has_checkpoint(out)
        if (out / "model.zip").exists():
            raise ValueError(
                f"--out {out} already holds a finished policy: pass --overwrite to replace it, "
                + ("--resume to train it on to --steps, " if resumable else "")
                + "or choose another --out"
            )
        if resumable or (out / "checkpoint.zip").exists():
            raise ValueError(
                f"--out {out} holds an unfinished run's checkpoint: pass "
                + ("--resume to continue it, " if resumable else "")
                + "--overwrite to start over, or choose another --out"
            )


@dataclass
class Training:
    """What :func:`build_training` sets up: the vec env, the users, the policy's metadata.

    ``reward_model`` is the CPU model the workers and the evaluation read (None for the
    oracle).
    """

    venv: VecEnv
    meta: dict[str, Any]
    reward_model: RewardModel | None
    train_users: LatentSource


def build_training(options: TrainPolicyOptions, env_id: str, device: str) -> Training:
    """The training users and vectorized env of ``options`` on task ``env_id``; the reward
    model relabels the rewards on ``device``."""
    meta: dict[str, Any] = {
        "format": FORMAT,
        "algo": options.algo,
        "seed": options.seed,
        "options": asdict(options),
        "set_down": (SetDown.PLACE if options.set_down else SetDown.OFF).stored,
    }
    if options.oracle:
        meta["env_kwargs"] = parse_env_kwargs(options.env_kwargs)
        train_users = _oracle_goals(options, env_id, 1000, options.seed)
        factories = [
            functools.partial(
                _oracle_env,
                env_id,
                train_users.goals,
                train_users.groups,
                options.seed + i,
                SetDown.read(meta["set_down"]),
                meta["env_kwargs"],
            )
            for i in range(options.n_envs)
        ]
        meta.update(kind="oracle", name=options.name or "oracle", env_id=env_id)
        meta.update(latent_dim=0, reward_path=None, reward_fingerprint=None)
        venv = VecMonitor(build_vec_env(factories, options.workers, options.seed))
        return Training(venv, meta, None, train_users)
    # The envs' copy stays on the CPU (worker processes get it pickled); the batched
    # relabeller gets its own copy on ``device``.
    reward_model = load_reward_model(options.reward, device="cpu")
    meta["env_kwargs"] = check_env_kwargs(
        reward_model.meta.get("env_kwargs") or {}, parse_env_kwargs(options.env_kwargs),
        f"the reward model {options.reward}",
    )  # fmt: skip
    train_users = _users(options, reward_model)
    if options.latent_source == "prior":
        train_users = LatentSource.prior(reward_model.latent_dim)
    factories = [
        functools.partial(
            latent_env,
            env_id,
            reward_model,
            train_users,
            options.seed + i,
            SetDown.read(meta["set_down"]),
            meta["env_kwargs"],
        )  # fmt: skip
        for i in range(options.n_envs)
    ]
    meta.update(kind="latent", name=options.name or reward_model.kind, env_id=env_id)
    meta["latent_dim"] = reward_model.latent_dim
    meta["reward_path"] = reward_path_for(options.out, options.reward)  # relative to --out
    meta["reward_fingerprint"] = reward_model.fingerprint()
    venv = build_vec_env(factories, options.workers, options.seed)
    venv = BatchedRewardVecEnv(venv, load_reward_model(options.reward, device=device))
    # Outside the relabelling: the episodes' return of the reward the agent learns from.
    return Training(VecMonitor(venv), meta, reward_model, train_users)


def make_or_resume(
    options: TrainPolicyOptions, training: Training, device: str
) -> tuple[BaseAlgorithm, list[dict[str, Any]]]:
    """A new model with the recipe, or (``--resume``) the last checkpoint of ``--out``; and
    the evaluation history so far."""
    out = Path(options.out)
    tb = tensorboard_dir(options.tb, out / "tb")
    if not options.resume:
        if options.overwrite:  # a later --resume must not continue the replaced run
            for name in CHECKPOINT_FILES:
                (out / name).unlink(missing_ok=True)
        return make_algo(options.algo, training.venv, options.seed, device, tb, options.steps), []
    saved = read_meta_checkpoint(out)
    if saved.get("reward_fingerprint") != training.meta["reward_fingerprint"] or (
        saved["algo"] != options.algo
    ):
        raise ValueError(
            f"{out}/checkpoint.zip was made with another reward model or algorithm: "
            "resume with the original --reward and --algo, or drop --resume"
        )
    fix = (
        f"restore {out}/checkpoint.zip from a copy, or start over: the same command with "
        "--overwrite instead of --resume"
    )
    model = load_sb3(options.algo, out / "checkpoint.zip", fix, env=training.venv, device=device)
    model.tensorboard_log = tb
    if options.algo == "sac" and (out / "replay.pkl").is_file():
        model.load_replay_buffer(out / "replay.pkl")
    print(f"resuming {out} from step {model.num_timesteps}", flush=True)
    return model, list(saved.get("history", []))


def learn(
    model: BaseAlgorithm,
    options: TrainPolicyOptions,
    training: Training,
    history: list[dict[str, Any]],
) -> None:
    """Train ``model`` up to ``--steps`` with the progress bar, the held-out evaluation (which
    appends to ``history``, and runs once more at the end) and the checkpoints.

    Interrupted (Ctrl-C), it writes a checkpoint first and raises a ``RuntimeError`` that
    says how to continue.
    """
    out, meta = Path(options.out), training.meta
    env, _ = make_env(meta["env_id"], meta["env_kwargs"])
    evaluation = EvalUsers(
        meta,
        training.reward_model,
        resolve_population(options.population, env),
        options.eval_every,
        options.eval_episodes,
        options.seed,
        history,
    )
    saver, triggers = checkpoint_callbacks(
        out, options.checkpoint_every, options.checkpoint_minutes, meta, history
    )
    callbacks = [
        ProgressBar(options.steps, model.num_timesteps, options.progress),
        TrueReturn(),
        evaluation,
    ]
    remaining = options.steps - model.num_timesteps
    if remaining > 0:
        try:
            model.learn(
                remaining,
                callback=[*callbacks, *triggers],
                reset_num_timesteps=not options.resume,
                tb_log_name=meta["name"],
            )
        except KeyboardInterrupt as error:
            saver.init_callback(model)  # set up even when no trigger is on
            saver.save()
            raise RuntimeError(
                f"interrupted at step {model.num_timesteps}; saved {out}/checkpoint.zip: "
                "continue with the same command and --resume"
            ) from error
    if options.eval_episodes > 0:  # 0: no held-out check (it would draw no users)
        evaluation.evaluate(model)


def _close(venv: VecEnv) -> None:
    # After Ctrl-C the worker processes may be gone already.
    with contextlib.suppress(BrokenPipeError, EOFError, ConnectionResetError):
        venv.close()


def save_policy(model: BaseAlgorithm, out: Path, meta: dict[str, Any]) -> None:
    """Write the finished policy: ``model.zip``, then ``meta.json`` (which marks it done)."""
    save_model(model, out / "model.zip")
    PolicyMeta(meta).write(out)


def with_served_population(options: TrainPolicyOptions) -> TrainPolicyOptions:
    """``options`` with an empty ``--population`` filled in: the population the reward
    model's answers came from (as recorded in it), else :data:`DEFAULT_POPULATION`; a
    policy on a reward learnt from one population is checked on that population's users."""
    if options.population:
        return options
    recorded = None
    if not options.oracle:
        try:
            recorded = load_payload(options.reward).get("meta", {}).get("population")
        except (OSError, ValueError):  # a missing or bad --reward is refused by name later
            recorded = None
    return replace(options, population=str(recorded or DEFAULT_POPULATION))


def train_policy(options: TrainPolicyOptions) -> dict[str, Any]:
    """Train (or resume) the policy described by ``options``; returns its metadata."""
    if options.method not in METHODS:
        raise ValueError(f"--method {options.method!r}: use one of {', '.join(METHODS)}")
    options = with_served_population(options)
    if options.method == "cpl":
        from robopref.policies.cpl_policy import train_cpl_policy

        return train_cpl_policy(options)
    if options.method == "guided":
        from robopref.policies.guided import train_guided_policy

        return train_guided_policy(options)
    env_id = check_train_options(options)
    torch.set_num_threads(1)
    device = str(resolve_device(options.device))
    training = build_training(options, env_id, device)
    try:
        model, history = make_or_resume(options, training, device)
        start = model.num_timesteps
        began = time.perf_counter()
        learn(model, options, training, history)
        wall = time.perf_counter() - began
    finally:
        _close(training.venv)
    meta = training.meta
    meta.update(steps=int(model.num_timesteps), history=history, wall_s=round(wall, 1))
    trained = max(options.steps - start, 0)
    meta["steps_per_s"] = round(trained / wall) if wall > 0 else None
    save_policy(model, Path(options.out), meta)
    return meta


def has_checkpoint(out: Path) -> bool:
    """Whether ``out`` holds a complete checkpoint (its model and, written last, its JSON)."""
    return (out / "checkpoint.json").is_file() and (out / "checkpoint.zip").is_file()


def read_meta_checkpoint(out: Path) -> dict[str, Any]:
    """The metadata of ``out``'s last checkpoint, or a clear error when there is none."""
    path = out / "checkpoint.json"
    if not has_checkpoint(out):
        raise FileNotFoundError(
            f"nothing to resume in {out} (no complete checkpoint.zip + checkpoint.json): "
            "run without --resume, with --overwrite if --out holds files of another run"
        )
    fix = f"delete {out}/checkpoint.* and train again without --resume"
    return PolicyMeta.from_json(path, "a policy checkpoint description", fix).data


def train_policy_command(options: TrainPolicyOptions) -> int:
    """CLI entry: train, then print the final held-out success."""
    meta = train_policy(options)
    last = meta["history"][-1] if meta["history"] else {}
    if "steps_per_s" in meta:
        pace = f"{meta['steps_per_s']} steps/s"
    elif "train_preference_accuracy" in meta:
        pace = f"gradient steps; fits {meta['train_preference_accuracy']:.2f} of the answers"
    else:
        pace = f"the skill's steps; commanded to {meta['reward_path']}'s peak"
    print(
        f"{meta['name']} ({meta.get('method', 'rl')}, {meta['algo']}, {meta['steps']} steps, "
        f"{meta['wall_s']} s, {pace}): held-out success "
        f"{last.get('success', float('nan')):.2f} -> {options.out}/model.zip"
    )
    _ = PolicyMeta.read(options.out)
    return 0
