"""The reward-model interface: shapes, numpy/torch in and out, the encoder's symmetries."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robopref.reward import (
    BTLRewardModel,
    DPLRewardModel,
    PairContext,
    VPLConfig,
    VPLRewardModel,
)
from robopref.reward.data import UserTensors
from robopref.reward.decoders import DECODERS
from tests.support.toy import toy_dataset


@pytest.fixture()
def data():
    return toy_dataset(n_users=6, pairs_per_user=5, segment_length=3, seed=1)


@pytest.fixture()
def vpl(data) -> VPLRewardModel:
    torch.manual_seed(0)
    model = VPLRewardModel(data.obs_a.shape[-1], VPLConfig(latent_dim=3, hidden=(16, 16)))
    model.fit_normalization(UserTensors.from_dataset(data), 20, torch.Generator().manual_seed(0))
    return model.eval()


@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_vpl_reward_broadcasts_and_keeps_the_array_type(data, decoder) -> None:
    model = VPLRewardModel(4, VPLConfig(latent_dim=3, hidden=(16,), decoder=decoder))
    obs = data.obs_a[:5]  # (5, T, 4)
    one_z = np.array([0.5, -1.0, 0.2], dtype=np.float32)
    out = model.reward(obs, one_z)
    assert isinstance(out, np.ndarray) and out.shape == (5, 3)
    per_pair = model.reward(obs, np.zeros((5, 1, 3), np.float32))
    assert per_pair.shape == (5, 3)
    as_torch = model.reward(torch.as_tensor(obs), torch.as_tensor(one_z))
    assert isinstance(as_torch, torch.Tensor)
    np.testing.assert_allclose(as_torch.detach().numpy(), out, rtol=1e-5, atol=1e-6)
    # a batch of z over the same observation gives one reward per z
    several = model.reward(obs[0, 0], np.random.default_rng(0).normal(size=(7, 3)))
    assert several.shape == (7,) and np.ptp(several) > 0
    with pytest.raises(ValueError, match="needs a latent z"):
        model.reward(obs)
    with pytest.raises(ValueError, match="observation size 4"):
        model.reward(np.zeros((2, 5), np.float32), one_z)


@pytest.mark.parametrize("decoder", ["ideal", "ideal-linear"])
def test_ideal_point_reward_peaks_where_the_users_point_is(data, decoder) -> None:
    """r(s, z) = b(s) - |phi(s) - m(z)|^2 up to a per-user constant: with b flat, the state
    whose features sit at m(z) scores highest, and the fast scorer agrees with reward()."""
    torch.manual_seed(0)
    model = VPLRewardModel(4, VPLConfig(latent_dim=2, hidden=(16,), features=4, decoder=decoder))
    model.eval()
    obs = torch.as_tensor(data.obs_a.reshape(-1, 4)[:200])
    z = torch.tensor([0.3, -0.7])
    with torch.no_grad():
        phi = model.decoder.state_features(model.normalize(obs))[:, :-1]
        point = model.decoder.ideal_point(z)
        base = model.decoder.state_features(model.normalize(obs))[:, -1] + phi.square().sum(-1)
        reward = model.reward(obs, z)
    expected = (base - (phi - point).square().sum(-1) + point.square().sum()) / model.decoder.scale
    torch.testing.assert_close(reward, expected, rtol=1e-4, atol=1e-4)
    pair_a, pair_b = data.obs_a[:6], data.obs_b[:6]
    logits = model.pair_scorer(pair_a, pair_b).logits(z[None])[0]
    gap = model.reward(pair_a, z.numpy()).sum(-1) - model.reward(pair_b, z.numpy()).sum(-1)
    np.testing.assert_allclose(logits.numpy(), gap, rtol=1e-4, atol=1e-4)


def test_scaled_reward_is_a_probability_and_orders_like_the_reward(data, vpl) -> None:
    z = np.array([1.0, 0.0, -1.0], dtype=np.float32)
    obs = data.obs_a.reshape(-1, 4)[:50]
    raw = vpl.reward(obs, z)
    scaled = vpl.scaled_reward(obs, z)
    assert scaled.shape == (50,) and scaled.min() >= 0.0 and scaled.max() <= 1.0
    order = np.argsort(raw)
    assert np.all(np.diff(scaled[order]) >= -1e-6)  # monotone in the raw reward
    per_step_z = vpl.scaled_reward(obs[:4], np.tile(z, (4, 1)))
    np.testing.assert_allclose(per_step_z, scaled[:4], rtol=1e-5)


def test_btl_and_dpl_ignore_z_and_have_no_latent(data) -> None:
    for model in (BTLRewardModel(4), DPLRewardModel(4)):
        obs = data.obs_a[:3]
        np.testing.assert_allclose(model.reward(obs), model.reward(obs, np.ones(5)))
        mean, std = model.posterior(PairContext.from_dataset(data, [0, 1]))
        assert mean.shape == (0,) and std.shape == (0,)
    assert (DPLRewardModel(4).reward_std(data.obs_a[:2]) > 0).all()


def test_posterior_is_permutation_invariant(data, vpl) -> None:
    idx = data.user_indices(2)
    context = PairContext.from_dataset(data, idx)
    mean, std = vpl.posterior(context)
    perm = np.random.default_rng(0).permutation(len(idx))
    mean_p, std_p = vpl.posterior(PairContext.from_dataset(data, idx[perm]))
    np.testing.assert_allclose(mean_p, mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std_p, std, rtol=1e-5, atol=1e-6)
    assert mean.shape == (3,) and np.all(std < 1.0)


def test_posterior_symmetries_and_edge_cases(data, vpl) -> None:
    idx = data.user_indices(0)
    obs_a, obs_b, label = data.obs_a[idx], data.obs_b[idx], data.label[idx]
    mean, std = vpl.posterior((obs_a, obs_b, label))
    # showing B first with the complementary label is the same answer
    np.testing.assert_allclose(vpl.posterior((obs_b, obs_a, 1.0 - label))[0], mean, atol=1e-5)
    # a skipped pair (NaN) changes nothing
    skipped = np.concatenate([label, [np.nan]]).astype(np.float32)
    more_a, more_b = np.concatenate([obs_a, obs_b[:1]]), np.concatenate([obs_b, obs_a[:1]])
    np.testing.assert_allclose(vpl.posterior((more_a, more_b, skipped))[0], mean, atol=1e-6)
    # no answers: the prior N(0, I)
    prior_mean, prior_std = vpl.posterior(PairContext.empty(3, 4))
    np.testing.assert_array_equal(prior_mean, np.zeros(3))
    np.testing.assert_array_equal(prior_std, np.ones(3))
    # batched contexts give the per-user posteriors
    batch = vpl.posterior(
        (np.stack([obs_a, obs_b]), np.stack([obs_b, obs_a]), np.stack([label, 1 - label]))
    )
    np.testing.assert_allclose(batch[0][0], mean, atol=1e-5)
    with pytest.raises(ValueError, match="context labels"):
        vpl.posterior((obs_a, obs_b, label[:-1]))


def test_distance_ideal_point_scorer_matches_the_reward_in_chunks(data, monkeypatch) -> None:
    """The cone r = [b(s) - |A s - m(z)|] / sqrt(D): its chunked scorer gives the segments'
    return gaps for every z, however many z are scored at once."""
    from robopref.reward import decoders

    torch.manual_seed(0)
    config = VPLConfig(latent_dim=2, hidden=(16,), features=4, decoder="ideal-distance")
    model = VPLRewardModel(4, config).eval()
    obs = torch.as_tensor(data.obs_a.reshape(-1, 4)[:50])
    z = torch.tensor([0.3, -0.7])
    with torch.no_grad():
        projected, base = model.decoder.split(model.normalize(obs))
        point = model.decoder.ideal_point(z)
        far = ((projected - point).square().sum(-1) + decoders.CONE_EPS**2).sqrt()
        expected = (base - far) / model.decoder.scale
        torch.testing.assert_close(model.reward(obs, z), expected)
    monkeypatch.setattr(decoders, "_SCORER_CHUNK", 150)  # a few z per chunk
    zs = torch.as_tensor(np.random.default_rng(1).normal(size=(9, 2)), dtype=torch.float32)
    pair_a, pair_b = data.obs_a[:6], data.obs_b[:6]
    logits = model.pair_scorer(pair_a, pair_b).logits(zs)
    assert logits.shape == (9, 6)
    for i in range(9):
        gap = model.reward(pair_a, zs[i].numpy()).sum(-1) - model.reward(pair_b, zs[i].numpy()).sum(
            -1
        )
        np.testing.assert_allclose(logits[i].numpy(), gap, rtol=1e-4, atol=1e-4)
