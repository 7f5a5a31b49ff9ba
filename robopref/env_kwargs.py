"""``--env-kwargs KEY=VALUE ...``: the keyword arguments a task is built with, everywhere.

Every command that builds an env takes them (as ``gym.make(id, **kwargs)`` does) and
records them where it writes (a dataset's and a reward model's ``meta["env_kwargs"]``, a
policy's ``meta.json``), so the commands after it rebuild the same env and refuse another:
a BlockSort policy trained with ``n_zones=3`` is not evaluated on two zones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field
from typing import Any

import yaml

#: keys that say how to show an env, not which task it is: not recorded, not accepted here
NOT_TASK_KEYS = ("render_mode", "width", "height", "camera")


def env_kwargs_option() -> Any:
    """The ``--env-kwargs`` field of a command's options dataclass."""
    return field(
        default_factory=list,
        metadata={
            "help": "KEY=VALUE ... passed to gym.make, e.g. n_zones=3 for BlockSort (recorded "
            "in what the command writes; later commands rebuild the env with them)"
        },
    )


def parse_env_kwargs(items: Sequence[str] | dict[str, Any] | None) -> dict[str, Any]:
    """``["n_zones=3"]`` -> ``{"n_zones": 3}`` (values read as YAML scalars); a dict passes."""
    if isinstance(items, dict):
        return dict(items)
    parsed: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = str(item).partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(
                f"--env-kwargs {item!r} is not KEY=VALUE: write e.g. --env-kwargs n_zones=3"
            )
        if key in NOT_TASK_KEYS:
            raise ValueError(
                f"--env-kwargs {key} says how to show the env, not which task it is: "
                "leave it out (render and video have their own options)"
            )
        parsed[key] = yaml.safe_load(text) if text else ""
    return parsed


def check_env_kwargs(recorded: dict[str, Any], given: dict[str, Any], source: str) -> dict:
    """``recorded`` (from ``source``), refusing ``given`` kwargs that differ from them."""
    recorded = dict(recorded or {})
    if given and given != recorded:
        raise ValueError(
            f"--env-kwargs {given} differ from the env {source} was made with ({recorded or 'no'}"
            f" kwargs): drop --env-kwargs, or pass the same ones"
        )
    return recorded
