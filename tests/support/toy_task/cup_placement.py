"""The toy task's module: its spec, the only other file a new task touches."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robopref.data.proposals import moved_along_axes
from robopref.envs.plate_placement import SUCCESS_RADIUS, PlatePlacementEnv
from robopref.tasks.plate_placement import plate_expert, plate_reward
from robopref.tasks.spec import TaskGoals, TaskReward, TaskSpec
from robopref.users.optimal_value import plate_value
from tests.support.toy_task.cup_placement_env import GOAL_HIGH, GOAL_LOW, validate_left_point

ENV_ID = "robopref-test/CupPlacement-v0"


def cup_goals(**_env_kwargs: Any) -> TaskGoals:
    """Points of the left half's goal box, without compiling the scene."""
    space = gym.spaces.Box(GOAL_LOW, GOAL_HIGH, dtype=np.float64)
    return TaskGoals(ENV_ID, PlatePlacementEnv.feature_names, space, validate_left_point)


SPEC = TaskSpec(
    env_id=ENV_ID,
    entry_point="tests.support.toy_task.cup_placement_env:CupPlacementEnv",
    max_episode_steps=40,
    # The plate's reward and normalisation: a real task writes its own and measures its
    # offset and scale with robopref.users.synthetic.reward_moments.
    reward=TaskReward(
        plate_reward,
        goal_dim=2,
        offset=-0.53,
        scale=0.50,
        required=("x", "y", "height", "held", "flat", "on_table", "drop_height"),
        value=plate_value,
    ),
    goals=cup_goals,
    populations={
        "two-modes": {"modes": [{"goal": [0.15, 0.15]}, {"goal": [-0.1, 0.1]}]},
        "continuous": {"continuous": {"low": [-0.2, 0.0], "high": [0.2, 0.2]}},
    },
    expert=plate_expert,  # the plate's scripted expert: the same object and scene
    success_radius=SUCCESS_RADIUS,
    demo_defaults={"segment": 6},
    one_part_proposals=lambda ends, rng, goals: moved_along_axes(ends, rng, ("x", "y")),
)
