"""``robopref loop``: the RLHF loop for a population of users with a latent reward.

Training users answer in rounds (:mod:`robopref.loop.asking`): round 0 about goal-agnostic
behaviour, every later round about what each method's current policy does for that user.
After each round's answers every method (VPL, BTL) refits its reward model, warm-started,
and continues training its *scout* PPO policy on the refitted rewards, the policy the next
round's questions are about; after the last round it trains its final policy new, on the
final reward, as ``robopref train-policy`` would (:mod:`robopref.loop.arm`); then the
held-out check runs (:mod:`robopref.loop.report`) and one line is logged. The loop
stops at ``--answers`` per user. Users are sealed (:mod:`robopref.users.hidden`): nothing here
reads a goal or a group.

Files in ``--out``: ``loop.json`` (the options, the rounds done and one history row per
round; written last at each round's end, so a loop killed mid-round resumes from the last
finished round with ``--resume`` and repeats it exactly), ``round_NN/`` (each method's
answers, reward model and policy after round NN; the last two are kept), ``loop.png``
(held-out success against answers per user) and, when the loop is done, what the other
commands read: ``vpl.pt``, ``btl.pt``, ``policy_vpl/``, ``policy_btl/``, ``vpl.npz`` and
``btl.npz`` (each method's answers as a dataset, hidden fields blank).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import multiprocessing
import re
import shutil
import signal
import time
from collections.abc import Collection, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robopref.data.dataset import PreferenceDataset
from robopref.data.queries import QueryPool, build_query_pool
from robopref.data.rollouts import Rollouts, collect_rollouts, join_rollouts, make_env
from robopref.env_kwargs import env_kwargs_option, parse_env_kwargs
from robopref.files import check_writable, write_json_atomic
from robopref.loop.arm import (
    FIT_EPOCHS,
    REFIT_EPOCHS,
    SET_DOWN,
    Answers,
    fit_reward,
    policy_latents,
    train_policy_round,
)
from robopref.loop.asking import (
    FIXED_QUESTIONS,
    GOAL_AGNOSTIC,
    NEAR_SHARE,
    PROPOSALS,
    ask_mixed,
    ask_random,
    end_points,
    ending_pair,
    fixed_questions,
    proposal_aims,
    proposal_rollouts,
    user_candidates,
)
from robopref.loop.report import format_round, heldout_check, plot_history
from robopref.options import (
    DEFAULT_ENV,
    DEFAULT_POPULATION,
    config_option,
    config_values,
    device_option,
)
from robopref.policies.checkpoint import ALGOS, LoadedPolicy, save_model
from robopref.policies.meta import FORMAT, PolicyMeta, reward_path_for
from robopref.policies.rollout import policy_rollouts
from robopref.reward.active import POSTERIORS, answers_posterior
from robopref.reward.base import RewardModel
from robopref.reward.checkpoint import model_payload, save_payload
from robopref.reward.nets import resolve_device
from robopref.reward.registry import load_reward_model
from robopref.reward.vpl import VPLConfig
from robopref.tasks import TaskGoals, task_goals
from robopref.tensorboard import summary_writer, tb_option, tensorboard_dir
from robopref.users.hidden import SealedUser, answer_pairs
from robopref.users.population import resolve_population
from robopref.users.synthetic import SyntheticUser

METHODS = ("vpl", "btl", "dpl", "lowrank", "mixture")
#: options that may differ between an interrupted loop and its resumption
RESUMABLE_CHANGES = ("resume", "overwrite", "progress", "workers", "tb", "device")
#: what a loop writes in ``--out`` before its first round is done (then ``loop.json``
#: marks the folder as a loop's): round folders, TensorBoard logs, the atomic writer's
#: hidden temporaries. Anything else in a folder without ``loop.json`` is someone else's.
LOOP_PROGRESS = re.compile(r"round_\d{2,}|tb|loop\.png|\..*")
#: the keys of a loop.json the loop reads back
STATE_KEYS = ("options", "rounds", "done", "history")
ROUNDS_KEPT = 2
#: PPO env steps of a final policy. Measured on the plate's three-group population (one
#: loop's final reward, 100 new users): 300k steps set the minority groups' plates down a
#: median 3-5 cm off (0.96 / 0.56 / 0.48 success), 1M within 1-3 cm (1.00 / 1.00 / 1.00);
#: the learned reward is nearly flat near its peak (0.02 of its range over 5 cm), so the
#: last centimetres take PPO long to find. BlockSort needed 1M before this default too.
FINAL_STEPS = 1_000_000
#: PPO env steps of a method's scouts over all rounds (their behaviour only shapes questions)
SCOUT_STEPS = 300_000
#: how the loop infers its training users' z: the encoder, as every measured two-group,
#: three-group and three-zone loop did (the likelihood posterior, ``--posterior
#: likelihood``, is what the continuous-goal figures need; see the README)
LOOP_POSTERIOR = "encoder"


@dataclass
class LoopOptions:
    """Run the RLHF loop: users answer in rounds about what the current policies do."""

    env: str = field(default=DEFAULT_ENV, metadata={"help": "task id"})
    env_kwargs: list[str] = env_kwargs_option()
    population: str = field(
        default=DEFAULT_POPULATION, metadata={"help": "population name or file"}
    )
    out: str = field(default="runs/loop", metadata={"help": "folder of the loop's files"})
    users: int = field(default=200, metadata={"help": "training users"})
    answers: int = field(default=48, metadata={"help": "answers per training user in all"})
    first_answers: int = field(
        default=16, metadata={"help": "answers per user in round 0 (goal-agnostic behaviour)"}
    )
    per_round: int = field(default=8, metadata={"help": "answers per user in each later round"})
    steps: int = field(
        default=FINAL_STEPS,
        metadata={
            "help": "PPO env steps of each method's final policy, trained new on the final reward"
        },
    )
    scout_steps: int = field(
        default=SCOUT_STEPS,
        metadata={
            "help": "PPO env steps of each method's scout policy (the one the next round's "
            "questions are about) over all rounds, --scout-steps / rounds per round, continued"
        },
    )
    episodes: int = field(default=200, metadata={"help": "goal-agnostic episodes of round 0"})
    rollouts_per_user: int = field(
        default=2, metadata={"help": "policy episodes per user and round (1 greedy, rest sampled)"}
    )
    candidates: int = field(
        default=64, metadata={"help": "candidate pairs per user and round that queries come from"}
    )
    active_share: float = field(
        default=0.5,
        metadata={
            "help": "VPL: share of each later round's queries chosen by BALD (the rest at "
            "random among the candidates)"
        },
    )
    segment: int = field(default=10, metadata={"help": "steps per query segment"})
    methods: list[str] = field(
        default_factory=lambda: ["vpl", "btl"],
        metadata={"help": "any of vpl, btl, dpl, lowrank, mixture"},
    )
    latent_dim: int = config_option(VPLConfig, "latent_dim", "VPL: size of the user latent z")
    decoder: str = config_option(
        VPLConfig, "decoder", "VPL decoder: bilinear, ideal, ideal-linear, ideal-distance or mlp"
    )
    hidden: tuple[int, ...] = config_option(
        VPLConfig, "hidden", "VPL: hidden layer widths of the reward model's MLPs"
    )
    fourier: int = config_option(VPLConfig, "fourier", "VPL: Fourier features of the state")
    fourier_scale: float = config_option(
        VPLConfig, "fourier_scale", "VPL: scale of the Fourier frequencies"
    )
    kl_weight: float = config_option(VPLConfig, "kl_weight", "VPL: weight of the KL term")
    swap_guard: float = config_option(
        VPLConfig, "swap_guard", "VPL: weight of the guard against posterior collapse (0: off)"
    )
    posterior: str = field(
        default=LOOP_POSTERIOR,
        metadata={
            "help": "VPL: the training users' z (their rollouts, BALD's questions, the policy's "
            "latents) from the encoder (q(z | answers)) or the reward model's likelihood "
            "posterior (as infer_user serves new users)"
        },
    )
    fit_epochs: int = field(
        default=FIT_EPOCHS, metadata={"help": "most epochs of round 0's reward fits"}
    )
    refit_epochs: int = field(
        default=REFIT_EPOCHS, metadata={"help": "most epochs of each later, warm-started refit"}
    )
    eval_users: int = field(default=20, metadata={"help": "new users of the held-out check"})
    eval_episodes: int = field(default=1, metadata={"help": "episodes per held-out user"})
    seed: int = field(default=0, metadata={"help": "seed of everything"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads"})
    device: str = device_option(
        "the reward models' device (fits, active asking, reward relabelling; PPO stays on the CPU)"
    )
    workers: int = field(
        default=2,
        metadata={
            "help": "processes for the methods' arms, which run at once (1: one after the "
            "other in this process; the results are the same)"
        },
    )
    resume: bool = field(default=False, metadata={"help": "continue the loop in --out"})
    overwrite: bool = field(default=False, metadata={"help": "replace the loop in --out"})
    progress: bool = field(default=True, metadata={"help": "print each stage"})
    tb: bool = tb_option()

    @functools.cached_property
    def _parsed_env_kwargs(self) -> dict[str, Any]:
        return parse_env_kwargs(self.env_kwargs)

    @property
    def task_kwargs(self) -> dict[str, Any]:
        """``--env-kwargs`` parsed (once per options; a copy each time): what every env of the
        loop is made with."""
        return dict(self._parsed_env_kwargs)

    @property
    def vpl_config(self) -> dict[str, Any]:
        """The VPL reward model's config: the options named as :class:`VPLConfig`'s fields."""
        values = config_values(VPLConfig, self)
        return {**values, "hidden": tuple(values["hidden"])}

    @property
    def scout_round_steps(self) -> int:
        """PPO env steps per round of the scout policy (continued from round to round)."""
        return self.scout_steps // self.rounds

    @property
    def rounds(self) -> int:
        """Rounds in all: round 0, then ``per_round`` answers per round up to ``answers``."""
        return 1 + (self.answers - self.first_answers) // self.per_round


def read_state(out: str | Path) -> dict[str, Any]:
    """The ``loop.json`` of the loop in ``out``; a damaged one is refused with the fix."""
    path = Path(out) / "loop.json"
    fix = (
        f"it was not written whole by `robopref loop`: pass --overwrite to start the loop in "
        f"{path.parent} over, or choose another --out"
    )
    try:
        state = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is damaged (not JSON: {error}); {fix}") from None
    if not isinstance(state, dict) or not isinstance(state.get("options"), dict):
        raise ValueError(f"{path} has no 'options' (the loop's settings); {fix}")
    missing = [k for k in STATE_KEYS if k not in state]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(map(repr, missing))}; {fix}")
    return state


def check_loop_values(options: LoopOptions) -> None:
    """Refuse impossible budgets, unknown methods, tasks, populations and model settings
    (everything but ``--out``), before work: what ``robopref sweep`` checks for every cell."""
    resolve_device(options.device)  # names the fix for an unknown device or a missing GPU
    for name in ("users", "answers", "first_answers", "per_round", "steps", "scout_steps",
                 "episodes", "rollouts_per_user", "candidates", "eval_users", "eval_episodes",
                 "fit_epochs", "refit_epochs", "workers"):  # fmt: skip
        if getattr(options, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    if options.seed < 0:
        raise ValueError(f"--seed {options.seed} must be at least 0")
    for name in ("active_share", "fourier_scale", "kl_weight"):
        if not math.isfinite(getattr(options, name)):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number")
    if options.posterior not in POSTERIORS:
        raise ValueError(f"--posterior {options.posterior!r} must be one of {POSTERIORS}")
    if options.per_round < len(FIXED_QUESTIONS):
        raise ValueError(
            f"--per-round {options.per_round} leaves no room for the {len(FIXED_QUESTIONS)} "
            f"questions every later round asks first: use at least {len(FIXED_QUESTIONS)}"
        )
    if options.users < 10:
        raise ValueError("--users must be at least 10 (a tenth is held out for early stopping)")
    if options.scout_steps < options.rounds:
        raise ValueError(
            f"--scout-steps {options.scout_steps} must be at least the {options.rounds} rounds"
        )
    extra = options.answers - options.first_answers
    if extra < 0 or extra % options.per_round:
        raise ValueError(
            f"--answers {options.answers} must be --first-answers {options.first_answers} plus "
            f"a multiple of --per-round {options.per_round}"
        )
    if not 0.0 <= options.active_share <= 1.0:
        raise ValueError(f"--active-share {options.active_share} is a share: use [0, 1]")
    if options.candidates < options.per_round:
        raise ValueError("--candidates must be at least --per-round (queries come from them)")
    unknown = [m for m in options.methods if m not in METHODS]
    if unknown or not options.methods or len(set(options.methods)) != len(options.methods):
        raise ValueError(f"--methods {options.methods}: give each of {METHODS} at most once")
    # a bad VPL option is refused even where no VPL runs (a typo all the same)
    try:
        VPLConfig(**options.vpl_config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"the VPL model's options: {error}") from None
    env, steps = make_env(options.env, options.task_kwargs)
    try:
        if not 1 <= options.segment <= steps + 1:
            raise ValueError(
                f"--segment {options.segment} must lie in [1, {steps + 1}], the states of one "
                f"{options.env} episode: pass --segment {min(steps + 1, 10)}"
            )
        resolve_population(options.population, env)
    finally:
        env.close()
    tensorboard_dir(options.tb, Path(options.out) / "tb")


def foreign_entries(out: Path, others: Collection[str] = ()) -> list[str]:
    """What ``out`` (a folder without ``loop.json``) holds that no loop wrote there, but for
    the names in ``others`` (what the calling command, such as the demo, wrote itself)."""
    if not out.is_dir():
        return []
    return sorted(
        p.name for p in out.iterdir()
        if p.name not in others and not LOOP_PROGRESS.fullmatch(p.name)
    )  # fmt: skip


def refuse_foreign_entries(out: Path, others: Collection[str], whose: str) -> None:
    """Refuse an ``out`` holding what neither a loop nor the caller (``others``) wrote,
    naming the entries; ``whose``: how the message names the folder's owner."""
    foreign = foreign_entries(out, others)
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise ValueError(
            f"--out {out} {whose} and holds {shown}: it writes only into a new or empty "
            f"folder or its own (--overwrite too, so as not to replace your files); choose "
            "another --out, or move those files away"
        )


def check_loop_options(options: LoopOptions, others: Collection[str] = ()) -> None:
    """Refuse impossible values (:func:`check_loop_values`) and an ``--out`` in the way,
    before work. ``others``: names in ``--out`` that the calling command made (the demo's)."""
    check_loop_values(options)
    out = Path(options.out)
    check_writable(out / "loop.json", "--out")
    if options.resume and options.overwrite:
        raise ValueError("--resume continues the loop in --out, --overwrite replaces it: pick one")
    state = out / "loop.json"
    if options.resume:
        if not state.is_file():
            raise FileNotFoundError(f"nothing to resume: {state} does not exist (drop --resume)")
        saved = read_state(out)["options"]
        # through JSON, as saved (tuples become lists); an option newer than the saved
        # loop counts as its default
        now = json.loads(json.dumps(dataclasses.asdict(options)))
        default = json.loads(json.dumps(dataclasses.asdict(type(options)())))
        changed = [
            k for k in now if k not in RESUMABLE_CHANGES and saved.get(k, default[k]) != now[k]
        ]
        if changed:
            raise ValueError(
                f"--resume with other options than the loop in {out} ({', '.join(changed)}): "
                "resume with the original options, or start over with --overwrite"
            )
    elif state.exists() and not options.overwrite:
        done = read_state(out).get("finished", False)
        raise ValueError(
            f"--out {out} holds a {'finished' if done else 'unfinished'} loop: pass "
            + ("" if done else "--resume to continue it, ")
            + "--overwrite to replace it, or choose another --out"
        )
    elif not state.exists():
        refuse_foreign_entries(out, others, "is not a loop's folder (no loop.json)")


def _goals(options: LoopOptions) -> TaskGoals:
    """The goals of the options' task with its ``--env-kwargs`` (what populations are
    resolved against: no MuJoCo model compiled)."""
    return task_goals(options.env, **options.task_kwargs)


def _stream(options: LoopOptions, *key: int) -> np.random.Generator:
    return np.random.default_rng([options.seed, *key])


def _log(options: LoopOptions, line: str) -> None:
    if options.progress:
        print(f"loop: {line}", flush=True)


@dataclass
class Shared:
    """Round 0's goal-agnostic episodes and candidate pool, and the sealed training users."""

    rollouts: Rollouts
    pool: QueryPool
    users: list[SealedUser]


def saved_options(out: str | Path) -> LoopOptions:
    """The options the loop in ``out`` ran with, as its ``loop.json`` saved them (an option
    newer than the saved loop takes its default)."""
    state = Path(out) / "loop.json"
    if not state.is_file():
        raise FileNotFoundError(f"{state} does not exist: pass the --out of a `robopref loop` run")
    saved = read_state(out)["options"]
    default = LoopOptions()
    values = {}
    for name in (f.name for f in dataclasses.fields(LoopOptions) if f.name in saved):
        value = saved[name]  # JSON turned tuples into lists
        values[name] = type(getattr(default, name))(value) if isinstance(value, list) else value
    return LoopOptions(**values)


def training_users(options: LoopOptions) -> list[SyntheticUser]:
    """The loop's training users, unsealed, in the order of its datasets' user index.

    The loop itself only ever holds them sealed; evaluation (``benchmarks/reward_peak.py``)
    rebuilds them from the seed to score what the loop learned about each of them.
    """
    population = resolve_population(options.population, _goals(options))
    return population.sample_users(options.users, _stream(options, 3))


def shared_setup(options: LoopOptions) -> Shared:
    """Rebuilt identically from the seed on every (re)start."""
    users = [SealedUser(u) for u in training_users(options)]
    rollouts = collect_rollouts(
        options.env, options.episodes, _stream(options, 1), GOAL_AGNOSTIC,
        env_kwargs=options.task_kwargs,
    )  # fmt: skip
    n_pairs = max(4096, 2 * options.users * options.first_answers)
    pool = build_query_pool(
        rollouts, n_pairs, options.segment, _stream(options, 2), near_share=NEAR_SHARE
    )
    return Shared(rollouts, pool, users)


def first_answers(
    options: LoopOptions, shared: Shared
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Round 0: each user answers ``first_answers`` pairs of the shared pool drawn uniformly
    (the same pairs and answers for every method): ``(pool index, labels, user)``."""
    rng = _stream(options, 4)
    index = np.concatenate([shared.pool.draw(options.first_answers, rng) for _ in shared.users])
    owner = np.repeat(np.arange(len(shared.users)), options.first_answers)
    asked = shared.pool.subset(index)
    return index, answer_pairs(shared.users, owner, asked.feat_a, asked.feat_b, rng), owner


def ask_round(
    options: LoopOptions,
    shared: Shared,
    method: str,
    answers: Answers,
    model: RewardModel,
    policy_file: Path,
    round_index: int,
) -> None:
    """Round ``round_index`` >= 1 of ``method``: roll out its policy for every user under the
    user's posterior mean z, then ask each user ``per_round`` queries about its rollouts."""
    latents = np.stack(
        [answers_posterior(model, answers.context(u), options.posterior)[0]
         for u in range(len(shared.users))]
    ) if model.latent_dim else np.zeros((len(shared.users), 0), np.float32)  # fmt: skip
    policy = ALGOS["ppo"].load(policy_file, device="cpu")
    rollouts = policy_rollouts(
        options.env,
        lambda obs, det: policy.predict(obs, deterministic=det)[0],
        latents,
        options.rollouts_per_user,
        seed=options.seed * 7919 + round_index,
        set_down=SET_DOWN,
        env_kwargs=options.task_kwargs,
    )
    per, n_users = options.rollouts_per_user, len(shared.users)
    greedy_ends = end_points(rollouts)[::per]  # each user's first (greedy) episode
    rng = _stream(options, 10 + round_index, METHODS.index(method))
    aims, hold_heights = proposal_aims(options.env, greedy_ends, rng)
    proposals = proposal_rollouts(
        options.env, aims, options.seed * 7919 + round_index,
        options.task_kwargs, hold_heights,
    )  # fmt: skip
    joined = join_rollouts([shared.rollouts, rollouts, proposals])
    first = shared.rollouts.n_episodes
    fixed = fixed_questions(options.env)
    for u, user in enumerate(shared.users):
        own = np.concatenate([
            first + u * per + np.arange(per),
            first + n_users * per + PROPOSALS * u + np.arange(PROPOSALS),
        ])  # fmt: skip
        # First, the fixed questions: set down at the policy's spot, then held low there,
        # each against the policy's greedy episode. BALD would never ask them (every user
        # answers them alike), yet they are what teaches the reward to lower and let go.
        for proposal in fixed:
            fixed_pair = ending_pair(joined, own[per + proposal], own[0], options.segment)
            label = user.answer(fixed_pair.pair(0), rng)
            answers.add(fixed_pair, np.array([0]), np.array([label]), [u])
        pool = user_candidates(joined, own, options.candidates, options.segment, rng)
        rest = options.per_round - len(fixed)
        if model.latent_dim:
            index, labels = ask_mixed(
                model,
                user,
                answers.context(u),
                pool,
                rest,
                options.active_share,
                rng,
                options.posterior,
            )
        else:
            index, labels = ask_random(user, pool, rest, rng)
        answers.add(pool, index, labels, np.full(len(index), u))


def _dataset_meta(options: LoopOptions, round_index: int) -> dict[str, Any]:
    return {
        "population": options.population,
        "seed": options.seed,
        "env_kwargs": options.task_kwargs,
        "segment": options.segment,
        "asked_by": "robopref loop",
        "rounds_done": round_index + 1,
    }


def _round_dir(out: Path, round_index: int) -> Path:
    return out / f"round_{round_index:02d}"


def _policy_meta(options: LoopOptions, method: str, model: RewardModel, steps: int) -> dict:
    return {
        "format": FORMAT, "algo": "ppo", "seed": options.seed, "set_down": SET_DOWN.stored,
        "options": dataclasses.asdict(options), "kind": "latent", "name": method,
        "env_id": options.env, "env_kwargs": options.task_kwargs,
        "latent_dim": model.latent_dim,
        "reward_path": reward_path_for(
            Path(options.out) / f"policy_{method}", Path(options.out) / f"{method}.pt"
        ),
        "reward_fingerprint": model.fingerprint(), "steps": steps, "trained_by": "robopref loop",
    }  # fmt: skip


def _device(options: LoopOptions) -> str:
    """The torch device of the loop's reward models (``--device``, ``auto`` resolved)."""
    return str(resolve_device(options.device))


def run_arm(
    options: LoopOptions,
    shared: Shared,
    method: str,
    round_index: int,
    asked: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
) -> dict[str, Any]:
    """One method's part of a round: ask (or take round 0's shared ``asked`` answers), refit,
    train; writes its answers, reward model and policy to ``round_NN/`` and returns
    ``{"fit": the reward fit's figures (FIT_FIGURES), "seconds": {stage: wall seconds}}``
    (stages ``ask``, ``fit``, ``policy``). Its randomness comes from the seed, the round and
    the method alone, so arms may run in any order or at once."""
    clock = time.perf_counter()
    seconds: dict[str, float] = {}

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(now - clock, 1)
        clock = now

    out, rounds = Path(options.out), options.rounds
    previous, here = _round_dir(out, round_index - 1), _round_dir(out, round_index)
    here.mkdir(parents=True, exist_ok=True)
    if asked is not None:
        index, labels, owner = asked
        answers, model = Answers(), None
        answers.add(shared.pool, index, labels, owner)
    else:
        answers = Answers.from_dataset(PreferenceDataset.load(previous / f"{method}.npz"))
        model = load_reward_model(previous / f"{method}.pt", device=_device(options))
        _log(options, f"round {round_index + 1}: {method} asks about its policy's rollouts")
        ask_round(options, shared, method, answers, model, previous / f"{method}_policy.zip",
                  round_index)  # fmt: skip
    lap("ask")
    data = answers.dataset(options.env, shared.pool.feature_names, len(shared.users),
                           _dataset_meta(options, round_index))  # fmt: skip
    config = options.vpl_config if method == "vpl" else {}
    _log(options, f"round {round_index + 1}: {method} reward fit on {data.n_pairs} answers")
    epochs = options.refit_epochs if round_index else options.fit_epochs
    model, fit = fit_reward(
        method, data, model, config, options.seed + round_index, epochs, device=_device(options)
    )
    lap("fit")
    final = round_index == rounds - 1
    steps = options.steps if final else options.scout_round_steps
    kind = "final policy (new)" if final else "scout policy (continued)"
    _log(options, f"round {round_index + 1}: {method} {kind}, {steps} steps")
    policy = train_policy_round(
        previous / f"{method}_policy.zip" if round_index else None, options.env, model,
        policy_latents(model, data, options.seed, options.posterior), steps, round_index, rounds,
        options.seed, env_kwargs=options.task_kwargs, final=final,
    )  # fmt: skip
    data.save(here / f"{method}.npz")
    save_payload(model_payload(model, {"loop_fit": dataclasses.asdict(fit)}), here / f"{method}.pt")
    save_model(policy, here / f"{method}_policy.zip")
    lap("policy")
    return {"fit": {k: getattr(fit, k) for k in FIT_FIGURES}, "seconds": seconds}


#: what a round's row (``fit``) and TensorBoard keep of each method's reward fit
FIT_FIGURES = ("best_epoch", "best_val_accuracy", "best_val_nll", "epochs_run")

#: a worker process's training users and round-0 pool, built once per loop
_WORKER_SHARED: dict[str, Shared] = {}


def _arm_in_worker(
    options: LoopOptions, method: str, round_index: int, asked: Any
) -> dict[str, Any]:
    """:func:`run_arm` in a worker process, which rebuilds the shared setup from the seed."""
    if options.threads > 0:
        torch.set_num_threads(options.threads)
    key = json.dumps(dataclasses.asdict(options), sort_keys=True)
    if key not in _WORKER_SHARED:
        _WORKER_SHARED.clear()
        _WORKER_SHARED[key] = shared_setup(options)
    return run_arm(options, _WORKER_SHARED[key], method, round_index, asked)


def run_round(
    options: LoopOptions, shared: Shared, round_index: int, workers: Executor | None = None
) -> dict[str, Any]:
    """Run every method's arm (in ``workers`` at once, if given), then the held-out check;
    returns the round's log row."""
    began = time.perf_counter()
    here = _round_dir(Path(options.out), round_index)
    # Round 0's pairs and answers are the same for every method: asked once.
    asked = first_answers(options, shared) if round_index == 0 else None
    if workers is None:
        arms = {m: run_arm(options, shared, m, round_index, asked) for m in options.methods}
    else:
        jobs = [workers.submit(_arm_in_worker, options, m, round_index, asked)
                for m in options.methods]  # fmt: skip
        arms = {m: job.result() for m, job in zip(options.methods, jobs, strict=True)}
    checking = time.perf_counter()
    checked: dict[str, tuple[LoadedPolicy, RewardModel]] = {}
    for method in options.methods:
        model = load_reward_model(here / f"{method}.pt")
        policy = ALGOS["ppo"].load(here / f"{method}_policy.zip", device="cpu")
        meta = _policy_meta(options, method, model, int(policy.num_timesteps))
        checked[method] = (LoadedPolicy(policy, meta, here), model)
    methods = heldout_check(
        checked, resolve_population(options.population, _goals(options)),
        shared.pool, options.eval_users, options.eval_episodes, options.seed,
    )  # fmt: skip
    return {
        "round": round_index,
        "rounds": options.rounds,
        "answers_per_user": options.first_answers + round_index * options.per_round,
        "steps": int(checked[options.methods[0]][0].model.num_timesteps),
        "methods": methods,
        "fit": {m: arm["fit"] for m, arm in arms.items()},
        # wall seconds of each arm's stages and of the held-out check (arms run at once
        # with --workers 2: their seconds overlap)
        "seconds": {
            **{m: arm["seconds"] for m, arm in arms.items()},
            "heldout": round(time.perf_counter() - checking, 1),
        },
        "wall_s": round(time.perf_counter() - began, 1),
    }


def finish(options: LoopOptions, history: list[dict[str, Any]]) -> None:
    """Write what the other commands read: reward models, policy folders, datasets."""
    out = Path(options.out)
    last = _round_dir(out, options.rounds - 1)
    for method in options.methods:
        model = load_reward_model(last / f"{method}.pt")
        shutil.copy2(last / f"{method}.pt", out / f"{method}.pt")
        shutil.copy2(last / f"{method}.npz", out / f"{method}.npz")
        folder = out / f"policy_{method}"
        folder.mkdir(exist_ok=True)
        shutil.copy2(last / f"{method}_policy.zip", folder / "model.zip")
        meta = _policy_meta(options, method, model, options.steps)
        meta["history"] = [{"answers_per_user": r["answers_per_user"], **r["methods"][method]}
                           for r in history]  # fmt: skip
        PolicyMeta(meta).write(folder)


def run_loop(options: LoopOptions, others: Collection[str] = ()) -> dict[str, Any]:
    """Run (or resume) the loop of ``options``; returns the final ``loop.json`` content.

    ``others``: names in ``--out`` that the calling command made there (the demo's oracle,
    evaluation and video), which the loop leaves alone."""
    check_loop_options(options, others)
    if options.threads > 0:
        torch.set_num_threads(options.threads)
    out = Path(options.out)
    state_path = out / "loop.json"
    if options.overwrite and out.exists():
        for path in [state_path, out / "loop.png", *out.glob("round_*")]:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {"options": dataclasses.asdict(options), "rounds": options.rounds,
                             "done": 0, "history": [], "finished": False}  # fmt: skip
    if options.resume:
        state = read_state(out)
        _log(options, f"resuming {out} after round {state['done']} of {state['rounds']}")
    shared = shared_setup(options)
    began = time.perf_counter()
    writer = summary_writer(tensorboard_dir(options.tb, out / "tb"))
    try:
        with _workers(options) as workers:
            for round_index in range(state["done"], options.rounds):
                row = run_round(options, shared, round_index, workers)
                _finish_round(options, state, row)
                log_round(writer, row)
    finally:
        if writer is not None:
            writer.close()
    state["wall_s_this_run"] = round(time.perf_counter() - began, 1)
    return state


def log_round(writer: Any, row: dict[str, Any]) -> None:
    """The round's figures to TensorBoard (``--tb``), at step = answers per training user:
    per method the reward fit (``fit/``) and the held-out check (``heldout/``)."""
    if writer is None:
        return
    step = int(row["answers_per_user"])
    for method, fit in row.get("fit", {}).items():
        for name, value in fit.items():
            writer.add_scalar(f"fit/{method}/{name}", float(value), step)
    for method, figures in row["methods"].items():
        for name, value in figures.items():
            if isinstance(value, int | float):
                writer.add_scalar(f"heldout/{method}/{name}", float(value), step)
    writer.flush()


def _ignore_interrupt() -> None:
    """A worker's initializer: Ctrl-C is the main process's to handle (it ends the workers)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def end_workers(pool: ProcessPoolExecutor) -> None:
    """Stop the pool's processes now (Ctrl-C, a kill or an error: their work is redone on
    resume); the demo ends its oracle's process with it too."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        return
    for process in list(getattr(pool, "_processes", {}).values()):
        if process.is_alive():
            process.terminate()


@contextlib.contextmanager
def _workers(options: LoopOptions) -> Iterator[Executor | None]:
    """Processes for the methods' arms (spawned: torch and MuJoCo's GL do not survive fork);
    None with ``--workers 1``, or a single method. The workers ignore Ctrl-C; on Ctrl-C (or
    an error) the main process ends them, so none is left behind and none prints a
    traceback: the CLI then prints one line with the ``--resume`` hint."""
    count = min(options.workers, len(options.methods))
    if count < 2:
        yield None
        return
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=count, mp_context=context, initializer=_ignore_interrupt)
    try:
        yield pool
    except BaseException:
        end_workers(pool)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _finish_round(options: LoopOptions, state: dict[str, Any], row: dict[str, Any]) -> None:
    """Log the round, write its state last (the round is done then), prune old rounds."""
    out, round_index = Path(options.out), row["round"]
    print(f"loop: {format_round(row)}", flush=True)
    state["history"].append(row)
    state["done"] = round_index + 1
    state["finished"] = state["done"] == options.rounds
    if state["finished"]:
        finish(options, state["history"])
    write_json_atomic(out / "loop.json", state)  # the round is done once this is written
    plot_history(state["history"], out / "loop.png")
    stale = _round_dir(out, round_index - ROUNDS_KEPT)
    if stale.is_dir():
        shutil.rmtree(stale)


def loop_command(options: LoopOptions) -> int:
    """CLI entry: run the loop, print where its files are."""
    state = run_loop(options)
    print(
        f"loop: {state['done']}/{state['rounds']} rounds in {options.out} "
        f"({state['wall_s_this_run']} s this run); held-out success against answers: "
        f"{options.out}/loop.png; evaluate with robopref evaluate --policy "
        + " ".join(f"{options.out}/policy_{m}" for m in options.methods)
        + f" --reward {options.out}/vpl.pt"
    )
    return 0
