"""Test configuration shared by every test: a headless OpenGL backend before mujoco loads.

``check_env`` renders every declared render mode, so MuJoCo needs a GL backend. The
variable must be set before ``mujoco`` is first imported (it is read at import), which is
why it is set here, at the top of the root conftest, and not inside a fixture.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")


import pytest  # noqa: E402


@pytest.fixture
def read_only_folder(tmp_path, monkeypatch):
    """A folder this process may not write into, also when the tests run as root.

    Root writes anywhere whatever the mode says, and CI runs as root; there ``os.access``
    is made to answer as the folder's mode does, so the refusal is tested everywhere.
    """
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real_access = os.access
        monkeypatch.setattr(
            os,
            "access",
            lambda path, mode, **kw: str(path) != str(folder) and real_access(path, mode, **kw),
        )
    yield folder
    folder.chmod(0o755)
