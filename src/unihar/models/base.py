"""What every runnable Uni-HAR model offers, whichever backend runs it.

The PyTorch network (:class:`unihar.models.UniHAR`) and an exported ONNX graph run by onnxruntime
(:class:`unihar.inference.onnx_backend.OnnxModel`) both implement :class:`HARModel`, so the windowing
engine, the evaluation and the server use either without asking which one they hold.

The split into per-clip encoders and a head is what makes live recognition cheap: a clip is encoded
once, when its last frame arrives, and the head (long-term encoder, fusion, classifier) reuses the
cached clips of every window that contains it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import Tensor

from unihar.config import ModelConfig, PreprocessConfig

__all__ = ["HARModel", "UniHARFeatures"]


@dataclass
class UniHARFeatures:
    """What the encoders compute, everything the head needs (and what streaming caches).

    frame_tokens: (B, L, T, D) pose tokens averaged over joints (their mean over T is the clip embedding).
    image_frames: (B, L, T', Di) per-frame image features, or None for the pose-only path.
    segment_mask: (B, L) bool, True for valid clips, or None (all valid).
    """

    frame_tokens: Tensor
    image_frames: Tensor | None = None
    segment_mask: Tensor | None = None


@runtime_checkable
class HARModel(Protocol):
    """A model the engine can run: its config, its labels, per-clip encoders and a head."""

    config: ModelConfig
    labels: list[str]

    @property
    def prep(self) -> PreprocessConfig: ...

    @property
    def num_classes(self) -> int: ...

    @property
    def has_image_branch(self) -> bool: ...

    def encode_clips(self, clips: Tensor) -> Tensor:
        """Pose clips (N, T, J, C) -> per-frame tokens (N, T, D)."""

    def encode_frames(self, frames: Tensor) -> Tensor:
        """RGB frames (N, 3, S, S), normalised -> per-frame image features (N, Di)."""

    def forward_head(self, features: UniHARFeatures) -> Tensor:
        """Encoded clips of B windows -> logits (B, K)."""

    def probabilities(self, logits: Tensor) -> Tensor:
        """Logits -> calibrated probabilities (softmax with the model's temperature)."""

    def __call__(self, pose: Tensor, images: Tensor | None = None, segment_mask: Tensor | None = None) -> Tensor:
        """Whole windows: pose (B, L, T, J, C) [+ images (B, L, T', 3, S, S)] -> logits (B, K)."""
