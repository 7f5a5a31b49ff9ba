"""Policy checkpoints: an SB3 model zip plus a JSON of metadata, written atomically.

A policy folder (``--out`` of ``robopref train-policy``) holds

* ``model.zip``: the final SB3 model (``PPO``/``SAC`` ``.save``),
* ``meta.json``: what it is (:class:`robopref.policies.meta.PolicyMeta` reads, checks and
  writes it; ``kind``: ``latent``, ``oracle`` or ``plain``; ``method``:
  ``rl`` or ``cpl``, absent before CPL; ``name``; ``algo``; env id;
  latent size; the reward model's path and ``fingerprint()``; steps; history),
* ``checkpoint.zip`` + ``checkpoint.json`` (+ ``replay.pkl`` for SAC): the last periodic
  state, from which ``--resume`` continues,
* ``tb/``: TensorBoard logs, only when trained with ``--tb``.

``reward_path`` is recorded relative to the policy folder (``../vpl.pt``), so a run folder
that is moved, or used from another working folder, still finds its reward model.
:func:`read_meta` returns it resolved (:func:`robopref.policies.meta.resolve_reward_path`):
relative to the policy folder; else, for folders written before, as recorded (relative to
the working folder); else the file of that name beside the policy folder (a loop's
``OUT/vpl.pt`` beside ``OUT/policy_vpl``, the shipped ``checkpoints/vpl.pt`` beside
``checkpoints/policy_vpl``).
The recorded text stays in ``reward_path_recorded``.

:func:`load_policy` refuses a latent policy whose reward model is not the one given (its
latent space would mean something else) with an error naming both; a damaged or truncated
model zip is a clear error naming the file and the fix (:func:`load_sb3`).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3 import SAC
from stable_baselines3.common.base_class import BaseAlgorithm

from robopref.files import atomic_path
from robopref.policies.lean_ppo import LeanPPO
from robopref.policies.meta import PolicyMeta, retrain_hint
from robopref.reward.base import RewardModel

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": LeanPPO, "sac": SAC}


def save_model(model: BaseAlgorithm, path: Path) -> None:
    """``model.save`` to ``path`` (a ``.zip``) atomically."""
    with atomic_path(path) as temp:
        model.save(temp)


def existing_reward(path: str, flag: str, folder: str) -> str:
    """``path`` if it is a file, else an error naming ``flag`` to point at the model."""
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"the reward model of {folder} is not at {path}: pass its checkpoint with "
            f"{flag} PATH (or train one with `robopref train-reward`)"
        )
    return path


def read_meta(folder: str | Path) -> dict[str, Any]:
    """The checked ``meta.json`` of a policy folder as a dict: :meth:`PolicyMeta.read`'s
    ``data`` (``reward_path`` resolved; as written in ``reward_path_recorded``)."""
    return PolicyMeta.read(folder).data


def recorded_population(meta: dict[str, Any]) -> str | None:
    """The population a policy was trained for (its options' ``population``), if recorded."""
    return PolicyMeta(meta).population


def load_sb3(algo: str, path: Path, fix: str, **kwargs: Any) -> BaseAlgorithm:
    """``ALGOS[algo].load(path, **kwargs)``, or a ``ValueError`` naming ``path`` and ``fix``
    when it is not a readable model (not a zip, truncated, from another algorithm)."""
    try:
        return ALGOS[algo].load(path, **kwargs)
    except (
        OSError, ValueError, KeyError, RuntimeError, AssertionError, EOFError,
        zipfile.BadZipFile,
    ) as error:  # fmt: skip
        # A truncated zip: SB3 asserts "No data found in the saved file".
        raise ValueError(
            f"{path} is not a readable {algo} model, damaged or cut short "
            f"({type(error).__name__}: {error}): {fix}"
        ) from error


@dataclass
class LoadedPolicy:
    """A trained policy and what it needs: ``predict(obs ⊕ z or obs ⊕ goal)``.

    Its observations come from the env it was trained in, wrappers included (the set-down
    primitive, env kwargs, z or goal appended): build that env with
    :func:`robopref.policies.rollout.make_eval_env` from its ``meta``, or load the policy
    with ``robopref.load_policy(...)``, whose ``make_env()`` does so.
    """

    model: BaseAlgorithm
    meta: dict[str, Any]
    folder: Path

    @property
    def name(self) -> str:
        """Its label in tables (``vpl``, ``btl``, ``oracle``, ...)."""
        return str(self.meta["name"])

    @property
    def kind(self) -> str:
        """``latent`` (obs ⊕ z), ``oracle`` (obs ⊕ goal) or ``plain`` (obs alone)."""
        return str(self.meta["kind"])

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """The action for one (augmented) observation, or for a batch of them."""
        action, _ = self.model.predict(obs, deterministic=deterministic)
        return np.asarray(action, dtype=np.float32)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The deterministic action for one (augmented) observation."""
        return self.predict(obs, deterministic=True)


def load_policy(
    folder: str | Path,
    reward_model: RewardModel | None = None,
    device: str = "cpu",
    checkpoint: bool = False,
) -> LoadedPolicy:
    """Load a policy folder; a latent policy is checked against ``reward_model`` if given."""
    folder = Path(folder)
    meta = read_meta(folder)
    if (
        reward_model is not None
        and meta["kind"] == "latent"
        and meta["reward_fingerprint"] != reward_model.fingerprint()
    ):
        raise ValueError(
            f"the policy {folder} was trained with the reward model {meta['reward_path']} "
            f"(fingerprint {meta['reward_fingerprint']}), not the one given "
            f"({reward_model.fingerprint()}): its z means something else. Pass "
            f"--reward {meta['reward_path']} or retrain the policy with this reward model"
        )
    path = folder / ("checkpoint.zip" if checkpoint else "model.zip")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the training run has not finished")
    fix = f"restore {path} from a copy, or {retrain_hint(folder)}"
    model = load_sb3(meta["algo"], path, fix, device=device)
    if meta.get("method") == "guided":  # a skill commanded to the reward's peak
        from robopref.policies.guided import guided_policy

        return guided_policy(LoadedPolicy(model, meta, folder), reward_model)
    return LoadedPolicy(model, meta, folder)
