"""The one preprocessing path shared by training and inference.

A model sees a *window* of a video: ``L`` clips of ``T`` frames each (``(L, T, J, 3)`` poses and, for
multimodal models, ``(L, T, 3, S, S)`` images). Training samples and live video go through the same
functions here, so a model trained on annotated skeletons sees the same kind of numbers at inference.

Temporal sampling: a window's ``N`` source frames are resampled *uniformly* to ``L * T`` frames
(:func:`frame_indices`), then split into ``L`` consecutive clips. A window covers ``window_seconds``
of video whatever the frame rate, so the model sees actions at the same speed on 25 and 60 fps video.

Spatial normalisation (``"center_scale"``, :func:`normalize_pose`): per clip, x/y are centred on the
mean of the per-frame bounding-box centres of the visible joints and divided by the median per-frame
body size (the longer side of that box). Motion inside a clip (a jump, a step) is kept, while the
camera distance, image resolution and the person's position in the frame are removed — that is what
lets a model trained on one dataset's pixel coordinates run on another pose detector's output.
Joints with confidence 0 are "missing": their x/y are set to 0 after normalisation.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch

from unihar.errors import ConfigError, InputError

__all__ = [
    "PreprocessConfig",
    "NORMALIZATIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "frame_indices",
    "window_ranges",
    "pose_window",
    "normalize_pose",
    "image_window",
]

NORMALIZATIONS = ("center_scale", "none")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class PreprocessConfig:
    """How raw keypoints / frames become model input; stored in ``config["preprocessing"]``."""

    layout: str | list[str] = "coco17"
    clips: int = 4
    clip_len: int = 30
    window_seconds: float = 4.0
    stride_seconds: float = 1.0
    normalization: str = "center_scale"
    image_size: int = 224

    def __post_init__(self) -> None:
        if isinstance(self.layout, tuple):
            self.layout = list(self.layout)
        if int(self.clips) < 1 or int(self.clip_len) < 1:
            raise ConfigError(f"preprocessing: clips and clip_len must be >= 1, got {self.clips} and {self.clip_len}")
        if not (self.window_seconds > 0 and self.stride_seconds > 0):
            raise ConfigError(
                "preprocessing: window_seconds and stride_seconds must be > 0, "
                f"got {self.window_seconds} and {self.stride_seconds}"
            )
        if self.normalization not in NORMALIZATIONS:
            raise ConfigError(f"preprocessing.normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        if int(self.image_size) < 1:
            raise ConfigError(f"preprocessing.image_size must be >= 1, got {self.image_size}")
        self.clips, self.clip_len, self.image_size = int(self.clips), int(self.clip_len), int(self.image_size)
        self.window_seconds, self.stride_seconds = float(self.window_seconds), float(self.stride_seconds)

    @property
    def num_frames(self) -> int:
        """Frames per window after resampling (``clips * clip_len``)."""
        return self.clips * self.clip_len

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PreprocessConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"preprocessing: unknown keys {sorted(unknown)}; expected a subset of {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_model_config(cls, config: dict[str, Any]) -> "PreprocessConfig":
        """Read ``config["preprocessing"]``, or derive defaults from ``pose_model`` when it is absent."""
        if config.get("preprocessing"):
            return cls.from_dict(dict(config["preprocessing"]))
        pose = config.get("pose_model", {})
        joints = pose.get("joints")
        if joints is None:
            return cls()
        from unihar.data.layouts import LAYOUTS_BY_NUM_JOINTS

        if joints not in LAYOUTS_BY_NUM_JOINTS:
            raise ConfigError(
                f"config has no 'preprocessing' section and pose_model.joints={joints} matches no known layout "
                f"({sorted(LAYOUTS_BY_NUM_JOINTS)}); add preprocessing.layout"
            )
        clip_len = min(cls.clip_len, int(pose.get("max_seq_len", cls.clip_len)))
        return cls(layout=LAYOUTS_BY_NUM_JOINTS[joints].name, clip_len=clip_len)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def frame_indices(num_frames: int, num_out: int) -> np.ndarray:
    """Indices of ``num_out`` frames spread uniformly over ``num_frames`` (the centre of each of ``num_out`` equal bins).

    Shorter inputs repeat frames (nearest-neighbour upsampling), longer ones skip frames; the first and
    last output frames lie half a bin from the ends, so the sampling is symmetric in time.
    """
    if num_frames < 1:
        raise InputError(f"frame_indices: need at least 1 frame, got {num_frames}")
    if num_out < 1:
        raise InputError(f"frame_indices: num_out must be >= 1, got {num_out}")
    idx = np.floor((np.arange(num_out) + 0.5) * (num_frames / num_out)).astype(np.int64)
    return np.clip(idx, 0, num_frames - 1)


def window_ranges(num_frames: int, fps: float, prep: PreprocessConfig) -> list[tuple[int, int]]:
    """``[start, end)`` frame ranges of the sliding windows over a video of ``num_frames`` frames.

    Windows are ``window_seconds`` long and start every ``stride_seconds``. A video shorter than one
    window gives one window over all of it; the last window is aligned to the end of the video so the
    tail is never dropped.
    """
    if num_frames < 1:
        raise InputError(f"window_ranges: the video has no frames (num_frames={num_frames})")
    if not fps > 0:
        raise InputError(f"window_ranges: fps must be > 0, got {fps}")
    win = max(1, int(round(prep.window_seconds * fps)))
    stride = max(1, int(round(prep.stride_seconds * fps)))
    if num_frames <= win:
        return [(0, num_frames)]
    ranges = [(s, s + win) for s in range(0, num_frames - win + 1, stride)]
    if ranges[-1][1] < num_frames:
        ranges.append((num_frames - win, num_frames))
    return ranges


def _check_keypoints(kpts: np.ndarray, name: str, min_dims: int) -> np.ndarray:
    kpts = np.asarray(kpts)
    if kpts.ndim < min_dims or kpts.shape[-1] != 3:
        raise InputError(f"{name}: expected keypoints of shape (..., J, 3) (x, y, confidence), got {kpts.shape}")
    if not np.issubdtype(kpts.dtype, np.number):
        raise InputError(f"{name}: expected a numeric array, got dtype {kpts.dtype}")
    return kpts.astype(np.float32, copy=False)


def normalize_pose(kpts: np.ndarray, method: str = "center_scale") -> np.ndarray:
    """Normalise x/y of ``(..., T, J, 3)`` keypoints per clip (the ``T`` axis); confidence is kept.

    ``"center_scale"``: subtract the mean over frames of the bounding-box centre of the visible joints
    (confidence > 0) and divide by the median over frames of the box's longer side. Missing joints get
    x = y = 0; a clip with no visible joint comes back all zeros. ``"none"``: returned unchanged.
    """
    if method not in NORMALIZATIONS:
        raise ConfigError(f"normalization must be one of {NORMALIZATIONS}, got {method!r}")
    kpts = _check_keypoints(kpts, "normalize_pose", 3)
    if method == "none":
        return kpts.copy()
    xy, conf = kpts[..., :2], kpts[..., 2]
    visible = conf > 0  # (..., T, J)
    big = np.float32(np.inf)
    lo = np.where(visible[..., None], xy, big).min(axis=-2)  # (..., T, 2)
    hi = np.where(visible[..., None], xy, -big).max(axis=-2)
    frame_ok = visible.any(axis=-1)  # (..., T)
    with np.errstate(invalid="ignore"):
        centre = np.where(frame_ok[..., None], (lo + hi) / 2, np.nan)
        size = np.where(frame_ok, (hi - lo).max(axis=-1), np.nan)
        size = np.where(visible.sum(axis=-1) >= 2, size, np.nan)  # one joint has no extent
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: clips with nobody in view
        clip_centre = np.nanmean(centre, axis=-2)  # (..., 2)
        clip_size = np.nanmedian(size, axis=-1)  # (...)
    clip_centre = np.nan_to_num(clip_centre, nan=0.0)
    clip_size = np.where(np.isfinite(clip_size) & (clip_size > 1e-6), clip_size, 1.0)
    out = np.empty_like(kpts)
    out[..., :2] = (xy - clip_centre[..., None, None, :]) / clip_size[..., None, None, None]
    out[..., :2] *= visible[..., None]
    out[..., 2] = conf
    return out


def pose_window(kpts: np.ndarray, prep: PreprocessConfig) -> np.ndarray:
    """``(N, J, 3)`` keypoints (model layout, pixel x/y, confidence in [0, 1]) -> ``(L, T, J, 3)`` model input.

    The ``N`` frames are resampled to ``L * T`` (:func:`frame_indices`), split into ``L`` clips and
    normalised per clip (:func:`normalize_pose`).
    """
    kpts = _check_keypoints(kpts, "pose_window", 3)
    if kpts.ndim != 3:
        raise InputError(f"pose_window: expected keypoints of shape (frames, joints, 3), got {kpts.shape}")
    from unihar.data.layouts import get_layout

    expected = get_layout(prep.layout).num_joints
    if kpts.shape[1] != expected:
        raise InputError(
            f"pose_window: the model's layout {_layout_name(prep.layout)!r} has {expected} joints, "
            f"got keypoints with {kpts.shape[1]} (shape {kpts.shape}); convert them with convert_keypoints first"
        )
    if kpts.shape[0] < 1:
        raise InputError("pose_window: got 0 frames")
    window = kpts[frame_indices(kpts.shape[0], prep.num_frames)]
    window = window.reshape(prep.clips, prep.clip_len, expected, 3)
    return normalize_pose(window, prep.normalization)


def image_window(frames: np.ndarray, prep: PreprocessConfig) -> torch.Tensor:
    """``(N, H, W, 3)`` uint8 RGB frames -> ``(L, T, 3, S, S)`` float32 with ImageNet mean/std.

    Same temporal sampling as :func:`pose_window`. Each frame's shorter side is resized to ``S``
    (antialiased bilinear) and the centre ``S x S`` square is cropped, as in ImageNet evaluation.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise InputError(f"image_window: expected RGB frames of shape (frames, height, width, 3), got {frames.shape}")
    if frames.dtype != np.uint8:
        raise InputError(f"image_window: expected uint8 frames (0-255), got dtype {frames.dtype}")
    if frames.shape[0] < 1 or frames.shape[1] < 1 or frames.shape[2] < 1:
        raise InputError(f"image_window: got an empty frame array {frames.shape}")
    size = prep.image_size
    picked = torch.from_numpy(np.ascontiguousarray(frames[frame_indices(frames.shape[0], prep.num_frames)]))
    x = picked.permute(0, 3, 1, 2).float().div_(255.0)  # (L*T, 3, H, W)
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    new_h, new_w = max(size, int(round(h * scale))), max(size, int(round(w * scale)))
    x = torch.nn.functional.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    x = x[..., top : top + size, left : left + size]
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = (x - mean) / std
    return x.reshape(prep.clips, prep.clip_len, 3, size, size).contiguous()


def _layout_name(layout: str | Sequence[str]) -> str:
    return layout if isinstance(layout, str) else f"custom({len(layout)} joints)"
