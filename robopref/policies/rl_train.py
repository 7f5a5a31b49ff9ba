"""One SB3 training run of a latent policy (or the oracle), given as an :class:`RLRun`.

The library half of ``robopref train-policy`` (the command, :mod:`robopref.policies.train`,
checks its options and turns them into one :class:`RLRun`): :func:`train_rl` runs the
stages in order, each a function of its own: :func:`build_training` (the training users and
the vectorized env), :func:`make_or_resume` (a new SB3 model or the last checkpoint),
:func:`learn` (with the progress, evaluation and checkpoint callbacks; checkpoints every
``checkpoint_every`` steps and every ``checkpoint_minutes`` of wall time) and
:func:`save_policy`. The pieces other modules reuse live here too: :func:`latent_env` (one
training env of a latent policy: the loop's arms build theirs with it),
:func:`without_reward_test_users`, :func:`check_policy_output` and :func:`save_policy`
(the CPL command's). Files: see :mod:`robopref.policies.checkpoint`.

A latent policy sees z per episode from the training users' posterior means (each user's
hidden goal set in the env, so the evaluation callback can report true success); a BTL model
gives the standard RLHF policy (z empty) in the same harness; the oracle trains on the goal
appended and the env's true reward instead, goals drawn from the run's population (the
upper bound). The PPO defaults are the one recipe of :mod:`robopref.policies.recipe`.

TensorBoard (``tb``, off by default: it needs the optional ``tensorboard`` package) logs
to ``OUT/tb``: SB3's own ``train/...`` figures; ``rollout/ep_rew_mean`` and
``rollout/ep_len_mean`` of the training episodes (a ``VecMonitor`` outside the reward
relabelling, so this is the return of the reward the agent is trained on: the reward
model's scaled reward for a latent policy, the env's own for the oracle);
``rollout/true_ep_rew_mean``, the env's own return of the training episodes where it is
known (``info["true_reward"]``: always for the oracle; for a latent policy only when the
env has a goal, which the training users, known by their answers alone, do not give it);
and ``eval/success``, ``eval/true_return`` of the held-out check.
"""

from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

from robopref.data.dataset import PreferenceDataset
from robopref.data.rollouts import make_env
from robopref.env_kwargs import check_env_kwargs
from robopref.envs.wrappers import GoalObservation, SetDown
from robopref.files import check_writable
from robopref.policies.callbacks import EvalUsers, ProgressBar, TrueReturn, checkpoint_callbacks
from robopref.policies.checkpoint import load_sb3, save_model
from robopref.policies.latent_env import (
    BatchedRewardVecEnv,
    LatentRewardEnv,
    LatentSource,
    PopulationGoals,
)
from robopref.policies.meta import FORMAT, PolicyMeta, reward_path_for
from robopref.policies.recipe import make_algo
from robopref.policies.rollout import task_env
from robopref.policies.vec_env import build_vec_env
from robopref.reward import load_reward_model
from robopref.reward.base import RewardModel
from robopref.reward.checkpoint import load_payload
from robopref.reward.evaluation import few_shot_means, posterior_means
from robopref.reward.inputs import reward_input, reward_view
from robopref.reward.nets import resolve_device
from robopref.tensorboard import tensorboard_dir
from robopref.users.population import resolve_population

#: where a latent policy's z per episode comes from (:func:`training_users`)
LATENT_SOURCES = ("few-shot", "users", "prior")
#: what a resumed run continues from (``replay.pkl``: SAC's buffer, when there is one)
CHECKPOINT_FILES = ("checkpoint.zip", "checkpoint.json", "replay.pkl")
#: the oracle's training users: this many goals drawn from the population
ORACLE_USERS = 1000


@dataclass(frozen=True, kw_only=True)
class RLRun:
    """One training run of :func:`train_rl`: a latent policy on ``reward``'s scaled reward,
    or (``reward`` None) the oracle on the env's true reward.

    ``env_kwargs`` are the ones given: a latent policy's are checked against (and completed
    by) those its reward model records. ``population`` names the oracle's goals and the
    held-out check's new users (already filled in: never empty). ``recorded_options`` is what
    ``meta.json`` records under ``options`` (the command's options, as given).
    """

    env_id: str
    env_kwargs: dict[str, Any]
    reward: str | None
    data: str
    population: str
    out: Path
    name: str
    algo: str
    steps: int
    n_envs: int
    workers: int
    seed: int
    device: str
    set_down: SetDown
    #: latent policies: the training users (:func:`training_users`)
    latent_source: str
    latent_widen: float
    latent_balance: bool
    val_fraction: float
    #: the held-out check and the checkpoints
    eval_every: int
    eval_episodes: int
    checkpoint_every: int
    checkpoint_minutes: float
    #: a new run (after ``overwrite``, the old checkpoint deleted) or a resumed one
    resume: bool
    overwrite: bool
    progress: bool
    tb: bool
    recorded_options: dict[str, Any]

    @property
    def oracle(self) -> bool:
        """Whether this is the oracle (the goal appended, the env's true reward)."""
        return self.reward is None


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


def training_users(run: RLRun, model: RewardModel) -> LatentSource:
    """The training users' latents (the reward checkpoint's test users left out, else a
    ``val_fraction`` split of ``run.data``). Their goals are not read: the training envs
    keep their own, and the held-out check draws new users."""
    assert run.reward is not None
    dataset = reward_view(
        PreferenceDataset.load(run.data, expected_env=model.meta.get("env_id")),
        reward_input(model),
    )
    train = without_reward_test_users(run.reward, dataset)
    if train is None:
        train, _ = dataset.split_users(run.val_fraction, 0)
    if run.latent_source == "few-shot":
        means, _ = few_shot_means(model, train, seed=run.seed)
    else:
        means = posterior_means(model, train)
    return LatentSource(
        model.latent_dim, means, widen_share=run.latent_widen, balance=run.latent_balance
    )


def oracle_goals(run: RLRun, n: int, seed: int) -> LatentSource:
    """``n`` goals (and their groups) drawn from ``run.population``: the oracle's users."""
    env, _ = make_env(run.env_id, run.env_kwargs)
    goals, groups = resolve_population(run.population, env).sample_goals(
        n, np.random.default_rng(seed)
    )
    return LatentSource(0, np.zeros((n, 0), np.float32), goals, groups)


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


def check_policy_output(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse an ``--out`` that cannot be written, or that holds a finished policy or an
    unfinished run (unless ``--overwrite`` or ``--resume``); ``--resume`` without a run."""
    check_writable(out / "model.zip", "--out")
    if resume and overwrite:
        raise ValueError(
            "--resume continues the run in --out and --overwrite replaces it: pass one of them"
        )
    if resume:
        read_meta_checkpoint(out)
    elif not overwrite:
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


def build_training(run: RLRun, device: str) -> Training:
    """The training users and vectorized env of ``run``; the reward model relabels the
    rewards on ``device``."""
    meta: dict[str, Any] = {
        "format": FORMAT,
        "algo": run.algo,
        "seed": run.seed,
        "options": run.recorded_options,
        "set_down": SetDown(run.set_down).stored,
    }
    if run.reward is None:
        meta["env_kwargs"] = run.env_kwargs
        train_users = oracle_goals(run, ORACLE_USERS, run.seed)
        factories = [
            functools.partial(
                _oracle_env,
                run.env_id,
                train_users.goals,
                train_users.groups,
                run.seed + i,
                SetDown.read(meta["set_down"]),
                meta["env_kwargs"],
            )
            for i in range(run.n_envs)
        ]
        meta.update(kind="oracle", name=run.name or "oracle", env_id=run.env_id)
        meta.update(latent_dim=0, reward_path=None, reward_fingerprint=None)
        venv = VecMonitor(build_vec_env(factories, run.workers, run.seed))
        return Training(venv, meta, None, train_users)
    # The envs' copy stays on the CPU (worker processes get it pickled); the batched
    # relabeller gets its own copy on ``device``.
    reward_model = load_reward_model(run.reward, device="cpu")
    meta["env_kwargs"] = check_env_kwargs(
        reward_model.meta.get("env_kwargs") or {}, run.env_kwargs,
        f"the reward model {run.reward}",
    )  # fmt: skip
    train_users = training_users(run, reward_model)
    if run.latent_source == "prior":
        train_users = LatentSource.prior(reward_model.latent_dim)
    factories = [
        functools.partial(
            latent_env,
            run.env_id,
            reward_model,
            train_users,
            run.seed + i,
            SetDown.read(meta["set_down"]),
            meta["env_kwargs"],
        )  # fmt: skip
        for i in range(run.n_envs)
    ]
    meta.update(kind="latent", name=run.name or reward_model.kind, env_id=run.env_id)
    meta["latent_dim"] = reward_model.latent_dim
    meta["reward_path"] = reward_path_for(run.out, run.reward)  # relative to out
    meta["reward_fingerprint"] = reward_model.fingerprint()
    venv = build_vec_env(factories, run.workers, run.seed)
    venv = BatchedRewardVecEnv(venv, load_reward_model(run.reward, device=device))
    # Outside the relabelling: the episodes' return of the reward the agent learns from.
    return Training(VecMonitor(venv), meta, reward_model, train_users)


def make_or_resume(
    run: RLRun, training: Training, device: str
) -> tuple[BaseAlgorithm, list[dict[str, Any]]]:
    """A new model with the recipe, or (``run.resume``) the last checkpoint of ``run.out``;
    and the evaluation history so far."""
    out = run.out
    tb = tensorboard_dir(run.tb, out / "tb")
    if not run.resume:
        if run.overwrite:  # a later resume must not continue the replaced run
            for name in CHECKPOINT_FILES:
                (out / name).unlink(missing_ok=True)
        return make_algo(run.algo, training.venv, run.seed, device, tb, run.steps), []
    saved = read_meta_checkpoint(out)
    if saved.get("reward_fingerprint") != training.meta["reward_fingerprint"] or (
        saved["algo"] != run.algo
    ):
        raise ValueError(
            f"{out}/checkpoint.zip was made with another reward model or algorithm: "
            "resume with the original --reward and --algo, or drop --resume"
        )
    fix = (
        f"restore {out}/checkpoint.zip from a copy, or start over: the same command with "
        "--overwrite instead of --resume"
    )
    model = load_sb3(run.algo, out / "checkpoint.zip", fix, env=training.venv, device=device)
    model.tensorboard_log = tb
    if run.algo == "sac" and (out / "replay.pkl").is_file():
        model.load_replay_buffer(out / "replay.pkl")
    print(f"resuming {out} from step {model.num_timesteps}", flush=True)
    return model, list(saved.get("history", []))


def learn(
    model: BaseAlgorithm,
    run: RLRun,
    training: Training,
    history: list[dict[str, Any]],
) -> None:
    """Train ``model`` up to ``run.steps`` with the progress bar, the held-out evaluation
    (which appends to ``history``, and runs once more at the end) and the checkpoints.

    Interrupted (Ctrl-C), it writes a checkpoint first and raises a ``RuntimeError`` that
    says how to continue.
    """
    out, meta = run.out, training.meta
    env, _ = make_env(meta["env_id"], meta["env_kwargs"])
    evaluation = EvalUsers(
        meta,
        training.reward_model,
        resolve_population(run.population, env),
        run.eval_every,
        run.eval_episodes,
        run.seed,
        history,
    )
    saver, triggers = checkpoint_callbacks(
        out, run.checkpoint_every, run.checkpoint_minutes, meta, history
    )
    callbacks = [
        ProgressBar(run.steps, model.num_timesteps, run.progress),
        TrueReturn(),
        evaluation,
    ]
    remaining = run.steps - model.num_timesteps
    if remaining > 0:
        try:
            model.learn(
                remaining,
                callback=[*callbacks, *triggers],
                reset_num_timesteps=not run.resume,
                tb_log_name=meta["name"],
            )
        except KeyboardInterrupt as error:
            saver.init_callback(model)  # set up even when no trigger is on
            saver.save()
            raise RuntimeError(
                f"interrupted at step {model.num_timesteps}; saved {out}/checkpoint.zip: "
                "continue with the same command and --resume"
            ) from error
    if run.eval_episodes > 0:  # 0: no held-out check (it would draw no users)
        evaluation.evaluate(model)


def _close(venv: VecEnv) -> None:
    # After Ctrl-C the worker processes may be gone already.
    with contextlib.suppress(BrokenPipeError, EOFError, ConnectionResetError):
        venv.close()


def save_policy(model: BaseAlgorithm, out: Path, meta: dict[str, Any]) -> None:
    """Write the finished policy: ``model.zip``, then ``meta.json`` (which marks it done)."""
    save_model(model, out / "model.zip")
    PolicyMeta(meta).write(out)


def train_rl(run: RLRun) -> dict[str, Any]:
    """Train (or resume) the policy of ``run`` and write it to ``run.out``; returns its
    metadata. ``run`` is taken as checked (the command's :func:`check_train_options`)."""
    torch.set_num_threads(1)
    device = str(resolve_device(run.device))
    training = build_training(run, device)
    try:
        model, history = make_or_resume(run, training, device)
        start = model.num_timesteps
        began = time.perf_counter()
        learn(model, run, training, history)
        wall = time.perf_counter() - began
    finally:
        _close(training.venv)
    meta = training.meta
    meta.update(steps=int(model.num_timesteps), history=history, wall_s=round(wall, 1))
    trained = max(run.steps - start, 0)
    meta["steps_per_s"] = round(trained / wall) if wall > 0 else None
    save_policy(model, run.out, meta)
    return meta
