"""Offscreen rendering: GL backend choice, a renderer with a helpful error, viewer markers.

A bad ``MUJOCO_GL`` only matters to rendering: physics, data collection and training run
without OpenGL, and the first render raises the error that names the fix.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

import numpy as np

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


#: why rendering cannot work in this process (set by :func:`default_gl_backend`), or None.
_gl_problem: str | None = None
_RENDERING_OFF = "disable"


def _drop_mujoco_modules() -> None:
    for name in [name for name in sys.modules if name == "mujoco" or name.startswith("mujoco.")]:
        del sys.modules[name]


def default_gl_backend() -> None:
    """Default ``MUJOCO_GL`` to ``egl`` when no display is present, and import mujoco safely.

    It must run before ``mujoco`` is first imported, which reads the variable at import;
    ``import robopref`` calls it first thing. Only rendering needs a working backend: a
    value mujoco would reject, or a backend whose libraries are missing (mujoco then fails
    at import with an unrelated error), does not stop the physics. mujoco is then imported
    with rendering switched off, and :func:`make_renderer` raises a ``RuntimeError`` that
    names the problem and the MUJOCO_GL values to try. Never raises itself.
    """
    global _gl_problem
    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"
    if "mujoco" in sys.modules:
        return
    backend = os.environ.get("MUJOCO_GL", "")
    valid = VALID_GL_BACKENDS.get(platform.system(), ("glfw",))
    if backend.lower().strip() not in valid + _GL_SWITCHES:
        _gl_problem = (
            f"MUJOCO_GL={backend!r} is not a rendering backend: on {platform.system()} use "
            f"one of {', '.join(valid)}."
        )
    else:
        try:
            import mujoco  # noqa: F401  (its import loads the GL backend's libraries)

            return
        except Exception as error:  # a missing library surfaces as several unrelated types
            _drop_mujoco_modules()
            _gl_problem = (
                f"mujoco could not load the MUJOCO_GL={backend} backend, most likely because "
                f"its system libraries are missing ({type(error).__name__}: {error})."
            )
    # The physics needs no OpenGL: import mujoco with rendering off, then restore the
    # user's value so that child processes (vector-env workers) see what this one saw.
    os.environ["MUJOCO_GL"] = _RENDERING_OFF
    try:
        import mujoco  # noqa: F401
    finally:
        os.environ["MUJOCO_GL"] = backend


def make_renderer(model, height: int, width: int):
    """A ``mujoco.Renderer``, or a ``RuntimeError`` that says which MUJOCO_GL values to try."""
    import mujoco

    if _gl_problem is not None:
        raise RuntimeError(f"Rendering is unavailable: {_gl_problem} {GL_HELP}")

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


def step_frames(env: Any) -> list[np.ndarray]:
    """The frames the last step (or reset) of ``env`` shows: the frames of its motion where
    one step is a whole motion (TableSetting's place interface), else one ``render()``;
    under ``render_mode="rgb_array_list"`` the frames ``render()`` collected."""
    if env.render_mode == "rgb_array_list":
        return list(env.render())
    motion = getattr(env.unwrapped, "motion_frames", None)
    return list(motion) if motion else [env.render()]
