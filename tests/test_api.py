"""The Python API (robopref/api.py, docs/api.md): its documented example runs as written, it
serves a new user as ``robopref evaluate`` does, and its envs are the ones policies trained in."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import robopref
from robopref.envs.wrappers import SetDownOnContact
from robopref.policies.latent_env import LatentSource, relabel

ROOT = Path(__file__).resolve().parents[1]
#: the fence that opens the example block (the README may carry a copy under the same fence)
MARKER = "```python api-example"


def example_code(path: Path) -> str:
    """The code of the block opened by :data:`MARKER` in ``path``."""
    match = re.search(re.escape(MARKER) + r"\n(.*?)\n```", path.read_text(), re.DOTALL)
    assert match, f"{path} has no block opened by {MARKER}"
    return match.group(1)


def test_the_documented_example_runs(tmp_path: Path) -> None:
    code = example_code(ROOT / "docs" / "api.md")
    assert len(code.splitlines()) <= 15
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert re.search(r"answers \[.*\], z \[.*\], success (True|False)", done.stdout)


def test_the_readme_shows_the_same_example() -> None:
    assert example_code(ROOT / "README.md") == example_code(ROOT / "docs" / "api.md")


def test_the_lazy_names_are_the_api_modules() -> None:
    import robopref.api

    assert sorted(robopref.API) == sorted(robopref.api.__all__)  # two lists kept in step


def test_import_robopref_stays_light() -> None:
    code = "import sys, robopref; print('torch' in sys.modules, 'stable_baselines3' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["False", "False"], done.stderr


def test_shipped_names() -> None:
    shipped = robopref.shipped_checkpoints()
    assert set(shipped) == {"vpl", "btl", "policy_vpl", "policy_btl", "policy_oracle"}
    assert robopref.load_reward_model("btl").kind == "btl"
    assert robopref.load_reward_model(shipped["vpl"]).latent_dim == 4
    with pytest.raises(FileNotFoundError):
        robopref.load_policy("no-such-policy")


def _unwrap_set_down(env: gym.Env) -> SetDownOnContact | None:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, SetDownOnContact):
            return env
        env = env.env
    return None


@pytest.mark.parametrize("name", ["vpl", "btl", "oracle"])
def test_make_env_is_the_env_it_was_trained_in(name: str) -> None:
    policy = robopref.load_policy(name)
    assert policy.meta["set_down"] == "place"
    env = policy.make_env()
    set_down = _unwrap_set_down(env)
    assert set_down is not None and set_down.place  # the primitive it trained with
    assert env.observation_space.shape == policy.model.observation_space.shape
    obs, _ = env.reset(seed=0)
    obs, reward, *_, info = env.step(policy.act(obs))
    if policy.kind == "latent":  # the learned reward, the env's own kept in info
        assert 0.0 <= reward <= 1.0 and "env_reward" in info
        z = info["z"][None]
        assert reward == pytest.approx(
            relabel(policy.reward_model, info["reward_input"][None], z)[0]
        )
    env.close()


def test_personalize_is_what_evaluate_does() -> None:
    from robopref.policies.personalize import new_user_pool, personalize_new_user

    policy = robopref.load_policy("vpl")
    users = robopref.synthetic_users(policy, n=2, seed=5)
    served = robopref.personalize(policy, users[1], k=2, seed=5, index=1, pool_pairs=64)
    pool = new_user_pool(policy.reward_model, 5, 64)
    z = personalize_new_user(policy.loaded, policy.reward_model, users[1], 1, pool, 2, "active", 5)
    assert z is not None and np.array_equal(served.z, z) and len(served.asked) == 2
    # Anyone else answers through a function of the query.
    person = robopref.personalize(policy, lambda q: 1.0, k=2, pool=pool)
    assert person.answers == [1.0, 1.0] and person.z.shape == (4,)
    assert robopref.personalize("btl", users[0]).z.shape == (0,)  # BTL asks nothing
    with pytest.raises(ValueError, match="personalize serves a latent policy"):
        robopref.personalize("oracle", users[0])


def test_latent_reward_vector_env() -> None:
    model = robopref.load_reward_model("vpl")
    venv = gym.make_vec("robopref/PlatePlacement-v0", num_envs=2, vectorization_mode="sync")
    z = np.array([[0.0, 0.0, 1.0, 0.0]], np.float32)
    env = robopref.LatentRewardVectorEnv(venv, model, LatentSource.fixed(z), seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, venv.single_observation_space.shape[0] + 4)
    assert np.array_equal(obs[:, -4:], np.repeat(z, 2, 0))
    actions = np.zeros((2, *venv.single_action_space.shape), np.float32)
    starting, ended = np.zeros(2, bool), 0
    for _ in range(61):  # a whole episode (60 steps) and the autoreset step
        obs, reward, terminated, truncated, info = env.step(actions)
        expected = relabel(model, info["features"], info["z"])
        expected[starting] = 0.0  # a sub-env's autoreset step has no reward
        np.testing.assert_allclose(reward, expected, atol=1e-6)
        assert info["env_reward"].shape == (2,)
        assert np.array_equal(obs[:, -4:], np.repeat(z, 2, 0))
        ended += int(starting.sum())
        starting = terminated | truncated
    assert ended >= 2  # every sub-env went through an autoreset step
    env.close()
    single = robopref.LatentRewardEnv(gym.make("robopref/PlatePlacement-v0"), model)
    single.reset(seed=0)
    _, reward, *_, info = single.step(actions[0])
    assert isinstance(info["env_reward"], float) and 0.0 <= reward <= 1.0
