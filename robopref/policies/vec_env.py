"""Vectorized training envs: in this process, or spread over a few worker processes.

SB3's ``SubprocVecEnv`` runs one process per env: with 8 envs on a 2-core machine every
step pays 8 pipe round trips and the processes fight for the cores (measured in
``benchmarks/ppo_speed.py``). :class:`WorkerGroupVecEnv` gives each worker process a
*group* of envs that it steps in a loop, so a step costs one round trip per worker and
the physics of the groups runs side by side, one group per core. It resets envs as
SB3's ``DummyVecEnv`` does (``terminal_observation`` and ``TimeLimit.truncated`` in the
info of a finished episode, the reset's info in ``reset_infos``), so a seeded run gives
the same transitions with any number of workers.

By default (:data:`DEFAULT_WORKERS`) the envs are stepped in this process, without
SB3's deep copy of every step's infos (:class:`InProcessVecEnv`).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv
from stable_baselines3.common.vec_env.base_vec_env import CloudpickleWrapper, VecEnvIndices

#: worker processes by default: none. Measured on the 2-core machine
#: (``benchmarks/ppo_speed.py``): two workers step the envs slower than this process does,
#: so the default steps them here; more cores may pay (``--workers N``).
DEFAULT_WORKERS = 0


def _step_group(
    envs: list[gym.Env], actions: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]], list[dict[str, Any]]]:
    """Step every env of a group, resetting finished episodes as ``DummyVecEnv`` does."""
    observations, rewards, dones, infos, reset_infos = [], [], [], [], []
    for env, action in zip(envs, actions, strict=True):
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        info["TimeLimit.truncated"] = truncated and not terminated
        reset_info: dict[str, Any] = {}
        if done:
            info["terminal_observation"] = obs
            obs, reset_info = env.reset()
        observations.append(obs)
        rewards.append(reward)
        dones.append(done)
        infos.append(info)
        reset_infos.append(reset_info)
    return (
        np.stack(observations),
        np.asarray(rewards, dtype=np.float32),
        np.asarray(dones, dtype=bool),
        infos,
        reset_infos,
    )


def _worker(remote: Connection, parent: Connection, factories: CloudpickleWrapper) -> None:
    """A worker process: builds its group of envs and serves commands until ``close``."""
    parent.close()
    envs: list[gym.Env] = [make() for make in factories.var]
    try:
        while True:
            command, payload = remote.recv()
            if command == "step":
                remote.send(_step_group(envs, payload))
            elif command == "reset":
                seeds, options = payload
                results = [
                    env.reset(seed=seed, **({"options": option} if option else {}))
                    for env, seed, option in zip(envs, seeds, options, strict=True)
                ]
                remote.send((np.stack([r[0] for r in results]), [r[1] for r in results]))
            elif command == "spaces":
                remote.send((envs[0].observation_space, envs[0].action_space))
            elif command == "get_attr":
                local, name = payload
                remote.send([getattr(envs[i], name) for i in local])
            elif command == "set_attr":
                local, name, value = payload
                for i in local:
                    setattr(envs[i], name, value)
                remote.send(None)
            elif command == "env_method":
                local, name, args, kwargs = payload
                remote.send([getattr(envs[i], name)(*args, **kwargs) for i in local])
            elif command == "is_wrapped":
                local, wrapper = payload
                remote.send([_is_wrapped(envs[i], wrapper) for i in local])
            elif command == "render":
                remote.send([env.render() for env in envs])
            elif command == "close":
                break
            else:
                raise ValueError(f"unknown worker command {command!r}")
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        for env in envs:
            env.close()
        remote.close()


def _is_wrapped(env: gym.Env, wrapper: type[gym.Wrapper]) -> bool:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, wrapper):
            return True
        env = env.env
    return False


class WorkerGroupVecEnv(VecEnv):
    """``len(factories)`` envs stepped by ``workers`` processes, a contiguous group each."""

    def __init__(
        self,
        factories: Sequence[Callable[[], gym.Env]],
        workers: int,
        start_method: str | None = None,
    ) -> None:
        if not 1 <= workers <= len(factories):
            raise ValueError(f"workers={workers} must be between 1 and the {len(factories)} envs")
        if start_method is None:
            start_method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        context = mp.get_context(start_method)
        #: env indices of each worker's group
        self.groups = [list(map(int, g)) for g in np.array_split(range(len(factories)), workers)]
        self._owner = {
            env: (w, local) for w, g in enumerate(self.groups) for local, env in enumerate(g)
        }
        self.remotes: list[Connection] = []
        self.processes = []
        for group in self.groups:
            remote, child = context.Pipe()
            process = context.Process(
                target=_worker,
                args=(child, remote, CloudpickleWrapper([factories[i] for i in group])),
                daemon=True,
            )
            process.start()
            child.close()
            self.remotes.append(remote)
            self.processes.append(process)
        self.remotes[0].send(("spaces", None))
        observation_space, action_space = self.remotes[0].recv()
        self.closed = False
        super().__init__(len(factories), observation_space, action_space)

    def step_async(self, actions: np.ndarray) -> None:
        for remote, group in zip(self.remotes, self.groups, strict=True):
            remote.send(("step", actions[group[0] : group[-1] + 1]))

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        parts = [remote.recv() for remote in self.remotes]
        self.reset_infos = [info for part in parts for info in part[4]]
        return (
            np.concatenate([part[0] for part in parts]),
            np.concatenate([part[1] for part in parts]),
            np.concatenate([part[2] for part in parts]),
            [info for part in parts for info in part[3]],
        )

    def reset(self) -> np.ndarray:
        for remote, group in zip(self.remotes, self.groups, strict=True):
            remote.send(
                ("reset", ([self._seeds[i] for i in group], [self._options[i] for i in group]))
            )
        parts = [remote.recv() for remote in self.remotes]
        self.reset_infos = [info for part in parts for info in part[1]]
        self._reset_seeds()
        self._reset_options()
        return np.concatenate([part[0] for part in parts])

    def close(self) -> None:
        if self.closed:
            return
        for remote in self.remotes:
            # the worker may be gone already (Ctrl-C reaches every process)
            with contextlib.suppress(BrokenPipeError, EOFError):
                remote.send(("close", None))
        for process in self.processes:
            process.join(timeout=10)
        self.closed = True

    def get_images(self) -> Sequence[np.ndarray | None]:
        for remote in self.remotes:
            remote.send(("render", None))
        return [image for remote in self.remotes for image in remote.recv()]

    def _by_worker(self, indices: VecEnvIndices) -> list[tuple[int, list[int]]]:
        """(worker, local indices) for the env ``indices``, in index order."""
        chosen: dict[int, list[int]] = {}
        for index in self._get_indices(indices):
            worker, local = self._owner[index]
            chosen.setdefault(worker, []).append(local)
        return sorted(chosen.items())

    def _ask(self, command: str, indices: VecEnvIndices, *payload: Any) -> list[Any]:
        by_worker = self._by_worker(indices)
        for worker, local in by_worker:
            self.remotes[worker].send((command, (local, *payload)))
        return [item for worker, _ in by_worker for item in self.remotes[worker].recv()]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return self._ask("get_attr", indices, attr_name)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        for worker, local in self._by_worker(indices):
            self.remotes[worker].send(("set_attr", (local, attr_name, value)))
            self.remotes[worker].recv()

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        return self._ask("env_method", indices, method_name, method_args, method_kwargs)

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        return self._ask("is_wrapped", indices, wrapper_class)


class InProcessVecEnv(DummyVecEnv):
    """SB3's ``DummyVecEnv`` without its deep copy of every step's infos: each env step
    returns a fresh info dict, so a shallow copy of the list is enough (the deep copy took
    about a tenth of a PPO step, ``benchmarks/ppo_speed.py``)."""

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        for index, env in enumerate(self.envs):
            obs, reward, terminated, truncated, info = env.step(self.actions[index])
            self.buf_rews[index] = reward
            self.buf_dones[index] = terminated or truncated
            info["TimeLimit.truncated"] = truncated and not terminated
            if self.buf_dones[index]:
                info["terminal_observation"] = obs
                obs, self.reset_infos[index] = env.reset()
            self.buf_infos[index] = info
            self._save_obs(index, obs)
        return (
            self._obs_from_buf(),
            np.copy(self.buf_rews),
            np.copy(self.buf_dones),
            list(self.buf_infos),
        )


def build_vec_env(factories: list[Callable[[], gym.Env]], workers: int, seed: int) -> VecEnv:
    """The envs of ``factories``, seeded ``seed + i``: stepped in this process
    (:class:`InProcessVecEnv`) for ``workers`` 0, else by ``min(workers, n)`` processes."""
    if workers < 0:
        raise ValueError(f"workers={workers} must be 0 (this process) or a number of processes")
    count = min(workers, len(factories))
    venv: VecEnv = WorkerGroupVecEnv(factories, count) if count else InProcessVecEnv(factories)
    venv.seed(seed)
    return venv
