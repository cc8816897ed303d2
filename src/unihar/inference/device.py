"""Choosing where a model runs."""
from __future__ import annotations

import torch

from unihar.errors import InputError

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """CUDA when available, else CPU; an explicit ``device`` wins and is checked."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise InputError(f"device: expected 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r} ({err})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} was asked for, but CUDA is not available on this machine")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {device!r} was asked for, but MPS is not available on this machine")
    return resolved
