"""The latent env's contract, short SAC/PPO runs, resuming, refusals, personalization."""

from __future__ import annotations

import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

import robopref  # noqa: F401
from robopref.data.dataset import PreferenceDataset
from robopref.envs.wrappers import SetDown
from robopref.policies.checkpoint import load_policy, read_meta
from robopref.policies.latent_env import (
    BatchedRewardVecEnv,
    LatentRewardEnv,
    LatentSource,
    relabel,
)
from robopref.policies.personalize import personalize
from robopref.policies.train import TrainPolicyOptions, train_policy
from robopref.reward import load_reward_model
from robopref.reward.evaluation import posterior_means
from robopref.reward.inputs import reward_input, reward_view
from robopref.users.population import resolve_population

ENV_ID = "robopref/PlatePlacement-v0"


def _source(model_path: Path, data: Path) -> tuple:
    model = load_reward_model(model_path)
    dataset = reward_view(PreferenceDataset.load(data), reward_input(model))
    means = posterior_means(model, dataset)
    return model, LatentSource(model.latent_dim, means, dataset.user_goal, dataset.user_group)


@pytest.mark.parametrize("checkpoint", ["tiny_vpl", "tiny_vpl_features"])
def test_wrapper_contract(checkpoint: str, tiny_data: Path, request: pytest.FixtureRequest) -> None:
    model, source = _source(request.getfixturevalue(checkpoint), tiny_data)
    env = LatentRewardEnv(gym.make(ENV_ID), model, source, seed=0)
    oracle = gym.make(ENV_ID)
    obs, info = env.reset(seed=5)
    assert obs.shape == (16 + 3,) and obs.dtype == np.float32
    assert env.observation_space.contains(obs)
    z = obs[16:].copy()
    user = int(np.flatnonzero((source.means == z).all(1))[0])
    oracle.reset(seed=5, options={"goal": source.goals[user]})
    rng = np.random.default_rng(0)
    for _ in range(10):
        action = rng.uniform(-1, 1, 4).astype(np.float32)
        obs, reward, _, _, info = env.step(action)
        _, true_reward, _, _, true_info = oracle.step(action)
        assert np.array_equal(obs[16:], z)  # z fixed within the episode
        read = info["features"] if checkpoint == "tiny_vpl_features" else obs[:16]
        expected = float(model.scaled_reward(read, z))
        assert reward == pytest.approx(expected, abs=1e-6)
        assert 0.0 <= reward <= 1.0
        assert info["true_reward"] == pytest.approx(true_reward)
        assert info["is_success"] == true_info["is_success"]
    draws = {tuple(env.reset()[0][16:]) for _ in range(8)}
    assert len(draws) > 1  # a new user per episode


def test_prior_source_and_btl_shapes(tiny_vpl: Path, tiny_btl: Path) -> None:
    vpl = load_reward_model(tiny_vpl)
    env = LatentRewardEnv(gym.make(ENV_ID), vpl, LatentSource.prior(3), seed=1)
    obs, info = env.reset()
    assert np.isnan(info["true_reward"]) and obs.shape == (19,)
    btl = load_reward_model(tiny_btl)
    env = LatentRewardEnv(gym.make(ENV_ID), btl, LatentSource.prior(0), seed=1)
    obs, _ = env.reset()
    assert obs.shape == (16,) and env.observation_space.shape == (16,)
    with pytest.raises(ValueError, match="latent"):
        LatentRewardEnv(gym.make(ENV_ID), vpl, LatentSource.prior(0))


@pytest.mark.parametrize("checkpoint", ["tiny_vpl", "tiny_vpl_features"])
def test_batched_rewards_equal_per_env_rewards_and_pickle(
    checkpoint: str, tiny_data: Path, request: pytest.FixtureRequest
) -> None:
    model, source = _source(request.getfixturevalue(checkpoint), tiny_data)

    def make(defer: bool, i: int):
        return lambda: LatentRewardEnv(gym.make(ENV_ID), model, source, defer, seed=i)

    plain = DummyVecEnv([make(False, i) for i in range(3)])
    batched = BatchedRewardVecEnv(DummyVecEnv([make(True, i) for i in range(3)]), model)
    plain.seed(0)
    batched.seed(0)
    assert np.array_equal(plain.reset(), batched.reset())
    rng = np.random.default_rng(1)
    for _ in range(65):  # crosses an episode end (terminal observations)
        action = rng.uniform(-1, 1, (3, 4)).astype(np.float32)
        _, r1, d1, _ = plain.step(action)
        _, r2, d2, _ = batched.step(action)
        np.testing.assert_allclose(r1, r2, atol=1e-6)
        assert np.array_equal(d1, d2)
    clone = pickle.loads(pickle.dumps(make(False, 0)()))  # what SubprocVecEnv needs
    clone.reset(seed=0)
    _, reward, _, _, info = clone.step(np.zeros(4, np.float32))
    again = relabel(clone.reward_model, info["reward_input"][None], info["z"][None])
    assert again.shape == (1,) and again[0] == pytest.approx(reward, abs=1e-6)


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_train_smoke_resume_and_refusal(
    algo: str, tiny_vpl: Path, tiny_btl: Path, tiny_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / algo
    steps = 512 if algo == "ppo" else 300
    common = dict(
        reward=str(tiny_vpl), data=str(tiny_data), algo=algo, out=str(out), n_envs=2,
        eval_every=0, eval_episodes=2, checkpoint_every=steps // 2, progress=False, device="cpu",
    )  # fmt: skip
    meta = train_policy(TrainPolicyOptions(steps=steps // 2, **common))
    assert meta["steps"] >= steps // 2 and (out / "checkpoint.zip").is_file()
    assert set(meta["history"][-1]) >= {"success", "true_return", "steps"}
    meta = train_policy(TrainPolicyOptions(steps=steps, resume=True, **common))
    assert steps <= meta["steps"] < steps + 512
    policy = load_policy(out, load_reward_model(tiny_vpl))
    assert policy.model.observation_space.shape == (19,)
    with pytest.raises(ValueError, match="another reward|its z means"):
        load_policy(out, load_reward_model(tiny_btl))
    with pytest.raises(ValueError, match="another reward model"):
        other = {**common, "reward": str(tiny_btl)}
        train_policy(TrainPolicyOptions(steps=steps, resume=True, **other))
    assert read_meta(out)["reward_fingerprint"] == policy.meta["reward_fingerprint"]
    assert read_meta(out)["set_down"] == "place"  # the default: evaluate rebuilds that env
    if algo == "ppo":  # --eval-episodes 0: no held-out check, and no crash drawing no users
        quiet = {**common, "eval_episodes": 0, "out": str(tmp_path / "quiet")}
        assert train_policy(TrainPolicyOptions(steps=steps // 2, **quiet))["history"] == []


def test_eval_env_applies_the_policys_set_down(tiny_vpl: Path) -> None:
    from robopref.envs.wrappers import SetDownOnContact
    from robopref.policies.rollout import make_eval_env

    def wrapped(set_down: bool | str) -> bool | None:
        env = make_eval_env(ENV_ID, "latent", load_reward_model(tiny_vpl), set_down=set_down)
        while isinstance(env, gym.Wrapper) and not isinstance(env, SetDownOnContact):
            env = env.env
        return env.place if isinstance(env, SetDownOnContact) else None

    assert wrapped(SetDown.PLACE) is True and wrapped("place") is True
    assert wrapped(True) is False and wrapped(False) is None


def test_personalize_separates_groups(tiny_vpl: Path) -> None:
    model = load_reward_model(tiny_vpl)
    env = gym.make(ENV_ID).unwrapped
    population = resolve_population("two-modes", env)
    from robopref.policies.personalize import candidate_pool

    pool = candidate_pool(model, episodes=12, pairs=256, seed=0)
    pool = pool.subset(np.flatnonzero(population.contested(pool.feat_a, pool.feat_b)))
    assert len(pool) >= 8
    users = population.sample_users(4, np.random.default_rng(0))
    zs = {}
    for i, user in enumerate(users):
        rng = np.random.default_rng(i)
        bound = personalize(None, model, lambda q, u=user, r=rng: u.answer(pool.pair(q), r),
                            k=4, candidates=pool, rng=0)  # fmt: skip
        assert bound.z.shape == (3,) and len(bound.inference.asked) == 4
        zs.setdefault(user.group, []).append(bound.z)
    z0, z1 = np.mean(zs[0], 0), np.mean(zs[1], 0)
    assert np.linalg.norm(z0 - z1) > 1e-3


def test_few_shot_means_one_row_per_user_and_k_plus_all_answers(tiny_vpl: Path, tiny_data: Path):
    from robopref.reward.evaluation import few_shot_means

    model = load_reward_model(tiny_vpl)
    dataset = reward_view(PreferenceDataset.load(tiny_data), reward_input(model))
    means, owner = few_shot_means(model, dataset, ks=(1, 4))
    assert means.shape == (3 * dataset.n_users, model.latent_dim)
    assert np.array_equal(owner, np.repeat(np.arange(dataset.n_users), 3))
    np.testing.assert_allclose(means[2::3], posterior_means(model, dataset), atol=1e-5)
    assert not np.allclose(means[0::3], means[2::3])  # one answer is not all six


def test_shipped_policies_accept_the_shipped_reward_models() -> None:
    # The fingerprint is of the weights, not of the module layout that names them: the VPL
    # decoders' move into modules of their own must not orphan the shipped policies.
    from robopref.demo import SHIPPED

    for name in ("vpl", "btl"):
        policy = load_policy(SHIPPED / f"policy_{name}", load_reward_model(SHIPPED / f"{name}.pt"))
        assert policy.name == name


def test_latents_known_by_answers_are_widened_and_others_are_not() -> None:
    """A WIDEN_SHARE of draws come from the training latents' Gaussian at WIDEN_SCALE times
    their spread (so z beyond the training users' reach the policy); with goals, or from
    the prior, every draw is a user's own z or a prior sample."""
    from robopref.policies.latent_env import WIDEN_SCALE, WIDEN_SHARE

    means = np.random.default_rng(0).normal(size=(400, 2)).astype(np.float32)
    rng = np.random.default_rng(1)
    source = LatentSource(2, means)
    draws = [source.draw(rng) for _ in range(4000)]
    own = {m.tobytes() for m in means}
    wide = np.array([z for z, _, _ in draws if z.tobytes() not in own])
    assert abs(len(wide) / len(draws) - WIDEN_SHARE) < 0.03
    assert wide.std(0) == pytest.approx(means.std(0) * WIDEN_SCALE, rel=0.1)
    with_goals = LatentSource(2, means, goals=np.zeros((400, 2)))
    assert all(z.tobytes() in own for z, _, _ in (with_goals.draw(rng) for _ in range(500)))
    unwidened = LatentSource(2, means, widen_share=0.0)
    assert all(z.tobytes() in own for z, _, _ in (unwidened.draw(rng) for _ in range(500)))
    with pytest.raises(ValueError, match="widen_share"):
        LatentSource(2, means, widen_share=1.5)


def test_no_held_out_check_means_none_during_training(
    tiny_btl: Path, tiny_data: Path, tmp_path: Path
) -> None:
    """--eval-episodes 0 with a periodic check due: trains through (drew 0 users: crashed)."""
    options = TrainPolicyOptions(
        reward=str(tiny_btl), data=str(tiny_data), out=str(tmp_path / "p"), n_envs=2, steps=512,
        eval_every=128, eval_episodes=0, progress=False, device="cpu",
    )  # fmt: skip
    meta = train_policy(options)
    assert meta["steps"] >= 512 and meta["history"] == []
