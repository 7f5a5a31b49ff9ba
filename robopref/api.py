"""robopref's Python API: load the shipped (or your own) models, serve a new user from Python.

Everything here is exported from ``robopref`` itself (imported on first use, so ``import
robopref`` stays light):

* :func:`shipped_checkpoints`: the reward models and policies shipped with the package;
* :func:`load_reward_model`: a reward-model checkpoint, by path or shipped name;
* :func:`load_policy`: a policy folder, by path or shipped name, as a :class:`Policy` that
  builds the env it was trained in (:meth:`Policy.make_env`: the set-down primitive, the
  env kwargs, obs ⊕ z and the learned reward, or obs ⊕ goal for the oracle);
* :func:`synthetic_users`: new synthetic users of the population a policy was trained for;
* :func:`personalize`: a new user answers k actively chosen queries, z is inferred, and the
  policy is bound to it (:class:`PersonalizedPolicy`). It is what ``robopref evaluate`` and
  ``robopref video`` do for each new user, through the same functions
  (:mod:`robopref.policies.personalize`): user ``index`` of ``seed`` gets the z that
  ``robopref evaluate --seed SEED`` gives its user ``index``.
* :class:`LatentRewardEnv` (a ``gymnasium.Wrapper``) and :class:`LatentRewardVectorEnv` (a
  ``gymnasium.vector.VectorWrapper``): obs ⊕ z, reward r(s, z) of a reward model, the env's
  own reward kept in ``info["env_reward"]``.

See docs/api.md for an example.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robopref.data.queries import QueryPool
from robopref.data.rollouts import make_env
from robopref.envs.wrappers import SetDown
from robopref.policies import personalize as serving
from robopref.policies.checkpoint import LoadedPolicy, read_meta, recorded_population
from robopref.policies.checkpoint import load_policy as load_policy_folder
from robopref.policies.latent_env import LatentRewardEnv, LatentRewardVectorEnv, LatentSource
from robopref.policies.rollout import make_eval_env, policy_env_kwargs
from robopref.reward import load_reward_model as load_reward_file
from robopref.reward.active import POSTERIOR, InferenceResult
from robopref.reward.base import RewardModel
from robopref.reward.typed_asking import parse_menu
from robopref.users.population import Population, resolve_population
from robopref.users.synthetic import SyntheticUser

#: the folder of the shipped checkpoints (``policies/checkpoints`` of the source tree)
SHIPPED = Path(serving.__file__).resolve().parent / "checkpoints"

__all__ = [
    "LatentRewardEnv",
    "LatentRewardVectorEnv",
    "PersonalizedPolicy",
    "Policy",
    "load_policy",
    "load_reward_model",
    "personalize",
    "shipped_checkpoints",
    "synthetic_users",
]


def shipped_checkpoints() -> dict[str, Path]:
    """The checkpoints shipped with robopref, by name: reward models ``"vpl"`` and
    ``"btl"`` (``.pt`` files) and policies ``"policy_vpl"``, ``"policy_btl"`` and
    ``"policy_oracle"`` (folders), all for PlatePlacement's two-modes population."""
    found = {path.stem: path for path in sorted(SHIPPED.glob("*.pt"))}
    found.update({path.name: path for path in sorted(SHIPPED.glob("policy_*")) if path.is_dir()})
    return found


def _shipped(path_or_name: str | os.PathLike[str], prefix: str) -> Path:
    """``path_or_name`` as a path: a shipped name (``vpl``, or ``policy_vpl``) or a path."""
    text = os.fspath(path_or_name)
    shipped = shipped_checkpoints()
    for key in (prefix + text, text):
        if key in shipped and not Path(text).exists():
            return shipped[key]
    return Path(text)


def load_reward_model(path_or_name: str | os.PathLike[str], device: str = "cpu") -> RewardModel:
    """A reward model: a checkpoint of ``robopref train-reward`` (a path) or a shipped one
    by name (``"vpl"``, ``"btl"``: :func:`shipped_checkpoints`), on ``device``."""
    return load_reward_file(_shipped(path_or_name, ""), device=device)


@dataclass
class Policy:
    """A trained policy, its reward model (None for the oracle and plain CPL policies) and
    what it was trained for; :meth:`make_env` builds the env it acts in."""

    loaded: LoadedPolicy
    reward_model: RewardModel | None

    @property
    def model(self) -> Any:
        """The SB3 model (``PPO``/``SAC``)."""
        return self.loaded.model

    @property
    def meta(self) -> dict[str, Any]:
        """Its ``meta.json`` (reward path resolved)."""
        return self.loaded.meta

    @property
    def name(self) -> str:
        """Its label: ``vpl``, ``btl``, ``oracle``, ..."""
        return self.loaded.name

    @property
    def kind(self) -> str:
        """``latent`` (obs ⊕ z; z empty for BTL), ``oracle`` (obs ⊕ goal) or ``plain``."""
        return self.loaded.kind

    @property
    def env_id(self) -> str:
        """The task it was trained on."""
        return str(self.meta["env_id"])

    @property
    def latent_dim(self) -> int:
        """The size of its user latent z (0: it serves everyone alike)."""
        return int(self.meta["latent_dim"])

    @property
    def population(self) -> str | None:
        """The population it was trained for (a name or file), if recorded."""
        return recorded_population(self.meta)

    def make_env(
        self,
        z: np.ndarray | None = None,
        render: bool = False,
        width: int = 240,
        height: int = 180,
    ) -> gym.Env:
        """The env this policy was trained in: its task with the recorded env kwargs and
        set-down primitive, and, for a latent policy, obs ⊕ z with the reward model's scaled
        reward r(s, z) (the env's own in ``info["env_reward"]``); z is ``z`` every episode,
        or drawn from the prior when None (``reset(options={"z": ...})`` sets it too). For the
        oracle: obs ⊕ goal, the goal drawn from its population per episode unless
        ``reset(options={"goal": ...})`` names one. ``render``: ``rgb_array`` frames of
        ``width`` x ``height``."""
        source: LatentSource | None = None
        if self.kind == "latent" and z is not None:
            source = LatentSource.fixed(np.asarray(z, np.float32).reshape(self.latent_dim))
        elif self.kind == "oracle" and self.population:
            goals, groups = self._population().sample_goals(1000, np.random.default_rng(0))
            source = LatentSource(0, np.zeros((1000, 0), np.float32), goals, groups)
        return make_eval_env(
            self.env_id, self.kind, self.reward_model, render, width, height,
            set_down=SetDown.read(self.meta.get("set_down")),
            env_kwargs=policy_env_kwargs(self.meta), source=source, defer_reward=False,
        )  # fmt: skip

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The deterministic action for an observation of :meth:`make_env`'s env."""
        return self.loaded.act(obs)

    def _population(self, population: str | None = None) -> Population:
        name = population or self.population
        if not name:
            raise ValueError(
                f"{self.loaded.folder} records no population: pass population=NAME|FILE"
            )
        raw, _ = make_env(self.env_id, policy_env_kwargs(self.meta))
        return resolve_population(name, raw)


def load_policy(
    path_or_name: str | os.PathLike[str],
    reward_model: RewardModel | str | os.PathLike[str] | None = None,
    device: str = "cpu",
) -> Policy:
    """A policy folder of ``robopref train-policy`` or ``robopref loop`` (a path), or a shipped
    one by name (``"vpl"``, ``"btl"``, ``"oracle"``: :func:`shipped_checkpoints`), with its
    reward model: ``reward_model`` (a model, a path or a shipped name) or, when None, the one
    its ``meta.json`` records. A reward model other than the one it was trained with is
    refused (its z would mean something else)."""
    folder = _shipped(path_or_name, "policy_")
    meta = read_meta(folder)
    model: RewardModel | None = None
    if meta["kind"] == "latent":
        if reward_model is None:
            recorded = str(meta["reward_path"])
            if not Path(recorded).is_file():
                raise FileNotFoundError(
                    f"the reward model of {folder} is not at {recorded}: pass reward_model=PATH"
                )
            model = load_reward_file(recorded, device=device)
        elif isinstance(reward_model, RewardModel):
            model = reward_model
        else:
            model = load_reward_model(reward_model, device=device)
    return Policy(load_policy_folder(folder, model, device=device), model)


def synthetic_users(
    policy: Policy, n: int = 1, population: str | None = None, seed: int = 0
) -> list[SyntheticUser]:
    """``n`` new synthetic users of ``population`` (default: the one ``policy`` was trained
    for), the users ``robopref evaluate --users n --seed seed`` draws. Each answers queries
    (``user.answer(pair, rng)``); its goal is hidden knowledge, for scoring only."""
    if n < 1:
        raise ValueError(f"n={n}: ask for at least one user")
    return serving.new_users(policy._population(population), n, seed)


@dataclass
class PersonalizedPolicy:
    """A policy bound to one user's z (:func:`personalize`)."""

    policy: Policy
    z: np.ndarray
    inference: InferenceResult | None

    def make_env(self, render: bool = False, width: int = 240, height: int = 180) -> gym.Env:
        """The policy's env (:meth:`Policy.make_env`) with this user's z every episode."""
        return self.policy.make_env(self.z, render, width, height)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The deterministic action for an observation of :meth:`make_env`'s env (obs ⊕ z)."""
        return self.policy.act(obs)

    @property
    def asked(self) -> list[int]:
        """The candidate queries asked, in order (indices into the pool)."""
        return [] if self.inference is None else list(self.inference.asked)

    @property
    def answers(self) -> list[float]:
        """The user's answers to them (1: the first segment, 0: the second, 0.5: a tie)."""
        return [] if self.inference is None else list(self.inference.answers)


def personalize(
    policy: Policy | str,
    user: SyntheticUser | Callable[[Any], float],
    k: int = serving.QUERIES,
    seed: int = 0,
    index: int = 0,
    strategy: str = serving.STRATEGY,
    pool: QueryPool | None = None,
    pool_pairs: int = serving.POOL_PAIRS,
    posterior: str = POSTERIOR,
    question: str = "pair",
) -> PersonalizedPolicy:
    """Serve a new user: ask ``k`` queries (``strategy`` ``active``: each the most informative
    about the user's z), infer z and bind ``policy`` (a :class:`Policy` or a name for
    :func:`load_policy`) to it.

    ``user``: a :class:`~robopref.users.synthetic.SyntheticUser` (:func:`synthetic_users`), or a
    function ``answer(query) -> label`` for anyone else (``query.feat_a``/``feat_b``,
    ``obs_a``/``obs_b``: the two segments; label 1.0 for the first, 0.0 for the second, 0.5
    for a tie). The queries come from ``pool`` or, by default, the candidate pool of
    ``pool_pairs`` pairs that ``robopref evaluate --seed seed`` builds; with a synthetic user
    its answers and z are those of that command's user ``index``. A policy without a user
    latent (BTL) asks nothing; the oracle reads the goal instead and is refused.
    ``question``: the question types a synthetic user is asked, as ``robopref evaluate
    --question`` (``"ranking:4"``, ...); a function answers pairs only.
    """
    if isinstance(policy, str):
        policy = load_policy(policy)
    if policy.kind != "latent":
        raise ValueError(
            f"personalize serves a latent policy; {policy.loaded.folder} is {policy.kind} "
            '(an oracle reads the goal: policy.make_env() and reset(options={"goal": ...}))'
        )
    if k < 0:
        raise ValueError(f"k={k}: ask 0 or more queries")
    menu = parse_menu(question)
    if not menu.pairs_only and not (isinstance(user, SyntheticUser) or hasattr(user, "answer")):
        raise ValueError(
            f"question={question!r}: a function user answers pairs only; ask it other types "
            "through robopref.reward.typed_asking.infer_user_typed"
        )
    model = policy.reward_model
    assert model is not None  # a latent policy always has one (load_policy)
    if policy.latent_dim == 0:
        return PersonalizedPolicy(policy, np.zeros(0, np.float32), None)
    if pool is None:
        pool = serving.new_user_pool(model, seed, pool_pairs)
    if isinstance(user, SyntheticUser) or hasattr(user, "answer"):
        synthetic: Any = user
        inference = serving.new_user_inference(
            policy.loaded, model, synthetic, index, pool, k, strategy, seed, posterior, menu
        )
    else:
        ask = user
        bound = serving.personalize(
            policy.loaded, model, lambda i: float(ask(pool.pair(i))), k, strategy, pool,
            np.random.default_rng([seed, index, 11]), posterior,
        )  # fmt: skip
        inference = bound.inference
    assert inference is not None
    return PersonalizedPolicy(policy, np.asarray(inference.mean, np.float32), inference)
