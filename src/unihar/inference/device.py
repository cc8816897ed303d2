"""Choosing where a model runs: the one rule every part of Uni-HAR follows.

1. An explicit device wins: it is checked, and the model is moved there.
2. Otherwise the code that *runs* a model (the windowing engine) follows the model: its inputs go to
   the device of the model's parameters, so they can never be on different devices.
3. The entry points that *own* a model (:class:`~unihar.inference.pipeline.VideoPipeline`,
   :class:`~unihar.inference.predictor.HARPredictor`,
   :class:`~unihar.inference.streaming.StreamingPredictor`, and through the pipeline ``unihar predict``,
   ``stream``, ``serve`` and batch runs) decide once, when they are built, with :func:`place_model`: a
   model already on an accelerator stays there, and one on the CPU (where loading leaves it) goes to
   :func:`default_device`, CUDA when available.

A model that is not a PyTorch module (onnxruntime) runs on the CPU.
"""

from __future__ import annotations

from typing import Any

import torch

from unihar.errors import InputError

__all__ = ["default_device", "resolve_device", "model_device", "place_model", "runtime_device"]


def default_device(index: int | None = None) -> torch.device:
    """Where a model goes when nobody said: CUDA when available (GPU ``index``: a torchrun process's
    local rank), else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda") if index is None else torch.device("cuda", index)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """An explicit ``device``, checked (None: :func:`default_device`)."""
    if device is None:
        return default_device()
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise InputError(f"device: expected 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r} ({err})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} was asked for, but CUDA is not available on this machine")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {device!r} was asked for, but MPS is not available on this machine")
    return resolved


def _weights_device(model: Any) -> torch.device | None:
    """The device of a PyTorch model's first parameter (or buffer); None for a model without any."""
    if isinstance(model, torch.nn.Module):
        for parameter in model.parameters():
            return parameter.device
        for buffer in model.buffers():
            return buffer.device
    return None


def model_device(model: Any) -> torch.device:
    """Where ``model`` computes: its weights' device; the CPU for a model without PyTorch weights
    (onnxruntime, a wrapper around one)."""
    return _weights_device(model) or torch.device("cpu")


def _move(model: Any, device: str | torch.device) -> torch.device:
    """Move ``model`` to the checked ``device`` and say where it computes now."""
    resolved = resolve_device(device)
    if isinstance(model, torch.nn.Module):
        model.to(resolved)
        return _weights_device(model) or resolved  # "cuda" reads back as "cuda:0"
    if hasattr(model, "to"):  # onnxruntime refuses anything but the CPU, with its own message
        model.to(resolved)
    return torch.device("cpu")


def runtime_device(model: Any, device: str | torch.device | None = None) -> torch.device:
    """Where to send a model's inputs: ``device`` if given (the model is moved there), else the model's own device."""
    if device is not None:
        return _move(model, device)
    return model_device(model)


def place_model(model: Any, device: str | torch.device | None = None) -> torch.device:
    """Decide once where an entry point's model runs, move it there, and return that device: ``device``
    if given; else a model on an accelerator stays where it is and one on the CPU goes to
    :func:`default_device`."""
    if device is not None:
        return _move(model, device)
    if not isinstance(model, torch.nn.Module):
        return torch.device("cpu")
    here = model_device(model)
    if here.type != "cpu":
        return here
    return _move(model, default_device())
