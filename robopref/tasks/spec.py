"""What robopref knows about one task, in one record: :class:`TaskSpec`.

Everything outside a task's own module asks its spec (:func:`robopref.tasks.task_spec`)
instead of keying tables by env-id strings: the synthetic users' reward
(:class:`TaskReward`), the named populations, the goal space without compiling MuJoCo
(:class:`TaskGoals`), the success radius and goal error of the ceiling and the evaluation,
the demo's interface defaults, the one-part proposals of the questions, the loop's proposal
aims and the scripted expert. docs/guide/add-a-task.md walks through writing one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

#: ``(features, goal, norm_weight, columns) -> raw per-step reward``
RewardFn = Callable[[np.ndarray, np.ndarray, Any, dict[str, int]], np.ndarray]
#: ``(features, goal, norm_weight, columns, horizon) -> raw optimal value`` (regret labels).
ValueFn = Callable[[np.ndarray, np.ndarray, Any, dict[str, int], int], np.ndarray]
#: ``(task, point, hold_height) -> obs -> action``: the scripted expert carrying the task's
#: object(s) to ``point`` (see :func:`robopref.tasks.scripted_policy`)
ExpertFn = Callable[[Any, np.ndarray, "float | None"], Callable[[np.ndarray], np.ndarray]]
#: ``(ends, rng, goals) -> (proposals (U, C, ...), the C changes' names)``
ProposalsFn = Callable[[np.ndarray, np.random.Generator, "TaskGoals"], tuple[np.ndarray, list[str]]]
#: ``(points, rng, proposals, offset_min, offset_max) -> (aims, hold heights)``
AimsFn = Callable[
    [np.ndarray, np.random.Generator, int, float, float], tuple[np.ndarray, np.ndarray]
]
#: a named population in the file format (robopref.users.population), ``None`` where it does not
#: apply, or a function of the task's goals that builds it (BlockSort: one mode per zone)
PopulationEntry = dict[str, Any] | Callable[["TaskGoals"], dict[str, Any]] | None


@dataclass(frozen=True)
class TaskReward:
    """One task's user reward: the function, the goal size, and the normalisation.

    ``offset`` and ``scale`` are the mean and standard deviation of the raw per-step reward
    over the default behaviour mix (robopref.users.synthetic's module doc says how they are
    measured);
    ``required`` names the features the function reads; ``value`` is the optimal value
    regret labels need.
    """

    fn: RewardFn
    goal_dim: int
    offset: float
    scale: float
    required: tuple[str, ...]
    value: ValueFn


@dataclass(frozen=True)
class TaskGoals:
    """A task's goals as its env would have them, without compiling its MuJoCo model:
    what populations are resolved and checked against."""

    env_id: str
    feature_names: tuple[str, ...]
    goal_space: gym.Space
    #: ``goal -> the validated goal``, raising ``ValueError`` naming the fix (the env's own)
    validate_goal: Callable[[Any], Any]

    @classmethod
    def of_env(cls, env: gym.Env, env_id: str) -> TaskGoals:
        """The goals of an env already built (its unwrapped task's)."""
        raw = env.unwrapped
        return cls(env_id, tuple(raw.feature_names), raw.goal_space, raw.validate_goal)


def goal_distance(estimate: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """The plain distance between goal vectors (m, broadcast over their leading axes)."""
    return np.linalg.norm(np.asarray(goals) - estimate, axis=-1)


def goal_itself(task: Any, goal: Any) -> np.ndarray:
    """A goal that is a table point already (the plate's)."""
    return np.asarray(goal, dtype=np.float64)


def distance_caption(task: Any, goal: Any, target: str = "goal") -> str:
    """``"plate 3.2 cm from goal"``: the object's distance from the goal's point."""
    distance = 100 * float(np.hypot(*(task.active_xy() - task.goal_xy(goal))))
    return f"{task.OBJECT.name} {distance:.1f} cm from {target}"


@dataclass(frozen=True)
class TaskSpec:
    """One task: its env and everything robopref's pipeline needs to know about it."""

    #: the Gymnasium id, e.g. ``"robopref/PlatePlacement-v0"``
    env_id: str
    #: ``"module:Class"`` of the env, registered with Gymnasium
    entry_point: str
    max_episode_steps: int
    #: what the task's synthetic users judge by
    reward: TaskReward
    #: ``**env_kwargs -> TaskGoals`` without MuJoCo (kwargs that do not shape goals ignored)
    goals: Callable[..., TaskGoals]
    #: population name -> :data:`PopulationEntry`
    populations: Mapping[str, PopulationEntry]
    #: ``(task, goal) -> obs -> action``-maker: see :data:`ExpertFn`
    expert: ExpertFn
    #: the table point (or arrangement) a validated goal puts the object(s) at
    goal_point: Callable[[Any, Any], np.ndarray] = goal_itself
    #: within this goal error (m) a served goal counts as reached; ``None``: the task's goals
    #: are not table points, so it has no success ceiling (BlockSort's zones)
    success_radius: float | None = None
    #: ``(estimate, goals) -> error (m)`` behind ``success_radius``
    goal_error: Callable[[np.ndarray, np.ndarray], np.ndarray] = goal_distance
    #: the demo's recipe for this task: option name -> value where left at its default
    demo_defaults: Mapping[str, object] = field(default_factory=dict)
    #: end states with one part changed, for one-part questions (robopref.data.proposals)
    one_part_proposals: ProposalsFn | None = None
    #: the loop's proposals around a policy's end states; ``None``: one object's table point
    #: (set down at it, set down offset from it, held low at it: robopref.loop.asking)
    proposal_aims: AimsFn | None = None
    #: ``(task, goal) -> text``: how far the object is from its goal, under a rendered frame
    caption: Callable[[Any, Any], str] = distance_caption
