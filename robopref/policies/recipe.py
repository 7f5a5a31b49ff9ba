"""The one PPO/SAC recipe: what ``robopref train-policy`` and the oracle benchmark train.

:func:`make_algo` is the single home of the algorithms' hyper-parameters, so the policy
command and ``benchmarks/oracle_learning.py`` cannot drift apart.

PPO: 8 envs x 256 steps per update, 10 epochs of minibatches of 128 (16 per epoch), the
learning rate annealed linearly from 1e-3 to 0 over the run. Measured with the oracle
benchmark (300k steps, random goals, set-down primitive, 100 held-out episodes): minibatches
of 512 plateau at 0.85-0.91 success on seeds 0-2 (and, on the raw task, the constant rate
ends seed 0 at 0.75 after passing 0.90); minibatches of 128 reach 0.9 by 100k steps and end
at 0.9 or more on all three.
"""

from __future__ import annotations

from collections.abc import Callable

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from robopref.policies.checkpoint import ALGOS

#: PPO's learning rate at the start of training (annealed linearly to 0)
PPO_LEARNING_RATE = 1e-3


def annealed(start: float) -> Callable[[float], float]:
    """A learning rate falling linearly from ``start`` to 0 over the run.

    SB3 passes the remaining progress (1 to 0); it is clipped at 0 because the last rollout
    overshoots the requested steps, which would otherwise make the last rate negative.
    """

    def schedule(remaining: float) -> float:
        return start * max(remaining, 0.0)

    return schedule


def make_algo(
    algo: str, venv: VecEnv, seed: int, device: str, tb: str | None, steps: int
) -> BaseAlgorithm:
    """PPO with the tuned recipe, or SAC with settings for short dense-reward tasks.

    ``tb`` is the TensorBoard folder (None: no logs, and the optional ``tensorboard``
    package is not needed); ``steps`` sizes SAC's buffer.
    """
    if algo not in ALGOS:
        raise ValueError(f"--algo {algo!r} is unknown: use one of {sorted(ALGOS)}")
    common = {"seed": seed, "device": device, "tensorboard_log": tb, "verbose": 0}
    if algo == "ppo":
        return ALGOS["ppo"](
            "MlpPolicy",
            venv,
            n_steps=256,
            batch_size=128,
            n_epochs=10,
            learning_rate=annealed(PPO_LEARNING_RATE),
            gamma=0.97,
            gae_lambda=0.95,
            policy_kwargs={
                "net_arch": [128, 128],
                "log_std_init": -0.5,
                # SB3's Adam settings (eps 1e-5) in one fused kernel: the same update, fewer calls
                "optimizer_kwargs": {"eps": 1e-5, "fused": True},
            },
            **common,
        )
    return ALGOS["sac"](
        "MlpPolicy",
        venv,
        learning_rate=1e-3,
        buffer_size=max(10_000, min(steps, 300_000)),
        learning_starts=min(1000, max(steps // 10, 64)),
        batch_size=256,
        gamma=0.97,
        train_freq=1,
        gradient_steps=1,
        policy_kwargs={"net_arch": [128, 128]},
        **common,
    )
