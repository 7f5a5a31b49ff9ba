"""Checkpoints round-trip; a mismatched or damaged one fails with the promised error."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from robopref.reward import load_reward_model
from robopref.reward.checkpoint import load_payload
from robopref.reward.registry import build_model
from robopref.reward.training import TrainSettings
from tests.support.toy import toy_dataset


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    data = toy_dataset(n_users=10, pairs_per_user=6, segment_length=3, seed=4)
    path = tmp_path_factory.mktemp("ckpt") / "vpl.pt"
    model = build_model("vpl", 4, {"hidden": (16, 16), "latent_dim": 2})
    settings = TrainSettings(epochs=3, kl_delay=0, kl_warmup=1, n_comparison=17)
    model.fit(data, settings=settings, checkpoint=str(path), device="cpu", log=lambda _: None)
    return data, model, path


@pytest.mark.parametrize("kind", ["btl", "dpl", "vpl"])
def test_round_trip_keeps_rewards_posterior_and_provenance(tmp_path, kind) -> None:
    data = toy_dataset(n_users=8, pairs_per_user=6, segment_length=3, seed=5)
    data.meta["population"] = "two-modes"  # the users' population: evaluate's default
    path = tmp_path / f"{kind}.pt"
    model = build_model(kind, 4, {"hidden": (16,)})
    model.fit(
        data, settings=TrainSettings(epochs=2, n_comparison=9), checkpoint=str(path),
        device="cpu", log=lambda _: None,
    )  # fmt: skip
    loaded = load_reward_model(path, expected_kind=kind, expected_env=data.env_id, obs_dim=4)
    obs = data.obs_a[:4]
    z = np.zeros((model.latent_dim,), np.float32)
    np.testing.assert_allclose(loaded.reward(obs, z), model.reward(obs, z), rtol=1e-6)
    np.testing.assert_allclose(loaded.scaled_reward(obs, z), model.scaled_reward(obs, z))
    context = (data.obs_a[:5], data.obs_b[:5], data.label[:5])
    np.testing.assert_allclose(loaded.posterior(context)[0], model.posterior(context)[0])
    assert loaded.meta["env_id"] == data.env_id and loaded.meta["segment_length"] == 3
    assert loaded.meta["population"] == "two-modes"
    assert loaded.comparison_obs.shape == (9, 4)
    mask = os.umask(0o022)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's private 0600
    payload = torch.load(path, weights_only=True)  # plain data only: safe to load
    assert payload["kind"] == kind and payload["obs_dim"] == 4


def test_mismatched_checkpoints_are_refused_clearly(saved) -> None:
    _, _, path = saved
    with pytest.raises(ValueError, match="holds a 'vpl' reward model, not the 'btl'"):
        load_reward_model(path, expected_kind="btl")
    with pytest.raises(ValueError, match="trained on env 'toy/PointGoal-v0', not"):
        load_reward_model(path, expected_env="robopref/PlatePlacement-v0")
    with pytest.raises(ValueError, match="observations of size 4, not 16"):
        load_reward_model(path, obs_dim=16)
    with pytest.raises(FileNotFoundError, match="train one with"):
        load_reward_model(path.with_name("missing.pt"))


def test_damaged_files_are_refused_clearly(saved, tmp_path) -> None:
    _, _, path = saved
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:200])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    for bad in (truncated, garbage):
        with pytest.raises(ValueError, match="not a readable reward-model checkpoint"):
            load_reward_model(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="not a robopref reward-model checkpoint"):
        load_payload(foreign)


def test_legacy_vpl_checkpoint_gives_the_rewards_it_gave_before_the_decoder_modules() -> None:
    """A VPL checkpoint with the legacy keys psi.*, weights.* (the demo's shipped vpl.pt
    before the loop replaced it) loads, rewards unchanged."""
    legacy = Path(__file__).parent / "fixtures" / "legacy_vpl.pt"
    model = load_reward_model(legacy, expected_kind="vpl")
    obs = np.linspace(-1.0, 1.0, 3 * model.obs_dim, dtype=np.float32).reshape(3, model.obs_dim)
    z = np.array([0.5, -0.25, 1.0, 0.0], np.float32)
    # recorded with the code before robopref.reward.decoders (commit 269aa59)
    np.testing.assert_allclose(model.reward(obs, z), [-6.343834, -7.124056, -21.767818], rtol=1e-5)
    np.testing.assert_allclose(
        model.scaled_reward(obs, z), [1.9667251e-03, 9.0239599e-04, 3.9456177e-10], rtol=1e-4
    )
    context = (np.stack([obs, 0.5 * obs]), np.stack([obs[::-1].copy(), -obs]), [1.0, 0.0])
    mean, std = model.posterior(tuple(np.asarray(x, np.float32) for x in context))
    np.testing.assert_allclose(
        mean, [-0.084352694, -0.20676985, 0.052159682, 0.06665585], rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(std, [0.62593263, 0.6788492, 0.6655229, 0.6901472], rtol=1e-5)


LEGACY = {  # today's prefix -> the prefix checkpoints had before robopref.reward.decoders
    "bilinear": {"decoder.psi.": "psi.", "decoder.weights.": "weights."},
    "mlp": {"decoder.net.": "decoder.", "decoder.segment_net.": "segment_net."},
}


@pytest.mark.parametrize("decoder", ["bilinear", "mlp"])
def test_legacy_state_dict_keys_load_into_todays_decoders(decoder) -> None:
    torch.manual_seed(0)
    config = {"hidden": (8, 8), "latent_dim": 2, "features": 4, "decoder": decoder}
    source = build_model("vpl", 3, config)
    legacy = {}
    for key, value in source.state_dict().items():
        for new, old in LEGACY[decoder].items():
            if key.startswith(new):
                key = old + key[len(new) :]
                break
        legacy[key] = value
    assert set(legacy) != set(source.state_dict())  # the renaming did something
    torch.manual_seed(1)
    target = build_model("vpl", 3, config)
    obs, z = np.ones((2, 3), np.float32), np.array([0.3, -0.7], np.float32)
    assert not np.allclose(target.reward(obs, z), source.reward(obs, z))
    target.load_state_dict(legacy)
    np.testing.assert_array_equal(target.reward(obs, z), source.reward(obs, z))
    nested = torch.nn.ModuleDict({"m": build_model("vpl", 3, config)})  # keys under a prefix
    nested.load_state_dict({f"m.{k}": v for k, v in legacy.items()})
    np.testing.assert_array_equal(nested["m"].reward(obs, z), source.reward(obs, z))
