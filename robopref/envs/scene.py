"""The tabletop scene, built in code with ``mujoco.MjSpec`` from named parts.

Frame convention (the "table frame", used for goals everywhere in robopref): the origin is
the centre of the table top, z points up, x points away from the robot, y to its left.
The table top is the plane z = 0.

The robot is a suction-gripper arm. Its hand is a mocap body that the agent moves by
small end-effector displacements; the arm links behind it are visual-only mocap bodies
posed by analytic inverse kinematics when a frame is rendered (see :func:`pose_arm`), so
they cost nothing in the physics and never touch anything. An object is held by a weld
equality between the hand and the object (the "suction cup").
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

TABLE_HALF_EXTENT = (0.45, 0.45)
TABLE_THICKNESS = 0.04
TABLE_HEIGHT = 0.75
# Physics step and the number of physics steps per control step (dt = 0.04 s, 25 Hz).
TIMESTEP = 0.004
SUBSTEPS = 10

ARM_SHOULDER = np.array([-0.62, 0.0, 0.22])
UPPER_ARM_LENGTH = 0.50
FOREARM_LENGTH = 0.48
WRIST_HEIGHT = 0.10  # the wrist sits this far above the suction tip
HAND_TIP_OFFSET = 0.0  # the hand body's origin is the suction tip

ARM_LINKS = ("arm_turret", "arm_upper", "arm_fore", "arm_wrist")

_METAL = (0.72, 0.74, 0.78, 1.0)
_ORANGE = (0.95, 0.45, 0.10, 1.0)
_DARK = (0.15, 0.15, 0.17, 1.0)
_WOOD = (0.62, 0.45, 0.30, 1.0)

_VISUAL_ONLY = {"contype": 0, "conaffinity": 0, "group": 1}


@dataclass(frozen=True)
class ObjectSpec:
    """A free object on the table: a plate or cup (cylinders), a block (cube) or a box."""

    name: str
    shape: str  # "plate", "cup", "block" or "box"
    #: plate, cup: (radius, half height); block: (half edge,); box: (half x, half y, half z)
    size: tuple[float, ...]
    mass: float
    rgba: tuple[float, float, float, float]


@dataclass(frozen=True)
class ZoneSpec:
    """A coloured disc painted on the table (visual only)."""

    name: str
    center: tuple[float, float]
    radius: float
    rgba: tuple[float, float, float, float]


def build_scene(
    obj: ObjectSpec | tuple[ObjectSpec, ...], zones: tuple[ZoneSpec, ...] = ()
) -> mujoco.MjSpec:
    """Return the spec of a table, a suction arm, the object(s) ``obj`` and painted ``zones``.

    One object is held by the weld equality ``"suction"``; several objects (a tuple) each
    get their own, ``"suction_<name>"``, of which the task activates at most one at a time.
    """
    objects = obj if isinstance(obj, tuple) else (obj,)
    spec = mujoco.MjSpec()
    spec.modelname = "robopref_" + "_".join(o.name for o in objects)
    spec.option.timestep = TIMESTEP
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    # Rendering quality: a modest shadow map and no multisampling keep llvmpipe (CPU) fast.
    spec.visual.quality.shadowsize = 1024
    spec.visual.quality.offsamples = 0
    spec.visual.headlight.ambient = [0.3, 0.3, 0.3]
    spec.visual.headlight.diffuse = [0.25, 0.25, 0.25]
    spec.visual.headlight.specular = [0.0, 0.0, 0.0]
    spec.visual.map.znear = 0.01

    _add_room(spec)
    _add_table(spec)
    _add_arm(spec)
    for zone in zones:
        spec.worldbody.add_geom(
            name=zone.name,
            type=mujoco.mjtGeom.mjGEOM_CYLINDER,
            size=[zone.radius, 0.0005, 0],
            pos=[zone.center[0], zone.center[1], 0.0006],
            rgba=list(zone.rgba),
            **_VISUAL_ONLY,
        )
    for item in objects:
        _add_object(spec, item)
        spec.add_exclude(bodyname1="hand", bodyname2=item.name)
        spec.add_equality(
            name="suction" if len(objects) == 1 else suction_name(item.name),
            type=mujoco.mjtEq.mjEQ_WELD,
            objtype=mujoco.mjtObj.mjOBJ_BODY,
            name1="hand",
            name2=item.name,
            active=False,
            solref=[0.01, 1.0],
        )
    return spec


def suction_name(object_name: str) -> str:
    """The weld equality that holds ``object_name`` in a scene of several objects."""
    return f"suction_{object_name}"


def _add_room(spec: mujoco.MjSpec) -> None:
    spec.add_texture(
        name="sky",
        type=mujoco.mjtTexture.mjTEXTURE_SKYBOX,
        builtin=mujoco.mjtBuiltin.mjBUILTIN_GRADIENT,
        rgb1=[0.55, 0.65, 0.8],
        rgb2=[0.95, 0.95, 0.97],
        width=64,
        height=64,
    )
    spec.add_texture(
        name="floor_tex",
        type=mujoco.mjtTexture.mjTEXTURE_2D,
        builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
        rgb1=[0.82, 0.83, 0.85],
        rgb2=[0.72, 0.73, 0.76],
        width=256,
        height=256,
    )
    floor_mat = spec.add_material(name="floor_mat", texrepeat=[6, 6], reflectance=0.0)
    floor_mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "floor_tex"
    spec.worldbody.add_geom(
        name="floor",
        type=mujoco.mjtGeom.mjGEOM_PLANE,
        size=[3, 3, 0.1],
        pos=[0, 0, -TABLE_HEIGHT],
        material="floor_mat",
    )
    spec.worldbody.add_light(
        name="key_light",
        pos=[0.4, -0.6, 1.6],
        dir=[-0.25, 0.35, -1.0],
        diffuse=[0.55, 0.55, 0.55],
        specular=[0.05, 0.05, 0.05],
        castshadow=True,
    )
    spec.worldbody.add_light(
        name="fill_light",
        pos=[-0.5, 0.8, 1.2],
        dir=[0.3, -0.5, -1.0],
        diffuse=[0.25, 0.25, 0.25],
        castshadow=False,
    )
    spec.worldbody.add_camera(
        name="front", pos=[1.05, 0.0, 0.72], xyaxes=[0, 1, 0, -0.57, 0, 0.82], fovy=50
    )
    spec.worldbody.add_camera(
        name="top", pos=[-0.05, 0.0, 1.3], xyaxes=[0, -1, 0, 1, 0, 0], fovy=45
    )
    spec.worldbody.add_camera(
        name="side", pos=[0.0, -1.35, 0.6], xyaxes=[1, 0, 0, 0, 0.42, 0.91], fovy=55
    )


def _add_table(spec: mujoco.MjSpec) -> None:
    hx, hy = TABLE_HALF_EXTENT
    spec.add_material(name="table_mat", specular=0.05, shininess=0.1, rgba=list(_WOOD))
    table = spec.worldbody.add_body(name="table")
    table.add_geom(
        name="table_top",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[hx, hy, TABLE_THICKNESS / 2],
        pos=[0, 0, -TABLE_THICKNESS / 2],
        rgba=list(_WOOD),
        material="table_mat",
        friction=[0.8, 0.005, 0.0001],
    )
    leg_half = (TABLE_HEIGHT - TABLE_THICKNESS) / 2
    for i, (sx, sy) in enumerate([(1, 1), (1, -1), (-1, 1), (-1, -1)]):
        table.add_geom(
            name=f"table_leg_{i}",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[0.025, 0.025, leg_half],
            pos=[sx * (hx - 0.05), sy * (hy - 0.05), -TABLE_THICKNESS - leg_half],
            rgba=[0.45, 0.32, 0.22, 1],
            **_VISUAL_ONLY,
        )


def _add_arm(spec: mujoco.MjSpec) -> None:
    base = spec.worldbody.add_body(name="arm_base", pos=[ARM_SHOULDER[0], 0, 0])
    base.add_geom(
        name="arm_pedestal",
        type=mujoco.mjtGeom.mjGEOM_CYLINDER,
        size=[0.09, 0.04, 0],
        pos=[0, 0, 0.04],
        rgba=list(_DARK),
        **_VISUAL_ONLY,
    )
    base.add_geom(
        name="arm_column",
        type=mujoco.mjtGeom.mjGEOM_CYLINDER,
        size=[0.055, 0.08, 0],
        pos=[0, 0, 0.14],
        rgba=list(_METAL),
        **_VISUAL_ONLY,
    )
    turret = spec.worldbody.add_body(name="arm_turret", mocap=True, pos=ARM_SHOULDER.tolist())
    turret.add_geom(
        name="arm_shoulder_joint",
        type=mujoco.mjtGeom.mjGEOM_CYLINDER,
        size=[0.07, 0.06, 0],
        quat=[0.7071068, 0.7071068, 0, 0],
        rgba=list(_ORANGE),
        **_VISUAL_ONLY,
    )
    upper = spec.worldbody.add_body(name="arm_upper", mocap=True)
    upper.add_geom(
        name="arm_upper_link",
        type=mujoco.mjtGeom.mjGEOM_CAPSULE,
        size=[0.045, UPPER_ARM_LENGTH / 2, 0],
        rgba=list(_METAL),
        **_VISUAL_ONLY,
    )
    upper.add_geom(
        name="arm_elbow_joint",
        type=mujoco.mjtGeom.mjGEOM_SPHERE,
        size=[0.055, 0, 0],
        pos=[0, 0, UPPER_ARM_LENGTH / 2],
        rgba=list(_ORANGE),
        **_VISUAL_ONLY,
    )
    fore = spec.worldbody.add_body(name="arm_fore", mocap=True)
    fore.add_geom(
        name="arm_fore_link",
        type=mujoco.mjtGeom.mjGEOM_CAPSULE,
        size=[0.035, FOREARM_LENGTH / 2, 0],
        rgba=list(_METAL),
        **_VISUAL_ONLY,
    )
    wrist = spec.worldbody.add_body(name="arm_wrist", mocap=True)
    wrist.add_geom(
        name="arm_wrist_joint",
        type=mujoco.mjtGeom.mjGEOM_SPHERE,
        size=[0.04, 0, 0],
        rgba=list(_ORANGE),
        **_VISUAL_ONLY,
    )
    hand = spec.worldbody.add_body(name="hand", mocap=True, pos=[0, 0, 0.2])
    hand.add_geom(
        name="hand_stem",
        type=mujoco.mjtGeom.mjGEOM_CYLINDER,
        size=[0.018, WRIST_HEIGHT / 2, 0],
        pos=[0, 0, WRIST_HEIGHT / 2 + 0.012],
        rgba=list(_DARK),
        **_VISUAL_ONLY,
    )
    hand.add_geom(
        name="suction_cup",
        type=mujoco.mjtGeom.mjGEOM_CYLINDER,
        size=[0.028, 0.006, 0],
        pos=[0, 0, 0.006],
        rgba=[0.2, 0.55, 0.9, 1],
        **_VISUAL_ONLY,
    )
    hand.add_site(name="suction_tip", pos=[0, 0, 0], size=[0.005, 0, 0], rgba=[0, 0, 0, 0])


def _add_object(spec: mujoco.MjSpec, obj: ObjectSpec) -> None:
    body = spec.worldbody.add_body(name=obj.name, pos=[0, 0, 0.1])
    body.add_freejoint(name=f"{obj.name}_joint")
    if obj.shape in ("plate", "cup"):
        radius, half_height = obj.size
        body.add_geom(
            name=f"{obj.name}_geom",
            type=mujoco.mjtGeom.mjGEOM_CYLINDER,
            size=[radius, half_height, 0],
            mass=obj.mass,
            rgba=list(obj.rgba),
            friction=[0.8, 0.005, 0.0001],
        )
        # the plate's raised centre, or the cup's dark top (its inside, seen from above)
        plate = obj.shape == "plate"
        body.add_geom(
            name=f"{obj.name}_rim",
            type=mujoco.mjtGeom.mjGEOM_CYLINDER,
            size=[radius * (0.7 if plate else 0.8), half_height * 1.05 if plate else 0.001, 0],
            pos=[0, 0, 0 if plate else half_height],
            rgba=[0.85, 0.88, 0.92, 1] if plate else [0.25, 0.18, 0.12, 1],
            **_VISUAL_ONLY,
        )
    elif obj.shape == "box":
        body.add_geom(
            name=f"{obj.name}_geom",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=list(obj.size),
            mass=obj.mass,
            rgba=list(obj.rgba),
            friction=[0.9, 0.005, 0.0001],
        )
    elif obj.shape == "block":
        (half,) = obj.size
        body.add_geom(
            name=f"{obj.name}_geom",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[half, half, half],
            mass=obj.mass,
            rgba=list(obj.rgba),
            friction=[0.9, 0.005, 0.0001],
        )
    else:
        raise ValueError(
            f"unknown object shape {obj.shape!r}: use 'plate', 'cup', 'block' or 'box'"
        )


def _segment_pose(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and quaternion of a capsule whose local z axis runs from start to end."""
    direction = end - start
    quat = np.zeros(4)
    mujoco.mju_quatZ2Vec(quat, direction / max(np.linalg.norm(direction), 1e-9))
    return (start + end) / 2, quat


def pose_arm(model: mujoco.MjModel, data: mujoco.MjData) -> None:
    """Pose the visual arm links so the arm reaches the hand (analytic 2-link IK).

    The shoulder yaws towards the hand; upper arm and forearm solve the planar IK in the
    vertical plane through shoulder and wrist, elbow up. Only mocap poses of visual-only
    bodies change, so the physics is untouched.
    """
    hand_pos = data.mocap_pos[model.body("hand").mocapid[0]]
    wrist = hand_pos + np.array([0.0, 0.0, WRIST_HEIGHT + 0.012])
    offset = wrist - ARM_SHOULDER
    horizontal = np.hypot(offset[0], offset[1])
    yaw = np.arctan2(offset[1], offset[0])
    heading = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    reach = np.clip(np.hypot(horizontal, offset[2]), 1e-3, UPPER_ARM_LENGTH + FOREARM_LENGTH - 1e-3)
    cos_inner = (UPPER_ARM_LENGTH**2 + reach**2 - FOREARM_LENGTH**2) / (
        2 * UPPER_ARM_LENGTH * reach
    )
    shoulder_angle = np.arctan2(offset[2], horizontal) + np.arccos(np.clip(cos_inner, -1.0, 1.0))
    elbow = ARM_SHOULDER + UPPER_ARM_LENGTH * (
        np.cos(shoulder_angle) * heading + np.array([0.0, 0.0, np.sin(shoulder_angle)])
    )
    yaw_quat = np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
    poses = {
        "arm_turret": (ARM_SHOULDER, yaw_quat),
        "arm_upper": _segment_pose(ARM_SHOULDER, elbow),
        "arm_fore": _segment_pose(elbow, wrist),
        "arm_wrist": (wrist, yaw_quat),
    }
    for name, (pos, quat) in poses.items():
        mocap = model.body(name).mocapid[0]
        data.mocap_pos[mocap] = pos
        data.mocap_quat[mocap] = quat
    mujoco.mj_kinematics(model, data)
