"""Reward-guided policies: the latent decides *what*, a goal-conditioned skill *how*.

A latent policy trained by RL on r(s, z) has to learn, for every z, both where the user wants
the object and how to put it there; it interpolates between the groups it saw most, and a
small group at a spot of its own is averaged away even when the reward knows that user
(the minorities issue). A guided policy splits the two:

* **what**: the goal the learned reward prefers for the user's z, its peak over the
  states that serve each candidate goal (:class:`robopref.reward.peak.PeakFinder`: a grid
  of table points, or every zone);
* **how**: a goal-conditioned skill (an oracle-kind policy, obs ⊕ goal) trained once per
  task on goals drawn uniformly from the whole goal space (population ``goal-space``) with
  the task's own reward. It reads no user's goal: only the goal it is commanded.

The composition acts on obs ⊕ z like any latent policy (``kind: latent``, ``method:
guided`` in its ``meta.json``), so ``evaluate``, ``video``, the study and the Python API
serve it unchanged, personalizing a new user by the same k active queries. Its success is
bounded by the reward's *delivery* (the share of users whose peak lies within the success
radius of their goal) times the skill's success: ``evaluate`` reports both.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robopref.data.rollouts import make_env
from robopref.policies.checkpoint import LoadedPolicy, load_policy, read_meta
from robopref.policies.meta import FORMAT, PolicyMeta, reward_path_for
from robopref.reward.base import RewardModel
from robopref.reward.peak import PeakFinder
from robopref.reward.registry import load_reward_model

METHOD = "guided"


@dataclass
class GuidedPolicy(LoadedPolicy):
    """A goal-conditioned skill commanded to the learned reward's peak under each z.

    ``model`` is the skill's SB3 model (obs ⊕ encoded goal ⊕ goal - object); ``predict``
    takes obs ⊕ z, as every latent policy does.
    """

    finder: PeakFinder | None = None
    obs_size: int = 0
    goal_size: int = 0
    discrete: bool = False
    object_xy: slice = field(default_factory=lambda: slice(4, 6))
    _cache: dict[bytes, int] = field(default_factory=dict, repr=False)

    def peak_indices(self, z: np.ndarray) -> np.ndarray:
        """The index into the finder's goals of each z's peak (cached per z)."""
        assert self.finder is not None
        z = np.ascontiguousarray(z, dtype=np.float32)
        keys = [row.tobytes() for row in z]
        missing = [i for i, key in enumerate(keys) if key not in self._cache]
        if missing:
            for i, index in zip(missing, self.finder.peak_indices(z[missing]), strict=True):
                self._cache[keys[i]] = int(index)
        return np.array([self._cache[key] for key in keys], dtype=np.int64)

    def skill_observation(self, obs: np.ndarray) -> np.ndarray:
        """obs ⊕ z ``(N, O + Z)`` -> the skill's obs ⊕ goal ⊕ (goal - object) for each row."""
        assert self.finder is not None
        task, z = obs[:, : self.obs_size], obs[:, self.obs_size :]
        index = self.peak_indices(z)
        if self.discrete:
            encoded = np.eye(self.goal_size, dtype=np.float32)[self.finder.goals[index]]
        else:
            encoded = self.finder.goals[index].astype(np.float32)
        to_goal = self.finder.points[index] - task[:, self.object_xy]
        return np.concatenate([task, encoded, to_goal], axis=1).astype(np.float32)

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """The skill's action for each obs ⊕ z (one row or a batch)."""
        obs = np.asarray(obs, dtype=np.float32)
        skill_obs = self.skill_observation(np.atleast_2d(obs))
        action, _ = self.model.predict(
            skill_obs if obs.ndim > 1 else skill_obs[0], deterministic=deterministic
        )
        return np.asarray(action, dtype=np.float32)

    def goal_for(self, z: np.ndarray) -> Any:
        """The goal this policy commands for one user's z (a point or a zone index)."""
        assert self.finder is not None
        return self.finder.goals[self.peak_indices(np.atleast_2d(z))[0]]


def guided_policy(loaded: LoadedPolicy, reward_model: RewardModel | None) -> GuidedPolicy:
    """A loaded guided policy folder made ready to act: its reward model's peak finder on
    the task it records. ``reward_model`` None: the one its ``meta.json`` records."""
    meta = loaded.meta
    if reward_model is None:
        reward_model = load_reward_model(meta["reward_path"])
    env, _ = make_env(meta["env_id"], dict(meta.get("env_kwargs") or {}))
    try:
        finder = PeakFinder(reward_model, env)
        raw = env.unwrapped
        space = raw.goal_space
        discrete = isinstance(space, gym.spaces.Discrete)
        goal_size = int(space.n) if discrete else int(np.prod(space.shape))
        obs_size = int(env.observation_space.shape[0])
        object_xy = raw.observation_layout["object"]
    finally:
        env.close()
    expected = obs_size + goal_size + 2
    if loaded.model.observation_space.shape != (expected,):
        raise ValueError(
            f"{loaded.folder}: its skill sees {loaded.model.observation_space.shape}, not the "
            f"obs ⊕ goal ({expected}) of {meta['env_id']}: compose it again with "
            "`robopref train-policy --method guided`"
        )
    return GuidedPolicy(
        loaded.model, meta, loaded.folder, finder, obs_size, goal_size, discrete,
        slice(object_xy.start, object_xy.start + 2),
    )  # fmt: skip


def check_guided_inputs(skill_meta: dict[str, Any], reward_model: RewardModel, source: str) -> None:
    """Refuse a skill and a reward model that cannot be composed, naming the fix."""
    env, _ = make_env(
        str(reward_model.meta.get("env_id")), dict(reward_model.meta.get("env_kwargs") or {})
    )
    try:
        supported = PeakFinder.supports(reward_model, env)
    finally:
        env.close()
    if not supported:
        raise ValueError(
            f"--reward {source} cannot guide a skill: it needs a user latent (a VPL model), "
            "a reward on features, and a task whose goals are table points or zones "
            "(PlatePlacement, BlockSort)"
        )
    if skill_meta["kind"] != "oracle":
        raise ValueError(
            f"the skill must be a goal-conditioned policy (kind oracle, trained with "
            f"`robopref train-policy --oracle --population goal-space`), not kind "
            f"{skill_meta['kind']!r}"
        )
    mine = (reward_model.meta.get("env_id"), dict(reward_model.meta.get("env_kwargs") or {}))
    theirs = (skill_meta["env_id"], dict(skill_meta.get("env_kwargs") or {}))
    if mine != theirs:
        raise ValueError(
            f"the skill was trained on {theirs[0]} {theirs[1] or ''}, the reward model "
            f"{source} on {mine[0]} {mine[1] or ''}: train the skill on the reward model's task"
        )


def compose_guided(
    skill: str | Path, reward: str | Path, out: str | Path, name: str = "vpl-guided"
) -> dict[str, Any]:
    """Write the guided policy folder ``out``: the skill ``skill`` (a policy folder) commanded
    by the reward model ``reward``'s peak. Returns its ``meta.json``."""
    skill, out = Path(skill), Path(out)
    reward_model = load_reward_model(reward)
    skill_meta = read_meta(skill)
    check_guided_inputs(skill_meta, reward_model, str(reward))
    out.mkdir(parents=True, exist_ok=True)
    if skill.resolve() != out.resolve():
        shutil.copy2(skill / "model.zip", out / "model.zip")
    population = reward_model.meta.get("population")
    meta = {
        "format": FORMAT, "kind": "latent", "method": METHOD, "name": name,
        "algo": skill_meta["algo"], "env_id": skill_meta["env_id"],
        "env_kwargs": dict(skill_meta.get("env_kwargs") or {}),
        "set_down": skill_meta.get("set_down", False), "seed": skill_meta.get("seed"),
        "latent_dim": reward_model.latent_dim,
        "reward_path": reward_path_for(out, reward),
        "reward_fingerprint": reward_model.fingerprint(),
        "steps": skill_meta.get("steps"),
        "skill": {"path": reward_path_for(out, skill), "name": skill_meta["name"],
                  "population": (skill_meta.get("options") or {}).get("population"),
                  "history": skill_meta.get("history", [])},
        "options": {"population": population} if population else {},
        "trained_by": "robopref train-policy --method guided",
    }  # fmt: skip
    PolicyMeta(meta).write(out)
    load_policy(out, reward_model)  # what was written loads and acts
    return meta


def _kwargs_items(kwargs: dict[str, Any]) -> list[str]:
    return [f"{key}={value}" for key, value in kwargs.items()]


def train_guided_policy(options: Any, train_skill: Callable[..., Any]) -> dict[str, Any]:
    """``robopref train-policy --method guided`` (``options``: its ``TrainPolicyOptions``):
    the skill (``--skill``, or trained into ``OUT/skill`` by ``train_skill(options,
    **changes)``, the command's oracle with ``--population goal-space`` and ``--steps``),
    composed with ``--reward``'s peak into ``OUT``, then the held-out check of ``robopref
    evaluate`` on ``--eval-episodes`` new users of ``--population``. Returns the policy's
    ``meta.json``."""
    import time

    from robopref.users.population import GOAL_SPACE

    out = Path(options.out)
    if options.oracle:
        raise ValueError("--method guided commands a skill by --reward's peak: drop --oracle")
    if (out / "meta.json").exists() and not (options.overwrite or options.resume):
        raise ValueError(
            f"{out} already holds a policy: pass --overwrite to replace it, or another --out"
        )
    reward_model = load_reward_model(options.reward)
    env_id = str(reward_model.meta.get("env_id"))
    env_kwargs = dict(reward_model.meta.get("env_kwargs") or {})
    skill = Path(options.skill) if options.skill else out / "skill"
    if options.skill:
        check_guided_inputs(read_meta(skill), reward_model, options.reward)
    began = time.perf_counter()
    if not options.skill and (options.overwrite or not (skill / "model.zip").exists()):
        train_skill(
            options, env=env_id, env_kwargs=_kwargs_items(env_kwargs), population=GOAL_SPACE,
            out=str(skill), name="skill", eval_episodes=0,
            resume=(skill / "checkpoint.zip").exists() and not options.overwrite,
        )  # fmt: skip
    meta = compose_guided(skill, options.reward, out, options.name or "vpl-guided")
    meta["history"] = [guided_check(out, reward_model, options)] if options.eval_episodes else []
    meta["wall_s"] = round(time.perf_counter() - began, 1)
    PolicyMeta(meta).write(out)
    return meta


def guided_check(folder: Path, reward_model: RewardModel, options: Any) -> dict[str, Any]:
    """``robopref evaluate``'s protocol on ``options.eval_episodes`` new users of
    ``options.population`` (4 active queries, one episode each): the held-out row."""
    from robopref.policies.evaluation import evaluate_loaded, result_rows, summarize
    from robopref.policies.personalize import POOL_PAIRS, QUERIES, STRATEGY
    from robopref.users.population import resolve_population

    policy = load_policy(folder, reward_model)
    env, _ = make_env(policy.meta["env_id"], dict(policy.meta.get("env_kwargs") or {}))
    population = resolve_population(options.population, env)
    env.close()
    records = evaluate_loaded(
        [(policy, reward_model)], reward_model, population, options.eval_episodes, QUERIES,
        STRATEGY, 1, POOL_PAIRS, options.seed,
    )  # fmt: skip
    return summarize(result_rows(records, [policy.name], has_btl=False))
