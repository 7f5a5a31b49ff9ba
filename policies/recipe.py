"""The one PPO/SAC recipe: what ``robopref train-policy`` and the oracle benchmark train.

:func:`make_algo` is the single home of the algorithms' hyper-parameters, so the policy
command and ``benchmarks/oracle_learning.py`` cannot drift apart.
"""

from __future__ import annotations

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from robopref.policies.checkpoint import ALGOS


def make_algo(
    algo: str, venv: VecEnv, seed: int, device: str, tb: str | None, steps: int
) -> BaseAlgorithm:
    """PPO with the tuned recipe, or SAC with settings for short dense-reward tasks.

    ``tb`` is the TensorBoard folder (None: no logs); ``steps`` sizes SAC's buffer.
    """
    if algo not in ALGOS:
        raise ValueError(f"--algo {algo!r} is unknown: use one of {sorted(ALGOS)}")
    common = {"seed": seed, "device": device, "tensorboard_log": tb, "verbose": 0}
    if algo == "ppo":
        return ALGOS["ppo"](
            "MlpPolicy",
            venv,
            n_steps=256,
            batch_size=512,
            n_epochs=10,
            learning_rate=lambda remaining: 1e-3 * remaining,
            gamma=0.97,
            gae_lambda=0.95,
            policy_kwargs={"net_arch": [128, 128], "log_std_init": -0.5},
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
