"""Fixtures of the policy tests: a tiny dataset and tiny reward models trained in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from robopref.data.collect import CollectOptions, collect
from robopref.data.dataset import PreferenceDataset
from robopref.reward import build_model
from robopref.reward.inputs import reward_view
from robopref.reward.training import TrainSettings


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-user two-modes PlatePlacement dataset (seconds to collect)."""
    options = CollectOptions(
        users=12, queries_per_user=6, episodes=12, pool_pairs=128, progress=False, seed=3
    )
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    collect(options).save(path)
    return path


def _train(kind: str, data: Path, out: Path, seed: int, reward_input: str = "observations") -> Path:
    dataset = reward_view(PreferenceDataset.load(data), reward_input)
    config = {"hidden": (32,), "latent_dim": 3} if kind == "vpl" else {"hidden": (32,)}
    model = build_model(kind, dataset.obs_a.shape[-1], config)
    settings = TrainSettings(epochs=2, kl_warmup=0, seed=seed, n_comparison=32, log_every=100)
    model.fit(dataset, settings=settings, checkpoint=str(out), device="cpu")
    return out


@pytest.fixture(scope="session")
def tiny_vpl(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A VPL reward checkpoint (latent size 3) trained for two epochs."""
    return _train("vpl", tiny_data, tmp_path_factory.mktemp("rm") / "vpl.pt", 0)


@pytest.fixture(scope="session")
def tiny_btl(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BTL reward checkpoint trained for two epochs."""
    return _train("btl", tiny_data, tmp_path_factory.mktemp("rm") / "btl.pt", 0)


@pytest.fixture(scope="session")
def tiny_vpl_features(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A VPL reward checkpoint that reads the env's features (the default input)."""
    out = tmp_path_factory.mktemp("rm") / "vpl_features.pt"
    return _train("vpl", tiny_data, out, 0, reward_input="features")
