"""Populations: named ones, files written here, and files with errors naming their line."""

from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path

import mujoco
import numpy as np
import pytest

from robopref.data.rollouts import make_env
from robopref.tasks import task_goals, task_spec
from robopref.users.population import (
    POPULATION_NAMES,
    load_population,
    named_population,
    population_from_dict,
    resolve_population,
)
from robopref.users.synthetic import DEFAULT_LABEL_MODEL, LabelModel

PLATE = "robopref/PlatePlacement-v0"
BLOCK = "robopref/BlockSort-v0"
TABLE = "robopref/TableSetting-v0"


@pytest.fixture(scope="module")
def plate_env():
    return make_env(PLATE)[0]


@pytest.fixture(scope="module")
def block_env():
    return make_env(BLOCK)[0]


def write(tmp_path: Path, text: str, name: str = "pop.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def test_two_modes_defaults(plate_env, block_env):
    plate = named_population("two-modes", plate_env)
    assert [g.tolist() for g, _ in plate.modes] == [[0.20, 0.15], [0.20, -0.15]]
    assert [w for _, w in plate.modes] == [0.5, 0.5]
    assert plate.label_model == DEFAULT_LABEL_MODEL
    blocks = named_population("two-modes", block_env)
    assert [g.tolist() for g, _ in blocks.modes] == [[0.0], [1.0]]


@pytest.mark.parametrize(
    ("env_id", "name"),
    [
        (env_id, name)
        for env_id in (PLATE, TABLE)
        for name in POPULATION_NAMES
        if name in task_spec(env_id).populations
    ],  # fmt: skip
)
def test_every_named_population_samples_users(env_id, name):
    env = make_env(env_id)[0]
    population = named_population(name, env)
    users = population.sample_users(40, np.random.default_rng(0))
    assert len(users) == 40
    goals = np.stack([u.goal for u in users])
    space = env.goal_space
    assert all(space.contains(g) for g in goals)
    groups = np.array([u.group for u in users])
    if population.modes:
        counts = np.bincount(groups, minlength=len(population.modes))
        expected = 40 * np.array([w for _, w in population.modes])
        assert np.all(np.abs(counts - expected) < 1)  # stratified
        for u in users:
            assert np.array_equal(u.goal, population.modes[u.group][0])
    else:
        assert np.all(groups == -1) and len(np.unique(goals[:, 0])) == 40
    if name == "norms-and-goals":
        assert all(u.norm_weight == 3.0 for u in users)


def test_block_populations(block_env):
    modes = named_population("modes", block_env)
    assert len(modes.modes) == block_env.n_zones
    assert named_population("norms-and-goals", block_env).norm_weight == 3.0
    with pytest.raises(ValueError, match="does not apply"):
        named_population("continuous", block_env)


def test_seeded_sampling_is_reproducible(plate_env):
    population = named_population("continuous", plate_env)
    one = population.sample_users(5, np.random.default_rng(7))
    two = population.sample_users(5, np.random.default_rng(7))
    assert all(np.array_equal(a.goal, b.goal) for a, b in zip(one, two, strict=True))


def test_a_file_written_here_works(tmp_path, plate_env):
    path = write(
        tmp_path,
        """
        # three people, one with twice the say
        modes:
          - goal: [-0.1, 0.2]
            weight: 0.5
          - {goal: [0.1, 0.0], weight: 0.25}
          - {goal: [0.25, -0.25], weight: 0.25}
        norm_weight: 2
        beta: .inf
        mistake: 0.1
        skip_threshold: -1.5
        both_orders: true
        """,
    )
    population = load_population(path, plate_env)
    assert len(population.modes) == 3 and population.norm_weight == 2.0
    assert population.label_model == LabelModel(
        beta=np.inf, mistake=0.1, skip_threshold=-1.5, both_orders=True
    )
    users = population.sample_users(8, np.random.default_rng(0))
    assert sum(u.group == 0 for u in users) == 4


def test_a_json_file_with_tabs_and_a_continuous_region(tmp_path, plate_env):
    data = {"continuous": {"low": [0.0, -0.1], "high": [0.2, 0.1]}, "gamma": 0.9}
    path = tmp_path / "pop.json"
    path.write_text(json.dumps(data, indent="\t"))
    population = resolve_population(str(path), plate_env)
    goals = np.stack([u.goal for u in population.sample_users(50, np.random.default_rng(0))])
    assert np.all(goals >= [0.0, -0.1]) and np.all(goals <= [0.2, 0.1])
    assert population.label_model.gamma == 0.9


def test_a_block_file_with_zone_indices(tmp_path, block_env):
    path = write(tmp_path, "modes:\n  - {goal: 1, weight: 0.7}\n  - {goal: 0, weight: 0.3}\n")
    population = load_population(path, block_env)
    assert [g.tolist() for g, _ in population.modes] == [[1.0], [0.0]]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("modes:\n  - {goal: [0.2, 0.1], weight: 1.0}\nbta: 3\n", 3, "did you mean 'beta'"),
        ("modes:\n  - {goal: [0.2, 0.1]}\n  - {goal: [0.5, 0.1]}\n", 3, "goal_space"),
        (
            "modes:\n  - {goal: [0.2, 0.1], weight: 0.5}\n  - {goal: [0, 0], weight: 0.3}\n",
            1,
            "sum",
        ),
        ("modes:\n  - {goal: [0.2, 0.1], wieght: 1}\n", 2, "unknown key 'wieght'"),
        ("continuous: {low: [0, 0], high: [0.1, 0.1]}\nmodes: []\n", 2, "exactly one"),
        ("continuous: {low: [0.1, 0], high: [0, 0.1]}\n", 1, "below low"),
        ("modes:\n  - {goal: [0.2, 0.1]}\nmistake: 0.9\n", 3, "mistake"),
        ("modes:\n  - {goal: [0.2, 0.1]}\nsoft: maybe\n", 3, "true or false"),
        ("modes:\n  - {goal: [0.2, 0.1]}\nbeta: yes\n", 3, "not a number"),
        ("modes:\n  - {goal: [0.2, 0.1]\n", 3, "YAML"),
        ("beta: 2\nbeta: 3\nmodes:\n  - {goal: [0.2, 0.1]}\n", 2, "twice"),
    ],
)
def test_file_errors_name_their_line_and_the_fix(tmp_path, plate_env, text, line, words):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=f"line {line}\\b") as caught:
        load_population(path, plate_env)
    message = str(caught.value)
    assert words in message and "fix:" in message and str(path) in message


def test_block_file_errors(tmp_path, block_env):
    with pytest.raises(ValueError, match=r"line 2\b.*goal_space"):
        load_population(write(tmp_path, "modes:\n  - {goal: 5}\n"), block_env)
    with pytest.raises(ValueError, match="Box goal_space"):
        load_population(write(tmp_path, "continuous: {low: 0, high: 1}\n"), block_env)


def test_unknown_name_or_missing_file(plate_env, tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a name"):
        resolve_population("three-modes", plate_env)
    with pytest.raises(ValueError, match="empty"):
        load_population(write(tmp_path, "\n"), plate_env)


def plate_segment(x: float, y: float, drop: float = 0.001, steps: int = 3) -> np.ndarray:
    """A plate resting at (x, y) for ``steps`` steps, let go from ``drop`` metres."""
    state = np.array([x, y, 0.0, 0.0, 1.0, 1.0, drop, 0.0], dtype=np.float32)
    return np.tile(state, (steps, 1))


def test_contested_pairs(plate_env):
    population = named_population("two-modes", plate_env)
    feat_a = np.stack([plate_segment(0.2, 0.15), plate_segment(0.2, 0.0), plate_segment(0, 0)])
    feat_b = np.stack(
        [plate_segment(0.2, -0.15), plate_segment(-0.2, 0.0), plate_segment(0, 0, drop=0.03)]
    )
    assert population.contested(feat_a, feat_b).tolist() == [True, False, False]
    wide = population_from_dict(
        {"continuous": {"low": [-0.25, -0.25], "high": [0.25, 0.25]}}, plate_env
    )
    # somebody wants the plate at (-0.2, 0); nobody wants it dropped from 3 cm
    assert wide.contested(feat_a, feat_b).tolist() == [True, True, False]


@pytest.mark.parametrize("path", sorted(Path("benchmarks/populations").glob("*.yaml")), ids=str)
def test_the_shipped_population_files_load_for_their_task(path, plate_env, block_env):
    """Every file under benchmarks/populations loads on its task and samples users."""
    env = block_env if path.name.startswith("block") else plate_env
    if path.name == "block_three_zones.yaml":  # its README command: --env-kwargs n_zones=3
        env = make_env(BLOCK, {"n_zones": 3})[0]
    population = load_population(path, env)
    users = population.sample_users(4, np.random.default_rng(0))
    assert len(users) == 4
    if path.name == "plate_four_corners.yaml":  # one user per corner
        assert sorted(u.group for u in users) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("modes:\n  - {goal: [0.2, 0.1]}\nnorm_weight: .nan\n", 3, "norm_weight is NaN"),
        ("modes:\n  - {goal: [0.2, 0.1]}\nnorm_weight: .inf\n", 3, "not a finite number"),
        ("modes:\n  - {goal: [0.2, 0.1]}\nnorm_weight: -.inf\n", 3, "not a finite number"),
        ("modes:\n  - {goal: [0.2, 0.1]}\nnorm_weight: 1.0e+308\n", 3, "would overflow"),
        ("modes:\n  - {goal: [0.2, 0.1]}\nnorm_weight: 1" + "0" * 400 + "\n", 3, "finite"),
        ("modes:\n  - {goal: [0.2, 0.1], weight: .nan}\n", 2, "weight is NaN"),
        ("modes:\n  - {goal: [0.2, 0.1]}\n  - {goal: [0.2, 0], weight: .nan}\n", 3, "NaN"),
        ("modes:\n  - {goal: [0.2, 0.1]}\nbeta: .nan\n", 3, "beta is NaN"),
        ("modes:\n  - {goal: [0.2, 0.1]}\ngamma: .nan\n", 3, "gamma is NaN"),
        ("modes:\n  - {goal: [0.2, 0.1]}\nequal_threshold: .inf\n", 3, "not a finite"),
        ("modes:\n  - {goal: [0.2, 0.1]}\nskip_threshold: .nan\n", 3, "NaN"),
        ("modes:\n  - {goal: [.nan, 0.1]}\n", 2, "goal holds .nan"),
        ("continuous: {low: [-.inf, 0], high: [0.1, 0.1]}\n", 1, "low holds -.inf"),
        ('{"modes": [{"goal": [0.2, 0.1], "weight": NaN}]}\n', 1, "not a number"),
    ],
)
def test_nan_inf_and_overflowing_numbers_are_refused_with_line_and_fix(
    tmp_path, plate_env, text, line, words
):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=f"line {line}\\b") as caught:
        load_population(path, plate_env)
    message = str(caught.value)
    assert words in message and "fix:" in message and str(path) in message
    assert len(message) < 400  # a 400-digit number is shortened


def test_scientific_notation_is_a_number(tmp_path, plate_env):
    """YAML 1.1 (PyYAML) reads 1e3 as a string; population files read it as YAML 1.2 does."""
    text = (
        "modes:\n  - {goal: [2e-1, 1E-1], weight: 1e-300}\n  - {goal: [0.2, -0.1], weight: 1}\n"
        "beta: 1e3\nnorm_weight: 3e0\nequal_threshold: 1.5e-2\n"
    )
    population = load_population(write(tmp_path, text), plate_env)
    assert population.label_model.beta == 1000.0
    assert population.norm_weight == 3.0 and population.label_model.equal_threshold == 0.015
    assert [w for _, w in population.modes] == [1e-300, 1.0]
    assert population.modes[0][0].tolist() == [0.2, 0.1]
    # a string stays a string: quoted scientific notation is still refused by name
    with pytest.raises(ValueError, match="beta is '1e3', not a number"):
        load_population(write(tmp_path, "modes:\n  - {goal: [0.2, 0.1]}\nbeta: '1e3'\n"), plate_env)


def test_beta_inf_is_the_documented_perfectly_rational_user(tmp_path, plate_env):
    path = write(tmp_path, "modes:\n  - {goal: [0.2, 0.1]}\nbeta: .inf\n")
    assert load_population(path, plate_env).label_model.beta == np.inf


def test_a_population_object_refuses_nan_weights_and_norm_weight(plate_env):
    good = named_population("two-modes", plate_env)
    goal = good.modes[0][0]
    with pytest.raises(ValueError, match="positive finite"):
        dataclasses.replace(good, modes=((goal, float("nan")), (goal, 1.0)))
    with pytest.raises(ValueError, match="norm_weight=nan"):
        dataclasses.replace(good, norm_weight=float("nan"))
    with pytest.raises(ValueError, match="norm_weight=inf"):
        dataclasses.replace(good, norm_weight=float("inf"))
    with pytest.raises(ValueError, match="finite"):
        dataclasses.replace(good, modes=((np.array([np.nan, 0.1]), 1.0),))


def test_an_image_or_a_folder_as_population_is_named_for_what_it_is(tmp_path, plate_env):
    png = tmp_path / "plot.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(ValueError, match="not a YAML text file") as caught:
        resolve_population(str(png), plate_env)
    assert "codec" not in str(caught.value)
    nul = tmp_path / "nul.yaml"
    nul.write_bytes(b"modes:\x00\x00\n")
    with pytest.raises(ValueError, match="not a YAML text file"):
        load_population(nul, plate_env)
    with pytest.raises(ValueError, match="is a folder, not a file"):
        resolve_population(str(tmp_path), plate_env)


def test_a_foreign_env_is_named_not_the_population():
    import gymnasium as gym

    with pytest.raises(ValueError, match="'CartPole-v1' is not a robopref task"):
        named_population("two-modes", gym.make("CartPole-v1"))


@pytest.mark.parametrize("env_id", [PLATE, BLOCK, TABLE])
def test_named_populations_resolve_without_the_env_alike(env_id, monkeypatch):
    """A task's goals without MuJoCo resolve every population as its env does."""
    kwargs = {"n_zones": 3} if env_id == BLOCK else {}
    env = make_env(env_id, kwargs)[0]

    def no_model(*args, **kwargs):
        raise AssertionError("a population compiled a MuJoCo model")

    monkeypatch.setattr(mujoco.MjModel, "from_xml_string", no_model)
    monkeypatch.setattr(mujoco.MjSpec, "compile", no_model)
    for name in task_spec(env_id).populations:
        try:
            with_env = named_population(name, env)
        except ValueError as error:
            with pytest.raises(ValueError, match=str(error)[:30]):
                named_population(name, task_goals(env_id, **kwargs))
            continue
        without = named_population(name, task_goals(env_id, **kwargs))
        assert without.env_id == with_env.env_id == env_id
        assert without.feature_names == with_env.feature_names
        assert [(g.tolist(), w) for g, w in without.modes] == [
            (g.tolist(), w) for g, w in with_env.modes
        ]
        assert np.array_equal(without.low, with_env.low) if with_env.low is not None else True
