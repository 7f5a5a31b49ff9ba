"""``robopref/TableSetting-v0``: lay a table with a plate, a cup and a utensil.

The three objects start in a staging area near the robot (three slots across the table at
``x = -0.24``, in random order, jittered); the suction arm carries each to its place.
Where each goes is the user's hidden goal, an *arrangement*: the plate's spot ``(x, y)``
and the cup's and the utensil's offsets from it, ``goal = (plate_x, plate_y, cup_dx,
cup_dy, utensil_dx, utensil_dy)`` in metres in the table frame (x away from the robot, y to
its left), inside ``goal_space`` (:class:`ArrangementSpace`: a box whose arrangements keep
every object on the reachable table and clear of the others). The goal is never in the
observation.

Two control interfaces, one task (``control=``):

* ``"motion"`` (default): the 4-D suction-tip action of every robopref task,
  ``[dx, dy, dz, grip]`` (see :mod:`robopref.envs.tabletop`); the suction takes hold of the
  object whose top the tip touches and lets go whenever ``grip <= 0``. An episode lasts
  ``MOTION_STEPS`` (150) control steps, enough for three pick-and-place moves.
* ``"place"``: one step per object, in the fixed order plate, cup, utensil. The action
  ``[u, v]`` in [-1, 1] is the table point where the next object goes, mapped linearly onto
  ``PLACE_LOW..PLACE_HIGH`` (:meth:`TableSettingEnv.place_action` converts a point); the env
  carries the object there with its scripted motion (:func:`arrangement_action`, every
  control step simulated, and rendered into :attr:`TableSettingEnv.motion_frames` when the
  env renders; under ``render_mode="rgb_array_list"`` ``render()`` returns them all) and
  the episode terminates after the third object: a step after it raises ``ResetNeeded``.
  An action outside [-1, 1] (a point off the place region) is refused, not clipped. This
  is the interface of VPL's rearrangement tasks, and what makes RL on the task quick.

Observation (float32, 25): suction tip xyz (3), holding (1), the *active* object's centre
xyz (the held one, else the next never-taken one in the order) (3), that centre minus the
tip (3), the plate's, cup's and utensil's centres (9), which object is held (one-hot, 3)
and which is next (one-hot, 3). "Next" reads no goal: it is the first object in the order
the suction has not yet taken.

Features (``info["features"]``, :meth:`TableSettingEnv.features`), six per object, named
``<object>_<quantity>`` (``plate_x``, ``cup_resting``, ...): ``x, y`` (centre on the table),
``height`` (of its bottom above the table top), ``held``, ``resting`` (released, upright,
bottom within 4 mm of the table top, over the table) and ``drop_height`` (the height its
bottom was last let go from).

With a goal the env is the oracle: ``info["reward_terms"]`` sum to the reward, per object o
with spot s_o and horizontal distance d_o from it: ``distance`` (-2 Σ d_o), ``height``
(-4 Σ height_o exp(-d_o / 5 cm): lower it near its spot), ``placed`` (+1 per object resting
within ``SUCCESS_RADIUS`` of its spot), ``drop`` (-10 · release height above 1 cm, on the
step an object is let go) and ``reach`` (motion only: -1 · distance from the tip to the next
object while nothing is held). ``info["is_success"]``: every object rests within
``SUCCESS_RADIUS`` of its spot.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np

from robopref.envs import scene
from robopref.envs.rendering import add_marker_disc
from robopref.envs.tabletop import (
    GRASP_HEIGHT,
    MARKER_RGBA,
    MAX_HAND_STEP,
    RESTING_HEIGHT,
    SHARED_OBSERVATION_LAYOUT,
    TabletopEnv,
    _action_values,
    _clamp,
    check_reset_options,
    weld_here,
)

OBJECT_NAMES = ("plate", "cup", "utensil")
OBJECTS: dict[str, scene.ObjectSpec] = {
    "plate": scene.ObjectSpec("plate", "plate", (0.07, 0.008), 0.3, (0.96, 0.96, 0.98, 1.0)),
    "cup": scene.ObjectSpec("cup", "cup", (0.03, 0.035), 0.15, (0.25, 0.5, 0.85, 1.0)),
    "utensil": scene.ObjectSpec("utensil", "box", (0.06, 0.012, 0.005), 0.05, (0.7, 0.7, 0.75, 1)),
}
HALF_HEIGHT = {"plate": 0.008, "cup": 0.035, "utensil": 0.005}
#: half extents (x, y) of each object's footprint on the table (the arrangement check's)
FOOTPRINT = {"plate": (0.07, 0.07), "cup": (0.03, 0.03), "utensil": (0.06, 0.012)}
#: the suction takes hold when the tip is at most this far (m, horizontally) from the centre
GRASP_REACH = {"plate": 0.05, "cup": 0.02, "utensil": 0.01}
QUANTITIES = ("x", "y", "height", "held", "resting", "drop_height")
FEATURE_NAMES = tuple(f"{o}_{q}" for o in OBJECT_NAMES for q in QUANTITIES)
N_OBJECTS = len(OBJECT_NAMES)
MOTION_STEPS = 150
SUCCESS_RADIUS = 0.04
#: staging slots (x, y) the objects start in, in random order, jittered by STAGING_JITTER
STAGING_X, STAGING_Y, STAGING_JITTER = -0.24, (-0.2, 0.0, 0.2), 0.02
#: the place interface's table region: the action's [-1, 1] maps linearly onto it
PLACE_LOW = np.array([-0.1, -0.3])
PLACE_HIGH = np.array([0.32, 0.3])
#: every object's spot stays inside this square (m, both axes), within the hand's reach
REACH_LIMIT = 0.32
#: footprints of an arrangement's objects stay this far apart (m)
CLEARANCE = 0.005
GOAL_LOW = np.array([0.0, -0.15, -0.14, -0.16, -0.04, -0.14])
GOAL_HIGH = np.array([0.25, 0.15, 0.04, 0.16, 0.08, 0.14])
#: the tip's height while carrying (m): a held cup's bottom clears everything on the table
CARRY_HEIGHT = 0.15
#: the place interface's own motion moves the hand up to this far per control step (m):
#: twice the motion interface's limit, so that a place step costs half the physics
PLACE_HAND_STEP = 2 * MAX_HAND_STEP
#: where the scripted motion parks the hand once the table is set (out of the way of the view)
REST_POSE = (-0.25, 0.0, CARRY_HEIGHT)
#: a place step gives up (and lets go where it is) after this many control steps
PLACE_STEP_LIMIT = 120
COS_UPRIGHT = float(np.cos(np.deg2rad(20.0)))
CONTROLS = ("motion", "place")


def spots(goal: np.ndarray) -> np.ndarray:
    """The table points ``(..., 3, 2)`` of plate, cup and utensil for arrangements ``(..., 6)``."""
    goal = np.asarray(goal, dtype=np.float64)
    plate = goal[..., 0:2]
    return np.stack([plate, plate + goal[..., 2:4], plate + goal[..., 4:6]], axis=-2)


def feasible(goal: np.ndarray) -> np.ndarray:
    """Whether each arrangement ``(..., 6)`` keeps every spot within reach and the objects'
    footprints ``CLEARANCE`` apart: ``(...)`` bool."""
    points = spots(goal)
    ok = np.all(np.abs(points) <= REACH_LIMIT, axis=(-1, -2))
    half = np.array([FOOTPRINT[o] for o in OBJECT_NAMES])
    for i in range(N_OBJECTS):
        for j in range(i + 1, N_OBJECTS):
            gap = np.abs(points[..., i, :] - points[..., j, :]) - half[i] - half[j]
            ok &= np.any(gap >= CLEARANCE, axis=-1)
    return ok


class ArrangementSpace(gym.spaces.Box):
    """The box of arrangements, less those that put objects off reach or on each other:
    ``sample()`` draws uniformly from what is left, ``contains`` refuses the rest."""

    def __init__(self) -> None:
        super().__init__(GOAL_LOW, GOAL_HIGH, dtype=np.float64)

    #: :func:`feasible`, what a population's continuous draws are filtered by (a plain
    #: function, so that populations holding it pickle)
    feasible = staticmethod(feasible)

    def sample(self, mask: Any = None, probability: Any = None) -> np.ndarray:
        """A uniform draw among the feasible arrangements (by rejection)."""
        while True:
            goal = super().sample(mask, probability)
            if feasible(goal):
                return goal

    def contains(self, x: Any) -> bool:
        """Inside the box and feasible."""
        return bool(super().contains(x) and feasible(np.asarray(x)))


def place_point(action: np.ndarray) -> np.ndarray:
    """The table point (x, y) a place action ``[u, v]`` in [-1, 1] commands."""
    unit = (np.clip(np.asarray(action, np.float64), -1.0, 1.0) + 1.0) / 2.0
    return PLACE_LOW + unit * (PLACE_HIGH - PLACE_LOW)


def _place_region() -> str:
    return (
        f"x in [{PLACE_LOW[0]:g}, {PLACE_HIGH[0]:g}] m, y in [{PLACE_LOW[1]:g}, "
        f"{PLACE_HIGH[1]:g}] m (table frame)"
    )


def place_action(x: float, y: float, clip: bool = False) -> np.ndarray:
    """The place action ``[u, v]`` that commands the table point ``(x, y)``.

    A point outside the place region (``PLACE_LOW..PLACE_HIGH``) is a ``ValueError`` that
    names the region; with ``clip=True`` it is moved to the region's nearest point instead
    (what the scripted expert does for a spot the place interface cannot reach).
    """
    point = np.array([x, y], dtype=np.float64)
    if not clip and not (
        np.all(np.isfinite(point))
        and np.all(point >= PLACE_LOW - 1e-9)
        and np.all(point <= PLACE_HIGH + 1e-9)
    ):
        raise ValueError(
            f"place_action({x!r}, {y!r}) lies outside the table region the place interface "
            f"reaches: {_place_region()}; pass clip=True to take the nearest point in it"
        )
    unit = (point - PLACE_LOW) / (PLACE_HIGH - PLACE_LOW)
    return np.clip(2.0 * unit - 1.0, -1.0, 1.0).astype(np.float32)


def _move(
    tip: np.ndarray, target: np.ndarray, grip: float, hand_step: float = MAX_HAND_STEP
) -> np.ndarray:
    action = np.empty(4, dtype=np.float32)
    action[:3] = np.clip((target - tip) / hand_step, -1.0, 1.0)
    action[3] = grip
    return action


def arrangement_action(
    tip: np.ndarray,
    held: int | None,
    centres: np.ndarray,
    target: int | None,
    spot: np.ndarray,
    low_z: float,
    hand_step: float = MAX_HAND_STEP,
) -> np.ndarray:
    """One control step of the scripted pick-and-place: ``[dx, dy, dz, grip]`` (for a hand
    that moves up to ``hand_step`` m per step).

    ``held`` is the index of the held object (or None), ``centres`` ``(3, 3)`` the objects'
    centres, ``target`` the object to carry (None: nothing left, lift away) and ``spot``
    the table point it goes to. Holding it: lift, carry above the spot at
    ``CARRY_HEIGHT``, lower until it rests, let go. Otherwise: go above ``target``, descend
    onto its top and take hold.
    """
    if held is not None:
        centre = centres[held]
        bottom = float(centre[2] - HALF_HEIGHT[OBJECT_NAMES[held]])
        offset = spot - centre[:2]
        distance = float(np.hypot(*offset))
        goal = np.array([tip[0] + offset[0], tip[1] + offset[1], CARRY_HEIGHT])
        if tip[2] < CARRY_HEIGHT - 0.03 and distance > 0.03:
            goal[:2] = tip[:2]  # lift first, then carry
        if distance < 0.006:
            goal[2] = max(float(tip[2] - bottom), low_z)
        let_go = distance < 0.01 and bottom < RESTING_HEIGHT
        return _move(tip, goal, -1.0 if let_go else 1.0, hand_step)
    if target is None:  # the table is set: lift clear, then back to the rest pose
        rest = REST_POSE if tip[2] > CARRY_HEIGHT - 0.03 else (tip[0], tip[1], CARRY_HEIGHT)
        return _move(tip, np.array(rest), -1.0, hand_step)
    centre = centres[target]
    top = float(centre[2] + HALF_HEIGHT[OBJECT_NAMES[target]])
    above = np.array([centre[0], centre[1], CARRY_HEIGHT])
    horizontal = float(np.hypot(*(tip[:2] - centre[:2])))
    if horizontal > 0.03 and tip[2] < CARRY_HEIGHT - 0.03 and tip[2] < top + 0.05:
        above[:2] = tip[:2]  # lift clear of the table first
    aligned = horizontal < 0.006
    if aligned:
        above[2] = top + 0.002
    touching = aligned and tip[2] - top < 0.015
    return _move(tip, above, 1.0 if touching else -1.0, hand_step)


def validate_arrangement(goal: Any) -> np.ndarray:
    """A TableSetting goal: an arrangement ``(plate_x, plate_y, cup_dx, cup_dy, utensil_dx,
    utensil_dy)`` inside the arrangement box, its objects apart and within reach."""
    try:
        value = np.asarray(goal, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        value = np.full(1, np.nan)
    if value.shape != (6,) or not np.all(np.isfinite(value)):
        raise ValueError(
            f"goal={goal!r} must be an arrangement of 6 numbers (plate_x, plate_y, cup_dx, "
            "cup_dy, utensil_dx, utensil_dy) in metres, e.g. (0.22, 0, -0.09, 0.12, 0.03, "
            "-0.11)"
        )
    if np.any(value < GOAL_LOW - 1e-9) or np.any(value > GOAL_HIGH + 1e-9):
        raise ValueError(
            f"goal={tuple(value.round(3).tolist())} lies outside the arrangement box: each "
            f"entry must lie in [{GOAL_LOW.tolist()}, {GOAL_HIGH.tolist()}] (m)"
        )
    if not feasible(value):
        raise ValueError(
            f"goal={tuple(value.round(3).tolist())} puts objects on each other or out of "
            f"reach: keep their footprints {CLEARANCE} m apart and every spot within "
            f"{REACH_LIMIT} m of the table's centre on both axes"
        )
    return value


class TableSettingEnv(TabletopEnv):
    """Set a plate, a cup and a utensil down in the (hidden) arrangement."""

    OBJECT: ClassVar[scene.ObjectSpec] = OBJECTS["plate"]
    feature_names: ClassVar[tuple[str, ...]] = FEATURE_NAMES
    observation_layout: ClassVar[dict[str, slice]] = {
        **SHARED_OBSERVATION_LAYOUT,
        **{name: slice(10 + 3 * i, 13 + 3 * i) for i, name in enumerate(OBJECT_NAMES)},
        "held_object": slice(19, 22),
        "next_object": slice(22, 25),
    }
    WORKSPACE_LOW: ClassVar[np.ndarray] = np.array([-0.35, -0.35, 0.012])

    def __init__(
        self,
        goal: Any = None,
        control: str = "motion",
        render_mode: str | None = None,
        width: int = 320,
        height: int = 240,
        camera: str = "front",
        **unknown: Any,
    ) -> None:
        if control not in CONTROLS:
            raise ValueError(
                f"control={control!r} is not a control interface: use 'motion' (4-D suction-"
                "tip steps) or 'place' (one table point per object)"
            )
        self.control = control
        #: frames of the last place step's motion (rendered only when the env renders)
        self.motion_frames: list[np.ndarray] = []
        self._spots_of: Any = None
        super().__init__(goal, render_mode, width, height, camera, **unknown)
        if control == "place":
            self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

    @property
    def episode_steps(self) -> int:
        """Steps per episode: one per object (place) or ``MOTION_STEPS`` (motion)."""
        return N_OBJECTS if self.control == "place" else MOTION_STEPS

    # ----------------------------------------------------------------- task hooks
    def _build_spec(self) -> mujoco.MjSpec:
        return scene.build_scene(tuple(OBJECTS[o] for o in OBJECT_NAMES))

    def _make_goal_space(self) -> gym.Space:
        return ArrangementSpace()

    def validate_goal(self, goal: Any) -> np.ndarray:
        """An arrangement ``(plate_x, plate_y, cup_dx, cup_dy, utensil_dx, utensil_dy)``."""
        return validate_arrangement(goal)

    def _sample_initial_state(self) -> bool:
        rng = self.np_random
        slots = rng.permutation(len(STAGING_Y))
        for i in range(N_OBJECTS):
            jitter = rng.uniform(-STAGING_JITTER, STAGING_JITTER, size=2)
            xyz = (
                STAGING_X + jitter[0],
                STAGING_Y[slots[i]] + jitter[1],
                HALF_HEIGHT[OBJECT_NAMES[i]],
            )
            self._qpos[i][0:3] = xyz
            self._qpos[i][3:7] = (1.0, 0.0, 0.0, 0.0)
        self._hand_pos[:] = (
            rng.uniform(-0.28, -0.1),
            rng.uniform(-0.2, 0.2),
            rng.uniform(0.12, 0.2),
        )
        return False

    # ------------------------------------------------------------------- state
    _VIEW_NAMES = ("_hand_pos", "_pos", "_xmat", "_qpos", "_eq_data")

    def _bind_views(self) -> None:
        m, d = self.model, self.data
        self._hand_mocap = int(m.body("hand").mocapid[0])
        self._hand_pos = d.mocap_pos[self._hand_mocap]
        self._pos = [d.xpos[m.body(o).id] for o in OBJECT_NAMES]
        self._xmat = [d.xmat[m.body(o).id] for o in OBJECT_NAMES]
        joints = [m.joint(f"{o}_joint") for o in OBJECT_NAMES]
        self._qpos = [d.qpos[j.qposadr[0] : j.qposadr[0] + 7] for j in joints]
        self._eq_ids = [int(m.equality(scene.suction_name(o)).id) for o in OBJECT_NAMES]
        self._eq_data = [m.eq_data[i] for i in self._eq_ids]

    @property
    def held_index(self) -> int | None:
        """The index (in ``OBJECT_NAMES``) of the object the suction holds, or None."""
        return getattr(self, "_held_i", None)

    @property
    def held(self) -> bool:
        """Whether the suction holds an object."""
        return self.held_index is not None

    @property
    def next_index(self) -> int | None:
        """The first object in the order the suction has not taken yet (None: all taken)."""
        for i in range(N_OBJECTS):
            if not self._taken[i]:
                return i
        return None

    def centres(self) -> np.ndarray:
        """The objects' centres ``(3, 3)``, in the order of ``OBJECT_NAMES``."""
        return np.stack(self._pos)

    def bottom_height(self, i: int) -> float:
        """Height of object ``i``'s bottom above the table top (m)."""
        return float(self._pos[i][2]) - HALF_HEIGHT[OBJECT_NAMES[i]]

    def object_bottom_height(self) -> float:
        """The held (else the next) object's bottom height, as the one-object tasks report."""
        active = self._active_index()
        return self.bottom_height(0 if active is None else active)

    def tip_above_object(self) -> float:
        """Height of the suction tip above the held (else the next) object's top (m)."""
        active = self._active_index()
        i = 0 if active is None else active
        return float(self._hand_pos[2] - self._pos[i][2]) - HALF_HEIGHT[OBJECT_NAMES[i]]

    def active_xy(self) -> np.ndarray:
        """The held (else the next; the plate once all are taken) object's ``(x, y)``."""
        active = self._active_index()
        return np.array(self._pos[0 if active is None else active][:2], dtype=np.float64)

    def _active_index(self) -> int | None:
        held = self.held_index
        return held if held is not None else self.next_index

    def _observation(self) -> np.ndarray:
        part = self.observation_layout
        obs = np.zeros(25, dtype=np.float32)
        obs[part["tip"]] = self._hand_pos
        held = self.held_index if hasattr(self, "_taken") else None
        obs[part["holding"]] = held is not None
        active = self._active_index() if hasattr(self, "_taken") else 0
        centre = self._pos[0 if active is None else active]
        obs[part["object"]] = centre
        obs[part["object_from_tip"]] = centre - self._hand_pos
        for i, name in enumerate(OBJECT_NAMES):
            obs[part[name]] = self._pos[i]
        if held is not None:
            obs[part["held_object"].start + held] = 1.0
        if active is not None and held is None:
            obs[part["next_object"].start + active] = 1.0
        return obs

    def features(self) -> np.ndarray:
        """Six features per object (module doc), in the order of ``feature_names``."""
        out = np.empty(len(FEATURE_NAMES), dtype=np.float32)
        held = self.held_index
        hx, hy = scene.TABLE_HALF_EXTENT
        for i in range(N_OBJECTS):
            x, y, _ = self._pos[i].tolist()
            height = self.bottom_height(i)
            upright = self._xmat[i][8] > COS_UPRIGHT
            resting = held != i and upright and abs(height) < RESTING_HEIGHT and abs(x) < hx
            out[6 * i : 6 * i + 6] = (
                x, y, height, held == i, resting and abs(y) < hy, self._drop[i],
            )  # fmt: skip
        return out

    def goal_reward(
        self, features: np.ndarray, goal: Any, released: bool = False
    ) -> tuple[dict[str, float], bool]:
        """Oracle reward terms and success for an arrangement (module doc)."""
        if self._spots_of is not goal:  # one goal serves many steps: its spots once
            self._spots_of, self._goal_spots = goal, spots(goal).tolist()
        f = features.tolist()
        distance = lowering = drop = 0.0
        placed = 0
        for i, (sx, sy) in enumerate(self._goal_spots):
            x, y, height, _, resting, drop_height = f[6 * i : 6 * i + 6]
            d = math.hypot(x - sx, y - sy)
            distance += d
            lowering += max(height, 0.0) * math.exp(-d / 0.05)
            placed += resting > 0.5 and d < SUCCESS_RADIUS
            drop = max(drop, drop_height - 0.01)
        terms = {
            "distance": -2.0 * distance,
            "height": -4.0 * lowering,
            "placed": float(placed),
            "drop": -10.0 * drop if released else 0.0,
        }
        return terms, placed == N_OBJECTS

    def _info(self, features: np.ndarray) -> tuple[float, dict[str, Any]]:
        reward, info = super()._info(features)
        if self.goal is not None and self.control == "motion":
            # The one term the features cannot give: the tip is not a feature.
            info["reward_terms"]["reach"] = reach = -self._reach_distance()
            reward += reach
        return reward, info

    def _reach_distance(self) -> float:
        i = self.next_index
        if self.held_index is not None or i is None:
            return 0.0
        (x, y, z), (hx, hy, hz) = self._pos[i].tolist(), self._hand_pos.tolist()
        return math.sqrt(
            (hx - x) ** 2 + (hy - y) ** 2 + (hz - z - HALF_HEIGHT[OBJECT_NAMES[i]]) ** 2
        )

    # ------------------------------------------------ goal-conditioned view (HER)
    #: reward terms that do not depend on the goal (read from ``info["reward_terms"]``)
    GOAL_FREE_TERMS: ClassVar[tuple[str, ...]] = ("drop", "reach")

    def achieved_goal(self) -> np.ndarray:
        """The objects' table points, plate, cup, utensil: ``(6,)``."""
        return self.centres()[:, :2].reshape(-1).astype(np.float64)

    def desired_goal(self, goal: Any) -> np.ndarray:
        """The spots of an arrangement, plate, cup, utensil: ``(6,)`` (absolute points,
        comparable with :meth:`achieved_goal`)."""
        return spots(goal).reshape(-1)

    def goal_point_reward(
        self, features: np.ndarray, achieved: np.ndarray, desired: np.ndarray
    ) -> np.ndarray:
        """The goal-dependent reward terms (``distance``, ``height``, ``placed``) for ``N``
        states at once: ``features (N, F)``, the objects' points ``achieved (N, 6)`` and
        their spots ``desired (N, 6)``; :meth:`goal_reward`, vectorized."""
        offset = (achieved - desired).reshape(-1, N_OBJECTS, 2)
        distance = np.hypot(offset[..., 0], offset[..., 1])  # (N, 3)
        per_object = features.reshape(-1, N_OBJECTS, len(QUANTITIES))
        height = np.maximum(per_object[..., QUANTITIES.index("height")], 0.0)
        resting = per_object[..., QUANTITIES.index("resting")] > 0.5
        lowering = (height * np.exp(-distance / 0.05)).sum(axis=1)
        placed = (resting & (distance < SUCCESS_RADIUS)).sum(axis=1)
        return -2.0 * distance.sum(axis=1) - 4.0 * lowering + placed

    def goal_xy(self, goal: Any) -> np.ndarray:
        """The spot of the active object (held, else next; the plate's when all are down)."""
        active = self._active_index()
        return spots(goal)[0 if active is None else active]

    def _marker_geometry(self, goal: Any) -> tuple[tuple[float, float, float], float]:
        x, y = spots(goal)[0]
        return (float(x), float(y), 0.0), SUCCESS_RADIUS

    def _draw_markers(self, scn: mujoco.MjvScene, goal: Any) -> None:
        """A disc at every object's spot, sized to the object's footprint."""
        for (x, y), name in zip(spots(goal), OBJECT_NAMES, strict=True):
            radius = max(FOOTPRINT[name]) + 0.01
            add_marker_disc(scn, (float(x), float(y), 0.0), radius, MARKER_RGBA)

    # -------------------------------------------------------------- gym interface
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode with the objects in the staging area and the suction off."""
        check_reset_options(options)
        gym.Env.reset(self, seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        self._taken = [False] * N_OBJECTS
        self._drop = [0.0] * N_OBJECTS
        self._released_now = False
        self._placed_steps = 0
        self.motion_frames = []
        self._sample_initial_state()
        for eq in self._eq_ids:
            self.data.eq_active[eq] = False
        self._held_i: int | None = None
        mujoco.mj_forward(self.model, self.data)
        return self._start_episode(options)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """A suction-tip step (motion) or a whole placement of the next object (place)."""
        self._check_reset()
        if self.control == "place":
            return self._place_step(action)
        self._control_step(_action_values(action))
        reward, info = self._info(self.features())
        self._released_now = False
        self._collect_frame()
        return self._observation(), reward, False, False, info

    def _control_step(self, action: list[float], hand_step: float = MAX_HAND_STEP) -> None:
        dx, dy, dz, grip = (_clamp(a, -1.0, 1.0) for a in action)
        x, y, z = self._hand_pos.tolist()
        (lx, ly, lz), (hx, hy, hz) = self._workspace
        self._hand_pos[:] = (
            _clamp(x + dx * hand_step, lx, hx),
            _clamp(y + dy * hand_step, ly, hy),
            _clamp(z + dz * hand_step, lz, hz),
        )
        self._update_suction(grip)
        mujoco.mj_step(self.model, self.data, nstep=scene.SUBSTEPS)

    def _place_step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._placed_steps >= N_OBJECTS:
            raise gym.error.ResetNeeded(
                f"{type(self).__name__}.step() was called after the episode terminated (all "
                f"{N_OBJECTS} objects are placed): call env.reset() to start the next episode"
            )
        try:
            values = np.asarray(action, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            values = np.full(1, np.nan)
        if values.shape != (2,) or not np.all(np.isfinite(values)):
            raise ValueError(
                f"action={action!r}: control='place' takes 2 finite numbers [u, v] in [-1, 1], "
                "the table point for the next object (env.place_action(x, y) converts one)"
            )
        if np.any(np.abs(values) > 1.0 + 1e-6):
            raise ValueError(
                f"action={values.tolist()} lies outside the place action space [-1, 1]: it "
                f"maps linearly onto the table region {_place_region()}; "
                "env.place_action(x, y) converts a table point"
            )
        target = self.next_index
        self.motion_frames = []
        if target is not None:
            spot = place_point(values)
            low_z = float(self.WORKSPACE_LOW[2])
            released = False
            for _ in range(PLACE_STEP_LIMIT):
                held = self.held_index
                tip = self._hand_pos.copy()
                step = arrangement_action(
                    tip, held, self.centres(), target, spot, low_z, PLACE_HAND_STEP
                )
                if released:
                    step = _move(tip, tip + (0.0, 0.0, PLACE_HAND_STEP), -1.0, PLACE_HAND_STEP)
                self._control_step(step.tolist(), PLACE_HAND_STEP)
                if self.render_mode is not None:
                    self.motion_frames.append(self._render_frame())
                if held is not None and self.held_index is None:
                    released = True
                if released and self._hand_pos[2] > self._pos[target][2] + 0.05:
                    break
            if self.held_index is not None:  # gave up: let go where it is
                self._update_suction(-1.0)
            self._released_now = True
        self._placed_steps += 1
        if self.render_mode == "rgb_array_list":
            self._frame_list += self.motion_frames
        reward, info = self._info(self.features())
        self._released_now = False
        return self._observation(), reward, self._placed_steps >= N_OBJECTS, False, info

    #: :func:`place_action`, as a method: ``env.unwrapped.place_action(x, y)``
    place_action = staticmethod(place_action)

    # ------------------------------------------------------------------ suction
    def _in_range(self, i: int) -> bool:
        name = OBJECT_NAMES[i]
        above = self._hand_pos[2] - (self._pos[i][2] + HALF_HEIGHT[name])
        dx = self._hand_pos[0] - self._pos[i][0]
        dy = self._hand_pos[1] - self._pos[i][1]
        reach = GRASP_REACH[name]
        return -0.005 <= above <= GRASP_HEIGHT and dx * dx + dy * dy <= reach * reach

    def _update_suction(self, grip: float) -> None:
        held = self.held_index
        if held is not None:
            if grip <= 0.0:
                self._drop[held] = self.bottom_height(held)
                self._released_now = True
                self.data.eq_active[self._eq_ids[held]] = False
                self._held_i = None
            return
        if grip > 0.0:
            for i in range(N_OBJECTS):
                if self._in_range(i):
                    self._weld(i)
                    self._taken[i] = True
                    return

    def _weld(self, i: int) -> None:
        hand_quat = self.data.mocap_quat[self._hand_mocap]
        weld_here(self._eq_data[i], self._hand_pos, hand_quat, self._pos[i], self._qpos[i][3:7])
        self.data.eq_active[self._eq_ids[i]] = True
        self._held_i = i
