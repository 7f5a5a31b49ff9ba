"""``robopref train-policy``: an SB3 agent on obs ⊕ z with the reward model's scaled reward.

The command: :class:`TrainPolicyOptions`, their checks and their one translation into the
:class:`~robopref.policies.rl_train.RLRun` that the library
(:mod:`robopref.policies.rl_train`, which describes the training and its TensorBoard
figures) trains. ``--method cpl`` and ``--method guided`` are dispatched to
:mod:`robopref.policies.cpl_policy` and :mod:`robopref.policies.guided`.

The latent policy (``--reward`` a VPL model) sees z per episode from the training users'
posterior means; a BTL model gives the standard RLHF policy (z empty) in the same harness;
``--oracle`` trains on the goal appended and the env's true reward instead, goals drawn
from ``--population`` (the upper bound). The PPO defaults are the one recipe of
:mod:`robopref.policies.recipe`. Files: see :mod:`robopref.policies.checkpoint`.

:func:`train_policy` checks every option first (:func:`check_train_options`: bad values,
an ``--env`` that is not the reward model's task, an output that exists or cannot be
written), turns them into an ``RLRun`` (:func:`rl_run`) and trains it
(:func:`~robopref.policies.rl_train.train_rl`: checkpoints every ``--checkpoint-every``
steps and every ``--checkpoint-minutes`` of wall time). TensorBoard: ``--tb`` (off by
default: it needs the optional ``tensorboard`` package) logs to ``OUT/tb``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from robopref.data.rollouts import make_env
from robopref.env_kwargs import check_env_kwargs, env_kwargs_option, parse_env_kwargs
from robopref.envs.wrappers import SetDown
from robopref.options import DEFAULT_ENV, DEFAULT_POPULATION, config_option
from robopref.policies.checkpoint import ALGOS
from robopref.policies.cpl import CPLSettings
from robopref.policies.cpl_train import CPLTraining
from robopref.policies.latent_env import WIDEN_SCALE, WIDEN_SHARE
from robopref.policies.meta import PolicyMeta
from robopref.policies.rl_train import LATENT_SOURCES, RLRun, check_policy_output, train_rl
from robopref.policies.vec_env import DEFAULT_WORKERS
from robopref.reward.checkpoint import load_payload
from robopref.tensorboard import tb_option, tensorboard_dir
from robopref.users.population import resolve_population

#: rl: SB3 on the reward model's reward (or the oracle's); cpl: Contrastive Preference
#: Learning on the answers' recorded actions, no reward and no RL (policies/cpl_policy.py)
METHODS = ("rl", "cpl", "guided")


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
    cpl_bc_data: str = config_option(
        CPLTraining,
        "bc_data",
        "CPL: BC pretraining on all recorded steps or the preferred segments only (all, preferred)",
    )
    cpl_loss: str = config_option(
        CPLTraining,
        "loss",
        "CPL: contrastive loss over answered pairs, or Plackett-Luce over "
        "each ranking question (pairs, rankings)",
    )


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
    check_policy_output(Path(options.out), options.resume, options.overwrite)
    return env_id


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


def rl_run(options: TrainPolicyOptions, env_id: str) -> RLRun:
    """The training run of ``options`` (checked, population filled in) on task ``env_id``."""
    return RLRun(
        env_id=env_id,
        env_kwargs=parse_env_kwargs(options.env_kwargs),
        reward=None if options.oracle else options.reward,
        data=options.data,
        population=options.population,
        out=Path(options.out),
        name=options.name,
        algo=options.algo,
        steps=options.steps,
        n_envs=options.n_envs,
        workers=options.workers,
        seed=options.seed,
        device=options.device,
        set_down=SetDown.PLACE if options.set_down else SetDown.OFF,
        latent_source=options.latent_source,
        latent_widen=options.latent_widen,
        latent_balance=options.latent_balance,
        val_fraction=options.val_fraction,
        eval_every=options.eval_every,
        eval_episodes=options.eval_episodes,
        checkpoint_every=options.checkpoint_every,
        checkpoint_minutes=options.checkpoint_minutes,
        resume=options.resume,
        overwrite=options.overwrite,
        progress=options.progress,
        tb=options.tb,
        recorded_options=asdict(options),
    )


def train_skill(options: TrainPolicyOptions, **changes: Any) -> None:
    """Train the goal-conditioned skill ``--method guided`` commands: ``options`` as the oracle
    (``--oracle``, the default ``--reward``, ``changes`` applied), through this command's
    checks."""
    train_policy(
        dataclasses.replace(options, method="rl", oracle=True, reward=DEFAULT_REWARD, **changes)
    )


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

        return train_guided_policy(options, train_skill)
    env_id = check_train_options(options)
    return train_rl(rl_run(options, env_id))


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
