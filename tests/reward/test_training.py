"""The shared training loop: the ELBO goes down, runs are reproducible and resumable."""

from __future__ import annotations

import numpy as np
import torch

from robopref.reward.registry import build_model, load_reward_model
from robopref.reward.training import TrainSettings, kl_anneal, resume_path
from tests.support.toy import toy_dataset


def _data():
    return toy_dataset(n_users=24, pairs_per_user=12, segment_length=3, seed=2)


def test_negative_elbo_goes_down_on_a_toy_problem() -> None:
    data = _data()
    model = build_model("vpl", 4, {"hidden": (32, 32), "latent_dim": 2, "free_nats": 0.0})
    # constant KL weight 1: the training loss is the negative ELBO per answered pair
    settings = TrainSettings(epochs=40, lr=3e-3, patience=100, kl_delay=0, kl_warmup=0)
    result = model.fit(data, settings=settings, device="cpu", log=lambda _: None)
    losses = [row["loss"] for row in result.history]
    assert np.mean(losses[-5:]) < losses[0] - 0.05
    assert all(np.isfinite(losses))


def test_kl_anneal_schedule() -> None:
    assert kl_anneal(0, 5, 10) == 0.0 and kl_anneal(4, 5, 10) == 0.0
    assert kl_anneal(5, 5, 10) == 0.1 and kl_anneal(14, 5, 10) == 1.0
    assert kl_anneal(100, 5, 10) == 1.0 and kl_anneal(0, 0, 0) == 1.0


def _fit(path, epochs, resume=False, seed=0):
    model = build_model("vpl", 4, {"hidden": (16, 16), "latent_dim": 2})
    settings = TrainSettings(
        epochs=epochs, patience=100, kl_delay=1, kl_warmup=2, seed=seed, checkpoint_every=1
    )
    model.fit(
        _data(), settings=settings, checkpoint=str(path), resume=resume, device="cpu",
        log=lambda _: None,
    )  # fmt: skip
    return model


def test_same_seed_same_model_and_resume_equals_uninterrupted(tmp_path) -> None:
    straight = _fit(tmp_path / "a.pt", epochs=6)
    again = _fit(tmp_path / "b.pt", epochs=6)
    _fit(tmp_path / "c.pt", epochs=3)  # "interrupted" after 3 epochs
    assert resume_path(tmp_path / "c.pt").is_file()
    resumed = _fit(tmp_path / "c.pt", epochs=6, resume=True)
    for other in (again, resumed):
        for key, value in straight.state_dict().items():
            torch.testing.assert_close(other.state_dict()[key], value, rtol=0, atol=0)
    loaded = load_reward_model(tmp_path / "c.pt")
    torch.testing.assert_close(
        loaded.state_dict()["decoder.psi.0.weight"], straight.decoder.psi[0].weight
    )
    different = _fit(tmp_path / "d.pt", epochs=6, seed=1)
    assert not torch.equal(different.decoder.psi[0].weight, straight.decoder.psi[0].weight)
