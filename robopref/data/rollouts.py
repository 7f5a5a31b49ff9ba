"""Behaviour rollouts: what the robot did, recorded for questions to be cut from.

:func:`collect_rollouts` runs a behaviour mix (:class:`BehaviourMix`) on the raw env:
the scripted expert aimed at goals drawn uniformly from the goal space with Gaussian
action noise, the uniformly random policy, and any ``obs -> action`` callables (for an
SB3 model: ``lambda obs: model.predict(obs, deterministic=False)[0]``). Every episode
keeps its L + 1 states (reset state included).

:mod:`robopref.data.queries` cuts them into the pairs users are asked about.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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
