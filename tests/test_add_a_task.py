"""A fourth task touches only its env file and its task module (docs/guide/add-a-task.md).

The toy task (tests/support/toy_task: an env file and a task module, nothing else) is registered
the way robopref registers its own and then goes through the pipeline's front door:
collect, train-reward, train-policy, evaluate.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import robopref
import tests.support.toy_task as toy_task
from robopref.cli import main
from robopref.demo import DemoOptions, with_task_defaults
from robopref.tasks import (
    TASKS,
    one_part_proposals,
    register_task,
    register_tasks_of,
    scripted_policy,
    task_goals,
)
from robopref.tasks.spec import TaskSpec
from robopref.users.ceiling import has_ceiling
from robopref.users.population import named_population, population_names
from tests.support.toy_task.cup_placement import ENV_ID, SPEC


@pytest.fixture(scope="module", autouse=True)
def toy_registered():
    assert register_tasks_of(toy_task) == [SPEC]
    yield
    del TASKS[ENV_ID]
    gym.registry.pop(ENV_ID)


def test_the_toy_task_is_registered_like_robopref_own():
    assert ENV_ID in robopref.ENV_IDS and ENV_ID in gym.registry
    assert register_task(SPEC) is SPEC  # idempotent
    other = TaskSpec(**{**SPEC.__dict__, "max_episode_steps": 10})
    with pytest.raises(ValueError, match="registered already"):
        register_task(other)
    env = gym.make(ENV_ID, goal=(0.1, 0.1))
    assert env.spec.max_episode_steps == 40
    with pytest.raises(ValueError, match="left half"):
        env.unwrapped.validate_goal((0.1, -0.1))


def test_its_populations_goals_and_proposals_come_from_its_spec():
    assert "two-modes" in population_names()
    population = named_population("two-modes", task_goals(ENV_ID))
    assert population.env_id == ENV_ID
    assert [g.tolist() for g, _ in population.modes] == [[0.15, 0.15], [-0.1, 0.1]]
    continuous = named_population("continuous", gym.make(ENV_ID))
    assert has_ceiling(continuous)
    with pytest.raises(ValueError, match="no population 'arrangements'"):
        named_population("arrangements", task_goals(ENV_ID))
    proposals, changes = one_part_proposals(ENV_ID, np.zeros((3, 2)), np.random.default_rng(0))
    assert proposals.shape == (3, 2, 2) and changes == ["x", "y"]
    demo = with_task_defaults(DemoOptions(env=ENV_ID))
    assert demo.segment == 6


def test_its_scripted_expert_sets_the_object_down_at_the_goal():
    env = gym.make(ENV_ID, goal=(0.1, 0.12))
    policy = scripted_policy(env, (0.1, 0.12))
    obs, info = env.reset(seed=0)
    for _ in range(40):
        obs, _, terminated, truncated, info = env.step(policy(obs))
        if terminated or truncated:
            break
    assert info["is_success"]


def test_the_pipeline_runs_on_it(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny = ["--users", "4", "--queries-per-user", "4", "--episodes", "6", "--segment", "4"]
    assert main(["collect", "--env", ENV_ID, *tiny, "--progress", "false", "--out", "d.npz"]) == 0
    small = ["--epochs", "2", "--hidden", "16", "16", "--device", "cpu"]
    assert main(["train-reward", "--data", "d.npz", *small, "--out", "vpl.pt"]) == 0
    quick = ["--steps", "256", "--n-envs", "2", "--eval-episodes", "1", "--progress", "false"]
    assert (
        main(["train-policy", "--reward", "vpl.pt", "--data", "d.npz", *quick, "--out", "pol"]) == 0
    )
    meta = json.loads(Path("pol/meta.json").read_text())
    assert meta["env_id"] == ENV_ID
    assert main(["evaluate", "--policy", "pol", "--users", "2", "--episodes", "1"]) == 0
