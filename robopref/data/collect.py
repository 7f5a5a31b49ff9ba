"""``robopref collect``: rollouts -> candidate pairs -> synthetic users' answers -> dataset.

One rollout pool and one candidate pool (:mod:`robopref.data.queries`) are shared by all users;
each user answers ``queries_per_user`` pairs drawn from it (:mod:`robopref.users.synthetic`,
labelled in one vectorized pass). The dataset goes to ``--out`` (:meth:`PreferenceDataset.save`) and
the printed summary to ``<out stem>.summary.json`` beside it (:func:`summarize` defines
every figure); an existing dataset is replaced only with ``--overwrite``, and an ``--out``
that cannot be written is refused before the rollouts start.

:func:`collect` runs the stages, each a function of its own: :func:`collect_population`,
:func:`collect_query_pool` (behaviour episodes, candidate pairs), the users drawn,
:func:`choose_pairs` (each user's pairs) and :func:`answered_dataset` (answers, dataset),
every stage drawing from its own stream of :class:`CollectStreams`.
"""

from __future__ import annotations

import dataclasses
import math
import time
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robopref.data.dataset import PreferenceDataset
from robopref.data.queries import LOW_HEIGHT, NEAR_RADIUS, QueryPool, build_query_pool
from robopref.data.rollouts import BehaviourMix, collect_rollouts, make_env
from robopref.data.typed_collect import rated_dataset, typed_dataset
from robopref.env_kwargs import env_kwargs_option, parse_env_kwargs
from robopref.files import check_output, write_json_atomic
from robopref.options import DEFAULT_ENV, DEFAULT_POPULATION, config_option, config_values
from robopref.reward.typed_asking import parse_menu
from robopref.tasks import TASKS, env_id_of, task_spec
from robopref.users.population import Population, resolve_population
from robopref.users.question_types import QuestionType
from robopref.users.synthetic import NOISE_KEYS, LabelModel, SyntheticUser, label_pairs

#: an own-goal pair's first segment sets the object down this close to the user's goal (m).
OWN_GOAL_RADIUS = 0.08


@dataclass
class _CollectSettings:
    """Everything ``CollectOptions`` holds but the labelling-noise overrides."""

    env: str = field(default=DEFAULT_ENV, metadata={"help": "Gymnasium id of the task"})
    env_kwargs: list[str] = env_kwargs_option()
    population: str = field(
        default=DEFAULT_POPULATION,
        metadata={"help": "two-modes, modes, continuous, norms-and-goals, or a YAML/JSON file"},
    )
    users: int = field(default=200, metadata={"help": "number of users drawn"})
    queries_per_user: int = field(
        default=16, metadata={"help": "questions each user answers (pairs by default)"}
    )
    question: str = field(
        default="pair",
        metadata={
            "help": "question types, comma-separated TYPE or TYPE:ITEMS (pair, weak-pair, "
            "best-of:4, ranking:4), or rating alone (1-7); answers are stored as the pairs "
            "they imply (ratings: each user's items ranked by rating)"
        },
    )
    question_items: str = field(
        default="segments",
        metadata={"help": "what a question shows: segments, or end-states (each one's last state)"},
    )
    segment: int = field(default=10, metadata={"help": "steps per segment (1: single states)"})
    seed: int = field(default=0, metadata={"help": "seed of everything (same seed, same file)"})
    out: str = field(default="data/plate.npz", metadata={"help": "dataset file to write (.npz)"})
    overwrite: bool = field(
        default=False, metadata={"help": "replace an existing --out dataset and its summary"}
    )
    episodes: int = field(default=200, metadata={"help": "behaviour episodes in the shared pool"})
    pool_pairs: int = field(
        default=0, metadata={"help": "candidate pairs in the pool (0: max(4096, 2 x asked))"}
    )
    expert_share: float = config_option(
        BehaviourMix, "expert_share", "share of episodes by the noisy scripted expert"
    )
    random_share: float = config_option(
        BehaviourMix, "random_share", "share of episodes by the random policy"
    )
    expert_noise: float = config_option(
        BehaviourMix, "expert_noise", "expert action noise std, drawn per episode in [0, this]"
    )
    careless_share: float = config_option(
        BehaviourMix, "careless_share", "share of expert episodes that drop from height"
    )
    hesitant_share: float = config_option(
        BehaviourMix,
        "hesitant_share",
        "share of expert episodes that hold on a while before letting go",
    )
    missed_share: float = config_option(
        BehaviourMix,
        "missed_share",
        "share of expert episodes that set the object down 3-15 cm off goal",
    )
    population_goal_share: float = config_option(
        BehaviourMix,
        "population_goal_share",
        "ORACLE KNOWLEDGE (reads the population's hidden goals, which no real system has): "
        "share of expert episodes aimed near them",
    )
    near_share: float = field(
        default=0.0,
        metadata={"help": "share of pairs whose segments end at one spot (query pool)"},
    )
    own_goal_share: float = field(
        default=0.0,
        metadata={
            "help": "ORACLE KNOWLEDGE (reads each user's hidden goal): share of each user's "
            "pairs that are near pairs at its own goal"
        },
    )
    min_gap: float = field(
        default=0.03, metadata={"help": "redraw pairs whose object trajectories differ less (m)"}
    )
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})


def _label_overrides() -> list[tuple[str, Any, Any]]:
    """One option per ``LabelModel`` knob, default ``None``: the population's own value."""
    hints = typing.get_type_hints(LabelModel)
    return [
        (
            knob.name,
            hints[knob.name] | None,
            field(
                default=None,
                metadata={**knob.metadata, "help": f"override: {knob.metadata['help']}"},
            ),
        )
        for knob in dataclasses.fields(LabelModel)
    ]


# The overrides are generated from LabelModel's fields (and their help lines), so a new
# labelling knob is a collect option without a second declaration here.
CollectOptions = dataclasses.make_dataclass(
    "CollectOptions",
    _label_overrides(),
    bases=(_CollectSettings,),
    namespace={
        "__module__": __name__,
        "__doc__": "Collect a preference dataset from a population of synthetic users.\n\n"
        "The behaviour shares default to robopref.data.rollouts.BehaviourMix's; each "
        "labelling-noise option (--beta ... --both-orders, one per "
        "robopref.users.synthetic.LabelModel field) replaces the population's value when given.",
    },
)


def _with_overrides(population: Population, options: CollectOptions) -> Population:
    noise = {k: getattr(options, k) for k in NOISE_KEYS if getattr(options, k) is not None}
    if not noise:
        return population
    model = dataclasses.replace(population.label_model, **noise)
    return dataclasses.replace(population, label_model=model)


#: half-width (m) of the square around a population goal that its behaviour goals fill.
GOAL_JITTER = 0.08


def goals_near_population(
    population: Population, env: gym.Env, rng: np.random.Generator, n: int = 256
) -> np.ndarray:
    """``n`` behaviour goals at and around the population's goals (``(n, G)``).

    Data that shows the object set down at, near and beside what users want teaches a reward
    model where each user's reward peaks; uniform goals alone rarely land there. Table-point
    goals are spread over a ``GOAL_JITTER`` square around each drawn goal and kept in the
    goal space; zone goals are used as they are.
    """
    goals, _ = population.sample_goals(n, rng)
    space = env.unwrapped.goal_space
    if isinstance(space, gym.spaces.Box):
        goals = np.clip(
            goals + rng.uniform(-GOAL_JITTER, GOAL_JITTER, goals.shape), space.low, space.high
        )
    return goals


def _set_down_near_pairs(pool: QueryPool) -> tuple[np.ndarray, np.ndarray]:
    """The pool's near pairs whose first segment ends with the object set down: their
    indices and that spot (x, y), ``(P,)`` and ``(P, 2)``."""
    cols = {name: i for i, name in enumerate(pool.feature_names)}
    end_a, end_b = pool.feat_a[:, -1], pool.feat_b[:, -1]
    xy_a, xy_b = end_a[:, [cols["x"], cols["y"]]], end_b[:, [cols["x"], cols["y"]]]
    same_spot = np.hypot(*(xy_a - xy_b).T) < NEAR_RADIUS
    index = np.flatnonzero(same_spot & (end_a[:, cols["height"]] < LOW_HEIGHT))
    return index, xy_a[index]


def _draw_with_own_goal(
    pool: QueryPool,
    set_down: tuple[np.ndarray, np.ndarray],
    goal_xy: np.ndarray,
    n: int,
    share: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """``n`` pair indices for a user whose goal is at ``goal_xy``: a ``share`` of the near
    pairs ``set_down`` (:func:`_set_down_near_pairs`) within ``OWN_GOAL_RADIUS`` of the
    goal, the rest drawn uniformly.

    Users with goals all over the table (the continuous population) otherwise almost never
    see the object set down at their own goal, so a learned reward cannot tell "set down at
    my goal" from "held just above it" (where only the goal's own bonus differs), and a
    policy trained on it hovers. A system that already roughly knows a user asks the same.
    """
    index, spot = set_down
    own = index[np.hypot(*(spot - goal_xy).T) < OWN_GOAL_RADIUS]
    picked = rng.choice(own, size=min(round(share * n), len(own)), replace=False)
    return np.concatenate([picked, pool.draw(n - len(picked), rng, exclude=picked)])


@dataclass(frozen=True)
class CollectStreams:
    """The independent random streams of one collect, each stage drawing from its own."""

    rollouts: np.random.Generator
    pool: np.random.Generator
    users: np.random.Generator
    ask: np.random.Generator
    labels: np.random.Generator

    @classmethod
    def from_seed(cls, seed: int) -> CollectStreams:
        """The streams of ``seed`` (spawned in field order: the datasets depend on it)."""
        return cls(*(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)))


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_collect_options(options: CollectOptions) -> None:
    """Refuse, before any work and naming the option: an env that is not a robopref task,
    counts below one, a negative ``--pool-pairs``, NaN, infinite or negative behaviour
    shares, and shares outside [0, 1]."""
    if options.env not in TASKS:
        raise ValueError(f"--env {options.env} is not a robopref task: use one of {sorted(TASKS)}")
    for name in ("users", "queries_per_user", "episodes", "segment"):
        if getattr(options, name) < 1:
            raise ValueError(f"{_flag(name)} {getattr(options, name)} must be >= 1")
    if options.pool_pairs < 0:
        raise ValueError(
            f"--pool-pairs {options.pool_pairs} must be >= 0 (0: max(4096, 2 x pairs asked))"
        )
    shares = ["expert_share", "random_share", "expert_noise", "careless_share", "hesitant_share",
              "missed_share", "population_goal_share", "near_share", "own_goal_share"]  # fmt: skip
    for name in (*shares, "min_gap"):
        value = getattr(options, name)
        if not 0.0 <= value < math.inf:  # NaN fails too
            raise ValueError(f"{_flag(name)} {value} must be a finite number >= 0")
    for name in shares:
        value = getattr(options, name)
        if name not in ("expert_share", "random_share", "expert_noise") and value > 1.0:
            raise ValueError(f"{_flag(name)} {value} is a share: use a number in [0, 1]")
    if options.expert_share + options.random_share <= 0:
        raise ValueError(
            "--expert-share and --random-share are both 0: give one of them a positive share"
        )
    try:
        behaviour_mix(options).shares(0)
    except ValueError as error:
        raise ValueError(f"the behaviour options do not fit together: {error}") from None


def check_segment(segment: int, steps: int, env_id: str) -> None:
    """Refuse a ``--segment`` longer than the episodes of ``env_id`` (``steps + 1`` states)."""
    if not 1 <= segment <= steps + 1:
        raise ValueError(
            f"--segment {segment} is longer than the episodes of {env_id}, which have "
            f"{steps + 1} states: use --segment between 1 and {steps + 1}"
        )


def collect_population(options: CollectOptions, env: gym.Env) -> Population:
    """The population ``options.population`` of ``env``, with the labelling overrides."""
    return _with_overrides(resolve_population(options.population, env), options)


def behaviour_mix(options: CollectOptions) -> BehaviourMix:
    """The behaviour mix of the options (scripted and random only: no policies in collect)."""
    return BehaviourMix(**config_values(BehaviourMix, options), policy_share=0.0)


def pool_size(options: CollectOptions) -> int:
    """Candidate pairs in the shared pool: ``--pool-pairs``, or max(4096, 2 x pairs asked)."""
    return options.pool_pairs or max(4096, 2 * options.users * options.queries_per_user)


def collect_query_pool(
    options: CollectOptions,
    population: Population,
    env: gym.Env,
    mix: BehaviourMix,
    streams: CollectStreams,
) -> QueryPool:
    """Run the behaviour episodes (goals partly near ``population``'s) and cut the pool."""
    goal_pool = goals_near_population(population, env, streams.rollouts)
    rollouts = collect_rollouts(
        options.env, options.episodes, streams.rollouts, mix, (), options.progress,
        env_kwargs=parse_env_kwargs(options.env_kwargs), goal_pool=goal_pool,
    )  # fmt: skip
    return build_query_pool(
        rollouts, pool_size(options), options.segment, streams.pool, options.min_gap,
        near_share=options.near_share,
    )  # fmt: skip


def choose_pairs(
    pool: QueryPool,
    users: Sequence[SyntheticUser],
    per_user: int,
    own_goal_share: float,
    env: gym.Env,
    rng: np.random.Generator,
) -> np.ndarray:
    """Pool indices of the pairs asked, ``per_user`` per user, users' pairs contiguous.

    Uniform draws; with ``own_goal_share`` > 0 that share of each user's pairs are near pairs
    set down at its own goal (:func:`_draw_with_own_goal`).
    """
    if own_goal_share <= 0.0:  # no extra draws: the same datasets as before the option existed
        return np.concatenate([pool.draw(per_user, rng) for _ in users])
    set_down, task = _set_down_near_pairs(pool), env.unwrapped
    goal_point = task_spec(env_id_of(env)).goal_point
    return np.concatenate(
        [
            _draw_with_own_goal(pool, set_down, goal_point(task, task.validate_goal(u.goal)),
                                per_user, own_goal_share, rng)
            for u in users
        ]
    )  # fmt: skip


def answered_dataset(
    options: CollectOptions,
    population: Population,
    mix: BehaviourMix,
    pool: QueryPool,
    users: Sequence[SyntheticUser],
    index: np.ndarray,
    rng: np.random.Generator,
) -> PreferenceDataset:
    """Ask each user its pairs ``index`` of ``pool`` (labels drawn with ``rng``): the dataset."""
    user_of_pair = np.repeat(np.arange(len(users)), options.queries_per_user)
    asked = pool.subset(index)
    labels = label_pairs(users, user_of_pair, asked.feat_a, asked.feat_b, rng)
    meta = {**dataset_meta(options, population, mix), "pool_index": index.tolist()}
    return PreferenceDataset.from_answers(
        asked, labels, user_of_pair, env_id=options.env, feature_names=pool.feature_names,
        users=users, contested=population.contested(asked.feat_a, asked.feat_b), meta=meta,
    )  # fmt: skip


def dataset_meta(
    options: CollectOptions, population: Population, mix: BehaviourMix
) -> dict[str, Any]:
    """The provenance a collected dataset records."""
    return {
        "population": population.name,
        "population_spec": population.spec,
        "label_model": dataclasses.asdict(population.label_model),
        "norm_weight": population.norm_weight,
        "seed": options.seed,
        "env_kwargs": parse_env_kwargs(options.env_kwargs),
        "segment": options.segment,
        "queries_per_user": options.queries_per_user,
        "behaviour_mix": dataclasses.asdict(mix),
        "episodes": options.episodes,
        "pool_pairs": pool_size(options),
        "min_gap": options.min_gap,
        "own_goal_share": options.own_goal_share,
    }


def rating_question(text: str) -> QuestionType | None:
    """The rating type (1..7) of ``--question rating``, else None. A rating is collected
    alone: it cannot share a menu with comparisons."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not any(p.partition(":")[0] == "rating" for p in parts):
        return None
    if parts != ["rating"]:
        raise ValueError(f"--question {text!r}: a rating is collected alone: --question rating")
    return QuestionType("rating", 1)


def collect(options: CollectOptions) -> PreferenceDataset:
    """Build the dataset described by ``options`` (nothing is written).

    The stages: the population; the behaviour episodes and the shared candidate pool; the
    users drawn; each user's pairs; their answers and the dataset.
    """
    check_collect_options(options)
    rating = rating_question(options.question)
    menu = None if rating else parse_menu(options.question, options.question_items)
    if (rating or not menu.pairs_only) and options.own_goal_share > 0:
        raise ValueError(
            "--own-goal-share draws pairs, not questions of other types: leave it at 0 with "
            f"--question {options.question}"
        )
    env, steps = make_env(options.env, parse_env_kwargs(options.env_kwargs))
    check_segment(options.segment, steps, options.env)
    population = collect_population(options, env)
    streams = CollectStreams.from_seed(options.seed)
    mix = behaviour_mix(options)
    pool = collect_query_pool(options, population, env, mix, streams)
    users = population.sample_users(options.users, streams.users)
    if rating:
        return rated_dataset(
            options.env, pool, population, users, rating, options.queries_per_user,
            options.question_items, streams.ask, dataset_meta(options, population, mix),
        )  # fmt: skip
    if not menu.pairs_only:
        meta = dataset_meta(options, population, mix)
        return typed_dataset(
            options.env, pool, population, users, menu, options.queries_per_user,
            streams.ask, meta,
        )  # fmt: skip
    index = choose_pairs(
        pool, users, options.queries_per_user, options.own_goal_share, env, streams.ask
    )
    return answered_dataset(options, population, mix, pool, users, index, streams.labels)


def summarize(dataset: PreferenceDataset) -> dict[str, Any]:
    """The figures the command prints.

    ``label_balance``: share of answered, non-tie pairs answered A. ``tie_rate``: share of
    answered pairs labelled exactly 0.5. ``skip_rate``: share of pairs not answered.
    ``labeller_alignment``: mean of ``1 - |label - true_label|`` over answered pairs whose
    noise-free answer is not a tie (the agreement of noisy answers with noise-free ones).
    ``bayes_ceiling``: mean of ``max(p, 1 - p)`` with ``p = answer_prob`` over the same pairs:
    the pairwise accuracy of a model that knows each user's exact answer probabilities.
    """
    label, true = dataset.label.astype(np.float64), dataset.true_label.astype(np.float64)
    answered = ~np.isnan(label)
    decided = answered & (true != 0.5)
    nontie = answered & (label != 0.5)
    p = dataset.answer_prob.astype(np.float64)

    def share(mask: np.ndarray, of: np.ndarray) -> float:
        return float(mask[of].mean()) if of.any() else float("nan")

    groups = dataset.user_group
    return {
        "env": dataset.env_id,
        "population": dataset.meta.get("population", ""),
        "users": dataset.n_users,
        "pairs": dataset.n_pairs,
        "segment": dataset.segment_length,
        "users_per_group": {int(g): int((groups == g).sum()) for g in np.unique(groups)},
        "label_balance": share(label > 0.5, nontie),
        "contested_share": float(dataset.contested.mean()) if dataset.n_pairs else float("nan"),
        "tie_rate": share(label == 0.5, answered),
        "skip_rate": float((~answered).mean()) if dataset.n_pairs else float("nan"),
        "labeller_alignment": float(1.0 - np.abs(label - true)[decided].mean())
        if decided.any()
        else float("nan"),
        "bayes_ceiling": float(np.maximum(p, 1.0 - p)[decided].mean())
        if decided.any()
        else float("nan"),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as aligned ``name  value`` lines."""
    lines = []
    for key, value in summary.items():
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"  {key.replace('_', ' '):<20} {text}")
    return "\n".join(lines)


def summary_path(out: str | Path) -> Path:
    """The summary file of dataset ``out``: ``data/plate.npz`` -> ``data/plate.summary.json``."""
    out = Path(out)
    return out.with_name(out.stem + ".summary.json")


def collect_command(options: CollectOptions) -> dict[str, Any]:
    """Collect, save the dataset and its summary, print the summary; returns the summary."""
    if not options.out.endswith(".npz"):
        raise ValueError(f"--out {options.out} must end in .npz (e.g. data/plate.npz)")
    # The summary describes the dataset beside it: it is replaced whenever the dataset is
    # written, so only the dataset's existence asks for --overwrite.
    check_output(options.out, options.overwrite, what="dataset")
    start = time.perf_counter()
    dataset = collect(options)
    dataset.save(options.out)
    summary = summarize(dataset)
    summary["wall_time_s"] = round(time.perf_counter() - start, 3)
    summary["out"] = options.out
    write_json_atomic(summary_path(options.out), summary)
    print(f"collected {options.out} ({summary_path(options.out).name} beside it):")
    print(format_summary(summary))
    return summary
