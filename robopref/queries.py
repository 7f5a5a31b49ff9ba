"""Preference queries: pairs of trajectory segments cut from behaviour rollouts.

1. :func:`collect_rollouts` runs a behaviour mix (:class:`BehaviourMix`) on the raw env:
   the scripted expert aimed at goals drawn uniformly from the goal space with Gaussian
   action noise, the uniformly random policy, and any ``obs -> action`` callables (for an
   SB3 model: ``lambda obs: model.predict(obs, deterministic=False)[0]``). Every episode
   keeps its L + 1 states (reset state included).
2. :func:`build_query_pool` cuts them into segments of T consecutive states (T = 1: single
   states, as in the VPL code) and draws candidate pairs so that informative comparisons
   are common: segments that contain a release (the set-down) are drawn ``release_boost``
   times as often, and a pair is redrawn when both segments show an object that has not
   moved from where the episode started (an idle arm) or when the two segments' object
   trajectories are nearly equal (mean distance of object position, plus 5 cm per unit of
   ``held`` difference, below ``min_gap``). A ``near_share`` of the pairs are *near pairs*:
   the first segment, from an expert episode, ends with the object low over the table
   (below ``LOW_HEIGHT``: set down where the expert aimed, or about to be) and the second
   with the object within ``NEAR_RADIUS`` of there: uniform pairs rarely compare two ways
   of being at one spot (set down or still held, gently or dropped).
3. The result is a :class:`QueryPool` of ``obs_a/obs_b/feat_a/feat_b`` arrays shared by all
   users: collection draws each user's queries from it, and active querying can score its
   candidates for a new user (:meth:`QueryPool.draw`, :meth:`QueryPool.subset`).

The pool knows nothing of users; whether users would disagree on a pair (contested) is
:meth:`robopref.population.Population.contested`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from robopref.envs import episode_steps, sample_goal
from robopref.envs.rendering import step_frames
from robopref.envs.tabletop import SHARED_OBSERVATION_LAYOUT
from robopref.tasks import env_id_of, scripted_policy, task_spec

_HOLDING, _OBJECT = SHARED_OBSERVATION_LAYOUT["holding"], SHARED_OBSERVATION_LAYOUT["object"]

Policy = Callable[[np.ndarray], Any]
#: behaviour source codes stored per episode in :attr:`Rollouts.source`.
SOURCES: tuple[str, ...] = ("expert", "random", "policy")
#: a near pair's segments end with the object at most this far apart (m, horizontally).
NEAR_RADIUS = 0.05
#: a near pair's first segment ends with the object this low (m): where it is set down.
LOW_HEIGHT = 0.02
#: a missed expert episode sets the object down this far from the goal's point (m).
MISS_MIN, MISS_MAX = 0.03, 0.15
#: and no farther out than this on either table axis (m; the hand reaches 0.35).
MISS_TABLE_LIMIT = 0.3


@dataclass(frozen=True)
class BehaviourMix:
    """Shares of the behaviour policies (normalised to sum to one) and the expert's noise.

    Each expert episode draws its action-noise standard deviation uniformly from
    ``[0, expert_noise]``; a ``careless_share`` of expert episodes lets go of the object as
    soon as it is over the goal (from carry height, or the plate's interlock limit), so that
    the shared drop-height norm shows up in the data; a ``hesitant_share`` keeps holding the
    object where the expert would let go, for a delay drawn uniformly from the episode's
    length (so some never let go), so that the data compares "set down" with "held in
    place": without it a learned reward cannot tell them apart and a policy trained on it
    never lets go. ``policy_share`` is the share of episodes run by the callables passed to
    :func:`collect_rollouts` (one drawn per episode).
    """

    expert_share: float = 0.8
    random_share: float = 0.2
    policy_share: float = 0.0
    expert_noise: float = 0.3
    careless_share: float = 0.25
    hesitant_share: float = 0.0
    #: share of expert episodes that put the object down beside the goal on purpose, at a
    #: point ``MISS_MIN..MISS_MAX`` m from it in a random direction (clipped to the table),
    #: so that the data shows how the reward falls off around a goal in every direction.
    #: BlockSort needs it: its experts otherwise only ever aim at the two zone centres.
    missed_share: float = 0.0
    #: share of expert episodes aimed at a goal of the ``goal_pool`` passed to
    #: :func:`collect_rollouts` (e.g. near the population's own goals) instead of a goal
    #: drawn uniformly from the env's goal space. Without a ``goal_pool`` it changes nothing.
    #: Oracle knowledge when the pool holds the population's goals (collect's), so 0 by
    #: default: no real system knows where its users' goals are.
    population_goal_share: float = 0.0

    def shares(self, n_policies: int) -> np.ndarray:
        """The normalised (expert, random, policy) shares; refuses impossible mixes."""
        shares = np.array(
            [self.expert_share, self.random_share, self.policy_share], dtype=np.float64
        )
        finite = np.all(np.isfinite(shares)) and np.isfinite(self.expert_noise)
        if not finite or np.any(shares < 0) or shares.sum() <= 0 or self.expert_noise < 0:
            raise ValueError(f"{self} needs non-negative shares with a positive sum")
        if not 0.0 <= self.population_goal_share <= 1.0:
            raise ValueError(
                f"population_goal_share={self.population_goal_share} is a share of expert "
                "episodes: use [0, 1]"
            )
        for name in ("careless_share", "hesitant_share", "missed_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(
                    f"{name}={getattr(self, name)} is a share of expert episodes: use [0, 1]"
                )
        if self.careless_share + self.hesitant_share > 1.0:
            raise ValueError(
                f"careless_share={self.careless_share} + hesitant_share={self.hesitant_share} "
                "exceed all expert episodes: make their sum at most 1"
            )
        if shares[2] > 0 and n_policies == 0:
            raise ValueError(
                f"{self} gives policies a share but none were passed: pass policies=[...] "
                "(obs -> action callables) or set policy=0"
            )
        return shares / shares.sum()


#: ``(episode, t, frames)``: the rendered frames of one state of a collected episode
FrameSink = Callable[[int, int, list[np.ndarray]], None]


@dataclass
class Rollouts:
    """E episodes of L + 1 states each: observations, features, who acted, and how.

    ``act[e, t]`` is the action taken in state ``t`` (which led to state ``t + 1``); the
    last state of an episode has none (NaN). Policy learning without a reward model (CPL)
    reads them; users judge the states only.
    """

    env_id: str
    feature_names: tuple[str, ...]
    obs: np.ndarray  # (E, L + 1, O) float32
    feat: np.ndarray  # (E, L + 1, F) float32
    source: np.ndarray  # (E,) int8, index into SOURCES
    act: np.ndarray  # (E, L + 1, A) float32, NaN in the last state

    @property
    def n_episodes(self) -> int:
        """Number of episodes E."""
        return int(self.obs.shape[0])


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None) -> tuple[gym.Env, int]:
    """The raw (unwrapped) env of ``env_id`` and its episode length, with a clear error."""
    from robopref.env_kwargs import make_with_kwargs

    if env_id not in gym.registry:
        known = sorted(k for k in gym.registry if k.startswith("robopref/"))
        raise ValueError(f"unknown env {env_id!r}: use one of {known}")
    wrapped = make_with_kwargs(env_id, env_kwargs)  # an unknown kwarg: a ValueError
    return wrapped.unwrapped, episode_steps(wrapped)


def collect_rollouts(
    env_id: str,
    episodes: int,
    rng: np.random.Generator,
    mix: BehaviourMix | None = None,
    policies: Sequence[Policy] = (),
    progress: bool = False,
    env_kwargs: dict[str, Any] | None = None,
    goal_pool: np.ndarray | None = None,
    frame_sink: FrameSink | None = None,
) -> Rollouts:
    """Run ``episodes`` full episodes of the behaviour ``mix`` and keep every state.

    ``goal_pool`` ``(N, G)``: goals a ``mix.population_goal_share`` of expert episodes aim at.
    ``frame_sink(episode, t, frames)``: when given, the env renders (``env_kwargs`` may set
    the camera and size) and the frames of each state t (the reset's at t = 0; a place step's
    whole motion) are passed on, so that clips of any segment can be cut (``robopref study``).
    """
    if episodes < 1:
        raise ValueError(f"episodes={episodes} must be >= 1")
    mix = mix or BehaviourMix()
    shares = mix.shares(len(policies))
    if frame_sink is not None:
        env_kwargs = {**(env_kwargs or {}), "render_mode": "rgb_array"}
    env, steps = make_env(env_id, env_kwargs)
    env.show_marker = False  # the behaviour's goal is not the viewer's: draw no marker
    obs0, info0 = env.reset(seed=int(rng.integers(2**31)))
    obs = np.empty((episodes, steps + 1, obs0.shape[0]), dtype=np.float32)
    feat = np.empty((episodes, steps + 1, info0["features"].shape[0]), dtype=np.float32)
    acts = no_actions(episodes, steps, env.action_space)
    source = rng.choice(3, size=episodes, p=shares).astype(np.int8)
    for e in tqdm(range(episodes), desc="rollouts", unit="ep", disable=not progress):
        obs[e, 0], info = env.reset(seed=int(rng.integers(2**31)))
        feat[e, 0] = info["features"]
        act = _behaviour(env, int(source[e]), rng, mix, policies, goal_pool, steps)
        if frame_sink is not None:
            frame_sink(e, 0, [env.render()])
        for t in range(1, steps + 1):
            acts[e, t - 1] = act(obs[e, t - 1])
            obs[e, t], _, _, _, info = env.step(acts[e, t - 1])
            feat[e, t] = info["features"]
            if frame_sink is not None:
                frame_sink(e, t, step_frames(env))
    env.close()
    return Rollouts(env_id, tuple(env.feature_names), obs, feat, source, acts)


def no_actions(episodes: int, steps: int, action_space: gym.spaces.Space) -> np.ndarray:
    """``(episodes, steps + 1, A)`` float32 NaN: the :attr:`Rollouts.act` array to fill."""
    return np.full((episodes, steps + 1, *action_space.shape), np.nan, dtype=np.float32)


def join_rollouts(parts: Sequence[Rollouts]) -> Rollouts:
    """The episodes of ``parts``, in order, as one :class:`Rollouts`."""
    return Rollouts(
        parts[0].env_id,
        parts[0].feature_names,
        np.concatenate([p.obs for p in parts]),
        np.concatenate([p.feat for p in parts]),
        np.concatenate([p.source for p in parts]),
        np.concatenate([p.act for p in parts]),
    )


def _behaviour(
    env: gym.Env,
    source: int,
    rng: np.random.Generator,
    mix: BehaviourMix,
    policies: Sequence[Policy],
    goal_pool: np.ndarray | None = None,
    steps: int = 100,
) -> Policy:
    if source == 0:
        if goal_pool is not None and len(goal_pool) and rng.random() < mix.population_goal_share:
            goal = env.validate_goal(goal_pool[int(rng.integers(len(goal_pool)))])
        else:
            goal = sample_goal(env.goal_space, rng)
        noise = float(rng.uniform(0.0, mix.expert_noise))
        aim = task_spec(env_id_of(env)).goal_point(env.unwrapped, goal)
        # no draw when off: the same datasets as before the missed share existed
        if mix.missed_share > 0.0 and rng.random() < mix.missed_share:
            aim = _missed_aim(aim, rng)
        expert = scripted_policy(env, goal, noise=noise, seed=int(rng.integers(2**31)), aim=aim)
        if aim.size != 2:
            return expert  # an arrangement: careless and hesitant are about one object
        style = rng.random()
        if style < mix.careless_share:
            return _careless(expert, aim)
        if style < mix.careless_share + mix.hesitant_share:
            return _hesitant(expert, int(rng.integers(steps + 1)))
        return expert
    if source == 1:
        child = np.random.default_rng(int(rng.integers(2**31)))
        size = env.action_space.shape
        return lambda _obs: child.uniform(-1.0, 1.0, size=size).astype(np.float32)
    return policies[int(rng.integers(len(policies)))]


def _missed_aim(point: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A point ``MISS_MIN..MISS_MAX`` m from ``point`` in a random direction, on the table;
    for an arrangement (6,), one object's spot (or, for the plate's, all of them) moved so."""
    angle, distance = rng.uniform(0.0, 2.0 * np.pi), rng.uniform(MISS_MIN, MISS_MAX)
    shift = distance * np.array([np.cos(angle), np.sin(angle)])
    if point.size == 2:
        return np.clip(point + shift, -MISS_TABLE_LIMIT, MISS_TABLE_LIMIT)
    aim = point.copy()
    k = int(rng.integers(point.size // 2))
    aim[2 * k : 2 * k + 2] += shift
    return aim


def _careless(expert: Policy, target: np.ndarray) -> Policy:
    """``expert``, but letting go as soon as the held object is over ``target`` (x, y)."""

    def act(obs: np.ndarray) -> np.ndarray:
        action = np.array(expert(obs), dtype=np.float32)
        x, y = obs[_OBJECT][:2]
        if obs[_HOLDING][0] > 0.5 and np.hypot(x - target[0], y - target[1]) < 0.03:
            action[3] = -1.0
        return action

    return act


def _hesitant(expert: Policy, delay: int) -> Policy:
    """``expert``, but holding on where it would let go, for ``delay`` steps in all."""
    waited = 0

    def act(obs: np.ndarray) -> np.ndarray:
        nonlocal waited
        action = np.array(expert(obs), dtype=np.float32)
        if obs[_HOLDING][0] > 0.5 and action[3] <= 0.0 and waited < delay:
            waited += 1
            action[3] = 1.0
        return action

    return act


class Query(NamedTuple):
    """One pair of segments: what :meth:`robopref.users.SyntheticUser.answer` takes."""

    obs_a: np.ndarray
    obs_b: np.ndarray
    feat_a: np.ndarray
    feat_b: np.ndarray


@dataclass
class QueryPool:
    """N candidate pairs of T-step segments: ``obs_a/obs_b`` (N, T, O), ``feat_a/feat_b``
    (N, T, F), where each segment came from (``origin``: (N, 2, 2) of episode, start), and
    the action taken in each of their states (``act_a/act_b``: (N, T, A), NaN where none:
    an episode's last state, or a segment whose actions were never recorded)."""

    env_id: str
    feature_names: tuple[str, ...]
    obs_a: np.ndarray
    obs_b: np.ndarray
    feat_a: np.ndarray
    feat_b: np.ndarray
    origin: np.ndarray
    act_a: np.ndarray
    act_b: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.obs_a.shape[0])

    @property
    def segment_length(self) -> int:
        """Steps per segment T."""
        return int(self.obs_a.shape[1])

    def draw(
        self, n: int, rng: np.random.Generator, exclude: np.ndarray | None = None
    ) -> np.ndarray:
        """``n`` distinct pair indices drawn uniformly, none of them in ``exclude``."""
        allowed = np.setdiff1d(np.arange(len(self)), exclude) if exclude is not None else None
        available = len(self) if allowed is None else len(allowed)
        if n > available:
            raise ValueError(
                f"asked for {n} queries but the pool has only {available} left: "
                "build a larger pool (more pairs or episodes)"
            )
        picked = rng.choice(available, size=n, replace=False)
        return picked if allowed is None else allowed[picked]

    def pair(self, i: int) -> Query:
        """Pair ``i`` as a :class:`Query` (``(T, O)`` and ``(T, F)`` arrays)."""
        return Query(self.obs_a[i], self.obs_b[i], self.feat_a[i], self.feat_b[i])

    def subset(self, index: np.ndarray) -> QueryPool:
        """The pairs at ``index``, in that order."""
        return QueryPool(
            self.env_id,
            self.feature_names,
            self.obs_a[index],
            self.obs_b[index],
            self.feat_a[index],
            self.feat_b[index],
            self.origin[index],
            self.act_a[index],
            self.act_b[index],
            dict(self.meta),
        )


def object_columns(feature_names: Sequence[str]) -> list[tuple[int, int, int, int]]:
    """The ``(x, y, height, held)`` feature columns of each object a task moves: the bare
    names for one object, ``<object>_x, ...`` for each of several (TableSetting)."""
    cols = {name: i for i, name in enumerate(feature_names)}
    quantities = ("x", "y", "height", "held")
    if all(q in cols for q in quantities):
        return [tuple(cols[q] for q in quantities)]  # type: ignore[list-item]
    prefixes = [name[: -len("_x")] for name in feature_names if name.endswith("_x")]
    found = [
        tuple(cols[f"{p}_{q}"] for q in quantities)
        for p in prefixes
        if all(f"{p}_{q}" in cols for q in quantities)
    ]
    if not found:
        raise ValueError(
            f"features {tuple(feature_names)} lack x, y, height and held (or <object>_x, ... "
            "for several objects): needed for queries"
        )
    return found  # type: ignore[return-value]


def _segment_stats(rollouts: Rollouts, segment: int) -> tuple[np.ndarray, ...]:
    """Per (episode, start): object xyz trajectory (every object's, one after the other:
    ``3 K`` rows for K objects; the first object's xy first), held, idle and release flags."""
    objects = object_columns(rollouts.feature_names)
    xyz = [c for x, y, h, _ in objects for c in (x, y, h)]
    pos = rollouts.feat[..., xyz].astype(np.float64)
    held_each = rollouts.feat[..., [o[3] for o in objects]].astype(np.float64)
    held = held_each.max(-1)
    moved = np.linalg.norm(pos - pos[:, :1], axis=-1) > 0.01
    active = np.logical_or.accumulate(moved | (held > 0.5), axis=1)  # moved or held so far
    released = np.zeros_like(held, dtype=bool)
    released[:, 1:] = ((held_each[:, :-1] > 0.5) & (held_each[:, 1:] < 0.5)).any(-1)
    starts = rollouts.feat.shape[1] - segment + 1
    window = np.lib.stride_tricks.sliding_window_view
    seg_pos = window(pos, segment, axis=1)[:, :starts]  # (E, S, 3, T)
    seg_held = window(held, segment, axis=1)[:, :starts]  # (E, S, T)
    idle = ~window(active, segment, axis=1)[:, :starts].any(-1)
    has_release = window(released, segment, axis=1)[:, :starts].any(-1)
    return seg_pos, seg_held, idle, has_release


def _near_partners(
    first: np.ndarray, seg_pos: np.ndarray, rng: np.random.Generator, tries: int = 256
) -> np.ndarray:
    """For each flat segment index in ``first``, a segment whose object ends within
    ``NEAR_RADIUS`` of where it ends (tried among ``tries`` random ones; itself if none)."""
    end_xy = seg_pos[:, :, :2, -1].reshape(-1, 2)  # (E * S, 2)
    partners = first.copy()
    for i, a in enumerate(first):
        cand = rng.integers(len(end_xy), size=tries)
        close = np.flatnonzero(np.hypot(*(end_xy[cand] - end_xy[a]).T) < NEAR_RADIUS)
        close = close[cand[close] != a]
        if len(close):
            partners[i] = cand[close[0]]
    return partners


def build_query_pool(
    rollouts: Rollouts,
    n_pairs: int,
    segment: int,
    rng: np.random.Generator,
    min_gap: float = 0.03,
    release_boost: float = 4.0,
    near_share: float = 0.0,
    first_episodes: np.ndarray | None = None,
) -> QueryPool:
    """Draw ``n_pairs`` informative candidate pairs of ``segment``-step segments (module doc).

    ``first_episodes``: every pair's first segment comes from these episodes (the loop's
    queries about what the policy did for one user), and so do its near pairs' first
    segments; the second segment comes from any episode.
    """
    if not 0.0 <= near_share <= 1.0:
        raise ValueError(f"near_share={near_share} is a share of the pairs: use [0, 1]")
    length = rollouts.feat.shape[1]
    if not 1 <= segment <= length:
        raise ValueError(f"segment={segment} must lie in [1, {length}] (the episode's states)")
    if n_pairs < 1:
        raise ValueError(f"n_pairs={n_pairs} must be >= 1")
    seg_pos, seg_held, idle, has_release = _segment_stats(rollouts, segment)
    n_starts = idle.shape[1]
    if first_episodes is None:
        eligible = rollouts.source == SOURCES.index("expert")
    else:
        eligible = np.zeros(rollouts.n_episodes, dtype=bool)
        eligible[np.asarray(first_episodes, dtype=np.int64)] = True
    low_end = np.flatnonzero((eligible[:, None] & (seg_pos[:, :, 2, -1] < LOW_HEIGHT)).ravel())
    weight = np.where(has_release, release_boost, 1.0).ravel()
    weight /= weight.sum()
    first_weight = weight
    if first_episodes is not None:
        first_weight = np.where(np.repeat(eligible, n_starts), weight, 0.0)
        first_weight /= first_weight.sum()
    chosen: list[np.ndarray] = []
    found, tries = 0, 0
    while found < n_pairs:
        tries += 1
        if tries > 50:
            raise RuntimeError(
                f"found only {found} of {n_pairs} informative pairs in 50 rounds: collect more "
                f"or more varied episodes, or lower min_gap={min_gap}"
            )
        cand = rng.choice(weight.size, size=(2 * (n_pairs - found) + 64, 2), p=weight)
        if first_episodes is not None:
            cand[:, 0] = rng.choice(weight.size, size=len(cand), p=first_weight)
        if near_share > 0.0:
            near = rng.random(len(cand)) < near_share
            if low_end.size:
                cand[near, 0] = rng.choice(low_end, size=int(near.sum()))
            cand[near, 1] = _near_partners(cand[near, 0], seg_pos, rng)
        ea, sa = np.divmod(cand[:, 0], n_starts)
        eb, sb = np.divmod(cand[:, 1], n_starts)
        gap = np.linalg.norm(seg_pos[ea, sa] - seg_pos[eb, sb], axis=-2).mean(-1)
        gap += 0.05 * np.abs(seg_held[ea, sa] - seg_held[eb, sb]).mean(-1)
        keep = (gap >= min_gap) & ~(idle[ea, sa] & idle[eb, sb])
        kept = cand[keep][: n_pairs - found]
        chosen.append(kept)
        found += len(kept)
    pairs = np.concatenate(chosen)
    ep, st = np.divmod(pairs, n_starts)  # (N, 2) each
    steps = st[..., None] + np.arange(segment)  # (N, 2, T)
    obs = rollouts.obs[ep[..., None], steps]
    feat = rollouts.feat[ep[..., None], steps]
    act = rollouts.act[ep[..., None], steps]
    return QueryPool(
        rollouts.env_id,
        rollouts.feature_names,
        obs[:, 0],
        obs[:, 1],
        feat[:, 0],
        feat[:, 1],
        np.stack([ep, st], axis=-1).astype(np.int64),
        act[:, 0],
        act[:, 1],
        {
            "min_gap": min_gap,
            "release_boost": release_boost,
            "near_share": near_share,
            "episodes": rollouts.n_episodes,
        },
    )
