"""What every runnable Uni-HAR model offers, whichever backend runs it.

The PyTorch network (:class:`unihar.models.UniHAR`) and an exported ONNX graph run by onnxruntime
(:class:`unihar.inference.onnx_backend.OnnxModel`) both implement :class:`HARModel`, so the windowing
engine, the evaluation and the server use either without asking which one they hold.

The split into per-clip encoders and a head is what makes live recognition cheap: a clip is encoded
once, when its last frame arrives, and the head (long-term encoder, fusion, classifier) reuses the
cached clips of every window that contains it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from torch import Tensor

from unihar.config import ModelConfig, PreprocessConfig

__all__ = ["HARModel", "UniHARFeatures"]


@dataclass
class UniHARFeatures:
    """What the encoders compute, everything the head needs (and what streaming caches).

    tokens: modality name -> (B, L, T, D) tokens of each clip: ``skeleton``: pose tokens averaged over
        joints (their mean over T is the clip embedding); ``rgb``: per-frame image features (B, L, T', Di);
        ``imu``: per-step sensor tokens. A modality left out is missing for these windows.
    segment_mask: (B, L) bool, True for valid clips, or None (all valid).
    """

    tokens: dict[str, Tensor] = field(default_factory=dict)
    segment_mask: Tensor | None = None

    @classmethod
    def of(
        cls,
        frame_tokens: Tensor | None = None,
        image_frames: Tensor | None = None,
        segment_mask: Tensor | None = None,
        **others: Tensor | None,
    ) -> UniHARFeatures:
        """Built from the pose tokens, image features and other modalities' tokens (None = missing)."""
        named = {"skeleton": frame_tokens, "rgb": image_frames, **others}
        return cls({name: value for name, value in named.items() if value is not None}, segment_mask)

    @property
    def frame_tokens(self) -> Tensor | None:
        return self.tokens.get("skeleton")

    @property
    def image_frames(self) -> Tensor | None:
        return self.tokens.get("rgb")


@runtime_checkable
class HARModel(Protocol):
    """A model the engine can run: its config, its labels, per-clip encoders and a head."""

    config: ModelConfig
    labels: list[str]

    @property
    def preprocessing(self) -> PreprocessConfig: ...

    @property
    def num_classes(self) -> int: ...

    @property
    def has_image_branch(self) -> bool: ...

    @property
    def modalities(self) -> list[str]:
        """The modalities it reads, in order (``["skeleton"]``, ``["skeleton", "imu"]``...)."""

    def encode(self, modality: str, units: Tensor) -> Tensor:
        """One modality's clips -> tokens (N, T, D) (``encode("imu", (N, S, C))``)."""

    def encode_clips(self, clips: Tensor) -> Tensor:
        """Pose clips (N, T, J, C) -> per-frame tokens (N, T, D)."""

    def encode_frames(self, frames: Tensor) -> Tensor:
        """RGB frames (N, 3, S, S), normalised -> per-frame image features (N, Di)."""

    def forward_head(self, features: UniHARFeatures) -> Tensor:
        """Encoded clips of B windows -> logits (B, K)."""

    def eval(self) -> HARModel:
        """Inference mode (dropout off); returns the model itself."""

    def probabilities(self, logits: Tensor) -> Tensor:
        """Logits -> calibrated probabilities (softmax with the model's temperature)."""

    def __call__(self, pose: Tensor, images: Tensor | None = None, segment_mask: Tensor | None = None) -> Tensor:
        """Whole windows: pose (B, L, T, J, C) [+ images (B, L, T', 3, S, S)] -> logits (B, K)."""
