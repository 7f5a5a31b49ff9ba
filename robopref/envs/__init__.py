"""robopref's MuJoCo tabletop envs (their Gymnasium ids are registered by robopref.tasks).

>>> import gymnasium as gym
>>> import robopref  # registers the ids below
>>> env = gym.make("robopref/PlatePlacement-v0", goal=(0.2, 0.15))

Other code that never imported robopref reaches them as
``gym.make("robopref:robopref/PlatePlacement-v0")``.
"""

from robopref.envs.rendering import default_gl_backend

default_gl_backend()

import gymnasium as gym  # noqa: E402

from robopref.envs.block_sort import BlockSortEnv  # noqa: E402
from robopref.envs.goal_env import GoalDictObservation  # noqa: E402
from robopref.envs.plate_placement import PlatePlacementEnv  # noqa: E402
from robopref.envs.table_setting import TableSettingEnv  # noqa: E402
from robopref.envs.tabletop import TabletopEnv, sample_goal  # noqa: E402


def episode_steps(env: gym.Env) -> int:
    """Steps in every episode of ``env`` (made by ``gym.make``): the task's own count where
    its control interface fixes one (TableSetting's place: 3), else ``max_episode_steps``."""
    own = getattr(env.unwrapped, "episode_steps", None)
    if own is not None:
        return int(own)
    if env.spec is None or not env.spec.max_episode_steps:
        raise ValueError(f"{env} has no max_episode_steps: register it with one")
    return int(env.spec.max_episode_steps)


__all__ = [
    "BlockSortEnv",
    "GoalDictObservation",
    "PlatePlacementEnv",
    "TableSettingEnv",
    "TabletopEnv",
    "episode_steps",
    "sample_goal",
]
