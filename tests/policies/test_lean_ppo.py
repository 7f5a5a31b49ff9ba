"""LeanPPO computes SB3's PPO update: the same gradients, the same parameters after an
update, the same rollouts' shape, and SB3's own code wherever it leaves the lean path."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import DummyVecEnv

from robopref.policies.lean_ppo import LeanNetworks, LeanPPO, fast_tanh_


def _venv(n: int = 2) -> DummyVecEnv:
    return DummyVecEnv([lambda: gym.make("Pendulum-v1")] * n)


def _model(cls: type[PPO], **kwargs: object) -> PPO:
    settings = {"n_steps": 32, "batch_size": 64, "n_epochs": 1, "seed": 3, "device": "cpu"}
    settings.update(kwargs)
    return cls(
        "MlpPolicy", _venv(), policy_kwargs={"net_arch": [16, 8], "log_std_init": -0.5}, **settings
    )


def test_fast_tanh_is_tanh() -> None:
    x = torch.linspace(-12, 12, 2001)
    assert torch.allclose(fast_tanh_(x.clone()), torch.tanh(x), atol=2e-7)


def _autograd_loss(model: PPO, batch: dict[str, torch.Tensor], clip: float) -> torch.Tensor:
    """SB3's PPO.train loss for one minibatch (ent_coef 0, no value clipping)."""
    values, log_prob, _ = model.policy.evaluate_actions(batch["obs"], batch["actions"])
    adv = batch["advantages"]
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    ratio = torch.exp(log_prob - batch["old_log_prob"])
    policy_loss = -torch.min(adv * ratio, adv * torch.clamp(ratio, 1 - clip, 1 + clip)).mean()
    value_loss = torch.nn.functional.mse_loss(batch["returns"], values.flatten())
    return policy_loss + model.vf_coef * value_loss


def test_hand_written_gradients_equal_autograd() -> None:
    model = _model(LeanPPO)
    model.learn(64)  # fills the buffer, takes one update: old log-probs now differ
    data = model._flat_rollout()
    # old log-probs shifted so that some ratios fall outside the clip range, both sides
    data["old_log_prob"] = data["old_log_prob"] + torch.linspace(-0.5, 0.5, len(data["obs"]))
    nets = LeanNetworks(model.policy)
    for param in nets.parameters:
        param.grad = torch.zeros_like(param)
    model._minibatch_gradients(nets, data, 0.2)
    lean = [p.grad.clone() for p in nets.parameters]
    for param in nets.parameters:
        param.grad = None
    _autograd_loss(model, data, 0.2).backward()
    for name_param, hand in zip(model.policy.named_parameters(), lean, strict=True):
        name, param = name_param
        assert torch.allclose(hand, param.grad, rtol=1e-4, atol=1e-6), name


def test_one_update_equals_sb3_update() -> None:
    """Full-batch, one epoch: minibatch order cannot differ, so the parameters after
    LeanPPO.train and PPO.train must agree (loss, grad clipping, Adam)."""
    lean = _model(LeanPPO, max_grad_norm=0.05)  # a clip that bites
    lean.learn(64)
    sb3 = _model(PPO, max_grad_norm=0.05)
    sb3.policy.load_state_dict(lean.policy.state_dict())
    sb3.policy.optimizer.load_state_dict(lean.policy.optimizer.state_dict())
    sb3.rollout_buffer = copy.deepcopy(lean.rollout_buffer)
    sb3._current_progress_remaining = lean._current_progress_remaining
    sb3._n_updates = lean._n_updates
    sb3.set_logger(Logger(folder=None, output_formats=[]))
    lean.train()
    sb3.train()
    for (name, a), b in zip(lean.policy.named_parameters(), sb3.policy.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), name
    assert lean.logger.name_to_value["train/value_loss"] == pytest.approx(
        sb3.logger.name_to_value["train/value_loss"], rel=1e-4
    )


def test_rollouts_fill_the_buffer_like_sb3() -> None:
    model = _model(LeanPPO)
    model.learn(64)
    buffer = model.rollout_buffer
    assert buffer.full and np.isfinite(buffer.advantages).all()
    assert np.abs(buffer.actions).max() > 0.0  # unclipped samples stored, as SB3 does
    values = LeanNetworks(model.policy).value(torch.as_tensor(buffer.observations[0]))
    with torch.no_grad():
        expected = model.policy.predict_values(torch.as_tensor(buffer.observations[0])).flatten()
    assert torch.allclose(values, expected, atol=1e-5)


def test_seeded_runs_identical() -> None:
    a = _model(LeanPPO)  # the seed reseeds torch's global generator: build, then learn
    a.learn(128)
    b = _model(LeanPPO)
    b.learn(128)
    for x, y in zip(a.policy.parameters(), b.policy.parameters(), strict=True):
        assert torch.equal(x, y)


@pytest.mark.parametrize(
    "setting", [{"ent_coef": 0.01}, {"target_kl": 0.05}, {"clip_range_vf": 0.2}, {"use_sde": True}]
)
def test_settings_off_the_lean_path_use_sb3(setting: dict[str, object]) -> None:
    model = _model(LeanPPO, **setting)
    assert not model.lean()
    model.learn(64)  # SB3's own train/collect run
    assert model.num_timesteps >= 64
