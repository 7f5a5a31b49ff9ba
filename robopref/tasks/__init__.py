"""robopref's tasks, one :class:`TaskSpec` each, registered with Gymnasium on import.

``TASKS`` maps every env id to its spec; :func:`task_spec` finds one (with an error naming
the known ids). Every module of this package that defines a ``SPEC`` is a task, registered
on import (:func:`register_tasks_of`): adding one touches only its module here and its env's
file (docs/guide/add-a-task.md); code outside robopref calls :func:`register_task`. The rest
of robopref asks a task's spec what it needs, never a table keyed by env ids.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np

from robopref.tasks.spec import TaskGoals, TaskReward, TaskSpec

#: env id -> its spec, in registration order
TASKS: dict[str, TaskSpec] = {}
Policy = Any  # obs -> action


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add ``spec`` to :data:`TASKS` and its env id to Gymnasium's registry (idempotent for
    the same spec; another spec under a taken id is refused)."""
    known = TASKS.get(spec.env_id)
    if known is not None and known is not spec:
        raise ValueError(f"a task {spec.env_id!r} is registered already: give yours another id")
    TASKS[spec.env_id] = spec
    if spec.env_id not in gym.registry:
        gym.register(
            spec.env_id, entry_point=spec.entry_point, max_episode_steps=spec.max_episode_steps
        )
    return spec


def task_spec(env_id: str) -> TaskSpec:
    """The spec of the task ``env_id``, or a ``ValueError`` naming the known ones."""
    try:
        return TASKS[env_id]
    except KeyError:
        raise ValueError(
            f"{env_id!r} is not a robopref task: use one of {sorted(TASKS)} (or register "
            "yours with robopref.tasks.register_task)"
        ) from None


def env_id_of(env: gym.Env) -> str:
    """The registered id of ``env`` (also for a raw env built without ``gym.make``)."""
    raw = env.unwrapped
    if raw.spec is not None:
        return raw.spec.id
    for spec in TASKS.values():
        if spec.entry_point.rsplit(":", 1)[1] == type(raw).__name__:
            return spec.env_id
    raise ValueError(f"{type(raw).__name__} is not a registered robopref env: use gym.make(id)")


def task_goals(env_id: str, **env_kwargs: Any) -> TaskGoals:
    """The goals of ``env_id`` made with ``env_kwargs``, without compiling its model."""
    return task_spec(env_id).goals(**env_kwargs)


def goals_of(env: gym.Env) -> TaskGoals:
    """The goals of an env already made (what a population is resolved against); an env of
    no robopref task is refused, naming the tasks."""
    env_id = task_spec(env_id_of(env)).env_id
    return TaskGoals.of_env(env, env_id)


def scripted_policy(
    env: gym.Env,
    goal: Any,
    noise: float = 0.0,
    seed: int | np.random.Generator | None = None,
    aim: np.ndarray | None = None,
    hold_height: float | None = None,
) -> Policy:
    """An ``obs -> action`` expert for ``env``'s task aimed at ``goal`` (its spec's ``expert``).

    ``noise`` is the standard deviation of Gaussian noise added to every action (then
    clipped to [-1, 1]), drawn from ``seed``; 0 gives the deterministic expert. ``aim``, a
    table point (x, y), is where the expert puts the object down instead of the goal's own
    point (the plate's goal, the zone's centre): data that misses the goal on purpose.
    ``hold_height`` (m, above the table) makes it lower the object there and hold it at that
    height instead of setting it down: "held low here" beside "set down here".
    TableSetting's expert aims at an arrangement (``aim`` is one too) and has no
    ``hold_height``.
    """
    task = env.unwrapped
    if isinstance(noise, bool) or not isinstance(noise, int | float | np.number):
        raise ValueError(f"noise={noise!r} must be a number >= 0 (the action noise's std)")
    if not math.isfinite(noise) or noise < 0:
        raise ValueError(
            f"noise={noise} must be a finite number >= 0 (the std of the Gaussian action "
            "noise; 0 gives the deterministic expert)"
        )
    try:
        spec = task_spec(env_id_of(env))
    except ValueError:
        raise TypeError(f"no scripted expert for {type(task).__name__}") from None
    goal = task.validate_goal(goal)
    rng = np.random.default_rng(seed)
    point = spec.goal_point(task, goal) if aim is None else np.asarray(aim, dtype=np.float64)
    expert = spec.expert(task, point, hold_height)
    size = int(np.prod(task.action_space.shape))

    def policy(obs: np.ndarray) -> np.ndarray:
        action = expert(np.asarray(obs))
        if noise > 0.0:
            noisy = action + rng.normal(0.0, noise, size=size)
            action = np.clip(noisy, -1.0, 1.0).astype(np.float32)
        return action

    return policy


def one_part_proposals(
    env_id: str, ends: np.ndarray, rng: np.random.Generator, **env_kwargs: Any
) -> tuple[np.ndarray, list[str]]:
    """End states ``ends`` of ``env_id`` with one part changed: ``(proposals (U, C, ...),
    the C changes' names)`` (robopref.data.proposals)."""
    spec = task_spec(env_id)
    if spec.one_part_proposals is None:
        raise ValueError(f"{env_id} has no one-part proposals: its spec names none")
    return spec.one_part_proposals(ends, rng, spec.goals(**env_kwargs))


def register_tasks_of(package: ModuleType) -> list[TaskSpec]:
    """Import every module of ``package`` and register each one's ``SPEC`` (in the order of
    :data:`FIRST_TASKS`, then by module name). Returns the specs registered."""
    names = sorted(
        (info.name for info in pkgutil.iter_modules(package.__path__)),
        key=lambda name: (
            FIRST_TASKS.index(name) if name in FIRST_TASKS else len(FIRST_TASKS),
            name,
        ),
    )
    found = []
    for name in names:
        spec = getattr(importlib.import_module(f"{package.__name__}.{name}"), "SPEC", None)
        if isinstance(spec, TaskSpec):
            found.append(register_task(spec))
    return found


#: the modules registered first, in this order: the default task leads every listing
FIRST_TASKS = ("plate_placement", "block_sort", "table_setting")

register_tasks_of(importlib.import_module(__name__))

__all__ = [
    "TASKS",
    "TaskGoals",
    "TaskReward",
    "TaskSpec",
    "env_id_of",
    "goals_of",
    "one_part_proposals",
    "register_task",
    "scripted_policy",
    "task_goals",
    "task_spec",
]
