"""The wearable inertial sensor as a Uni-HAR modality (``imu_model`` in the config).

Input per clip: ``(S, C)`` standardised samples, ``S = imu_model.rate`` x the clip's duration (see
:mod:`unihar.data.signals`, which makes them from a recording). :class:`ImuEncoder` is sized for 50-100
Hz 6-axis signals: a strided 1D-convolution stem (each layer halves the time steps and widens the
receptive field: two layers at 50 Hz see 0.26 s per step, the scale of a swing or a step) and a small
pre-norm transformer over the remaining steps, with a learned position embedding, so the order of
events within a clip (stand up vs sit down) survives the mean over time.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor, nn

from unihar.config import ImuModelConfig
from unihar.data.signals import samples_per_clip
from unihar.errors import InputError
from unihar.models.modalities import Modality, check_finite, check_float_tensor, register_modality

__all__ = ["ImuEncoder", "ImuModality", "tokens_per_clip"]


def tokens_per_clip(samples: int, conv_layers: int) -> int:
    """Time steps left after ``conv_layers`` stride-2 convolutions (padding k // 2) of ``samples`` steps."""
    for _ in range(conv_layers):
        samples = (samples + 1) // 2
    return samples


class ImuEncoder(nn.Module):
    """``(N, S, C)`` sensor clips -> ``(N, S', D)`` tokens (S' = S halved ``conv_layers`` times)."""

    def __init__(
        self,
        channels: int,
        samples: int,
        dim: int,
        conv_layers: int,
        kernel_size: int,
        layers: int,
        heads: int,
        dropout: float,
    ) -> None:
        super().__init__()
        stem: list[nn.Module] = []
        width = channels
        for i in range(max(1, conv_layers)):  # without downsampling, still one convolution to embed the channels
            stride = 2 if i < conv_layers else 1
            stem += [
                nn.Conv1d(width, dim, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
                nn.BatchNorm1d(dim),
                nn.GELU(),
            ]
            width = dim
        self.stem = nn.Sequential(*stem)
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens_per_clip(samples, conv_layers), dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, 2 * dim, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        steps = self.stem(x.transpose(1, 2)).transpose(1, 2)
        tokens: Tensor = self.norm(self.encoder(steps + self.pos_embed))
        return tokens


@register_modality
class ImuModality(Modality):
    """A 6-axis (or any named-channel) inertial sensor worn by the person of a track."""

    name = "imu"
    input_name = "imu"
    fusion_key = "imu"
    section = "imu_model"
    classifier = "classifier_imu"

    @property
    def imu_config(self) -> ImuModelConfig:
        """Its config section, ``config.imu_model``."""
        imu = self.config.imu_model
        assert imu is not None  # the modality exists only for a config with an imu_model section
        return imu

    @property
    def samples(self) -> int:
        return samples_per_clip(self.config.preprocessing, self.imu_config)

    @property
    def feature_dim(self) -> int:
        return self.imu_config.hidden_dim

    def build(self, pretrained_backbone: bool = False) -> dict[str, nn.Module | None]:
        cfg = self.imu_config
        return {
            "imu_encoder": ImuEncoder(
                len(cfg.channels),
                self.samples,
                cfg.hidden_dim,
                cfg.conv_layers,
                cfg.kernel_size,
                cfg.layers,
                cfg.heads,
                cfg.dropout,
            ),
            "classifier_imu": nn.Linear(cfg.hidden_dim, self.config.num_classes),
        }

    def check(self, x: Any, batch: int | None, clips: int | None) -> tuple[int, int]:
        imu = self.imu_config
        c, s = len(imu.channels), self.samples
        expected = f"(B, L, S, C) with S={s} samples per clip ({imu.rate:g} Hz), C={c} channels {list(imu.channels)}"
        if batch is not None:
            expected += f", B={batch}, L={clips}"
        check_float_tensor(self.input_name, x)
        if x.dim() != 4:
            raise InputError(f"{self.input_name}: expected a 4-D tensor {expected}, got shape {tuple(x.shape)}")
        b, l, ss, cc = x.shape
        if ss != s or cc != c or b < 1 or l < 1 or (batch is not None and (b, l) != (batch, clips)):
            raise InputError(f"{self.input_name}: expected shape {expected}, got {tuple(x.shape)}")
        check_finite(self.input_name, x)
        return b, l

    def encode(self, model: nn.Module, units: Tensor) -> Tensor:
        encoder = cast(ImuEncoder, model.imu_encoder)  # set by build(); the model does not declare plug-in modules
        tokens: Tensor = encoder(units)
        return tokens
