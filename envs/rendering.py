"""Offscreen rendering: GL backend choice, a renderer with a helpful error, viewer markers."""

from __future__ import annotations

import os
import platform
import sys

GL_HELP = (
    "MuJoCo needs an OpenGL backend to render. Set MUJOCO_GL before Python starts: "
    "MUJOCO_GL=egl (headless, CPU via Mesa llvmpipe; Debian packages libegl1 libopengl0 "
    "libegl-mesa0 libgl1-mesa-dri), MUJOCO_GL=osmesa (Debian package libosmesa6), or "
    "MUJOCO_GL=glfw on a machine with a display."
)

#: MUJOCO_GL values the mujoco bindings accept on this platform ("" means unset).
VALID_GL_BACKENDS: dict[str, tuple[str, ...]] = {
    "Linux": ("egl", "osmesa", "glx", "glfw"),
    "Windows": ("glfw", "wgl"),
    "Darwin": ("glfw", "cgl"),
}
# Values that only switch rendering on or off (mujoco then picks its default backend).
_GL_SWITCHES = ("", "enable", "enabled", "on", "true", "1")
_GL_SWITCHES += ("disable", "disabled", "off", "false", "0")


def default_gl_backend() -> None:
    """Default ``MUJOCO_GL`` to ``egl`` when no display is present, then check the value.

    It must run before ``mujoco`` is first imported, which reads the variable at import;
    ``import robopref`` calls it first thing. A value mujoco would reject, or a backend
    whose libraries are missing (mujoco then fails at import with an unrelated error),
    raises a ``RuntimeError`` that names the MUJOCO_GL values to try.
    """
    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"
    backend = os.environ.get("MUJOCO_GL", "")
    valid = VALID_GL_BACKENDS.get(platform.system(), ("glfw",))
    if backend.lower().strip() not in valid + _GL_SWITCHES:
        raise RuntimeError(
            f"MUJOCO_GL={backend!r} is not a rendering backend: on {platform.system()} use "
            f"one of {', '.join(valid)}. {GL_HELP}"
        )
    if "mujoco" in sys.modules:
        return
    try:
        import mujoco  # noqa: F401  (its import loads the GL backend's libraries)
    except Exception as error:  # a missing library surfaces as several unrelated types
        raise RuntimeError(
            f"mujoco failed to import with MUJOCO_GL={backend}, most likely because that "
            f"backend's system libraries are missing ({type(error).__name__}: {error}). "
            f"{GL_HELP}"
        ) from error


def make_renderer(model, height: int, width: int):
    """A ``mujoco.Renderer``, or a ``RuntimeError`` that says which MUJOCO_GL values to try."""
    import mujoco

    if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
        model.vis.global_.offwidth = max(width, model.vis.global_.offwidth)
        model.vis.global_.offheight = max(height, model.vis.global_.offheight)
    try:
        return mujoco.Renderer(model, height=height, width=width)
    except Exception as error:  # the backends raise several unrelated error types
        backend = os.environ.get("MUJOCO_GL", "<unset>")
        raise RuntimeError(
            f"Rendering failed with MUJOCO_GL={backend}: {error}. {GL_HELP}"
        ) from error


def add_marker_disc(scene, center: tuple[float, float, float], radius: float, rgba) -> None:
    """Append a flat translucent disc and a thin pole to a rendered scene (viewer only)."""
    import mujoco
    import numpy as np

    for geom_type, size, offset in (
        (mujoco.mjtGeom.mjGEOM_CYLINDER, [radius, 0.0012, 0.0], 0.0015),
        (mujoco.mjtGeom.mjGEOM_CYLINDER, [0.004, 0.06, 0.0], 0.06),
        (mujoco.mjtGeom.mjGEOM_SPHERE, [0.012, 0.0, 0.0], 0.125),
    ):
        if scene.ngeom >= scene.maxgeom:
            return
        pos = np.array([center[0], center[1], center[2] + offset], dtype=np.float64)
        mujoco.mjv_initGeom(
            scene.geoms[scene.ngeom],
            geom_type,
            np.array(size, dtype=np.float64),
            pos,
            np.eye(3).ravel(),
            np.asarray(rgba, dtype=np.float32),
        )
        scene.ngeom += 1
