"""Command-line options whose defaults live in the library's config dataclasses.

A command's options dataclass (see :mod:`robopref.cli`) declares a field for each setting
it exposes; where the setting belongs to a library config (``BehaviourMix``,
``LabelModel``, ``TrainSettings``, ``VPLConfig``, ...), :func:`config_option` reads the
default from that config, so the default is written once, in the library.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def config_default(config_type: type, name: str) -> Any:
    """The default of field ``name`` of the dataclass ``config_type`` (a copy if mutable)."""
    for item in dataclasses.fields(config_type):
        if item.name == name:
            if item.default_factory is not dataclasses.MISSING:
                return item.default_factory()
            if item.default is dataclasses.MISSING:
                raise TypeError(f"{config_type.__name__}.{name} has no default")
            return item.default
    raise TypeError(f"{config_type.__name__} has no field {name!r}")


def config_option(config_type: type, name: str, help: str) -> Any:
    """A ``dataclasses.field`` whose default is ``config_type``'s default for ``name``.

    ``help`` is the line ``robopref COMMAND --help`` prints for the option.
    """
    default = config_default(config_type, name)
    if isinstance(default, list | dict | set):
        return dataclasses.field(
            default_factory=lambda: config_default(config_type, name), metadata={"help": help}
        )
    return dataclasses.field(default=default, metadata={"help": help})


def config_values(config_type: type, options: Any) -> dict[str, Any]:
    """The fields of ``config_type`` taken from ``options``'s fields of the same names.

    Config fields the options do not expose keep the config's default.
    """
    return {
        item.name: getattr(options, item.name)
        for item in dataclasses.fields(config_type)
        if hasattr(options, item.name)
    }


#: the task of a command's ``--env`` when none is given
DEFAULT_ENV = "robopref/PlatePlacement-v0"
#: the synthetic users of a command's ``--population`` when none is given
DEFAULT_POPULATION = "two-modes"

#: the devices a ``--device`` option takes; ``auto`` is ``cuda`` when torch sees a GPU
DEVICES = ("auto", "cpu", "cuda")


def device_option(what: str, default: str = "auto") -> Any:
    """A ``--device`` field: where ``what`` runs (``auto``: cuda when there is a GPU).

    The MLP PPO policies stay on the CPU whatever this says (SB3's advice for MLP
    policies; ``benchmarks/gpu_speed.py`` measures cuda against the CPU where a GPU is lent).
    """
    return dataclasses.field(
        default=default, metadata={"help": f"{what}: {', '.join(DEVICES)} (auto: cuda if any)"}
    )
