"""Checkpoints round-trip; a mismatched or damaged one fails with the promised error."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from robopref.reward import load_reward_model
from robopref.reward.checkpoint import FORMAT_VERSION, load_payload
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


def test_a_version_1_checkpoint_is_refused_naming_the_fix(saved, tmp_path) -> None:
    """Version 1 files may hold VPL's decoder weights under their names of before the decoder
    modules (``psi.*``, ``weights.*``: the fixture, the demo's shipped vpl.pt of then); they
    are refused, not renamed on load."""
    legacy = Path(__file__).parent / "fixtures" / "legacy_vpl.pt"
    assert torch.load(legacy, weights_only=True)["format_version"] == 1
    _, _, path = saved
    payload = load_payload(path)
    payload["format_version"] = 1  # today's names, the old version: refused all the same
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    for source in (legacy, old):
        with pytest.raises(ValueError, match=r"format version 1, this robopref reads version 2"):
            load_reward_model(source)
        with pytest.raises(ValueError, match=r"re-train the model .*robopref train-reward"):
            load_payload(source)


def test_the_shipped_checkpoints_are_of_todays_format() -> None:
    shipped = Path(__file__).parents[2] / "robopref" / "policies"
    for path in (*shipped.glob("checkpoints/*.pt"), *shipped.glob("continuous/*.pt")):
        assert load_payload(path)["format_version"] == FORMAT_VERSION
        load_reward_model(path)  # weights under today's names: a strict load
