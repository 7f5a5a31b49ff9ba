"""SB3's PPO with the same loss and the same networks, computed with fewer Python calls.

The profile (``benchmarks/ppo_speed.py``) showed SB3's PPO spending most of its time outside
the physics: per minibatch, autograd over a dozen small modules, distribution objects,
single-tensor Adam and a ``.item()`` per logged figure; per rollout step, the same again
for one forward pass. :class:`LeanPPO` keeps everything SB3 owns (the
:class:`~stable_baselines3.common.policies.ActorCriticPolicy` and its checkpoint format,
the rollout buffer and its GAE, callbacks, logging, learning-rate schedule, ``save`` and
``load``) and replaces two methods:

* :meth:`LeanPPO.train`: the clipped-surrogate loss of SB3's ``PPO.train`` (per-minibatch
  advantage normalisation, the value loss weighted by ``vf_coef``, the global gradient norm
  clipped at ``max_grad_norm``, the policy's own optimizer), with the gradients of the
  tanh MLPs written out by hand (no autograd graph) and the minibatch figures logged once
  per update instead of once per minibatch.
* :meth:`LeanPPO.collect_rollouts`: SB3's loop (clipped actions, time-out bootstrapping,
  callbacks, info buffer) around the same hand-written forward pass.

Both fall back to SB3's own code for anything the hand-written path does not cover (a
non-tanh or shared network, state-dependent exploration, an entropy bonus, value
clipping, a KL target, image or dict observations, discrete actions), so a model is never
trained by a different loss than the one its settings name. The gradients are checked
against autograd in ``tests/policies/test_lean_ppo.py``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.common.utils import explained_variance
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)

Layer = tuple[torch.Tensor, torch.Tensor]  # (weight [out, in], bias [out]) of an nn.Linear


def fast_tanh_(x: torch.Tensor) -> torch.Tensor:
    """``tanh(x)`` in place, as ``2 sigmoid(2x) - 1``: the same function, about 5x faster
    than ``torch.tanh`` on the CPU builds measured (``benchmarks/ppo_speed.py``)."""
    return x.mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0)


def _linear_layers(module: nn.Module) -> list[Layer] | None:
    """The (weight, bias) pairs of a Sequential of Linear/Tanh pairs, or None if it is not."""
    layers = list(module.children()) if isinstance(module, nn.Sequential) else None
    if layers is None or len(layers) % 2:
        return None
    pairs = []
    for linear, activation in zip(layers[::2], layers[1::2], strict=True):
        if not isinstance(linear, nn.Linear) or linear.bias is None:
            return None
        if not isinstance(activation, nn.Tanh):
            return None
        pairs.append((linear.weight, linear.bias))
    return pairs


class LeanNetworks:
    """Views of an SB3 ``MlpPolicy``'s parameters for the hand-written passes: the policy
    and value trunks (Linear + tanh layers), the action and value heads, ``log_std``."""

    def __init__(self, policy: nn.Module) -> None:
        extractor = policy.mlp_extractor
        pi = _linear_layers(extractor.policy_net)
        vf = _linear_layers(extractor.value_net)
        assert pi is not None and vf is not None, "check LeanNetworks.supports first"
        self.pi_trunk, self.vf_trunk = pi, vf
        self.pi_head: Layer = (policy.action_net.weight, policy.action_net.bias)
        self.vf_head: Layer = (policy.value_net.weight, policy.value_net.bias)
        self.log_std: torch.Tensor = policy.log_std
        self.parameters: list[torch.Tensor] = [p for p in policy.parameters()]

    @staticmethod
    def supports(policy: nn.Module) -> bool:
        """Whether ``policy`` is the MlpPolicy shape the hand-written passes compute:
        separate tanh trunks, a diagonal Gaussian without SDE, flat observations."""
        extractor = getattr(policy, "mlp_extractor", None)
        if extractor is None or getattr(policy, "squash_output", False):
            return False
        if not isinstance(getattr(policy, "action_dist", None), DiagGaussianDistribution):
            return False
        if not isinstance(getattr(policy, "features_extractor", None), FlattenExtractor):
            return False
        return bool(_linear_layers(extractor.policy_net)) and bool(
            _linear_layers(extractor.value_net)
        )

    @staticmethod
    def trunk(x: torch.Tensor, layers: list[Layer]) -> list[torch.Tensor]:
        """The input and every hidden activation of a tanh trunk, input first."""
        acts = [x]
        for weight, bias in layers:
            acts.append(fast_tanh_(torch.addmm(bias, acts[-1], weight.t())))
        return acts

    @torch.no_grad()
    def act(
        self, obs: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sampled actions ``mean + std * noise``, their values and log-probabilities."""
        hidden = self.trunk(obs, self.pi_trunk)[-1]
        mean = torch.addmm(self.pi_head[1], hidden, self.pi_head[0].t())
        std = self.log_std.exp()
        actions = mean + std * noise
        log_prob = (-0.5 * noise.square() - self.log_std - _HALF_LOG_2PI).sum(1)
        return actions, self.value(obs), log_prob

    @torch.no_grad()
    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """The value estimate of each observation, shape (n,)."""
        hidden = self.trunk(obs, self.vf_trunk)[-1]
        return torch.addmm(self.vf_head[1], hidden, self.vf_head[0].t()).squeeze(1)


@torch.no_grad()
def _backward_trunk(acts: list[torch.Tensor], layers: list[Layer], grad_out: torch.Tensor) -> None:
    """Write the gradients of a tanh trunk's weights and biases into their ``.grad``,
    given the loss gradient at its last activation (``acts`` from ``LeanNetworks.trunk``)."""
    grad = grad_out
    for depth in range(len(layers) - 1, -1, -1):
        weight, bias = layers[depth]
        out = acts[depth + 1]
        grad_z = grad.mul_(1.0 - out.square())  # grad is always a fresh tensor here
        torch.mm(grad_z.t(), acts[depth], out=weight.grad)
        torch.sum(grad_z, 0, out=bias.grad)
        if depth:
            grad = grad_z @ weight


class LeanPPO(PPO):
    """:class:`stable_baselines3.PPO` with the hand-written update and rollout passes.

    A drop-in subclass: the same constructor, checkpoints that ``PPO.load`` reads and the
    other way round, and SB3's own ``train``/``collect_rollouts`` wherever the settings
    leave the hand-written path (see the module docstring).
    """

    def lean(self) -> bool:
        """Whether these settings are the ones the hand-written passes compute."""
        return (
            isinstance(self.action_space, spaces.Box)
            and isinstance(self.observation_space, spaces.Box)
            and len(self.observation_space.shape) == 1
            and not self.use_sde
            and self.ent_coef == 0.0
            and self.clip_range_vf is None
            and self.target_kl is None
            and self.normalize_advantage
            and LeanNetworks.supports(self.policy)
        )

    # --- the update ---------------------------------------------------------------------

    @torch.no_grad()
    def _minibatch_gradients(
        self,
        nets: LeanNetworks,
        batch: dict[str, torch.Tensor],
        clip_range: float,
    ) -> tuple[torch.Tensor, ...]:
        """Write the PPO loss's gradients for one minibatch into the parameters' ``.grad``;
        returns (policy loss, value loss, approx KL, clip fraction) as 0-d tensors."""
        obs, actions, advantages = batch["obs"], batch["actions"], batch["advantages"]
        size = obs.shape[0]
        if size > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        pi_acts = nets.trunk(obs, nets.pi_trunk)
        vf_acts = nets.trunk(obs, nets.vf_trunk)
        mean = torch.addmm(nets.pi_head[1], pi_acts[-1], nets.pi_head[0].t())
        values = torch.addmm(nets.vf_head[1], vf_acts[-1], nets.vf_head[0].t()).squeeze(1)
        inv_std = torch.exp(-nets.log_std)
        z = (actions - mean) * inv_std
        log_prob = (-0.5 * z.square() - nets.log_std).sum(1) - _HALF_LOG_2PI * z.shape[1]
        log_ratio = log_prob - batch["old_log_prob"]
        ratio = torch.exp(log_ratio)
        surrogate = advantages * ratio
        clipped = advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
        # d(-mean(min(surrogate, clipped)))/d ratio: the unclipped term's slope where it is
        # the smaller one (where they tie, the ratio is inside the range or the advantage 0).
        grad_log_prob = torch.where(surrogate <= clipped, advantages, 0.0).mul_(ratio).div_(-size)
        grad_mean = (grad_log_prob.unsqueeze(1) * z).mul_(inv_std)
        nets.log_std.grad.copy_((grad_log_prob.unsqueeze(1) * (z.square() - 1.0)).sum(0))
        value_error = values - batch["returns"]
        grad_values = value_error * (2.0 * self.vf_coef / size)

        weight, bias = nets.pi_head
        torch.mm(grad_mean.t(), pi_acts[-1], out=weight.grad)
        torch.sum(grad_mean, 0, out=bias.grad)
        _backward_trunk(pi_acts, nets.pi_trunk, grad_mean @ weight)
        weight, bias = nets.vf_head
        grad_values = grad_values.unsqueeze(1)
        torch.mm(grad_values.t(), vf_acts[-1], out=weight.grad)
        torch.sum(grad_values, 0, out=bias.grad)
        _backward_trunk(vf_acts, nets.vf_trunk, grad_values @ weight)

        policy_loss = -torch.minimum(surrogate, clipped).mean()
        value_loss = value_error.square().mean()
        approx_kl = (ratio - 1.0 - log_ratio).mean()
        clip_fraction = ((ratio - 1.0).abs() > clip_range).float().mean()
        return policy_loss, value_loss, approx_kl, clip_fraction

    def _flat_rollout(self) -> dict[str, torch.Tensor]:
        """The rollout buffer's arrays as (steps x envs, ...) tensors on the policy's device."""
        buffer = self.rollout_buffer
        count = buffer.buffer_size * buffer.n_envs

        def flat(array: np.ndarray, *shape: int) -> torch.Tensor:
            return torch.as_tensor(array.reshape(count, *shape), device=self.device)

        return {
            "obs": flat(buffer.observations, -1),
            "actions": flat(buffer.actions, -1),
            "advantages": flat(buffer.advantages),
            "returns": flat(buffer.returns),
            "old_log_prob": flat(buffer.log_probs),
        }

    def train(self) -> None:
        """One PPO update on the rollout buffer: SB3's loss, hand-written gradients."""
        if not self.lean():
            return super().train()
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = float(self.clip_range(self._current_progress_remaining))
        nets = LeanNetworks(self.policy)
        for param in nets.parameters:
            if param.grad is None:
                param.grad = torch.zeros_like(param)
        data = self._flat_rollout()
        count = data["obs"].shape[0]
        figures: list[tuple[torch.Tensor, ...]] = []
        for _ in range(self.n_epochs):
            order = torch.randperm(count, device=self.device)
            for start in range(0, count, self.batch_size):
                index = order[start : start + self.batch_size]
                batch = {key: value[index] for key, value in data.items()}
                figures.append(self._minibatch_gradients(nets, batch, clip_range))
                with torch.no_grad():
                    torch.nn.utils.clip_grad_norm_(
                        nets.parameters, self.max_grad_norm, foreach=True
                    )
                    self.policy.optimizer.step()
            self._n_updates += 1
        self._log_update(figures, nets, clip_range)

    def _log_update(
        self, figures: list[tuple[torch.Tensor, ...]], nets: LeanNetworks, clip_range: float
    ) -> None:
        """The figures SB3's ``PPO.train`` logs, each the mean over the update's minibatches."""
        policy_loss, value_loss, approx_kl, clip_fraction = torch.stack(
            [torch.stack(row) for row in figures]
        ).T.cpu()
        entropy = (0.5 + _HALF_LOG_2PI + nets.log_std.detach()).sum().item()
        buffer = self.rollout_buffer
        self.logger.record("train/entropy_loss", -entropy)
        self.logger.record("train/policy_gradient_loss", policy_loss.mean().item())
        self.logger.record("train/value_loss", value_loss.mean().item())
        self.logger.record("train/approx_kl", approx_kl.mean().item())
        self.logger.record("train/clip_fraction", clip_fraction.mean().item())
        last_loss = policy_loss[-1] + self.vf_coef * value_loss[-1]
        self.logger.record("train/loss", last_loss.item())
        self.logger.record(
            "train/explained_variance",
            explained_variance(buffer.values.flatten(), buffer.returns.flatten()),
        )
        self.logger.record("train/std", torch.exp(nets.log_std.detach()).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)

    # --- the rollouts -------------------------------------------------------------------

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        """SB3's rollout loop (``OnPolicyAlgorithm.collect_rollouts``) around the
        hand-written forward pass; the actions are sampled from the same Gaussian."""
        if not self.lean():
            return super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps)
        assert self._last_obs is not None, "No previous observation was provided"
        self.policy.set_training_mode(False)
        nets = LeanNetworks(self.policy)
        low, high = self.action_space.low, self.action_space.high
        action_size = int(np.prod(self.action_space.shape))
        rollout_buffer.reset()
        callback.on_rollout_start()
        n_steps = 0
        new_obs = self._last_obs
        while n_steps < n_rollout_steps:
            obs = torch.as_tensor(self._last_obs, device=self.device, dtype=torch.float32)
            noise = torch.randn(obs.shape[0], action_size, device=self.device)
            action_tensor, value_tensor, log_prob_tensor = nets.act(obs, noise)
            actions = action_tensor.cpu().numpy()
            clipped_actions = np.clip(actions, low, high)
            new_obs, rewards, dones, infos = env.step(clipped_actions)
            self.num_timesteps += env.num_envs
            callback.update_locals(
                {
                    "new_obs": new_obs,
                    "rewards": rewards,
                    "dones": dones,
                    "infos": infos,
                    "actions": actions,
                    "clipped_actions": clipped_actions,
                    "n_steps": n_steps,
                }
            )
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
            n_steps += 1
            self._bootstrap_time_outs(nets, rewards, dones, infos)
            rollout_buffer.add(
                self._last_obs,  # type: ignore[arg-type]
                actions,
                rewards,
                self._last_episode_starts,  # type: ignore[arg-type]
                value_tensor,
                log_prob_tensor,
            )
            self._last_obs = new_obs  # type: ignore[assignment]
            self._last_episode_starts = dones
        last_values = nets.value(torch.as_tensor(new_obs, device=self.device, dtype=torch.float32))
        rollout_buffer.compute_returns_and_advantage(last_values=last_values, dones=dones)
        callback.update_locals({"new_obs": new_obs, "dones": dones})
        callback.on_rollout_end()
        return True

    def _bootstrap_time_outs(
        self,
        nets: LeanNetworks,
        rewards: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """Add gamma x V(last observation) to the reward of each episode cut by its time
        limit (SB3's handling, its issue #633), one batched value pass for all of them."""
        cut = [
            i
            for i, done in enumerate(dones)
            if done
            and infos[i].get("terminal_observation") is not None
            and infos[i].get("TimeLimit.truncated", False)
        ]
        if not cut:
            return
        terminal = np.stack([infos[i]["terminal_observation"] for i in cut])
        values = nets.value(torch.as_tensor(terminal, device=self.device, dtype=torch.float32))
        rewards[cut] += self.gamma * values.cpu().numpy()
