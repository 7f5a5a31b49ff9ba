"""A sweep file and the cells it expands to: task x population x method x seed x options.

The file (YAML) has exactly this schema::

    name: plate-small                 # optional: default the file's stem
    tasks:                            # env ids, or mappings (TASK_KEYS):
      - robopref/PlatePlacement-v0
      - {id: robopref/BlockSort-v0, env_kwargs: [n_zones=3],   # KEY=VALUE for gym.make
         populations: [FILE.yaml],    # optional: this task's own populations
         options: {segment: 4}}       # optional: loop options of its cells (over options)
    populations: [two-modes, modes]   # names or population files (every task without its own)
    methods: [vpl, btl, oracle]       # the loop's (loop.run.METHODS), oracle, cpl, cpl-plain
    seeds: [0, 1]
    options: {answers: 48}            # optional: robopref loop options for every cell
    grid: {decoder: [bilinear, mlp]}  # optional: loop options swept as more axes
    evaluate: {users: 20, queries: 4, episodes: 2, seed: 1000}   # optional
    cpl: {steps: 6000, conservative: 0.5}   # optional: the cpl cells' CPLSettings/CPLTraining
    resources: {cpus: 1, gpus: 0}     # optional: what each cell asks Ray for

Every key, every option name and every value is checked before anything runs (before Ray
starts): unknown keys and options are refused with the file and the choices; values of the
wrong type, populations that do not resolve, and every cell's options as ``robopref loop``
and ``robopref evaluate`` check them are refused with the file, the key and the fix. ``name``
is a folder name (no ``/``): ``--out`` says where the sweep goes. Options the sweep sets
itself (``env``, ``population``, ``methods``, ``seed``, ``out``, ``resume``, ``overwrite``,
``progress``, ``workers``) may not be given.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robopref.loop.run import METHODS as LOOP_METHODS
from robopref.loop.run import LoopOptions, check_loop_values

#: cpl / cpl-plain: the VPL loop's answers, then train-policy --method cpl (z from the loop's
#: VPL model, or none), no reward and no RL for the policy (robopref.sweep.cell)
CPL_METHODS = ("cpl", "cpl-plain")
METHODS = (*LOOP_METHODS, "oracle", *CPL_METHODS)
#: what a task entry may hold (a mapping; a plain string is its id)
TASK_KEYS = ("id", "env_kwargs", "populations", "options")
TOP_KEYS = ("name", "tasks", "populations", "methods", "seeds", "options", "grid", "evaluate",
            "resources", "cpl")  # fmt: skip
#: loop options a cell sets itself
SET_BY_SWEEP = ("env", "env_kwargs", "population", "methods", "seed", "out", "resume",
                "overwrite", "progress", "workers")  # fmt: skip
LOOP_OPTION_NAMES = tuple(f.name for f in dataclasses.fields(LoopOptions))
#: ``cpl`` keys of sweep files and cell.json written before CPLTraining's fields took
#: train-policy's option names (``--cpl-lr``) -> today's keys
OLD_CPL_KEYS = {"learning_rate": "lr"}
LOOP_TYPES = typing.get_type_hints(LoopOptions)
#: a sweep's name: one plain folder name (it names runs/sweeps/<name>)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class EvaluateSettings:
    """How every cell's policy is evaluated: new users, active queries, episodes, seed.

    Cells of one sweep seed are evaluated on the same new users and episodes (seed
    ``seed + cell seed``), so the table can pair a method's episodes with BTL's (win rate).
    """

    users: int = 20
    queries: int = 4
    episodes: int = 2
    seed: int = 1000


@dataclass(frozen=True)
class Resources:
    """What one cell asks Ray for (a GPU fraction is honoured where Ray sees a GPU)."""

    cpus: float = 1.0
    gpus: float = 0.0


@dataclass(frozen=True)
class Cell:
    """One full pipeline run of the sweep."""

    task: str
    env_kwargs: tuple[str, ...]
    population: str
    method: str
    seed: int
    options: tuple[tuple[str, Any], ...]
    grid: tuple[tuple[str, Any], ...]
    evaluate: EvaluateSettings
    resources: Resources
    #: CPL settings of a cpl / cpl-plain cell (fields of CPLSettings and CPLTraining)
    cpl: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        """A folder name: task, population, method, seed and the swept options."""
        task = self.task.split("/")[-1].removesuffix("-v0")
        kwargs = "".join(f"-{item}" for item in self.env_kwargs)
        population = Path(self.population).stem if "/" in self.population else self.population
        swept = "".join(f"-{k}={v}" for k, v in self.grid)
        return f"{task}{kwargs}-{population}-{self.method}-s{self.seed}{swept}"

    @property
    def group_key(self) -> tuple[str, ...]:
        """The cell without its seed and method: what a table row's seeds share."""
        return (self.task, ",".join(self.env_kwargs), self.population, json.dumps(self.grid))

    def loop_options(self) -> dict[str, Any]:
        """The loop options of this cell (shared and swept), as LoopOptions takes them."""
        return {**dict(self.options), **dict(self.grid)}

    def fingerprint(self) -> str:
        """A hash of everything that decides the cell's result (not its resources)."""
        parts = [self.task, self.env_kwargs, self.population, self.method, self.seed,
                 self.options, self.grid, dataclasses.asdict(self.evaluate)]  # fmt: skip
        if self.cpl:  # absent before CPL: earlier cells keep their fingerprints
            parts.append(self.cpl)
        payload = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        """The cell as JSON (what a Ray task receives and results.json records)."""
        return {
            "name": self.name,
            "task": self.task,
            "env_kwargs": list(self.env_kwargs),
            "population": self.population,
            "method": self.method,
            "seed": self.seed,
            "options": dict(self.options),
            "grid": dict(self.grid),
            "evaluate": dataclasses.asdict(self.evaluate),
            "resources": dataclasses.asdict(self.resources),
            "cpl": dict(self.cpl),
            "fingerprint": self.fingerprint(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Cell:
        """The cell :meth:`to_json` wrote."""
        return cls(
            data["task"], tuple(data["env_kwargs"]), data["population"], data["method"],
            int(data["seed"]), tuple(sorted(data["options"].items())),
            tuple(data["grid"].items()), EvaluateSettings(**data["evaluate"]),
            Resources(**data["resources"]), tuple(sorted(cpl_settings(data.get("cpl")).items())),
        )  # fmt: skip


@dataclass
class Sweep:
    """A parsed sweep file: its name and cells."""

    name: str
    cells: list[Cell] = field(default_factory=list)
    source: str = ""


def _fail(path: Path, message: str) -> ValueError:
    return ValueError(f"sweep file {path}: {message}")


def _list(path: Path, data: dict, key: str, kind: type) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list) or not value:
        raise _fail(path, f"{key!r} must be a non-empty list")
    if not all(isinstance(v, kind) for v in value):
        raise _fail(path, f"every entry of {key!r} must be a {kind.__name__}: {value}")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_value(path: Path, where: str, kind: Any, value: Any) -> None:
    """Refuse an option value of the wrong type for ``kind`` (a LoopOptions field's type)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (list, tuple):
        item = next(a for a in args if a is not Ellipsis)
        if not isinstance(value, list):
            raise _fail(path, f"{where} is {value!r}: give a list, like [{_example(item)}]")
        for entry in value:
            _check_value(path, where, item, entry)
        return
    if kind is bool:
        ok, wanted = isinstance(value, bool), "true or false"
    elif kind is int:
        ok, wanted = isinstance(value, int) and not isinstance(value, bool), "a whole number"
    elif kind is float:
        ok = _is_number(value) and math.isfinite(value)
        wanted = "a finite number (YAML 1.1 floats need a dot: 1.0e-3)"
    else:
        ok, wanted = isinstance(value, str), "a string"
    if not ok:
        raise _fail(path, f"{where} is {value!r}, not {wanted}: give {wanted}")


def _example(kind: Any) -> str:
    return {int: "64, 64", str: "a, b"}.get(kind, "...")


def _check_options(path: Path, options: Any, where: str) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise _fail(path, f"{where!r} must be a mapping of robopref loop options")
    for key in options:
        if key in SET_BY_SWEEP:
            raise _fail(path, f"{where}.{key} is set by the sweep for each cell: leave it out")
        if key not in LOOP_OPTION_NAMES:
            raise _fail(
                path,
                f"{where}.{key} is not a robopref loop option: use one of "
                f"{sorted(set(LOOP_OPTION_NAMES) - set(SET_BY_SWEEP))}",
            )
        kind = LOOP_TYPES[key]
        if where == "grid" and isinstance(options[key], list):
            for value in options[key]:
                _check_value(path, f"grid.{key}", kind, value)
        elif where != "grid":
            _check_value(path, f"{where}.{key}", kind, options[key])
    return dict(options)


@dataclass(frozen=True)
class TaskEntry:
    """A task of the sweep file: its env, and its own populations and options if given."""

    env_id: str
    env_kwargs: tuple[str, ...]
    #: the task's own populations (None: the file's ``populations``)
    populations: tuple[str, ...] | None = None
    #: loop options of this task's cells, over the file's ``options``
    options: tuple[tuple[str, Any], ...] = ()


def _tasks(path: Path, data: dict) -> list[TaskEntry]:
    import gymnasium as gym

    tasks = []
    for entry in _list(path, data, "tasks", (str, dict)):
        entry = {"id": entry} if isinstance(entry, str) else entry
        env_id, kwargs = entry.get("id"), entry.get("env_kwargs", [])
        if set(entry) - set(TASK_KEYS):
            raise _fail(path, f"a task entry takes {list(TASK_KEYS)} only: {entry}")
        if not isinstance(kwargs, list) or not all(isinstance(k, str) for k in kwargs):
            raise _fail(path, f"a task's env_kwargs is a list of KEY=VALUE strings: {entry}")
        if env_id not in gym.registry:
            known = sorted(k for k in gym.registry if k.startswith("robopref/"))
            raise _fail(path, f"unknown task {env_id!r}: use one of {known}")
        populations = (
            tuple(_list(path, entry, "populations", str)) if "populations" in entry else None
        )
        options = _check_options(path, entry.get("options"), f"{env_id}'s options")
        tasks.append(TaskEntry(str(env_id), tuple(str(k) for k in kwargs), populations,
                               tuple(sorted(options.items()))))  # fmt: skip
    if "populations" not in data and any(task.populations is None for task in tasks):
        raise _fail(path, "give 'populations', for every task or in each task entry")
    return tasks


def _settings(path: Path, data: dict, key: str, kind: type) -> Any:
    value = data.get(key) or {}
    names = [f.name for f in dataclasses.fields(kind)]
    if not isinstance(value, dict) or set(value) - set(names):
        raise _fail(path, f"{key!r} takes {names}: got {value}")
    return kind(**value)


def _evaluate(path: Path, data: dict) -> EvaluateSettings:
    """The ``evaluate`` settings, checked as ``robopref evaluate`` checks its options."""
    settings = _settings(path, data, "evaluate", EvaluateSettings)
    least = {"users": 1, "episodes": 1, "queries": 0, "seed": 0}
    for name, low in least.items():
        value = getattr(settings, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise _fail(
                path, f"evaluate.{name} is {value!r}: give a whole number of at least {low}"
            )
    return settings


def _resources(path: Path, data: dict) -> Resources:
    """The ``resources`` settings: finite numbers, cpus > 0 and gpus >= 0."""
    resources = _settings(path, data, "resources", Resources)
    for name, positive in (("cpus", True), ("gpus", False)):
        value = getattr(resources, name)
        if not _is_number(value) or not math.isfinite(value) or value < 0 or (
                positive and value == 0):  # fmt: skip
            wanted = "a number above 0 (1, or 0.5 for two cells per CPU)" if positive else (
                "a number of at least 0 (a fraction shares a GPU)")  # fmt: skip
            raise _fail(path, f"resources.{name} is {value!r}: give {wanted}")
    return resources


def _name(path: Path, data: dict) -> str:
    """The sweep's name: a plain folder name (it is the default ``--out``'s last part)."""
    name = data.get("name")
    if name is None:
        return path.stem
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise _fail(
            path,
            f"name {name!r} must be one plain folder name (letters, digits, '.', '_', '-'; no "
            "'/'): it names runs/sweeps/<name>; choose where the sweep goes with --out",
        )
    return name


def _check_cells(path: Path, cells: list[Cell]) -> None:
    """Check each distinct cell's loop options as ``robopref loop`` would (the task, its
    env_kwargs, the population and every option), before Ray starts."""
    seen: set[str] = set()
    for cell in cells:
        method = cell.method if cell.method in LOOP_METHODS else (
            "btl" if cell.method == "oracle" else "vpl")  # fmt: skip
        key = json.dumps([cell.task, cell.env_kwargs, cell.population, method,
                          cell.loop_options()], sort_keys=True, default=str)  # fmt: skip
        if key in seen:
            continue
        seen.add(key)
        try:
            check_loop_values(
                LoopOptions(
                    env=cell.task,
                    env_kwargs=list(cell.env_kwargs),
                    population=cell.population,
                    methods=[method],
                    seed=cell.seed,
                    **cell.loop_options(),
                )  # fmt: skip
            )
        except (ValueError, TypeError, KeyError, OSError, yaml.YAMLError) as error:
            raise _fail(
                path,
                f"cell {cell.name} would be refused: {error} (the task, population, "
                "'options' and 'grid' of the file set it: fix the value there)",
            ) from None


def cpl_settings(value: Any) -> Any:
    """A ``cpl`` mapping as read from a sweep file or ``cell.json``, old keys under today's
    names (:data:`OLD_CPL_KEYS`); anything but a mapping is returned as is (refused later)."""
    if not value:
        return {}
    if not isinstance(value, dict):
        return value
    return {OLD_CPL_KEYS.get(key, key): setting for key, setting in value.items()}


def _cpl(path: Path, data: dict, methods: list[str]) -> tuple[tuple[str, Any], ...]:
    """The ``cpl`` settings, checked by building the configs they set."""
    from robopref.policies.cpl import CPLSettings
    from robopref.policies.cpl_train import CPLTraining

    value = cpl_settings(data.get("cpl"))
    objective = {f.name for f in dataclasses.fields(CPLSettings)}
    training = {f.name for f in dataclasses.fields(CPLTraining)}
    if not isinstance(value, dict) or set(value) - objective - training:
        raise _fail(path, f"'cpl' takes {sorted(objective | training)}: got {value}")
    if value and not set(methods) & set(CPL_METHODS):
        raise _fail(path, f"'cpl' sets the cells of {list(CPL_METHODS)}: none is in methods")
    try:
        CPLSettings(**{k: v for k, v in value.items() if k in objective})
        CPLTraining(**{k: v for k, v in value.items() if k in training})
    except (TypeError, ValueError) as error:
        raise _fail(path, f"cpl: {error}") from error
    return tuple(sorted(value.items()))


def load_sweep(path: str | Path) -> Sweep:
    """Parse and check a sweep file (module docstring) and expand its cells."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep file {path} does not exist")
    text = path.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise _fail(path, f"is not YAML: {error}") from error
    if not isinstance(data, dict):
        raise _fail(path, "must be a mapping (see robopref.sweep.grid for the schema)")
    unknown = set(data) - set(TOP_KEYS)
    if unknown:
        raise _fail(path, f"unknown keys {sorted(unknown)}: use {list(TOP_KEYS)}")
    tasks = _tasks(path, data)
    populations = _list(path, data, "populations", str) if "populations" in data else []
    methods = _list(path, data, "methods", str)
    bad = [m for m in methods if m not in METHODS]
    if bad or len(set(methods)) != len(methods):
        raise _fail(path, f"methods {methods}: give each of {list(METHODS)} at most once")
    seeds = _list(path, data, "seeds", int)
    if any(isinstance(seed, bool) or seed < 0 for seed in seeds):
        raise _fail(path, f"seeds {seeds}: give whole numbers of at least 0")
    options = _check_options(path, data.get("options"), "options")
    grid = _check_options(path, data.get("grid"), "grid")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise _fail(path, f"grid.{key} must be a non-empty list of values")
        if key in options:
            raise _fail(path, f"{key} is in both options and grid: keep one")
    evaluate = _evaluate(path, data)
    resources = _resources(path, data)
    name = _name(path, data)
    cpl = _cpl(path, data, methods)
    combos = [tuple(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    cells = [
        Cell(
            task.env_id,
            task.env_kwargs,
            population,
            method,
            seed,
            tuple(sorted({**options, **dict(task.options)}.items())),
            combo,
            evaluate,
            resources,
            cpl if method in CPL_METHODS else (),
        )  # fmt: skip
        for task in tasks
        for population, combo, seed, method in itertools.product(
            task.populations or populations, combos, seeds, methods
        )
    ]
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        raise _fail(path, "two cells share a folder name: make the populations' names distinct")
    _check_cells(path, cells)
    return Sweep(name, cells, text)
