"""Training envs for latent-conditioned policies: obs ⊕ z, reward r̂(s, z) from a reward model.

:class:`LatentRewardEnv` wraps a robopref task. Each episode it draws a user latent ``z``
from a :class:`LatentSource` (training users' posterior means, each with that user's hidden
goal, or the prior N(0, I)), appends ``z`` to every observation (a float32 Box) and replaces
the reward with the reward model's *scaled* reward (in [0, 1]) of the reached observation
under ``z``. When the source knows the user's goal, the wrapped env is reset with
``options={"goal": goal}``, so its oracle reward and ``info["is_success"]`` are the true
user's: they are kept in ``info["true_reward"]`` and ``info["is_success"]`` for evaluation.

The model reads the env's features (``info["features"]``) or its observation, whichever
it was trained on (:mod:`robopref.reward.inputs`); the wrapper puts that input of the
reached state in ``info["reward_input"]``. The model call is the one function
:func:`relabel`. Under a vectorized env, :class:`BatchedRewardVecEnv` computes every env's
reward in one :func:`relabel` call from the workers' ``info["reward_input"]`` and
``info["z"]`` (on the GPU when the model lives there) and the per-env wrappers are built
with ``defer_reward=True`` (they return reward 0 and never call the model).

For Gymnasium vector envs (``gymnasium.make_vec``, ``SyncVectorEnv``, ``AsyncVectorEnv``)
:class:`LatentRewardVectorEnv` is the same wrapper as a ``gymnasium.vector.VectorWrapper``:
one z per sub-env and episode, every reward computed in one batch. Both keep the env's own
reward of each step in ``info["env_reward"]``.

The oracle baseline uses :class:`PopulationGoals` (a goal drawn per episode from the
population) under :class:`robopref.envs.wrappers.GoalObservation`, with the env's own reward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from robopref.reward.base import RewardModel
from robopref.reward.inputs import model_inputs, reward_input
from robopref.reward.latent_density import COVERAGE_NEIGHBOURS, coverage_weights  # noqa: F401 (re-exported)

#: share of episodes whose z is drawn from the training latents' Gaussian, widened
WIDEN_SHARE = 0.3
#: how much wider (in standard deviations) that Gaussian is than the training latents
WIDEN_SCALE = 1.5


@dataclass
class LatentSource:
    """Where each episode's z comes from.

    ``means`` ``(U, Z)`` with ``goals`` ``(U, G)`` (and ``groups`` ``(U,)``): a training user
    drawn uniformly per episode, the env reset to that user's goal. Without ``goals`` (the
    loop and ``train-policy``, which know users only by their answers) the env keeps its own
    goal and the true reward is not known, and a ``widen_share`` of episodes draws z from a
    Gaussian with the training latents' mean and ``widen_scale`` times their spread.

    Why widen: a new user's z after k active queries from a fresh pool lands in the tails
    of the training users' latents (plate two-modes seed 0: group 0's new users at 2.2-2.5
    on the used dimension, where 90% of training latents lie below 1.8). A policy that saw
    few such z extrapolates (it set the plate down at y = 0.22-0.25 instead of 0.15) while the
    reward under them still peaks at the goal; trained on wider z it learns where to stop
    (the same reward and PPO seed: group 0 from 0.00 to 1.00 on the held-out check).

    With ``means`` None the prior N(0, I) of size ``latent_dim`` is sampled and the env
    keeps its own goal (if any).

    ``balance``: users are drawn with weights inversely proportional to the density of the
    latents around them (:func:`coverage_weights`), so a sparse region of z (a minority's)
    gets as many episodes as a dense one; the density is estimated from the latents alone.
    """

    latent_dim: int
    means: np.ndarray | None = None
    goals: np.ndarray | None = None
    groups: np.ndarray | None = None
    widen_share: float = WIDEN_SHARE
    widen_scale: float = WIDEN_SCALE
    balance: bool = False

    def __post_init__(self) -> None:
        if self.means is not None:
            self.means = np.asarray(self.means, dtype=np.float32).reshape(len(self.means), -1)
            if self.means.shape[1] != self.latent_dim:
                raise ValueError(
                    f"user latents of size {self.means.shape[1]} given for a model with "
                    f"latent_dim {self.latent_dim}: compute them with this reward model"
                )
            if self.goals is not None and len(self.goals) != len(self.means):
                raise ValueError("LatentSource needs one goal per user latent (goals=...)")
            if self.groups is None:
                self.groups = np.full(len(self.means), -1)
        if not 0.0 <= self.widen_share <= 1.0 or self.widen_scale <= 0:
            raise ValueError("widen_share must lie in [0, 1] and widen_scale be > 0")
        self._weights = None
        if self.balance and self.means is not None and len(self.means) > 1:
            self._weights = coverage_weights(self.means)
        if self._widens:
            assert self.means is not None  # for the type checker: _widens says so
            spread = np.cov(self.means.T) if len(self.means) > 1 else np.zeros((1, 1))
            cov = np.atleast_2d(spread) * self.widen_scale**2 + 1e-6 * np.eye(self.latent_dim)
            self._widened = (self.means.mean(0), cov)

    @classmethod
    def prior(cls, latent_dim: int) -> LatentSource:
        """z ~ N(0, I) every episode, no goal."""
        return cls(latent_dim)

    @classmethod
    def fixed(cls, z: np.ndarray) -> LatentSource:
        """The same ``z`` (one user's) every episode, no goal."""
        z = np.asarray(z, np.float32).reshape(1, -1)
        return cls(z.shape[1], z, widen_share=0.0)

    @property
    def _widens(self) -> bool:
        """Widening applies to latent users known by their answers only (no goals)."""
        known = self.means is not None and self.goals is None
        return known and self.latent_dim > 0 and self.widen_share > 0

    @property
    def n_users(self) -> int:
        """Number of users drawn from (0 for the prior)."""
        return 0 if self.means is None else len(self.means)

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None, int]:
        """``(z, goal or None, group)`` for one episode."""
        if self.means is None:
            z = rng.standard_normal(self.latent_dim).astype(np.float32)
            return z, None, -1
        assert self.groups is not None
        if self._widens and rng.random() < self.widen_share:
            mean, cov = self._widened
            return rng.multivariate_normal(mean, cov).astype(np.float32), None, -1
        if self._weights is None:
            i = int(rng.integers(len(self.means)))
        else:
            i = int(rng.choice(len(self.means), p=self._weights))
        goal = None if self.goals is None else np.asarray(self.goals[i])
        return self.means[i].copy(), goal, int(self.groups[i])


def env_goal(env: gym.Env, goal: np.ndarray) -> Any:
    """A stored goal vector in the form the env takes (a zone index for Discrete goals)."""
    if isinstance(env.unwrapped.goal_space, gym.spaces.Discrete):
        return int(np.asarray(goal).reshape(-1)[0])
    return np.asarray(goal, dtype=np.float64)


def relabel(model: RewardModel, inputs: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Scaled rewards ``(N,)`` of reward inputs ``(N, D)`` under ``z`` ``(N, Z)``: the one
    reward function (inputs are features or observations, see :mod:`robopref.reward.inputs`)."""
    inputs = torch.as_tensor(np.asarray(inputs, dtype=np.float32), device=model.device)
    with torch.no_grad():
        z_t = torch.as_tensor(np.asarray(z, np.float32), device=model.device)
        out = model.scaled_reward(inputs, z_t if model.latent_dim else None)
    return out.detach().cpu().numpy().astype(np.float32)


class LatentRewardEnv(gym.Wrapper):
    """Append z to the observation; reward = scaled r(s', z) of the reached observation.

    ``info`` gains ``env_reward`` (the wrapped env's own reward of the step, whatever its
    goal), ``true_reward`` (the same, but NaN when the env has no goal: the drawn user's
    oracle reward), ``user_group``, ``z`` and ``reward_input`` (what the model read). With
    ``defer_reward`` the reward is 0 and :class:`BatchedRewardVecEnv` must fill it in.
    ``reward_model`` is used on the device it lives on and is never moved. ``source``: where
    each episode's z comes from (default: the prior N(0, I); :meth:`LatentSource.fixed`
    for one user's). ``z`` (and the goal) can be set for the next episode with
    ``reset(options={"z": z, "goal": goal})``.
    """

    def __init__(
        self,
        env: gym.Env,
        reward_model: RewardModel,
        source: LatentSource | None = None,
        defer_reward: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__(env)
        source = source or LatentSource.prior(reward_model.latent_dim)
        if source.latent_dim != reward_model.latent_dim:
            raise ValueError(
                f"the latent source has size {source.latent_dim}, the reward model "
                f"{reward_model.latent_dim}: build the source from this model"
            )
        base = env.observation_space
        self.reward_input = reward_input(reward_model)
        size = (
            len(env.unwrapped.feature_names) if self.reward_input == "features" else base.shape[0]
        )
        if size != reward_model.obs_dim:
            raise ValueError(
                f"the env's {self.reward_input} have size {size}, the reward model expects "
                f"{reward_model.obs_dim}: it was trained on another task"
            )
        # The caller's model, where it lives (relabel moves the inputs to its device); it is
        # neither moved nor copied here. Workers of a SubprocVecEnv get a pickled copy, so
        # give them a CPU model (robopref.policies.rl_train loads one for the workers).
        self.reward_model = reward_model
        self.source = source
        self.defer_reward = defer_reward
        self.latent_dim = reward_model.latent_dim
        low = np.concatenate([base.low, np.full(self.latent_dim, -np.inf)]).astype(np.float32)
        high = np.concatenate([base.high, np.full(self.latent_dim, np.inf)]).astype(np.float32)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self._rng = np.random.default_rng(seed)
        self.z = np.zeros(self.latent_dim, np.float32)
        self.group = -1
        self._has_goal = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw z (and the user's goal) for the new episode, or take ``options["z"]``."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        options = dict(options or {})
        if "z" in options:
            z, goal, self.group = options.pop("z"), options.pop("goal", None), -1
        else:
            z, goal, self.group = self.source.draw(self._rng)
        self.z = np.asarray(z, dtype=np.float32).reshape(self.latent_dim)
        if goal is not None:
            options["goal"] = env_goal(self.env, goal)
        obs, info = self.env.reset(seed=seed, options=options or None)
        self._has_goal = self.env.unwrapped.goal is not None
        return self._with_z(obs), self._info(info, 0.0)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Step the env; the reward is the model's for the reached observation under z."""
        obs, true_reward, terminated, truncated, info = self.env.step(action)
        info = self._info(info, float(true_reward))
        info["env_reward"] = float(true_reward)
        info["reward_input"] = model_inputs(self.reward_model, obs, info)
        reward = 0.0
        if not self.defer_reward:
            reward = float(relabel(self.reward_model, info["reward_input"][None], self.z[None])[0])
        return self._with_z(obs), reward, terminated, truncated, info

    def _with_z(self, obs: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(obs, np.float32), self.z]).astype(np.float32)

    def _info(self, info: dict[str, Any], true_reward: float) -> dict[str, Any]:
        info["true_reward"] = true_reward if self._has_goal else float("nan")
        info["user_group"] = self.group
        info["z"] = self.z
        return info


class LatentRewardVectorEnv(gym.vector.VectorWrapper):
    """:class:`LatentRewardEnv` for a Gymnasium vector env of a robopref task: each sub-env's
    observation gets its episode's z appended, and the reward is the reward model's scaled
    r(s', z) of the reached state, all sub-envs in one model call.

    ``info["env_reward"]`` (an array, one per sub-env) keeps the env's own rewards and
    ``info["z"]`` the z of each sub-env's step. Each sub-env draws a new z from ``source``
    (default: the prior) when its episode starts: at ``reset`` and at the autoreset step
    after its episode ended (Gymnasium's default ``next-step`` autoreset, whose reset step
    gets reward 0; other autoreset modes are refused). ``reset(options={"z": z})`` sets z
    (``(Z,)`` for every sub-env or ``(N, Z)``) for the first episodes; the goals of a
    ``source`` are not applied (sub-envs keep their own).
    """

    def __init__(
        self,
        env: gym.vector.VectorEnv,
        reward_model: RewardModel,
        source: LatentSource | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(env)
        mode = env.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
        if mode not in (gym.vector.AutoresetMode.NEXT_STEP, "NextStep", "next_step"):
            raise ValueError(
                f"LatentRewardVectorEnv needs the next-step autoreset mode, not {mode}: make "
                "the vector env with autoreset_mode=gymnasium.vector.AutoresetMode.NEXT_STEP"
            )
        self.reward_model = reward_model
        self.source = source or LatentSource.prior(reward_model.latent_dim)
        if self.source.latent_dim != reward_model.latent_dim:
            raise ValueError(
                f"the latent source has size {self.source.latent_dim}, the reward model "
                f"{reward_model.latent_dim}: build the source from this model"
            )
        self.reward_input = reward_input(reward_model)
        self.latent_dim = reward_model.latent_dim
        base = env.single_observation_space
        low = np.concatenate([base.low, np.full(self.latent_dim, -np.inf)]).astype(np.float32)
        high = np.concatenate([base.high, np.full(self.latent_dim, np.inf)]).astype(np.float32)
        self.single_observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, self.num_envs
        )
        self._rng = np.random.default_rng(seed)
        self.z = np.zeros((self.num_envs, self.latent_dim), np.float32)
        self._starting = np.zeros(self.num_envs, bool)

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-env, each with a new z (or ``options["z"]``)."""
        if isinstance(seed, int):
            self._rng = np.random.default_rng(seed)
        options = dict(options or {})
        z = options.pop("z", None)
        obs, info = self.env.reset(seed=seed, options=options or None)
        if z is None:
            self.z = np.stack([self._draw() for _ in range(self.num_envs)])
        else:
            self.z = np.broadcast_to(
                np.asarray(z, np.float32), (self.num_envs, self.latent_dim)
            ).copy()
        self._starting[:] = False
        self._check_size(self._inputs(obs, info))
        return self._with_z(obs), info

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-env; rewards are the model's under each sub-env's z."""
        for i in np.flatnonzero(self._starting):  # these sub-envs reset in this step
            self.z[i] = self._draw()
        obs, env_reward, terminated, truncated, info = self.env.step(actions)
        reward = relabel(self.reward_model, self._inputs(obs, info), self.z)
        reward[self._starting] = 0.0  # a reset step: no transition to reward
        info = dict(info)
        info["env_reward"] = np.asarray(env_reward)
        info["z"] = self.z.copy()
        self._starting = np.asarray(terminated) | np.asarray(truncated)
        return self._with_z(obs), reward, terminated, truncated, info

    def _draw(self) -> np.ndarray:
        return np.asarray(self.source.draw(self._rng)[0], np.float32)

    def _inputs(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        if self.reward_input == "features":
            return np.asarray(info["features"], np.float32)
        return np.asarray(obs, np.float32)

    def _check_size(self, inputs: np.ndarray) -> None:
        if inputs.shape[-1] != self.reward_model.obs_dim:
            raise ValueError(
                f"the env's {self.reward_input} have size {inputs.shape[-1]}, the reward "
                f"model expects {self.reward_model.obs_dim}: it was trained on another task"
            )

    def _with_z(self, obs: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(obs, np.float32), self.z], axis=1)


class BatchedRewardVecEnv(VecEnvWrapper):
    """Fill in the rewards of deferring :class:`LatentRewardEnv` workers with one model call."""

    def __init__(self, venv: VecEnv, reward_model: RewardModel) -> None:
        super().__init__(venv)
        self.reward_model = reward_model.eval()

    def reset(self) -> np.ndarray:
        """Reset every env."""
        return self.venv.reset()

    def step_wait(self) -> Any:
        """Step every env, then relabel all rewards in one batch."""
        obs, _, dones, infos = self.venv.step_wait()
        # Each worker's info holds what the model reads of the state it reached (for an
        # episode that just ended too) and the episode's z.
        inputs = np.stack([info["reward_input"] for info in infos])
        z = np.stack([info["z"] for info in infos])
        return obs, relabel(self.reward_model, inputs, z), dones, infos


class PopulationGoals(gym.Wrapper):
    """The oracle's training env: a goal drawn per episode from ``goals`` (weighted uniform).

    ``info["true_reward"]`` is the env's reward (the same as the step reward) and
    ``info["user_group"]`` the index of the drawn goal's group.
    """

    def __init__(
        self,
        env: gym.Env,
        goals: np.ndarray,
        groups: np.ndarray | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(env)
        self.goals = np.asarray(goals)
        self.groups = np.full(len(goals), -1) if groups is None else np.asarray(groups)
        self._rng = np.random.default_rng(seed)
        self.group = -1

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw the episode's goal unless ``options`` names one."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        options = dict(options or {})
        if "goal" not in options:
            i = int(self._rng.integers(len(self.goals)))
            options["goal"] = env_goal(self.env, self.goals[i])
            self.group = int(self.groups[i])
        else:
            options["goal"] = env_goal(self.env, options["goal"])
            self.group = int(options.pop("group", -1))
        obs, info = self.env.reset(seed=seed, options=options)
        info["user_group"] = self.group
        return obs, info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Step the env; its oracle reward is also the true reward."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["true_reward"] = float(reward)
        info["user_group"] = self.group
        return obs, reward, terminated, truncated, info
