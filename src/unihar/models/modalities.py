"""Modalities: how each kind of input enters Uni-HAR, as plug-ins registered by name.

A modality (the skeleton, RGB frames, a wearable inertial sensor) is a :class:`Modality` subclass tied
to its config section (``pose_model``, ``image_model``, ``imu_model``) and registered with
:func:`register_modality`. It

* builds its modules onto the model (``build``: attribute name -> module), so the published branches
  keep their checkpoint keys (``short_seq_model``, ``long_term``, ``classifier_pose``, ``image_encoder``);
* checks its input tensor (``check``) before any compute;
* encodes one *unit* of input (a clip; a frame for the image branch) into tokens (``encode``), which
  the streaming engine caches, and a window of them (``encode_window``);
* pools a window's tokens into one feature (``pool``), and hands the cross-attention fusion its
  tokens (``fusion_tokens``).

A new modality (depth, audio) is one file with a subclass and its encoder, plus a config section class
in :mod:`unihar.config`. The model's modalities, in order, are ``ModelConfig.modalities``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from unihar.config import ModelConfig
from unihar.errors import InputError
from unihar.models.fusion import masked_mean

__all__ = [
    "Modality",
    "MODALITIES",
    "register_modality",
    "modalities_of",
    "check_float_tensor",
    "check_finite",
    "describe",
]

MODALITIES: dict[str, type[Modality]] = {}


def register_modality(cls: type[Modality]) -> type[Modality]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if cls.name in MODALITIES and MODALITIES[cls.name] is not cls:
        raise ValueError(f"a modality named {cls.name!r} is already registered ({MODALITIES[cls.name].__name__})")
    MODALITIES[cls.name] = cls
    return cls


def modalities_of(config: ModelConfig) -> list[Modality]:
    """The modalities of a config, in order (each bound to its section)."""
    unknown = [name for name in config.modalities if name not in MODALITIES]
    if unknown:
        raise InputError(f"no modality registered under {unknown}; known: {sorted(MODALITIES)}")
    return [MODALITIES[name](config) for name in config.modalities]


def describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def check_float_tensor(name: str, value: Any) -> None:
    if not isinstance(value, Tensor):
        raise InputError(f"{name}: expected a torch.Tensor, got {describe(value)}")
    if not value.is_floating_point():
        raise InputError(f"{name}: expected a floating-point tensor, got {describe(value)}")


def check_finite(name: str, value: Tensor) -> None:
    if not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise InputError(f"{name}: expected finite values, got {bad} NaN/inf entries in shape {tuple(value.shape)}")


class Modality:
    """One kind of input. Subclasses set the class attributes and implement ``build``, ``check`` and ``encode``.

    name: the registry and command-line name (``skeleton``, ``rgb``, ``imu``).
    input_name: its keyword in ``UniHAR.forward`` (``pose``, ``images``, ``imu``).
    fusion_key: its prefix in the fusion head (``fusion.<key>_proj``, ``fusion.missing_<key>``).
    section: the attribute of :class:`~unihar.config.ModelConfig` holding its config section.
    classifier: the attribute of its own classifier (answers when it is the only modality at hand), if any.
    """

    name: ClassVar[str]
    input_name: ClassVar[str]
    fusion_key: ClassVar[str]
    section: ClassVar[str]
    classifier: ClassVar[str | None] = None

    def __init__(self, config: ModelConfig) -> None:
        self.config = config  # the whole model config: a modality reads its own section, config.<section>

    @property
    def feature_dim(self) -> int:
        """Width of its tokens and of its pooled feature."""
        raise NotImplementedError

    def build(self, pretrained_backbone: bool = False) -> dict[str, nn.Module | None]:
        """Its modules, by the attribute names they take on the model."""
        raise NotImplementedError

    def check(self, x: Any, batch: int | None, clips: int | None) -> tuple[int, int]:
        """Raise :class:`InputError` unless ``x`` is a valid window input (matching ``batch`` and ``clips``
        when another input set them); returns its (batch, clips)."""
        raise NotImplementedError

    def encode(self, model: Any, units: Tensor) -> Tensor:
        """Units of input (clips ``(N, ...)``) -> tokens ``(N, T, D)``: what the engine caches."""
        raise NotImplementedError

    def encode_window(self, model: Any, x: Tensor) -> Tensor:
        """A window input ``(B, L, ...)`` -> tokens ``(B, L, T, D)``; the clips share the encoder's weights."""
        b, l = x.shape[:2]
        tokens = self.encode(model, x.reshape(b * l, *x.shape[2:]))
        return tokens.reshape(b, l, *tokens.shape[1:])

    def pool(self, model: Any, tokens: Tensor, mask: Tensor | None) -> Tensor:
        """``(B, L, T, D)`` -> the window's feature ``(B, D)``: mean over time, then over the valid clips."""
        return masked_mean(tokens.mean(dim=2), mask)

    def fusion_tokens(self, model: Any, tokens: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """What cross-attention attends over: ``(B, L*T, D)`` and its validity mask (``None``: all valid)."""
        b, l, t, d = tokens.shape
        token_mask = None if mask is None else mask.unsqueeze(2).expand(b, l, t).reshape(b, l * t)
        return tokens.reshape(b, l * t, d), token_mask
