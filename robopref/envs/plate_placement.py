"""``robopref/PlatePlacement-v0``: the robot carries a plate and sets it down on the table.

Where the plate should go is the user's hidden goal: a point ``(x, y)`` on the table, in
metres in the table frame (origin at the table's centre, x away from the robot, y to its
left), inside ``goal_space = Box([-0.25, -0.25], [0.25, 0.25])``. The goal is never in the
observation.

Episode: the suction holds the plate from the start, the hand and plate begin at a random
pose near the robot, and an episode lasts 60 control steps (2.4 s at 25 Hz; truncation by
``max_episode_steps``). The suction may only let go once the plate's bottom is less than
``RELEASE_HEIGHT`` above the table (a safety interlock: the plate can be set down or
dropped from a few centimetres, never thrown). The suction takes hold again when ``grip > 0``
and the tip touches the plate's top.

Action: ``[dx, dy, dz, grip]`` in [-1, 1] (see :mod:`robopref.envs.tabletop`).

Observation (float32, 16): suction tip xyz (3), suction on and holding (1), plate centre
xyz (3), plate centre minus tip (3), plate's up axis in the world (3), plate linear
velocity (3).

Features (``info["features"]`` and :meth:`PlatePlacementEnv.features`, float32, in the
order of ``feature_names``):

=============  =============================================================
``x, y``       plate centre on the table (m, table frame)
``height``     height of the plate's bottom above the table top (m)
``held``       1 while the suction holds the plate
``flat``       1 when the plate is tilted less than 10 degrees
``on_table``   1 when the plate rests on the table top: not held, bottom within
               4 mm of the top, centre over the table
``drop_height`` the height its bottom was released from, last time it was let go (m)
``speed``      plate linear speed (m/s)
=============  =============================================================

With ``goal=(x, y)`` (or ``goal="random"``: a new goal from ``goal_space`` each reset)
the env is the oracle: the reward is the sum of ``info["reward_terms"]``

* ``distance`` = -2 · horizontal distance d from the plate's centre to the goal,
* ``height``  = -4 · (height of the plate's bottom) · exp(-d / 5 cm): lower it near the goal,
* ``placed``  = +2 while the task is solved,
* ``drop``    = -10 · (release height above 1 cm), on the step the plate is let go,

and ``info["is_success"]`` is true while the plate rests flat on the table, released,
within ``SUCCESS_RADIUS`` (5 cm) of the goal. Without a goal the reward is 0.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from robopref.envs import scene
from robopref.envs.tabletop import RESTING_HEIGHT, SHARED_OBSERVATION_LAYOUT, TabletopEnv

PLATE_RADIUS = 0.09
PLATE_HALF_HEIGHT = 0.008
RELEASE_HEIGHT = 0.03
SUCCESS_RADIUS = 0.05
#: the release height (m) of a gentle set-down, well under the 1 cm the users' norm allows
GENTLE_DROP = 0.005
GOAL_LOW = np.array([-0.25, -0.25])
GOAL_HIGH = np.array([0.25, 0.25])
COS_FLAT = float(np.cos(np.deg2rad(10.0)))


def validate_point(goal: Any) -> np.ndarray:
    """A PlatePlacement goal: a table point ``(x, y)`` in metres inside the goal box."""
    try:
        point = np.asarray(goal, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        point = np.full(1, np.nan)  # not numbers: the same message as a wrong shape
    if point.shape != (2,) or not np.all(np.isfinite(point)):
        raise ValueError(f"goal={goal!r} must be a table point (x, y) in metres, e.g. (0.2, 0.15)")
    if np.any(point < GOAL_LOW - 1e-9) or np.any(point > GOAL_HIGH + 1e-9):
        raise ValueError(
            f"goal={tuple(point.round(3).tolist())} is off the table's goal region: x and y "
            f"must lie in [{GOAL_LOW[0]}, {GOAL_HIGH[0]}] m (table frame, origin at its centre)"
        )
    return point


class PlatePlacementEnv(TabletopEnv):
    """Carry a plate and set it down at the (hidden) goal point on the table."""

    #: how near its goal point (m) the plate must rest for success
    success_radius: ClassVar[float] = SUCCESS_RADIUS

    OBJECT: ClassVar[scene.ObjectSpec] = scene.ObjectSpec(
        name="plate",
        shape="plate",
        size=(PLATE_RADIUS, PLATE_HALF_HEIGHT),
        mass=0.4,
        rgba=(0.96, 0.96, 0.98, 1.0),
    )
    feature_names: ClassVar[tuple[str, ...]] = (
        "x",
        "y",
        "height",
        "held",
        "flat",
        "on_table",
        "drop_height",
        "speed",
    )
    observation_layout: ClassVar[dict[str, slice]] = {
        **SHARED_OBSERVATION_LAYOUT,
        "object_up": slice(10, 13),
        "object_velocity": slice(13, 16),
    }
    WORKSPACE_LOW: ClassVar[np.ndarray] = np.array([-0.35, -0.35, 2 * PLATE_HALF_HEIGHT + 0.001])

    def _make_goal_space(self) -> gym.Space:
        return gym.spaces.Box(GOAL_LOW, GOAL_HIGH, dtype=np.float64)

    def validate_goal(self, goal: Any) -> np.ndarray:
        """A goal is a table point ``(x, y)`` in metres inside ``goal_space``."""
        return validate_point(goal)

    def _sample_initial_state(self) -> bool:
        rng = self.np_random
        tip = np.array([rng.uniform(-0.28, -0.08), rng.uniform(-0.2, 0.2), rng.uniform(0.12, 0.22)])
        self._hand_pos[:] = tip
        self._place_object(tip - np.array([0.0, 0.0, PLATE_HALF_HEIGHT + 0.0005]))
        return True

    def _may_release(self) -> bool:
        return self.object_bottom_height() < RELEASE_HEIGHT

    def _observation(self) -> np.ndarray:
        part = self.observation_layout
        obs = np.empty(16, dtype=np.float32)
        obs[part["tip"]] = self._hand_pos
        obs[part["holding"]] = self.held
        obs[part["object"]] = self._obj_pos
        obs[part["object_from_tip"]] = self._obj_pos - self._hand_pos
        obs[part["object_up"]] = self._obj_xmat[2::3]
        obs[part["object_velocity"]] = self._obj_linvel
        return obs

    def features(self) -> np.ndarray:
        """Plate x, y, height, held, flat, on_table, drop_height, speed (see module doc)."""
        x, y = self._obj_pos[0], self._obj_pos[1]
        height = self._obj_pos[2] - PLATE_HALF_HEIGHT
        held = self.held
        up_z = self._obj_xmat[8]
        hx, hy = scene.TABLE_HALF_EXTENT
        on_table = (not held) and abs(height) < RESTING_HEIGHT and abs(x) < hx and abs(y) < hy
        speed = np.sqrt(self._obj_linvel @ self._obj_linvel)
        return np.array(
            [x, y, height, held, up_z > COS_FLAT, on_table, self._drop_height, speed],
            dtype=np.float32,
        )

    @classmethod
    def placed_features(cls, points: np.ndarray) -> np.ndarray:
        """Features ``(N, 8)`` of the plate set down gently (from ``GENTLE_DROP``) and at rest,
        flat, at each table point ``(N, 2)``: the state a user who wants it there is served
        by (what a learned reward is asked about to find where it peaks)."""
        points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
        out = np.zeros((len(points), len(cls.feature_names)), dtype=np.float32)
        col = {name: i for i, name in enumerate(cls.feature_names)}
        out[:, col["x"]], out[:, col["y"]] = points[:, 0], points[:, 1]
        out[:, col["flat"]] = out[:, col["on_table"]] = 1.0
        out[:, col["drop_height"]] = GENTLE_DROP
        return out

    def goal_reward(
        self, features: np.ndarray, goal: Any, released: bool = False
    ) -> tuple[dict[str, float], bool]:
        """Oracle reward terms and success for a goal point (see module doc)."""
        col = self.feature_index
        dx, dy = features[col["x"]] - goal[0], features[col["y"]] - goal[1]
        distance_xy = np.sqrt(dx * dx + dy * dy)
        resting = features[col["on_table"]] and features[col["flat"]]
        success = bool(resting and distance_xy < SUCCESS_RADIUS)
        # Lowering pays only near the goal: far from it the plate should travel high, so that
        # it is not set down early (which PPO otherwise learns, and cannot undo).
        height = float(features[col["height"]])
        lowering = max(height, 0.0) * np.exp(-distance_xy / SUCCESS_RADIUS)
        drop_height = float(features[col["drop_height"]])
        drop = -10.0 * max(drop_height - 0.01, 0.0) if released else 0.0
        terms = {
            "distance": -2.0 * float(distance_xy),
            "height": -4.0 * lowering,
            "placed": 2.0 if success else 0.0,
            "drop": drop,
        }
        return terms, success

    # ------------------------------------------------ goal-conditioned view (HER)
    #: reward terms that do not depend on the goal (read from ``info["reward_terms"]``)
    GOAL_FREE_TERMS: ClassVar[tuple[str, ...]] = ("drop",)

    def achieved_goal(self) -> np.ndarray:
        """The plate's table point ``(x, y)``: what a goal point is compared with."""
        return np.array(self._obj_pos[:2], dtype=np.float64)

    def desired_goal(self, goal: Any) -> np.ndarray:
        """The table point ``(x, y)`` of ``goal`` (the goal itself)."""
        return np.asarray(goal, dtype=np.float64).reshape(2)

    def goal_point_reward(
        self, features: np.ndarray, achieved: np.ndarray, desired: np.ndarray
    ) -> np.ndarray:
        """The goal-dependent reward terms (``distance``, ``height``, ``placed``) for
        ``N`` states at once: ``features (N, F)``, plate points ``achieved (N, 2)``, goal
        points ``desired (N, 2)``; the same numbers :meth:`goal_reward` gives, vectorized."""
        col = self.feature_index
        distance = np.hypot(achieved[:, 0] - desired[:, 0], achieved[:, 1] - desired[:, 1])
        resting = (features[:, col["on_table"]] > 0.5) & (features[:, col["flat"]] > 0.5)
        success = resting & (distance < SUCCESS_RADIUS)
        height = np.maximum(features[:, col["height"]], 0.0)
        lowering = height * np.exp(-distance / SUCCESS_RADIUS)
        return -2.0 * distance - 4.0 * lowering + 2.0 * success

    def _marker_geometry(self, goal: Any) -> tuple[tuple[float, float, float], float]:
        return (float(goal[0]), float(goal[1]), 0.0), SUCCESS_RADIUS
