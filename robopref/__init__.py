"""robopref: personalized reinforcement learning from preferences on MuJoCo tabletop tasks.

``import robopref`` registers the Gymnasium ids of its tasks (:data:`ENV_IDS`:
``robopref/PlatePlacement-v0``, ``robopref/BlockSort-v0``, ``robopref/TableSetting-v0``;
:mod:`robopref.tasks` holds what robopref knows of each); other code can also
``gym.make("robopref:robopref/...")``.

The Python API (:mod:`robopref.api`, imported on first use so that ``import robopref``
stays light; docs/api.md): :func:`load_reward_model`, :func:`load_policy`,
:func:`synthetic_users`, :func:`personalize`, :func:`shipped_checkpoints`, and the
learned-reward wrappers :class:`LatentRewardEnv` and :class:`LatentRewardVectorEnv`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from robopref.envs.rendering import default_gl_backend

default_gl_backend()  # before mujoco is imported anywhere

from robopref.tasks import TASKS, register_task, scripted_policy  # noqa: E402

#: every registered robopref env id -> its task spec (robopref.tasks.TASKS)
ENV_IDS = TASKS

if TYPE_CHECKING:
    from robopref.api import (
        LatentRewardEnv,
        LatentRewardVectorEnv,
        PersonalizedPolicy,
        Policy,
        load_policy,
        load_reward_model,
        personalize,
        shipped_checkpoints,
        synthetic_users,
    )

__version__ = "0.1.0"
#: the names :mod:`robopref.api` exports through ``robopref`` (imported on first use)
API = (
    "LatentRewardEnv",
    "LatentRewardVectorEnv",
    "PersonalizedPolicy",
    "Policy",
    "load_policy",
    "load_reward_model",
    "personalize",
    "shipped_checkpoints",
    "synthetic_users",
)
__all__ = [
    "ENV_IDS",
    "LatentRewardEnv",
    "LatentRewardVectorEnv",
    "PersonalizedPolicy",
    "Policy",
    "__version__",
    "load_policy",
    "load_reward_model",
    "personalize",
    "register_task",
    "scripted_policy",
    "shipped_checkpoints",
    "synthetic_users",
]


def __getattr__(name: str) -> Any:
    """The API's names, imported from :mod:`robopref.api` on first use."""
    if name in API:
        value = getattr(importlib.import_module("robopref.api"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'robopref' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(API))
