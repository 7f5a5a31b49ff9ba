"""Test configuration shared by every test: a headless OpenGL backend before mujoco loads.

``check_env`` renders every declared render mode, so MuJoCo needs a GL backend. The
variable must be set before ``mujoco`` is first imported (it is read at import), which is
why it is set here, at the top of the root conftest, and not inside a fixture.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
