"""Fixtures of the reward-model tests: a toy two-group dataset (no MuJoCo) and models on it."""

from __future__ import annotations

import pytest
import torch

from robopref.data.dataset import PreferenceDataset
from robopref.reward.base import RewardModel
from robopref.reward.registry import build_model
from robopref.reward.training import TrainSettings
from tests.support.toy import toy_dataset

#: small and fast, and enough for the toy task
TOY_VPL = {"hidden": (64, 64), "latent_dim": 4}
TOY_SETTINGS = {"epochs": 150, "lr": 3e-3, "patience": 40, "kl_delay": 10, "kl_warmup": 20}


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def toy_split() -> dict[str, PreferenceDataset]:
    """60 users in two groups with opposite goals: train / val / test users."""
    data = toy_dataset(n_users=60, pairs_per_user=16, seed=0)
    rest, test = data.split_users(0.25, 0)
    train, val = rest.split_users(0.15, 0)
    return {"all": data, "train": train, "val": val, "test": test}


def train_toy(kind: str, split: dict[str, PreferenceDataset], **config: object) -> RewardModel:
    """A ``kind`` model fitted on the toy training users (seconds)."""
    torch.set_num_threads(1)
    model = build_model(
        kind,
        split["all"].obs_a.shape[-1],
        {**TOY_VPL, **config} if kind == "vpl" else {"hidden": (64, 64)},
    )
    settings = (
        TrainSettings(**TOY_SETTINGS)
        if kind == "vpl"
        else TrainSettings(epochs=150, lr=3e-3, patience=20, kl_delay=0, kl_warmup=0)
    )
    model.fit(
        split["train"],
        val_dataset=split["val"],
        settings=settings,
        device="cpu",
        log=lambda _: None,
    )
    return model


@pytest.fixture(scope="session")
def toy_trainer() -> object:
    """:func:`train_toy`, for tests that fit models on toy data of their own."""
    return train_toy


@pytest.fixture(scope="session")
def toy_vpl(toy_split: dict[str, PreferenceDataset]) -> RewardModel:
    """VPL trained on the toy task."""
    return train_toy("vpl", toy_split)


@pytest.fixture(scope="session")
def toy_btl(toy_split: dict[str, PreferenceDataset]) -> RewardModel:
    """BTL trained on the toy task."""
    return train_toy("btl", toy_split)
