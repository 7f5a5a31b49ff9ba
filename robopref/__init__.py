"""robopref: personalized reinforcement learning from preferences on MuJoCo tabletop tasks.

``import robopref`` registers the Gymnasium ids ``robopref/PlatePlacement-v0`` and
``robopref/BlockSort-v0``; other code can also ``gym.make("robopref:robopref/...")``.
"""

from robopref.envs.rendering import default_gl_backend

default_gl_backend()  # before mujoco is imported anywhere

from robopref.envs import ENV_IDS, register_envs, scripted_policy  # noqa: E402

__version__ = "0.1.0"
__all__ = ["ENV_IDS", "__version__", "register_envs", "scripted_policy"]
