"""The one preprocessing path shared by training, evaluation and inference (files, streams, the server).

A model sees a *window* of a video: ``L`` clips of ``T`` frames each (``(L, T, J, 3)`` poses and, for
multimodal models, ``(L, T, 3, S, S)`` images). The settings live in the model's config
(:class:`~unihar.config.PreprocessConfig`), so training and inference cannot drift apart.

Time (:class:`WindowGeometry`): at a frame rate ``fps`` a clip spans ``span = round(window_seconds *
fps / L)`` source frames and a window ``L * span``; windows start every ``round(stride_seconds * fps)``
frames. A window's frames are resampled *uniformly* to ``L * T`` (:func:`frame_indices`) and split into
``L`` clips. Because a window is a whole number of clips, its ``k``-th clip is exactly the uniform
resampling of its own ``span`` frames: the same clip in two overlapping windows is the same input, which
is what lets the engine encode each clip once.

Confidence (:func:`read_confidence`): joints below ``min_confidence`` are missing; optionally the rest
count as fully seen. Space (``"center_scale"``, :func:`normalize_pose`): per clip, x/y are centred on the
mean of the per-frame bounding-box centres of the visible joints and divided by the median per-frame
body size (the longer side of that box). Motion inside a clip is kept; camera distance, resolution and
position in the frame are removed. Missing joints get x = y = 0.

Images (:func:`resize_frame`, :func:`normalize_frames`): each frame's shorter side is resized to ``S``
(antialiased) and the centre ``S x S`` square is cropped, *as uint8, when the frame is decoded*, so a
long 1080p video never sits in memory at full size; frames become float only per clip, with the
model's mean/std.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from unihar.config import IMAGENET_MEAN, IMAGENET_STD, NORMALIZATIONS, PreprocessConfig
from unihar.data.layouts import get_layout
from unihar.errors import ConfigError, InputError

__all__ = [
    "PreprocessConfig",
    "NORMALIZATIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "WindowGeometry",
    "frame_indices",
    "window_ranges",
    "clip_indices",
    "read_confidence",
    "normalize_pose",
    "pose_clips",
    "pose_window",
    "resize_frame",
    "normalize_frames",
    "image_window",
]


def frame_indices(num_frames: int, num_out: int) -> np.ndarray:
    """Indices of ``num_out`` frames spread uniformly over ``num_frames`` (the centre of each of ``num_out``
    equal bins).

    Shorter inputs repeat frames (nearest-neighbour upsampling), longer ones skip frames; the first and
    last output frames lie half a bin from the ends, so the sampling is symmetric in time.
    """
    if num_frames < 1:
        raise InputError(f"frame_indices: need at least 1 frame, got {num_frames}")
    if num_out < 1:
        raise InputError(f"frame_indices: num_out must be >= 1, got {num_out}")
    idx = np.floor((np.arange(num_out) + 0.5) * (num_frames / num_out)).astype(np.int64)
    indices: np.ndarray = np.clip(idx, 0, num_frames - 1)
    return indices


@dataclass(frozen=True)
class WindowGeometry:
    """How many source frames a clip, a window and the stride between windows cover at one frame rate."""

    span: int  # source frames per clip
    window: int  # source frames per window (clips * span)
    stride: int  # source frames between the starts of consecutive windows
    clips: int

    @classmethod
    def at(cls, preprocessing: PreprocessConfig, fps: float, stride: int | None = None) -> WindowGeometry:
        """The geometry at ``fps``; ``stride`` (frames) overrides the model's ``stride_seconds``."""
        if not fps > 0:
            raise InputError(f"fps must be > 0, got {fps}")
        span = max(1, int(round(preprocessing.window_seconds * fps / preprocessing.clips)))
        step = int(stride) if stride is not None else max(1, int(round(preprocessing.stride_seconds * fps)))
        if step < 1:
            raise InputError(f"stride must be >= 1 frame, got {stride}")
        return cls(span=span, window=preprocessing.clips * span, stride=step, clips=preprocessing.clips)


def window_ranges(num_frames: int, fps: float | None, preprocessing: PreprocessConfig) -> list[tuple[int, int]]:
    """``[start, end)`` of the windows over a sequence of ``num_frames`` frames.

    Windows are ``WindowGeometry.window`` frames long and start every ``stride`` frames; a sequence no
    longer than one window is one window over all of it, and the last window is aligned to the end so
    the tail is never dropped. Without a frame rate (``fps=None``) the whole sequence is one window.
    """
    if num_frames < 1:
        raise InputError(f"window_ranges: the sequence has no frames (num_frames={num_frames})")
    if fps is None:
        return [(0, num_frames)]
    geometry = WindowGeometry.at(preprocessing, fps)
    win, stride = geometry.window, geometry.stride
    if num_frames <= win:
        return [(0, num_frames)]
    ranges = [(s, s + win) for s in range(0, num_frames - win + 1, stride)]
    if ranges[-1][1] < num_frames:
        ranges.append((num_frames - win, num_frames))
    return ranges


def clip_indices(start: int, end: int, clips: int, clip_len: int) -> list[np.ndarray]:
    """The source frames of each clip of the window ``[start, end)``: ``clips`` arrays of ``clip_len`` indices."""
    picked = start + frame_indices(end - start, clips * clip_len)
    return [picked[k * clip_len : (k + 1) * clip_len] for k in range(clips)]


def _check_keypoints(kpts: np.ndarray, name: str, min_dims: int) -> np.ndarray:
    kpts = np.asarray(kpts)
    if kpts.ndim < min_dims or kpts.shape[-1] != 3:
        raise InputError(f"{name}: expected keypoints of shape (..., J, 3) (x, y, confidence), got {kpts.shape}")
    if not np.issubdtype(kpts.dtype, np.number):
        raise InputError(f"{name}: expected a numeric array, got dtype {kpts.dtype}")
    return kpts.astype(np.float32, copy=False)


def read_confidence(kpts: np.ndarray, preprocessing: PreprocessConfig) -> np.ndarray:
    """Apply the model's confidence rule to ``(..., J, 3)`` keypoints (a new array).

    Joints below ``preprocessing.min_confidence`` become missing (confidence 0); with ``binarize_confidence``
    the others get confidence 1.
    """
    out = np.array(kpts, dtype=np.float32)
    conf = np.clip(out[..., 2], 0.0, 1.0)
    seen = conf >= preprocessing.min_confidence if preprocessing.min_confidence > 0 else conf > 0
    out[..., 2] = np.where(seen, 1.0 if preprocessing.binarize_confidence else conf, 0.0)
    return out


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
        unchanged: np.ndarray = kpts.copy()
        return unchanged
    xy, conf = kpts[..., :2], kpts[..., 2]
    visible = conf > 0  # (..., T, J)
    big = np.float32(np.inf)
    lo = np.where(visible[..., None], xy, big).min(axis=-2)  # (..., T, 2)
    hi = np.where(visible[..., None], xy, -big).max(axis=-2)
    frame_ok = cast(np.ndarray, visible.any(axis=-1))  # (..., T): an array, visible having 2 axes or more
    with np.errstate(invalid="ignore"):
        centre = np.where(frame_ok[..., None], (lo + hi) / 2, np.nan)
        size = np.where(frame_ok, (hi - lo).max(axis=-1), np.nan)
        size = np.where(visible.sum(axis=-1) >= 2, size, np.nan)  # one joint has no extent
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: clips with nobody in view
        clip_centre = np.nanmean(centre, axis=-2)  # (..., 2)
        clip_size = _nanmedian_last(size)  # (...)
    clip_centre = np.nan_to_num(clip_centre, nan=0.0)
    clip_size = np.where(np.isfinite(clip_size) & (clip_size > 1e-6), clip_size, 1.0)
    out = np.empty_like(kpts)
    out[..., :2] = (xy - clip_centre[..., None, None, :]) / clip_size[..., None, None, None]
    out[..., :2] *= visible[..., None]
    out[..., 2] = conf
    return out


def _nanmedian_last(values: np.ndarray) -> np.ndarray:
    """``np.nanmedian(values, axis=-1)`` (NaN where a row is all NaN), without the masked arrays numpy
    uses for small inputs, which made it the slowest step of cutting a training window."""
    ordered = np.sort(values, axis=-1)  # NaNs sort last
    count = (~np.isnan(values)).sum(axis=-1)
    low = np.take_along_axis(ordered, np.maximum(count - 1, 0)[..., None] // 2, axis=-1)[..., 0]
    high = np.take_along_axis(ordered, (count // 2)[..., None], axis=-1)[..., 0]
    return np.where(count > 0, (low + high) / 2, np.nan)


def pose_clips(clips: np.ndarray, preprocessing: PreprocessConfig) -> np.ndarray:
    """Already-sampled clips ``(..., T, J, 3)`` (model layout, pixels) -> model input: the confidence
    rule, then per-clip normalisation. What :func:`pose_window` does after resampling."""
    return normalize_pose(read_confidence(clips, preprocessing), preprocessing.normalization)


def _check_layout(kpts: np.ndarray, preprocessing: PreprocessConfig, name: str) -> None:
    expected = get_layout(preprocessing.layout).num_joints
    if kpts.shape[-2] != expected:
        layout = (
            preprocessing.layout
            if isinstance(preprocessing.layout, str)
            else f"custom({len(preprocessing.layout)} joints)"
        )
        raise InputError(
            f"{name}: the model's layout {layout!r} has {expected} joints, got keypoints with {kpts.shape[-2]} "
            f"(shape {kpts.shape}); convert them with convert_keypoints first"
        )


def pose_window(kpts: np.ndarray, preprocessing: PreprocessConfig) -> np.ndarray:
    """``(N, J, 3)`` keypoints (model layout, pixel x/y, confidence in [0, 1]) -> ``(L, T, J, 3)`` model input.

    The ``N`` frames are resampled to ``L * T`` (:func:`frame_indices`), split into ``L`` clips, read
    with the confidence rule and normalised per clip.
    """
    kpts = _check_keypoints(kpts, "pose_window", 3)
    if kpts.ndim != 3:
        raise InputError(f"pose_window: expected keypoints of shape (frames, joints, 3), got {kpts.shape}")
    _check_layout(kpts, preprocessing, "pose_window")
    if kpts.shape[0] < 1:
        raise InputError("pose_window: got 0 frames")
    picked = np.stack([kpts[i] for i in clip_indices(0, kpts.shape[0], preprocessing.clips, preprocessing.clip_len)])
    return pose_clips(picked, preprocessing)


def resize_frame(frame: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """One ``(H, W, 3)`` uint8 RGB frame -> ``(3, size, size)`` uint8: shorter side to ``size``
    (antialiased bilinear), centre crop, as in ImageNet evaluation."""
    if not isinstance(frame, torch.Tensor):
        array = np.asarray(frame)
        frame = torch.from_numpy(array if array.flags.writeable else array.copy())  # torch needs writable memory
    image = frame
    if image.ndim != 3 or image.shape[-1] != 3:
        raise InputError(f"expected an RGB frame of shape (height, width, 3), got {tuple(image.shape)}")
    if image.dtype != torch.uint8:
        raise InputError(f"expected a uint8 frame (0-255), got dtype {image.dtype}")
    image = image.permute(2, 0, 1)
    h, w = image.shape[-2:]
    if min(h, w) != size:
        scale = size / min(h, w)
        image = TF.resize(image, [max(size, int(round(h * scale))), max(size, int(round(w * scale)))], antialias=True)
    cropped: torch.Tensor = TF.center_crop(image, [size, size]).contiguous()
    return cropped


def normalize_frames(frames: torch.Tensor, preprocessing: PreprocessConfig) -> torch.Tensor:
    """``(..., 3, S, S)`` uint8 frames -> float32 with the model's mean / std."""
    x = TF.to_dtype(frames, torch.float32, scale=True)
    normalized: torch.Tensor = TF.normalize(
        x.reshape(-1, *x.shape[-3:]), list(preprocessing.image_mean), list(preprocessing.image_std)
    ).reshape(x.shape)
    return normalized


def image_window(frames: np.ndarray, preprocessing: PreprocessConfig) -> torch.Tensor:
    """``(N, H, W, 3)`` uint8 RGB frames -> ``(L, T, 3, S, S)`` float32 model input.

    Same temporal sampling as :func:`pose_window`; each sampled frame through :func:`resize_frame`
    and :func:`normalize_frames` (what the engine does frame by frame).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise InputError(f"image_window: expected RGB frames of shape (frames, height, width, 3), got {frames.shape}")
    if frames.dtype != np.uint8:
        raise InputError(f"image_window: expected uint8 frames (0-255), got dtype {frames.dtype}")
    if min(frames.shape[:3]) < 1:
        raise InputError(f"image_window: got an empty frame array {frames.shape}")
    picked = np.concatenate(clip_indices(0, frames.shape[0], preprocessing.clips, preprocessing.clip_len))
    resized = torch.stack([resize_frame(frames[i], preprocessing.image_size) for i in picked])
    size = preprocessing.image_size
    return normalize_frames(resized, preprocessing).reshape(preprocessing.clips, preprocessing.clip_len, 3, size, size)
