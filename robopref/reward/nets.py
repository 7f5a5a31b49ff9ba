"""Small network pieces shared by the reward models: an MLP builder and tensor conversions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

LEAKY_SLOPE = 0.2  # LeakyReLU(0.2), as in the VPL authors' control code


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int) -> nn.Sequential:
    """A multilayer perceptron ``in_dim -> hidden... -> out_dim`` with LeakyReLU(0.2) between.

    The last layer is linear (no activation). ``hidden=()`` gives a single linear layer.
    """
    if in_dim <= 0 or out_dim <= 0 or any(h <= 0 for h in hidden):
        raise ValueError(
            f"mlp sizes must be positive, got in_dim={in_dim}, hidden={tuple(hidden)}, "
            f"out_dim={out_dim}"
        )
    layers: list[nn.Module] = []
    width = in_dim
    for size in hidden:
        layers += [nn.Linear(width, size), nn.LeakyReLU(LEAKY_SLOPE)]
        width = size
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


def as_tensor(value: Any, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``value`` (numpy array, list, number or tensor) as a tensor on ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(value), dtype=dtype, device=device)


def like_input(result: torch.Tensor, template: Any) -> Any:
    """``result`` as a numpy array unless ``template`` was a tensor (then as a tensor)."""
    if isinstance(template, torch.Tensor):
        return result
    return result.detach().cpu().numpy()


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` (CUDA when present, else CPU), ``"cpu"`` or ``"cuda[:i]"`` as a torch device."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" or device.startswith("cuda"):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(
                f"device={device!r} was asked for but torch sees no CUDA GPU here: "
                "use --device cpu or --device auto"
            )
        return torch.device(device)
    raise ValueError(f"device={device!r} is not one of auto, cpu, cuda (or cuda:N)")
