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
        try:
            parsed[key] = yaml.safe_load(text) if text else ""
        except yaml.YAMLError as error:
            problem = str(getattr(error, "problem", None) or type(error).__name__)
            raise ValueError(
                f"--env-kwargs {item!r}: the value {text!r} cannot be read as YAML "
                f"({problem}): write a plain value such as a number, true/false or a word, "
                f"e.g. --env-kwargs n_zones=3"
            ) from None
    return parsed


def make_with_kwargs(env_id: str, env_kwargs: dict[str, Any] | None = None, **display: Any):
    """``gym.make(env_id, **env_kwargs, **display)``, where a keyword the task does not take
    is a ``ValueError`` (the env's ``TypeError`` text: the unknown name and the valid ones),
    so that every command reports a typo in ``--env-kwargs`` in one line."""
    import gymnasium as gym

    try:
        return gym.make(env_id, **{**(env_kwargs or {}), **display})
    except TypeError as error:
        if "got an unexpected keyword argument" not in str(error):
            raise
        # gym.make appends "was raised from the environment creator for <id> with kwargs
        # (...)": the env's own text already names the kwarg and the fix.
        text = str(error).split(" was raised from the environment creator")[0]
        raise ValueError(text) from error


def check_env_kwargs(recorded: dict[str, Any], given: dict[str, Any], source: str) -> dict:
    """``recorded`` (from ``source``), refusing ``given`` kwargs that differ from them."""
    recorded = dict(recorded or {})
    if given and given != recorded:
        raise ValueError(
            f"--env-kwargs {given} differ from the env {source} was made with ({recorded or 'no'}"
            f" kwargs): drop --env-kwargs, or pass the same ones"
        )
    return recorded
