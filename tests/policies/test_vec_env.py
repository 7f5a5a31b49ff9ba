"""The training vec envs: in this process or over worker processes, the same transitions
as SB3's DummyVecEnv for the same seeds, and the VecEnv calls SB3 makes."""

from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from robopref.policies.vec_env import InProcessVecEnv, WorkerGroupVecEnv, build_vec_env


def _make() -> gym.Env:
    return gym.make("Pendulum-v1", max_episode_steps=7)  # short episodes: resets happen


def _rollout(venv, steps: int = 20) -> list[tuple]:
    venv.seed(5)
    rows = [(venv.reset(),)]
    actions = np.random.default_rng(0).uniform(-2, 2, size=(steps, venv.num_envs, 1))
    for action in actions.astype(np.float32):
        obs, reward, done, infos = venv.step(action)
        ends = [info.get("terminal_observation") for info in infos]
        rows.append((obs, reward, done, [e for e in ends if e is not None]))
    venv.close()
    return rows


def _same(a: list[tuple], b: list[tuple]) -> None:
    for row_a, row_b in zip(a, b, strict=True):
        for x, y in zip(row_a, row_b, strict=True):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6)


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_same_transitions_as_dummy_vec_env(workers: int) -> None:
    expected = _rollout(DummyVecEnv([_make] * 3))
    venv = build_vec_env([_make] * 3, workers, seed=0)
    assert isinstance(venv, WorkerGroupVecEnv if workers else InProcessVecEnv)
    _same(expected, _rollout(venv))
    assert any(row[2].any() for row in expected[1:])  # episodes did end


def test_worker_groups_answer_sb3_calls() -> None:
    make = functools.partial(lambda: Monitor(_make()))
    venv = WorkerGroupVecEnv([make] * 3, workers=2)
    try:
        assert venv.groups == [[0, 1], [2]]
        assert venv.env_is_wrapped(Monitor) == [True, True, True]
        assert venv.get_attr("spec", indices=[2])[0].id == "Pendulum-v1"
        venv.set_attr("marker", 4, indices=[0, 2])
        assert venv.get_attr("marker", indices=[0, 2]) == [4, 4]
        assert venv.env_method("get_wrapper_attr", "marker", indices=2) == [4]
    finally:
        venv.close()


def test_bad_worker_counts_refused() -> None:
    with pytest.raises(ValueError, match="workers=-1"):
        build_vec_env([_make], -1, seed=0)
    with pytest.raises(ValueError, match="between 1 and the 2 envs"):
        WorkerGroupVecEnv([_make] * 2, workers=3)
