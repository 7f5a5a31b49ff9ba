"""Running a trained policy for one user: the evaluation env and one episode.

:func:`make_eval_env` builds the env a policy of either kind sees (obs ⊕ z for a latent
policy, obs ⊕ goal for the oracle); :func:`run_episode` runs one episode for a given user
(z and hidden goal) and returns its success, the env's oracle return for that goal and the
features of every state (for users to judge), optionally with rendered frames.
:func:`policy_rollouts` runs a latent policy for many latents at once and keeps every state
(the loop's and the policy-query pool's episodes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from robopref.data.rollouts import SOURCES, Rollouts, no_actions
from robopref.envs import episode_steps
from robopref.envs.rendering import step_frames
from robopref.envs.wrappers import GoalObservation, SetDown, with_set_down
from robopref.policies.latent_env import LatentRewardEnv, LatentSource, PopulationGoals
from robopref.policies.meta import PolicyMeta
from robopref.reward.base import RewardModel

BatchPolicy = Callable[[np.ndarray, bool], np.ndarray]


@dataclass
class Episode:
    """One episode: final success, oracle return, features ``(L + 1, F)``, frames if any."""

    success: bool
    true_return: float
    features: np.ndarray
    frames: list[np.ndarray] = field(default_factory=list)


def policy_env_kwargs(meta: dict[str, Any]) -> dict[str, Any]:
    """The env kwargs a policy was trained with (its ``meta.json``; none before they were
    recorded): :attr:`PolicyMeta.env_kwargs`."""
    return PolicyMeta(meta).env_kwargs


def task_env(env_id: str, set_down: SetDown, **kwargs: Any) -> gym.Env:
    """``gym.make(env_id, **kwargs)``, under the set-down primitive ``set_down`` names
    (:func:`~robopref.envs.wrappers.with_set_down`)."""
    return with_set_down(gym.make(env_id, **kwargs), set_down)


def make_eval_env(
    env_id: str,
    kind: str,
    reward_model: RewardModel | None,
    render: bool = False,
    width: int = 240,
    height: int = 180,
    set_down: SetDown = SetDown.OFF,
    env_kwargs: dict[str, Any] | None = None,
    source: LatentSource | None = None,
    defer_reward: bool = True,
) -> gym.Env:
    """The env a ``latent``, ``oracle`` or ``plain`` policy acts in (goals set per episode by
    reset);
    ``set_down`` and ``env_kwargs`` as the policy was trained (its ``meta.json``).

    ``source``: a latent policy's z per episode (default: the prior; ``reset(options={"z":
    ...})`` overrides it) or, for the oracle, the goals it draws from (default: one random
    goal; ``reset(options={"goal": ...})`` overrides it). ``defer_reward`` False computes the
    latent env's learned reward r(s, z) at each step (True: 0, for callers that read only
    ``info``).
    """
    kwargs: dict[str, Any] = dict(env_kwargs or {})
    if render:
        kwargs.update(render_mode="rgb_array", width=width, height=height)
    base = task_env(env_id, set_down, **kwargs)
    if kind == "plain":
        return base
    if kind == "oracle":
        if source is not None and source.goals is not None:
            return GoalObservation(PopulationGoals(base, source.goals, source.groups))
        goal_space = base.unwrapped.goal_space
        dummy = np.atleast_1d(np.asarray(goal_space.sample(), dtype=np.float64))[None]
        return GoalObservation(PopulationGoals(base, dummy))
    if reward_model is None:
        raise ValueError("a latent policy needs its reward model: pass --reward")
    source = source or LatentSource.prior(reward_model.latent_dim)
    return LatentRewardEnv(base, reward_model, source, defer_reward=defer_reward)


def run_episode(
    env: gym.Env,
    act: Callable[[np.ndarray], np.ndarray],
    goal: Any,
    z: np.ndarray | None = None,
    seed: int | None = None,
    render: bool = False,
    marker: Any = None,
) -> Episode:
    """Run ``act`` for one episode with the hidden ``goal`` (and ``z`` for a latent env)."""
    options: dict[str, Any] = {"goal": goal}
    if isinstance(env, LatentRewardEnv):
        options["z"] = np.zeros(env.latent_dim, np.float32) if z is None else z
    obs, info = env.reset(seed=seed, options=options)
    env.unwrapped.marker = marker
    features = [info["features"]]
    frames = [env.render()] if render else []
    total, done, success = 0.0, False, False
    while not done:
        obs, _, terminated, truncated, info = env.step(act(obs))
        total += float(info.get("true_reward", 0.0))
        features.append(info["features"])
        if render:
            frames.extend(step_frames(env))
        success = bool(info.get("is_success", False))
        done = terminated or truncated
    return Episode(success, total, np.stack(features), frames)


def policy_rollouts(
    env_id: str,
    act: BatchPolicy,
    latents: np.ndarray,
    per_user: int,
    seed: int,
    set_down: SetDown = SetDown.PLACE,
    env_kwargs: dict[str, Any] | None = None,
) -> Rollouts:
    """``per_user`` episodes for each row of ``latents`` ``(U, Z)`` (episode ``u * per_user
    + j`` is user u's): ``act(obs ⊕ z (N, O + Z), deterministic) -> actions (N, A)``, the
    first episode of each user deterministic and the others sampled, all users stepped in
    one batch. Every state is kept, as :func:`robopref.data.rollouts.collect_rollouts` does."""
    n = len(latents) * per_user
    z = np.repeat(np.asarray(latents, np.float32), per_user, axis=0)
    deterministic = np.tile(np.arange(per_user) == 0, len(latents))
    envs = [task_env(env_id, set_down, **(env_kwargs or {})) for _ in range(n)]
    rng = np.random.default_rng(seed)
    first = [
        env.reset(seed=int(s)) for env, s in zip(envs, rng.integers(2**31, size=n), strict=True)
    ]
    steps = episode_steps(envs[0])
    obs = np.empty((n, steps + 1, first[0][0].shape[0]), np.float32)
    feat = np.empty((n, steps + 1, first[0][1]["features"].shape[0]), np.float32)
    acts = no_actions(n, steps, envs[0].action_space)
    obs[:, 0] = np.stack([o for o, _ in first])
    feat[:, 0] = np.stack([i["features"] for _, i in first])
    for t in range(1, steps + 1):
        augmented = np.concatenate([obs[:, t - 1], z], axis=1)
        actions = np.empty((n, envs[0].action_space.shape[0]), np.float32)
        for mode in (True, False):
            rows = np.flatnonzero(deterministic == mode)
            if len(rows):
                actions[rows] = act(augmented[rows], mode)
        acts[:, t - 1] = actions
        for e, env in enumerate(envs):
            obs[e, t], _, _, _, info = env.step(actions[e])
            feat[e, t] = info["features"]
    for env in envs:
        env.close()
    names = tuple(envs[0].unwrapped.feature_names)
    source = np.full(n, SOURCES.index("policy"), np.int8)
    return Rollouts(env_id, names, obs, feat, source, acts)
