"""SB3 callbacks of ``robopref train-policy``: progress bar, true return, held-out users,
checkpoints.

Checkpoints are written by :class:`SaveCheckpoint`, triggered by SB3's
:class:`~stable_baselines3.common.callbacks.EveryNTimesteps` and by :class:`EveryNMinutes`
of wall time (so a slow run killed early loses at most that much work); see
:func:`checkpoint_callbacks`.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, EventCallback, EveryNTimesteps
from tqdm import tqdm

from robopref.files import atomic_path
from robopref.policies.checkpoint import LoadedPolicy, save_model
from robopref.policies.evaluation import evaluate_loaded, result_rows, summarize
from robopref.policies.meta import PolicyMeta
from robopref.policies.personalize import POOL_PAIRS, QUERIES, STRATEGY
from robopref.reward.base import RewardModel
from robopref.users.population import Population


class ProgressBar(BaseCallback):
    """A tqdm bar over env steps (SB3's own needs ``rich``)."""

    def __init__(self, total: int, start: int = 0, enabled: bool = True) -> None:
        super().__init__()
        self.total, self.start, self.enabled = total, start, enabled
        self.bar: tqdm | None = None

    def _on_training_start(self) -> None:
        self.bar = tqdm(total=self.total, initial=self.start, unit="step", disable=not self.enabled)

    def _on_step(self) -> bool:
        assert self.bar is not None
        self.bar.update(self.model.num_timesteps - self.bar.n)
        return True

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()


class TrueReturn(BaseCallback):
    """Log ``rollout/true_ep_rew_mean``: the env's own return (the sum of its
    ``info["true_reward"]``) over the last ``window`` training episodes where it is known.

    SB3's ``rollout/ep_rew_mean`` (from the ``VecMonitor``) is the return of the reward the
    agent learns from, the reward model's for a latent policy; this is the task's. A latent
    policy's training episodes have no goal unless the users' goals are known, and then
    their true reward is NaN: such episodes are left out, and nothing is logged without any.
    """

    def __init__(self, window: int = 100) -> None:
        super().__init__()
        self.returns: deque[float] = deque(maxlen=window)
        self._sums: np.ndarray | None = None

    def _on_step(self) -> bool:
        infos = self.locals.get("infos") or []
        dones = self.locals.get("dones")
        if self._sums is None or len(self._sums) != len(infos):
            self._sums = np.zeros(len(infos))
        for i, info in enumerate(infos):
            self._sums[i] += float(info.get("true_reward", np.nan))
            if dones is not None and dones[i]:
                if np.isfinite(self._sums[i]):
                    self.returns.append(float(self._sums[i]))
                self._sums[i] = 0.0
        return True

    def _on_rollout_end(self) -> None:
        if self.returns:
            self.logger.record("rollout/true_ep_rew_mean", float(np.mean(self.returns)))


class EvalUsers(BaseCallback):
    """Every ``every`` steps: the deterministic policy's success on new users.

    The measurement is ``robopref evaluate``'s
    (:func:`robopref.policies.evaluation.evaluate_loaded`): ``users`` new users of
    ``population`` drawn with ``seed``, each asking k active queries of the seed's candidate
    pool (a latent policy), one episode each; so the last row is what ``robopref evaluate
    --population P --users N --episodes 1 --seed S`` prints for the finished policy. The
    success rate (overall and per group) and the users' mean return are logged to
    TensorBoard (``eval/...``), printed, and appended to ``history``.
    """

    def __init__(
        self,
        meta: dict[str, Any],
        reward_model: RewardModel | None,
        population: Population,
        every: int,
        users: int,
        seed: int,
        history: list[dict[str, Any]],
    ) -> None:
        super().__init__()
        self.meta, self.reward_model, self.population = meta, reward_model, population
        self.every, self.users, self.seed, self.history = every, users, seed, history
        self._last = 0

    def _on_training_start(self) -> None:
        self._last = self.model.num_timesteps

    def _on_step(self) -> bool:
        if (
            self.users > 0
            and self.every > 0
            and self.model.num_timesteps - self._last >= self.every
        ):
            self._last = self.model.num_timesteps
            self.evaluate(self.model)
        return True

    def evaluate(self, model: BaseAlgorithm) -> dict[str, Any]:
        """Run the episodes now; returns (and records) the row."""
        policy = LoadedPolicy(model, self.meta, Path("."))
        latent = self.reward_model if self.meta["latent_dim"] else None
        records = evaluate_loaded(
            [(policy, self.reward_model)], latent, self.population, self.users, QUERIES,
            STRATEGY, 1, POOL_PAIRS, self.seed,
        )  # fmt: skip
        rows = result_rows(records, [policy.name], has_btl=False)
        row: dict[str, Any] = {"steps": int(model.num_timesteps), **summarize(rows)}
        if self.history and self.history[-1]["steps"] == row["steps"]:
            return self.history[-1]
        self.history.append(row)
        if getattr(model, "_logger", None) is not None:  # absent when nothing was learned
            model.logger.record("eval/success", row["success"])
            model.logger.record("eval/true_return", row["true_return"])
            model.logger.dump(row["steps"])
        per_group = "  ".join(
            f"{k[8:]} {v:.2f}" for k, v in row.items() if k.startswith("success_")
        )
        groups = f"({per_group})  " if per_group else ""  # goal-space users have no group
        tqdm.write(
            f"step {row['steps']}: held-out success {row['success']:.2f}  {groups}"
            f"true return {row['true_return']:.1f}"
        )
        return row


class SaveCheckpoint(BaseCallback):
    """Each call: ``checkpoint.zip`` (+ ``replay.pkl``) and ``checkpoint.json`` in ``out``.

    Meant as the callback of an event callback (:class:`EveryNTimesteps`,
    :class:`EveryNMinutes`); a second trigger at the same step writes nothing again.
    """

    def __init__(self, out: Path, meta: dict[str, Any], history: list[dict[str, Any]]) -> None:
        super().__init__()
        self.out, self.meta, self.history = Path(out), meta, history
        self.saved_steps = -1

    def _on_step(self) -> bool:
        if self.model.num_timesteps != self.saved_steps:
            self.save()
        return True

    def save(self) -> None:
        """Write the resumable state atomically (the JSON last: it marks a complete set)."""
        save_model(self.model, self.out / "checkpoint.zip")
        if getattr(self.model, "replay_buffer", None) is not None:
            with atomic_path(self.out / "replay.pkl") as temp:
                self.model.save_replay_buffer(temp)
        state = {**self.meta, "steps": int(self.model.num_timesteps), "history": self.history}
        PolicyMeta(state).write(self.out, "checkpoint.json")
        self.saved_steps = int(self.model.num_timesteps)


class EveryNMinutes(EventCallback):
    """Trigger ``callback`` whenever ``minutes`` of wall time have passed since the last
    trigger (or the start of training); ``minutes`` 0 or below: never."""

    def __init__(self, minutes: float, callback: BaseCallback) -> None:
        super().__init__(callback)
        self.seconds = 60.0 * minutes
        self._last = time.monotonic()

    def _on_training_start(self) -> None:
        super()._on_training_start()
        self._last = time.monotonic()

    def _on_step(self) -> bool:
        if self.seconds > 0 and time.monotonic() - self._last >= self.seconds:
            self._last = time.monotonic()
            return self._on_event()
        return True


class EveryNStepsFromStart(EveryNTimesteps):
    """SB3's ``EveryNTimesteps``, counting from the step training starts at: a resumed run
    does not save again on its first step (SB3 counts from step 0)."""

    def _on_training_start(self) -> None:
        super()._on_training_start()
        self.last_time_trigger = self.num_timesteps


def checkpoint_callbacks(
    out: Path,
    every_steps: int,
    every_minutes: float,
    meta: dict[str, Any],
    history: list[dict[str, Any]],
) -> tuple[SaveCheckpoint, list[BaseCallback]]:
    """The checkpoint writer and its triggers: every ``every_steps`` env steps and every
    ``every_minutes`` of wall time (either 0: that trigger is off)."""
    saver = SaveCheckpoint(out, meta, history)
    triggers: list[BaseCallback] = []
    if every_steps > 0:
        triggers.append(EveryNStepsFromStart(every_steps, saver))
    if every_minutes > 0:
        triggers.append(EveryNMinutes(every_minutes, saver))
    return saver, triggers
