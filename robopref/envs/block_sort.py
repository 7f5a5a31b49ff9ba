"""``robopref/BlockSort-v0``: pick up a block and put it in one of the zones on the table.

The MuJoCo counterpart of the VPL paper's Ravens sorting task. ``n_zones`` (2 to 4,
default 2) coloured zones are painted on the table; which zone the block belongs in is
the user's hidden goal, a zone index in ``goal_space = Discrete(n_zones)``. Zone 0 is on
the robot's left (+y), zone 1 on its right; see ``ZONE_LAYOUTS``. The goal is never in
the observation.

Episode: the block starts on the table near the robot, the hand above it with the suction
off; 80 control steps (3.2 s at 25 Hz). The suction takes hold of the block when
``grip > 0`` and the tip touches its top, and lets go whenever ``grip <= 0``.

Action: ``[dx, dy, dz, grip]`` in [-1, 1] (see :mod:`robopref.envs.tabletop`).

Observation (float32, 16): suction tip xyz (3), holding (1), block centre xyz (3), block
centre minus tip (3), block linear velocity (3), tip minus block top (3).

Features (``info["features"]`` and :meth:`BlockSortEnv.features`, float32, in the order of
``feature_names``): block ``x, y``; ``height`` of its bottom above the table; ``held``;
``drop_height`` (height its bottom was last released from); ``speed``; ``reach``, the
distance from the suction tip to the block's top; and ``zone_i``, the horizontal distance
from the block to the centre of zone i, for each zone.

With ``goal=i`` (or ``goal="random"``) the env is the oracle, with reward terms
``reach`` (-1 · tip-to-block distance while the block is not held and not placed),
``transport`` (-1.5 · distance from the block's bottom to the goal zone's centre on the
table), ``placed`` (+2 while solved) and ``drop`` (-5 · release height above 2 cm, on the
step of release); ``info["is_success"]`` is true while the block rests on the table,
released, inside the goal zone (``ZONE_RADIUS``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np

from robopref.envs import scene
from robopref.envs.tabletop import RESTING_HEIGHT, SHARED_OBSERVATION_LAYOUT, TabletopEnv

#: a gentle set-down's release height (m) and the hand's distance once lifted off (m): the
#: served state of :meth:`BlockSortEnv.placed_features`
PLACED_DROP_HEIGHT = 0.005
PLACED_REACH = 0.05

BLOCK_HALF = 0.02
ZONE_RADIUS = 0.07
ZONE_LAYOUTS: dict[int, tuple[tuple[float, float], ...]] = {
    2: ((0.15, 0.18), (0.15, -0.18)),
    3: ((0.15, 0.22), (0.15, -0.22), (0.22, 0.0)),
    4: ((0.05, 0.2), (0.05, -0.2), (0.25, 0.2), (0.25, -0.2)),
}
ZONE_COLOURS = (
    (0.2, 0.45, 0.95, 1.0),
    (0.95, 0.75, 0.15, 1.0),
    (0.3, 0.8, 0.4, 1.0),
    (0.7, 0.35, 0.85, 1.0),
)


def checked_n_zones(n_zones: Any) -> int:
    """``n_zones`` as an int, or a ``ValueError`` naming the supported counts."""
    if isinstance(n_zones, bool) or not isinstance(n_zones, int | np.integer):
        raise ValueError(
            f"n_zones={n_zones!r} is not a whole number: use one of {sorted(ZONE_LAYOUTS)}"
        )
    if n_zones not in ZONE_LAYOUTS:
        raise ValueError(f"n_zones={n_zones!r} is not supported: use one of {sorted(ZONE_LAYOUTS)}")
    return int(n_zones)


def feature_names(n_zones: int) -> tuple[str, ...]:
    """The features of a BlockSort with ``n_zones`` zones, in order (module doc)."""
    zones = tuple(f"zone_{i}" for i in range(n_zones))
    return ("x", "y", "height", "held", "drop_height", "speed", "reach", *zones)


def validate_zone(goal: Any, n_zones: int) -> int:
    """A BlockSort goal: a zone index ``0 <= i < n_zones``."""
    if isinstance(goal, str | bytes):
        raise ValueError(
            f"goal={goal!r} is a string: pass the zone index as an int, e.g. goal=1 "
            f"(this BlockSort has zones 0..{n_zones - 1})"
        )
    if isinstance(goal, bool | np.bool_):
        raise ValueError(
            f"goal={goal!r} is a bool, not a zone index: pass an int in "
            f"0..{n_zones - 1}, e.g. goal=1"
        )
    try:
        index = int(np.asarray(goal).item())
    except (TypeError, ValueError):
        raise ValueError(f"goal={goal!r} must be a zone index (an int)") from None
    if index != np.asarray(goal).item() or not 0 <= index < n_zones:
        raise ValueError(
            f"goal={goal!r} is not a zone: this BlockSort has {n_zones} zones, "
            f"indices 0..{n_zones - 1} (pass n_zones=... for more)"
        )
    return index


class BlockSortEnv(TabletopEnv):
    """Pick up a block and put it down in the (hidden) preferred zone."""

    #: how near its zone's centre (m) the block must rest for success
    success_radius: ClassVar[float] = ZONE_RADIUS

    OBJECT: ClassVar[scene.ObjectSpec] = scene.ObjectSpec(
        name="block", shape="block", size=(BLOCK_HALF,), mass=0.1, rgba=(0.85, 0.15, 0.15, 1.0)
    )
    observation_layout: ClassVar[dict[str, slice]] = {
        **SHARED_OBSERVATION_LAYOUT,
        "object_velocity": slice(10, 13),
        "tip_from_object_top": slice(13, 16),
    }
    WORKSPACE_LOW: ClassVar[np.ndarray] = np.array([-0.35, -0.35, 2 * BLOCK_HALF + 0.002])

    def __init__(
        self,
        goal: Any = None,
        n_zones: int = 2,
        render_mode: str | None = None,
        width: int = 320,
        height: int = 240,
        camera: str = "front",
        **unknown: Any,
    ) -> None:
        self.n_zones = checked_n_zones(n_zones)
        self.zone_centers = np.array(ZONE_LAYOUTS[self.n_zones], dtype=np.float64)
        self._zone_x, self._zone_y = self.zone_centers[:, 0].copy(), self.zone_centers[:, 1].copy()
        self.feature_names = feature_names(self.n_zones)
        super().__init__(goal, render_mode, width, height, camera, **unknown)

    def _build_spec(self) -> mujoco.MjSpec:
        zones = tuple(
            scene.ZoneSpec(f"zone_{i}", tuple(c), ZONE_RADIUS, ZONE_COLOURS[i])
            for i, c in enumerate(self.zone_centers)
        )
        return scene.build_scene(self.OBJECT, zones)

    def _make_goal_space(self) -> gym.Space:
        return gym.spaces.Discrete(self.n_zones)

    def validate_goal(self, goal: Any) -> int:
        """A goal is a zone index ``0 <= i < n_zones``."""
        return validate_zone(goal, self.n_zones)

    def _sample_initial_state(self) -> bool:
        rng = self.np_random
        block = np.array([rng.uniform(-0.25, -0.05), rng.uniform(-0.15, 0.15), BLOCK_HALF])
        self._place_object(block)
        self._hand_pos[:] = (
            rng.uniform(-0.28, 0.0),
            rng.uniform(-0.2, 0.2),
            rng.uniform(0.12, 0.22),
        )
        return False

    def _observation(self) -> np.ndarray:
        part = self.observation_layout
        obs = np.empty(16, dtype=np.float32)
        obs[part["tip"]] = self._hand_pos
        obs[part["holding"]] = self.held
        obs[part["object"]] = self._obj_pos
        obs[part["object_from_tip"]] = self._obj_pos - self._hand_pos
        obs[part["object_velocity"]] = self._obj_linvel
        tip_from_top = part["tip_from_object_top"]
        obs[tip_from_top] = self._hand_pos - self._obj_pos
        obs[tip_from_top.stop - 1] -= BLOCK_HALF  # from the block's top, not its centre
        return obs

    def features(self) -> np.ndarray:
        """Block x, y, height, held, drop_height, speed, reach, zone distances (module doc)."""
        x, y, z = self._obj_pos.tolist()
        to_tip = self._hand_pos - self._obj_pos
        to_tip[2] -= BLOCK_HALF
        features = np.empty(7 + self.n_zones, dtype=np.float32)  # filled without temporaries
        features[:7] = (
            x,
            y,
            z - BLOCK_HALF,
            self.held,
            self._drop_height,
            np.sqrt(self._obj_linvel @ self._obj_linvel),
            np.sqrt(to_tip @ to_tip),
        )
        features[7:] = np.hypot(self._zone_x - x, self._zone_y - y)
        return features

    def placed_features(self, points: np.ndarray) -> np.ndarray:
        """Features ``(N, F)`` of the block set down gently and at rest at each table point
        ``(N, 2)``, the hand lifted off it: the state a user who wants it there is served
        by (what a learned reward is asked about to find the zone it prefers)."""
        points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
        out = np.zeros((len(points), len(self.feature_names)), dtype=np.float32)
        col = self.feature_index
        out[:, col["x"]], out[:, col["y"]] = points[:, 0], points[:, 1]
        out[:, col["drop_height"]] = PLACED_DROP_HEIGHT
        out[:, col["reach"]] = PLACED_REACH
        out[:, 7:] = np.hypot(self._zone_x - points[:, :1], self._zone_y - points[:, 1:])
        return out

    def goal_reward(
        self, features: np.ndarray, goal: Any, released: bool = False
    ) -> tuple[dict[str, float], bool]:
        """Oracle reward terms and success for a zone index (see module doc)."""
        col = self.feature_index
        zone_distance = float(features[col[f"zone_{goal}"]])
        height, held = float(features[col["height"]]), bool(features[col["held"]])
        success = (not held) and height < RESTING_HEIGHT and zone_distance < ZONE_RADIUS
        reach = 0.0 if held or success else -float(features[col["reach"]])
        transport = -1.5 * float(np.hypot(zone_distance, max(height, 0.0)))
        drop_height = float(features[col["drop_height"]])
        drop = -5.0 * max(drop_height - 0.02, 0.0) if released else 0.0
        terms = {
            "reach": reach,
            "transport": transport,
            "placed": 2.0 if success else 0.0,
            "drop": drop,
        }
        return terms, success

    # ------------------------------------------------ goal-conditioned view (HER)
    #: reward terms that do not depend on the goal (read from ``info["reward_terms"]``)
    GOAL_FREE_TERMS: ClassVar[tuple[str, ...]] = ("drop",)

    def achieved_goal(self) -> np.ndarray:
        """The block's table point ``(x, y)``: what a zone's centre is compared with."""
        return np.array(self._obj_pos[:2], dtype=np.float64)

    def desired_goal(self, goal: Any) -> np.ndarray:
        """The centre ``(x, y)`` of the goal zone."""
        return np.array(self.zone_centers[goal], dtype=np.float64)

    def goal_point_reward(
        self, features: np.ndarray, achieved: np.ndarray, desired: np.ndarray
    ) -> np.ndarray:
        """The goal-dependent reward terms (``reach``, ``transport``, ``placed``) for ``N``
        states at once, for a zone of ``ZONE_RADIUS`` centred at each ``desired (N, 2)``
        point, the block at ``achieved (N, 2)``: :meth:`goal_reward`, vectorized (where
        ``desired`` is a zone's centre, the same numbers)."""
        col = self.feature_index
        zone_distance = np.hypot(achieved[:, 0] - desired[:, 0], achieved[:, 1] - desired[:, 1])
        height, held = features[:, col["height"]], features[:, col["held"]] > 0.5
        success = ~held & (height < RESTING_HEIGHT) & (zone_distance < ZONE_RADIUS)
        reach = np.where(held | success, 0.0, -features[:, col["reach"]])
        transport = -1.5 * np.hypot(zone_distance, np.maximum(height, 0.0))
        return reach + transport + 2.0 * success

    def _marker_geometry(self, goal: Any) -> tuple[tuple[float, float, float], float]:
        cx, cy = self.zone_centers[goal]
        return (float(cx), float(cy), 0.0), ZONE_RADIUS * 1.1
