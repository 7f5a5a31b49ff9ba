"""Populations: distributions over synthetic users of one task, named or read from a file.

Named populations (each task's spec lists its own: ``TaskSpec.populations``):

* ``two-modes``: half the users want the plate at (0.20, 0.15), half at (0.20, -0.15) (top
  right and bottom right of the table as the robot sees it); for BlockSort zone 0 vs zone 1.
* ``modes``: several goals with weights (the plate: four goals; BlockSort: every zone).
* ``continuous``: goals uniform over the plate's whole goal space (not for BlockSort,
  whose goals are zone indices).
* ``norms-and-goals``: a shared norm weighted three times as much (``norm_weight: 3``) plus
  a personal goal: uniform over the goal space (the plate), or any zone (BlockSort).
* ``arrangements`` (TableSetting): 8 arrangement types, every combination of the cup left or
  right of the plate, the utensil left or right of it, and the plate near the table's far
  edge or further in (``ARRANGEMENT_TYPES`` in robopref.tasks.table_setting; "left" is +y,
  the robot's left); also offered as ``modes``, and its mirror pair (everything left at the
  edge, everything right at the edge) as ``two-modes``.
* ``arrangements-continuous`` (TableSetting): each user's plate spot and offsets drawn
  uniformly from ``CONTINUOUS_ARRANGEMENTS`` there (the cup behind the plate and the utensil
  beside it, each on either side by any amount, nothing overlapping); also ``continuous``,
  and with ``norm_weight: 3`` ``norms-and-goals``.

A continuous box over a goal space with a ``feasible`` filter (TableSetting's arrangements)
is drawn from by rejection: uniform over its feasible part.

A population file (YAML or JSON) has exactly this schema::

    modes:                       # or  continuous: {low: [x, y], high: [x, y]}
      - {goal: [0.20, 0.15], weight: 0.5}   # a zone index for BlockSort: {goal: 0, ...}
      - {goal: [0.20, -0.15], weight: 0.5}  # weights may be omitted together: equal
    norm_weight: 1.0             # optional: how much the shared norms count (default 1)
    beta: 20.0                   # optional noise keys (robopref.users.synthetic.LabelModel):
    gamma: 1.0                   #   beta, gamma, mistake, skip_threshold, equal_threshold,
                                 #   soft, position_bias, both_orders
    label: partial-return        # optional: or regret (robopref.users.optimal_value)

Numbers are read as YAML 1.2 reads them, so scientific notation (``1e3``, ``1e-300``) is a
number, not a string. Unknown keys, goals outside the env's ``goal_space``, weights that do
not sum to one, NaN, infinities (only ``beta: .inf`` is meaningful: a perfectly rational
user), numbers beyond :data:`LARGEST` in size (they overflow the users' rewards) and other
bad values are refused with a ``ValueError`` naming the file, the line and the fix; so is
a file that is not YAML/JSON text (an image, a folder).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import yaml

from robopref.tasks import TASKS, goals_of, task_spec
from robopref.tasks.spec import TaskGoals
from robopref.users.synthetic import DEFAULT_LABEL_MODEL, NOISE_KEYS, LabelModel, SyntheticUser

#: what a population is resolved for: an env, or its task's goals (no MuJoCo model compiled)
Task = gym.Env | TaskGoals


def _goals(env: Task) -> TaskGoals:
    return env if isinstance(env, TaskGoals) else goals_of(env)


#: goals drawn uniformly from the task's whole goal space (every zone alike): what a
#: goal-conditioned skill trains on, reading nobody's goal (not a population of users)
GOAL_SPACE = "goal-space"


def population_names() -> tuple[str, ...]:
    """Every population name a registered task offers, and :data:`GOAL_SPACE`."""
    names = {name: None for spec in TASKS.values() for name in spec.populations}
    return (GOAL_SPACE, *names)


#: the names of the built-in tasks' populations (:func:`population_names`: every task's)
POPULATION_NAMES: tuple[str, ...] = population_names()
#: attempts per goal of a rejection draw before the box is called (nearly) infeasible
_REJECTION_TRIES = 1000
_BOOL_KEYS = {"soft", "both_orders"}
#: the largest size of a number a population file may hold (beyond it the users' rewards
#: overflow: ``norm_weight: 1.0e+308`` makes every return infinite)
LARGEST = 1e6
#: the only keys whose infinity means something: ``beta: .inf`` is a perfectly rational user
_INFINITE_OK = {"beta"}


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats: ``1e3`` and ``1e-300`` are numbers.

    YAML 1.1 (PyYAML) needs a dot and a signed exponent (``1.0e+3``), so it reads ``1e3`` as
    the string ``'1e3'``; YAML 1.2, JSON and every other reader take it for a float.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


@dataclass(frozen=True)
class Population:
    """A distribution over users: weighted ``modes`` (goals) or a ``continuous`` box.

    ``modes`` is a tuple of ``(goal, weight)`` (goal a float vector, weights summing to
    one); otherwise ``low``/``high`` bound uniform goals. Every user shares
    ``label_model`` and ``norm_weight``.
    """

    env_id: str
    feature_names: tuple[str, ...]
    name: str
    modes: tuple[tuple[np.ndarray, float], ...] = ()
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    label_model: LabelModel = DEFAULT_LABEL_MODEL
    norm_weight: float = 1.0
    spec: dict[str, Any] = field(default_factory=dict)
    #: ``goals (N, G) -> (N,) bool``: which goals of the continuous box users may have
    feasible: Callable[[np.ndarray], np.ndarray] | None = None

    def __post_init__(self) -> None:
        if bool(self.modes) == (self.low is not None):
            raise ValueError("a Population has either modes or a continuous low/high box")
        weights = [w for _, w in self.modes]
        if not all(math.isfinite(w) and w > 0 for w in weights):
            raise ValueError(f"mode weights {weights} must be positive finite numbers")
        # written so that a NaN sum fails too (NaN compares False with everything)
        if self.modes and not abs(sum(weights) - 1.0) <= 1e-6:
            raise ValueError(f"mode weights {weights} must sum to one")
        if not (math.isfinite(self.norm_weight) and 0.0 <= self.norm_weight <= LARGEST):
            raise ValueError(f"norm_weight={self.norm_weight} must be a number in [0, {LARGEST:g}]")
        goals = [g for g, _ in self.modes] + [b for b in (self.low, self.high) if b is not None]
        if not all(np.all(np.isfinite(g)) for g in goals):
            raise ValueError("a Population's goals (or its low/high box) must be finite numbers")

    @property
    def n_groups(self) -> int:
        """Number of modes (0 for a continuous population)."""
        return len(self.modes)

    def sample_goals(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` goals (n, G) and their group (mode index, -1 for continuous).

        Modes are stratified: each mode gets ``floor(n * weight)`` users, the remaining
        slots go to the largest remainders, and the order is shuffled, so group sizes match
        the weights as closely as ``n`` allows (less variance between seeds).
        """
        if self.modes:
            weights = np.array([w for _, w in self.modes])
            counts = np.floor(n * weights).astype(np.int64)
            remainder = n * weights - counts
            counts[np.argsort(-remainder, kind="stable")[: n - counts.sum()]] += 1
            group = rng.permutation(np.repeat(np.arange(len(self.modes)), counts))
            goals = np.stack([g for g, _ in self.modes])[group]
            return goals.reshape(n, np.size(self.modes[0][0])), group  # n = 0 included
        assert self.low is not None and self.high is not None
        goals = rng.uniform(self.low, self.high, size=(n, len(self.low)))
        if self.feasible is not None:
            for _ in range(_REJECTION_TRIES):
                bad = np.flatnonzero(~self.feasible(goals))
                if not len(bad):
                    break
                goals[bad] = rng.uniform(self.low, self.high, size=(len(bad), len(self.low)))
            else:
                raise ValueError(
                    f"population {self.name}: its continuous box holds (almost) no feasible "
                    "goal: widen low/high (see the env's goal_space)"
                )
        return goals, np.full(n, -1)

    def sample_users(self, n: int, rng: np.random.Generator) -> list[SyntheticUser]:
        """``n`` users drawn from the population, each with its group index."""
        goals, groups = self.sample_goals(n, rng)
        return [
            SyntheticUser(
                self.env_id, self.feature_names, g, self.label_model, self.norm_weight, int(k)
            )
            for g, k in zip(goals, groups, strict=True)
        ]

    def representatives(self, rng: np.random.Generator, n_samples: int = 32) -> np.ndarray:
        """Goals that stand for the population: each mode's, or ``n_samples`` drawn ones."""
        if self.modes:
            return np.stack([g for g, _ in self.modes])
        return self.sample_goals(n_samples, rng)[0]

    def contested(
        self,
        feat_a: np.ndarray,
        feat_b: np.ndarray,
        rng: np.random.Generator | None = None,
        n_samples: int = 32,
    ) -> np.ndarray:
        """(P,) bool: some users of the population prefer A and others B, without noise.

        For modes, one user per mode decides; for a continuous population ``n_samples``
        goals drawn with ``rng`` (default seed 0) do.
        """
        goals = self.representatives(rng or np.random.default_rng(0), n_samples)
        prefers_a = np.zeros(len(feat_a), dtype=bool)
        prefers_b = np.zeros(len(feat_a), dtype=bool)
        for goal in goals:
            user = SyntheticUser(
                self.env_id, self.feature_names, goal, self.label_model, self.norm_weight
            )
            label = user.true_label(feat_a, feat_b)
            prefers_a |= label == 1.0
            prefers_b |= label == 0.0
        return prefers_a & prefers_b


class _Source:
    """Error messages that name a file (or a population name) and a line."""

    def __init__(self, where: str) -> None:
        self.where = where

    def error(self, node: yaml.Node | None, problem: str, fix: str) -> ValueError:
        line = f", line {node.start_mark.line + 1}" if node is not None else ""
        return ValueError(f"population {self.where}{line}: {problem}; fix: {fix}")


def _value(node: yaml.Node) -> Any:
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def _mapping(source: _Source, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, Any]]:
    if not isinstance(node, yaml.MappingNode):
        raise source.error(
            node, f"{what} must be a mapping of keys to values", f"write {what} as key: value lines"
        )
    out: dict[str, tuple[yaml.Node, Any]] = {}
    for key_node, value_node in node.value:
        key = str(_value(key_node))
        if key in out:
            raise source.error(key_node, f"key {key!r} appears twice in {what}", "keep one of them")
        out[key] = (key_node, value_node)
    return out


def _check_keys(source: _Source, items: dict, allowed: Sequence[str], what: str) -> None:
    for key, (key_node, _) in items.items():
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise source.error(
                key_node, f"unknown key {key!r} in {what}", f"{hint}valid keys are {list(allowed)}"
            )


def _number(source: _Source, node: yaml.Node, key: str) -> float:
    """A finite number of sane size (``beta`` may also be ``.inf``), or a ``ValueError``."""
    value = _value(node)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise source.error(node, f"{key} is {value!r}, not a number", f"give {key} a number")
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        number = math.inf if value > 0 else -math.inf
    if math.isnan(number):
        raise source.error(
            node, f"{key} is NaN (.nan), not a number", f"give {key} a finite number"
        )
    if math.isinf(number) and not (key in _INFINITE_OK and number > 0):
        raise source.error(
            node,
            f"{key} is {_shown(node)}, not a finite number",
            f"give {key} a finite number (of size at most {LARGEST:g})",
        )
    if math.isfinite(number) and abs(number) > LARGEST and key not in _INFINITE_OK:
        raise source.error(
            node,
            f"{key} is {_shown(node)}, too large: the users' rewards would overflow",
            f"give {key} a number of size at most {LARGEST:g}",
        )
    return number


def _shown(node: yaml.Node) -> str:
    """A scalar as the file writes it, shortened when long."""
    text = str(node.value)
    return text if len(text) <= 24 else f"{text[:12]}...({len(text)} characters)"


def _finite_numbers(source: _Source, node: yaml.Node, what: str) -> None:
    """Refuse NaN, infinities and overflowing numbers anywhere inside ``node`` (a goal)."""
    if isinstance(node, yaml.SequenceNode | yaml.MappingNode):
        children = node.value if isinstance(node, yaml.SequenceNode) else [v for _, v in node.value]
        for child in children:
            _finite_numbers(source, child, what)
        return
    value = _value(node)
    if isinstance(value, float) and not (math.isfinite(value) and abs(value) <= LARGEST):
        raise source.error(
            node,
            f"{what} holds {_shown(node)}, not a finite number",
            f"give {what} finite numbers inside the env's goal_space",
        )


def _goal(source: _Source, node: yaml.Node, goals: TaskGoals, what: str) -> np.ndarray:
    _finite_numbers(source, node, what)
    value = _value(node)
    try:
        goal = goals.validate_goal(value)
    except ValueError as error:
        raise source.error(
            node,
            f"{what} {value!r} is not in the env's goal_space ({error})",
            f"use a goal inside {goals.goal_space}",
        ) from None
    return np.atleast_1d(np.asarray(goal, dtype=np.float64))


def _modes(source: _Source, key_node: yaml.Node, node: yaml.Node, goals: TaskGoals) -> tuple:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise source.error(
            node, "modes must be a non-empty list", "write - {goal: ..., weight: ...} items"
        )
    found, weights = [], []
    for item in node.value:
        entry = _mapping(source, item, "a mode")
        _check_keys(source, entry, ("goal", "weight"), "a mode")
        if "goal" not in entry:
            raise source.error(
                item, "a mode has no goal", "add goal: [x, y] (a zone index for BlockSort)"
            )
        found.append(_goal(source, entry["goal"][1], goals, "goal"))
        if "weight" in entry:
            weight = _number(source, entry["weight"][1], "weight")
            if weight <= 0:
                raise source.error(
                    entry["weight"][1],
                    f"weight {weight} is not positive",
                    "use a weight > 0 or drop the mode",
                )
            weights.append(weight)
    if weights and len(weights) != len(found):
        raise source.error(
            node,
            "some modes have a weight and some do not",
            "give every mode a weight, or none (equal weights)",
        )
    if not weights:
        weights = [1.0 / len(found)] * len(found)
    if abs(sum(weights) - 1.0) > 1e-6:
        raise source.error(
            key_node,
            f"mode weights {weights} sum to {sum(weights):.6g}, not 1",
            "make the weights sum to one",
        )
    return tuple(zip(found, weights, strict=True))


def _bound(source: _Source, node: yaml.Node, goals: TaskGoals, what: str) -> np.ndarray:
    """A corner of a continuous box: inside the goal space's box (a corner need not be a
    feasible goal itself: TableSetting's overlap; the draws are filtered)."""
    space = goals.goal_space
    if getattr(space, "feasible", None) is None:
        return _goal(source, node, goals, what)
    _finite_numbers(source, node, what)
    value = _value(node)
    try:
        corner = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        corner = np.full(1, np.nan)
    inside = corner.shape == space.shape and bool(
        np.all(corner >= space.low - 1e-9) and np.all(corner <= space.high + 1e-9)
    )
    if not inside:
        raise source.error(
            node,
            f"{what} {value!r} is not a corner inside the goal box",
            f"use {space.shape[0]} numbers between {space.low.tolist()} and {space.high.tolist()}",
        )
    return corner


def _region(source: _Source, node: yaml.Node, goals: TaskGoals) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(goals.goal_space, gym.spaces.Box):
        raise source.error(
            node,
            f"continuous goals need a Box goal_space, this env's is {goals.goal_space}",
            "use modes: with one entry per zone",
        )
    box = _mapping(source, node, "continuous")
    _check_keys(source, box, ("low", "high"), "continuous")
    missing = [k for k in ("low", "high") if k not in box]
    if missing:
        raise source.error(
            node, f"continuous lacks {missing}", "write continuous: {low: [x, y], high: [x, y]}"
        )
    low = _bound(source, box["low"][1], goals, "low")
    high = _bound(source, box["high"][1], goals, "high")
    if np.any(low > high):
        raise source.error(
            box["high"][1],
            f"high {high.tolist()} is below low {low.tolist()}",
            "make every high >= low",
        )
    return low, high


def parse_population(root: yaml.Node | None, env: Task, where: str) -> Population:
    """Build a population from a composed YAML document (see the module doc for the schema)."""
    goals = _goals(env)
    source = _Source(where)
    if root is None:
        raise source.error(
            None, "the file is empty", "write modes: or continuous: (see the README)"
        )
    top = _mapping(source, root, "the population")
    _check_keys(source, top, ("modes", "continuous", "norm_weight", *NOISE_KEYS), "the population")
    if ("modes" in top) == ("continuous" in top):
        keys = [top[k][0] for k in ("modes", "continuous") if k in top]
        node = max(keys, key=lambda n: n.start_mark.line) if keys else root
        raise source.error(
            node,
            "a population needs exactly one of modes: and continuous:",
            "keep one (modes: a list of {goal, weight}; continuous: {low, high})",
        )
    noise: dict[str, Any] = {}
    for key in NOISE_KEYS:
        if key not in top:
            continue
        node = top[key][1]
        value = _value(node)
        if key in _BOOL_KEYS and not isinstance(value, bool):
            raise source.error(
                node, f"{key} is {value!r}, not true/false", f"write {key}: true or false"
            )
        if key == "label" and not isinstance(value, str):
            raise source.error(
                node, f"label is {value!r}, not a name", "write label: partial-return or regret"
            )
        if key not in (*_BOOL_KEYS, "label") and not (key == "skip_threshold" and value is None):
            value = _number(source, node, key)
        try:
            LabelModel(**{key: value})
        except ValueError as error:
            raise source.error(node, str(error).split(";")[0], f"change {key}") from None
        noise[key] = value
    norm_weight = (
        _number(source, top["norm_weight"][1], "norm_weight") if "norm_weight" in top else 1.0
    )
    if norm_weight < 0:
        raise source.error(top["norm_weight"][1], "norm_weight is negative", "use norm_weight >= 0")
    common = {
        "env_id": goals.env_id,
        "feature_names": tuple(goals.feature_names),
        "name": where,
        "label_model": replace(DEFAULT_LABEL_MODEL, **noise),
        "norm_weight": norm_weight,
        "spec": _value(root),
    }
    if "modes" in top:
        return Population(modes=_modes(source, *top["modes"], goals), **common)
    low, high = _region(source, top["continuous"][1], goals)
    feasible = getattr(goals.goal_space, "feasible", None)
    return Population(low=low, high=high, feasible=feasible, **common)


def population_from_dict(data: dict[str, Any], env: Task, name: str = "<dict>") -> Population:
    """A population from a Python dict in the file schema (validated the same way)."""
    return parse_population(yaml.compose(yaml.safe_dump(data), Loader=_Loader), env, name)


def load_population(path: str | Path, env: Task) -> Population:
    """Read a YAML or JSON population file (see the module doc) for ``env``."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(
            f"population {path} is a folder, not a file: pass a population YAML/JSON file "
            f"(or a name: {', '.join(POPULATION_NAMES)})"
        )
    if not path.is_file():
        raise FileNotFoundError(f"population file {path} does not exist: check the path")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        text = "\0"  # not UTF-8: binary, refused below
    if "\0" in text:
        raise ValueError(
            f"population {path} is not a YAML text file (it holds binary data: an image? an "
            "archive?): pass a population YAML/JSON file (see the README for the schema) or "
            f"a name ({', '.join(POPULATION_NAMES)})"
        )
    if path.suffix.lower() == ".json":
        text = text.replace("\t", " ")  # JSON allows tabs as whitespace; YAML does not
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ValueError(
            f"population {path}{line}: not valid YAML/JSON ({problem}); fix: correct the syntax"
        ) from None
    return parse_population(root, env, str(path))


def goal_space_population(space: gym.Space) -> dict[str, Any]:
    """The :data:`GOAL_SPACE` population of a task, in the file format: a continuous box
    over a ``Box`` goal space, every goal of a ``Discrete`` one with equal weight."""
    if isinstance(space, gym.spaces.Discrete):
        return {"modes": [{"goal": i} for i in range(int(space.n))]}
    return {"continuous": {"low": space.low.tolist(), "high": space.high.tolist()}}


def named_population(name: str, env: Task) -> Population:
    """The named population ``name`` (one of :func:`population_names`) for ``env``'s task."""
    goals = _goals(env)
    offered = task_spec(goals.env_id).populations
    if name not in offered and name != GOAL_SPACE:
        raise ValueError(
            f"no population {name!r} for {goals.env_id!r}: use one of "
            f"{list(population_names())} or a file"
        )
    entry = goal_space_population(goals.goal_space) if name == GOAL_SPACE else offered[name]
    data = entry(goals) if callable(entry) else entry
    if data is None:
        raise ValueError(
            f"population {name!r} does not apply to {goals.env_id} (its goals are "
            f"{goals.goal_space}): use modes or two-modes"
        )
    return population_from_dict(data, goals, name)


def resolve_population(spec: str, env: Task) -> Population:
    """``spec`` is a population name (:func:`population_names`) or a YAML/JSON file path,
    for the task of ``env``: an env, or its goals without MuJoCo
    (:func:`robopref.tasks.task_goals`)."""
    if spec in population_names():
        return named_population(spec, env)
    if not Path(spec).exists():
        raise FileNotFoundError(
            f"population {spec!r} is neither a name ({', '.join(population_names())}) nor an "
            "existing file: check the spelling or the path"
        )
    return load_population(spec, env)
