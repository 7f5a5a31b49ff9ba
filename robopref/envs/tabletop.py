"""The shared machinery of robopref's tabletop tasks: a suction arm moving one object.

A task subclass names its object and zones, samples its initial state, and defines its
observation, its features (what a user judges), its goal space and its oracle reward.

Action (all tasks): ``[dx, dy, dz, grip]`` in [-1, 1]. The first three move the suction
tip by up to ``MAX_HAND_STEP`` metres per control step inside the task's workspace;
``grip > 0`` turns the suction on (it takes hold of the object when the tip touches its
top), ``grip <= 0`` turns it off (the object is let go, unless the task's release
interlock forbids it at that moment).
"""

from __future__ import annotations

import difflib
import inspect
import math
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np

from robopref.envs import scene
from robopref.envs.rendering import add_marker_disc, make_renderer

MAX_HAND_STEP = 0.03
GRASP_HEIGHT = 0.02  # the suction takes hold when the tip is at most this far above the object
RESTING_HEIGHT = 0.004  # an object whose bottom is lower than this rests on the table
# Bound of every observation entry (metres, m/s, unit vectors): finite so that check_env
# does not warn; nothing in the scene gets 10 m from the table or moves at 10 m/s.
OBS_BOUND = 10.0
MARKER_RGBA = (0.1, 0.85, 0.3, 0.45)
ACTION_SIZE = 4
#: the observation's first parts, the same in every task; a task's
#: ``observation_layout`` extends it.
SHARED_OBSERVATION_LAYOUT: dict[str, slice] = {
    "tip": slice(0, 3),  # suction tip xyz
    "holding": slice(3, 4),  # 1 while the suction holds the object
    "object": slice(4, 7),  # object centre xyz
    "object_from_tip": slice(7, 10),  # object centre minus tip
}
#: the render modes: frames are drawn off-screen (there is no window to show them in).
#: ``rgb_array``: ``render()`` returns the current frame. ``rgb_array_list`` (Gymnasium's
#: convention): the env renders the reset and every control step itself, and ``render()``
#: returns the frames since the last ``render()`` or reset (a TableSetting place step's
#: whole motion included), then forgets them.
RENDER_MODES = ("rgb_array", "rgb_array_list")
_METADATA: dict[str, Any] = {
    "render_modes": list(RENDER_MODES),
    "render_fps": int(round(1.0 / (scene.TIMESTEP * scene.SUBSTEPS))),
}


def _clamp(value: float, low: float, high: float) -> float:
    """``value`` clipped to [low, high], as ``np.clip`` does (NaN stays NaN)."""
    return min(max(value, low), high)


def _frame_size(value: Any, name: str) -> int:
    """A render width or height: a positive integer, or a ``ValueError`` naming the fix."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise ValueError(
            f"{name}={value!r} must be a positive integer number of pixels, e.g. "
            f"width=320, height=240"
        )
    return int(value)


def _action_values(action: Any) -> list[float]:
    """The four action entries as Python floats, or a ``ValueError`` that names the problem."""
    try:
        values = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"action={action!r} is not numeric: pass {ACTION_SIZE} floats "
            "[dx, dy, dz, grip] in [-1, 1]"
        ) from None
    if values.shape != (ACTION_SIZE,):
        raise ValueError(
            f"action has shape {values.shape}, expected ({ACTION_SIZE},): one [dx, dy, dz, "
            "grip] per step (for several envs at once use a vector env)"
        )
    entries = values.tolist()
    if not all(math.isfinite(a) for a in entries):
        raise ValueError(
            f"action={entries} holds NaN or inf: every entry must be a finite number "
            "(values beyond [-1, 1] are clipped); check the policy that produced it (a "
            "diverged network gives NaN)"
        )
    return entries


def weld_here(
    eq_data: np.ndarray,
    hand_pos: np.ndarray,
    hand_quat: np.ndarray,
    obj_pos: np.ndarray,
    obj_quat: np.ndarray,
) -> None:
    """Set a suction weld's ``eq_data`` to hold the object at its current pose relative to
    the hand (the object's pose in the hand's frame), so that taking hold moves nothing."""
    neg = np.zeros(4)
    mujoco.mju_negQuat(neg, hand_quat)
    rel_pos = np.zeros(3)
    mujoco.mju_rotVecQuat(rel_pos, obj_pos - hand_pos, neg)
    rel_quat = np.zeros(4)
    mujoco.mju_mulQuat(rel_quat, neg, obj_quat)
    eq_data[0:3] = 0.0
    eq_data[3:6] = rel_pos
    eq_data[6:10] = rel_quat
    eq_data[10] = 1.0


def sample_goal(goal_space: gym.Space, rng: np.random.Generator) -> Any:
    """Draw a goal uniformly from a task's ``goal_space`` with the generator ``rng``.

    A box with a ``feasible(goal) -> bool`` method (TableSetting's arrangements) is drawn
    from by rejection: uniform over its feasible part.
    """
    if isinstance(goal_space, gym.spaces.Discrete):
        return int(goal_space.start + rng.integers(goal_space.n))
    if isinstance(goal_space, gym.spaces.Box):
        feasible = getattr(goal_space, "feasible", None)
        while True:
            goal = rng.uniform(goal_space.low, goal_space.high)
            if feasible is None or feasible(goal):
                return goal
    raise TypeError(f"cannot sample goals from {goal_space}")


#: the keys ``reset(options=...)`` takes
RESET_OPTIONS = ("goal",)


def check_reset_options(options: Any) -> None:
    """Refuse ``reset(options=...)`` that is not a dict of :data:`RESET_OPTIONS` keys: a
    misspelt key would otherwise be ignored and the goal silently left unchanged."""
    if options is None:
        return
    if not isinstance(options, dict):
        raise ValueError(f"options={options!r} must be a dict, e.g. options={{'goal': ...}}")
    unknown = [key for key in options if key not in RESET_OPTIONS]
    if unknown:
        raise ValueError(
            f"reset(options=...) got unknown key(s) {unknown}: the valid keys are "
            f"{list(RESET_OPTIONS)} (options={{'goal': g}} sets the goal)"
        )


class TabletopEnv(gym.Env[np.ndarray, np.ndarray]):
    """Base class of the tabletop tasks (not registered itself)."""

    OBJECT: ClassVar[scene.ObjectSpec]
    #: names of the entries of ``info["features"]`` / :meth:`features`, in order.
    feature_names: ClassVar[tuple[str, ...]]
    #: where each named part of the observation lies: ``obs[observation_layout["tip"]]``.
    observation_layout: ClassVar[dict[str, slice]]
    #: workspace of the suction tip, (low, high) in the table frame.
    WORKSPACE_LOW: ClassVar[np.ndarray]
    WORKSPACE_HIGH: ClassVar[np.ndarray] = np.array([0.35, 0.35, 0.35])

    def __init__(
        self,
        goal: Any = None,
        render_mode: str | None = None,
        width: int = 320,
        height: int = 240,
        camera: str = "front",
        **unknown: Any,
    ) -> None:
        if unknown:
            raise TypeError(self._unknown_kwargs_message(unknown))
        if render_mode not in (None, *RENDER_MODES):
            raise ValueError(
                f"render_mode={render_mode!r} is not supported: robopref renders off-screen "
                f"only, so use render_mode='rgb_array' (frames as arrays; show or save them "
                f"yourself, e.g. with `robopref render` or robopref.video.writers), "
                f"'rgb_array_list' (every step's frames, collected until render() is called) or "
                f"None"
            )
        self.render_mode = render_mode
        self.width, self.height = _frame_size(width, "width"), _frame_size(height, "height")
        self.camera = camera
        self._workspace = (tuple(self.WORKSPACE_LOW.tolist()), tuple(self.WORKSPACE_HIGH.tolist()))

        self.model = self._build_spec().compile()  # the MjSpec is not kept: it cannot pickle
        self.data = mujoco.MjData(self.model)
        if camera not in [self.model.camera(i).name for i in range(self.model.ncam)]:
            names = [self.model.camera(i).name for i in range(self.model.ncam)]
            raise ValueError(f"camera={camera!r} does not exist: choose one of {names}")
        self._bind_views()

        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        obs_size = self._observation().shape[0]
        self.observation_space = gym.spaces.Box(
            -OBS_BOUND, OBS_BOUND, shape=(obs_size,), dtype=np.float32
        )
        self.goal_space = self._make_goal_space()
        #: the column of each feature by name: ``features[feature_index["height"]]``.
        self.feature_index = {name: i for i, name in enumerate(self.feature_names)}
        self._needs_reset = True

        self._random_goal = isinstance(goal, str) and goal == "random"
        self.goal = None if goal is None or self._random_goal else self.validate_goal(goal)
        self.marker = None
        #: draw the marker (default: where the goal wants things); a clip shown to a person
        #: who judges it must not show a goal (``robopref study``)
        self.show_marker = True
        self._renderer: mujoco.Renderer | None = None
        #: the frames ``render()`` returns next, under ``render_mode="rgb_array_list"``
        self._frame_list: list[np.ndarray] = []

    @property
    def metadata(self) -> dict[str, Any]:  # type: ignore[override]
        """Render modes (``rgb_array`` only) and frame rate, as Gymnasium expects (a copy of
        the task's own, per env, so that changing one env's leaves the others alone)."""
        if "_metadata" not in self.__dict__:
            self._metadata = {key: list(v) if isinstance(v, list) else v
                              for key, v in _METADATA.items()}  # fmt: skip
        return self._metadata

    @metadata.setter
    def metadata(self, value: dict[str, Any]) -> None:
        self._metadata = value

    # A property, not a class attribute, on purpose: gym.make reads a class's render modes
    # and wraps an env without "human" in HumanRendering, whose error asks for pygame,
    # which cannot help (there is no window). Hidden from gym.make, render_mode="human"
    # reaches __init__ and its error, which names the mode that works.

    # ----------------------------------------------------------------- task hooks
    def _build_spec(self) -> mujoco.MjSpec:
        return scene.build_scene(self.OBJECT)

    def _make_goal_space(self) -> gym.Space:
        raise NotImplementedError

    def validate_goal(self, goal: Any) -> Any:
        """Return ``goal`` in canonical form, or raise ``ValueError`` naming the fix."""
        raise NotImplementedError

    def _sample_initial_state(self) -> bool:
        """Place the hand and the object; return whether the object starts held."""
        raise NotImplementedError

    def _observation(self) -> np.ndarray:
        raise NotImplementedError

    def features(self) -> np.ndarray:
        """The task state a user judges, as float32 in the order of ``feature_names``."""
        raise NotImplementedError

    def goal_reward(
        self, features: np.ndarray, goal: Any, released: bool = False
    ) -> tuple[dict[str, float], bool]:
        """Dense reward terms (they sum to the reward) and success, for ``goal``.

        A pure function of its arguments (the env's state enters only through them):
        ``features`` as :meth:`features` returns them, ``released`` whether the object was
        let go on this step (the one event the features do not show).
        """
        raise NotImplementedError

    def _may_release(self) -> bool:
        """The release interlock: whether the suction may let go now."""
        return True

    # -------------------------------------------------------------- gym interface
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; ``options={"goal": g}`` sets the goal for this and later episodes."""
        check_reset_options(options)
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        held = self._sample_initial_state()
        self._drop_height = 0.0
        self._released_now = False
        self._set_held(False)
        mujoco.mj_forward(self.model, self.data)
        if held:
            self._set_held(True)
        return self._start_episode(options)

    def _check_reset(self) -> None:
        """Refuse a step before the first reset, naming the fix."""
        if self._needs_reset:
            raise gym.error.ResetNeeded(
                f"{type(self).__name__}.step() was called before reset(): call env.reset() "
                "first (gym.make's wrappers enforce this order; the bare env cannot guess a "
                "start state)"
            )

    def _start_episode(self, options: dict[str, Any] | None) -> tuple[np.ndarray, dict[str, Any]]:
        """The end of every reset: the goal from ``options`` (or a random one), then the
        first observation and info (and, under ``rgb_array_list``, the first frame)."""
        self._needs_reset = False
        if options and "goal" in options:
            self.goal = None if options["goal"] is None else self.validate_goal(options["goal"])
        elif self._random_goal:
            self.goal = self.validate_goal(sample_goal(self.goal_space, self.np_random))
        self._frame_list = []
        self._collect_frame()
        return self._observation(), self._info(self.features())[1]

    def _collect_frame(self) -> None:
        """Under ``rgb_array_list``, render the current state into the list ``render()``
        returns next."""
        if self.render_mode == "rgb_array_list":
            self._frame_list.append(self._render_frame())

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Move the suction tip, switch the suction, and advance the physics one control step."""
        self._check_reset()
        # Python floats, not small numpy ops: the same float64 results, several microseconds
        # less per step (the env's overhead over its physics is budgeted; see the benchmark).
        dx, dy, dz, grip = (_clamp(a, -1.0, 1.0) for a in _action_values(action))
        x, y, z = self._hand_pos.tolist()
        (lx, ly, lz), (hx, hy, hz) = self._workspace
        self._hand_pos[:] = (
            _clamp(x + dx * MAX_HAND_STEP, lx, hx),
            _clamp(y + dy * MAX_HAND_STEP, ly, hy),
            _clamp(z + dz * MAX_HAND_STEP, lz, hz),
        )
        self._update_suction(grip)
        mujoco.mj_step(self.model, self.data, nstep=scene.SUBSTEPS)
        features = self.features()
        reward, info = self._info(features)
        self._released_now = False
        self._collect_frame()
        return self._observation(), reward, False, False, info

    def render(self) -> np.ndarray | list[np.ndarray] | None:
        """An RGB frame (H, W, 3) uint8 from ``self.camera``, with the goal marker drawn
        (``rgb_array``); under ``rgb_array_list``, the frames since the last ``render()`` or
        reset, one per control step (then the list starts afresh)."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        if self.render_mode == "rgb_array_list":
            frames, self._frame_list = self._frame_list, []
            return frames
        return self._render_frame()

    def _render_frame(self) -> np.ndarray:
        """The current state drawn from ``self.camera``, with the marker."""
        if self._renderer is None:
            self._renderer = make_renderer(self.model, self.height, self.width)
        scene.pose_arm(self.model, self.data)
        self._renderer.update_scene(self.data, camera=self.camera)
        marker = self.marker if self.marker is not None else self.goal
        if marker is not None and self.show_marker:
            self._draw_markers(self._renderer.scene, marker)
        return self._renderer.render()

    def _draw_markers(self, scn: mujoco.MjvScene, goal: Any) -> None:
        """Draw where ``goal`` wants things (one disc; a task with several objects, more)."""
        add_marker_disc(scn, *self._marker_geometry(goal), MARKER_RGBA)

    def close(self) -> None:
        """Release the renderer (OSMesa/EGL contexts must be freed before exit)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_renderer"] = None
        for view in self._VIEW_NAMES:
            state.pop(view, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._bind_views()

    # ------------------------------------------------------------------- helpers
    _VIEW_NAMES = ("_hand_pos", "_obj_pos", "_obj_xmat", "_obj_linvel", "_obj_qpos", "_eq_data")

    def _bind_views(self) -> None:
        """Cache numpy views into MjData/MjModel: name look-ups once, not every step."""
        m, d = self.model, self.data
        self._hand_mocap = int(m.body("hand").mocapid[0])
        self._hand_pos = d.mocap_pos[self._hand_mocap]
        obj = m.body(self.OBJECT.name)
        self._obj_pos = d.xpos[obj.id]
        self._obj_xmat = d.xmat[obj.id]
        joint = m.joint(f"{self.OBJECT.name}_joint")
        self._obj_qpos = d.qpos[joint.qposadr[0] : joint.qposadr[0] + 7]
        self._obj_linvel = d.qvel[joint.dofadr[0] : joint.dofadr[0] + 3]
        self._eq_id = int(m.equality("suction").id)
        self._eq_data = m.eq_data[self._eq_id]

    @property
    def held(self) -> bool:
        """Whether the suction holds the object."""
        return bool(self.data.eq_active[self._eq_id])

    def object_bottom_height(self) -> float:
        """Height of the object's lowest point above the table top (metres)."""
        return float(self._obj_pos[2]) - self._object_half_height()

    def tip_above_object(self) -> float:
        """Height of the suction tip above the object's top (metres)."""
        return float(self._hand_pos[2] - self._obj_pos[2]) - self._object_half_height()

    def _object_half_height(self) -> float:
        return self.OBJECT.size[-1] if self.OBJECT.shape == "plate" else self.OBJECT.size[0]

    def _in_suction_range(self) -> bool:
        top = self._obj_pos[2] + self._object_half_height()
        above = self._hand_pos[2] - top
        reach = self.OBJECT.size[0] * 0.7
        dx = self._hand_pos[0] - self._obj_pos[0]
        dy = self._hand_pos[1] - self._obj_pos[1]
        return -0.005 <= above <= GRASP_HEIGHT and dx * dx + dy * dy <= reach * reach

    def _update_suction(self, grip: float) -> None:
        if self.held:
            if grip <= 0.0 and self._may_release():
                self._drop_height = self.object_bottom_height()
                self._released_now = True
                self._set_held(False)
        elif grip > 0.0 and self._in_suction_range():
            self._set_held(True)

    def _set_held(self, held: bool) -> None:
        if held:
            weld_here(self._eq_data, self._hand_pos, self.data.mocap_quat[self._hand_mocap],
                      self._obj_pos, self._obj_qpos[3:7])  # fmt: skip
        self.data.eq_active[self._eq_id] = held

    def _place_object(self, xyz: np.ndarray) -> None:
        self._obj_qpos[0:3] = xyz
        self._obj_qpos[3:7] = (1.0, 0.0, 0.0, 0.0)

    def _info(self, features: np.ndarray) -> tuple[float, dict[str, Any]]:
        info: dict[str, Any] = {"features": features}
        if self.goal is None:
            return 0.0, info
        terms, success = self.goal_reward(features, self.goal, self._released_now)
        info["reward_terms"] = terms
        info["is_success"] = success
        return float(sum(terms.values())), info

    def active_xy(self) -> np.ndarray:
        """Where the object the task is about now is on the table, ``(x, y)``."""
        return np.array(self._obj_pos[:2], dtype=np.float64)

    def goal_xy(self, goal: Any) -> np.ndarray:
        """The table point ``(x, y)`` where ``goal`` wants the object (the oracle's target)."""
        return np.asarray(self._marker_geometry(goal)[0][:2], dtype=np.float64)

    def _marker_geometry(self, goal: Any) -> tuple[tuple[float, float, float], float]:
        raise NotImplementedError

    def _unknown_kwargs_message(self, unknown: dict[str, Any]) -> str:
        """Python's own wording for an unexpected keyword argument (libraries parse it:
        TorchRL's GymEnv retries without ``frameskip`` on exactly this text), then the fix."""
        name = type(self).__name__
        valid = [
            key
            for key, p in inspect.signature(type(self).__init__).parameters.items()
            if key != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        first, *others = unknown
        message = f"{name}.__init__() got an unexpected keyword argument {first!r}"
        close = difflib.get_close_matches(first, valid, n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
        if others:
            message += f"; also unknown: {', '.join(repr(k) for k in others)}"
        return (
            f"{message}. Valid keyword arguments of {name}: {', '.join(valid)}. Fix the "
            "gym.make(...) call (or the --env-kwargs KEY=VALUE items)."
        )
