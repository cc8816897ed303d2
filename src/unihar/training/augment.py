"""Skeleton augmentation for normalised ``(L, T, J, 3)`` windows.

Applied after :func:`unihar.data.preprocess.pose_window`, so every magnitude below is in units of
body size (see :func:`~unihar.data.preprocess.normalize_pose`). The point is transfer: a model trained
on one dataset's hand-annotated joints must survive another detector's jitter, misses, camera angle
and framing.

Left and right: datasets disagree on whether ``left_*`` is the person's left or the image's left
(Penn Action labels the image's left on people facing the camera; MediaPipe and COCO label the
person's). ``swap_sides_prob`` swaps the names of every left/right pair *without* mirroring, so the
model learns that a pair is a pair and does not depend on either convention. ``flip_prob`` mirrors
the image (x -> -x and the names swap with it), which is a different, physically valid view.

Temporal crop and speed changes happen earlier, when the window is cut
(:func:`unihar.training.data.crop_for_training`), and so does the virtual camera a 3D skeleton is seen
through (``camera_*``: uniform ranges of :class:`unihar.data.camera.CameraRanges`).

A model that reads confidences as seen / not seen (``preprocessing.binarize_confidence``) gets no
confidence jitter: its input confidences are exactly 0 or 1 at inference, and must be in training.
"""

from __future__ import annotations

from dataclasses import asdict, field
from typing import Annotated, Any, ClassVar

import numpy as np

from unihar.data.camera import CameraRanges
from unihar.data.layouts import KeypointLayout
from unihar.errors import ConfigError
from unihar.schema import Bounds, ConfigBase, Number, build, config_dataclass
from unihar.training.signal_augment import SignalAugmentConfig

__all__ = ["AugmentConfig", "SkeletonAugment"]

Value = Annotated[Number, Bounds()]
Amount = Annotated[Number, Bounds(ge=0)]  # a strength: 0 turns it off
Chance = Annotated[Number, Bounds(ge=0, le=1)]
Kept = Annotated[Number, Bounds(gt=0, le=1)]  # a share of the frames
Range = tuple[Value, Value]  # [low, high]
Factor = Annotated[Number, Bounds(gt=0)]
Factors = tuple[Factor, Factor]  # [low, high] of a zoom or a speed


@config_dataclass
class AugmentConfig(ConfigBase):
    """Strengths of each augmentation; 0 (or an empty range) turns one off. The ``augment`` section
    of a run config; numbers are kept as written."""

    SECTION: ClassVar[str] = "augment"
    scale: Factors = (0.85, 1.15)  # isotropic zoom range
    aspect: Amount = 0.1  # extra x-only stretch, +-
    rotation_deg: Amount = 15.0  # in-plane rotation, +- degrees
    shift: Amount = 0.1  # translation, +- body sizes
    flip_prob: Chance = 0.5  # mirror x and swap left/right joints
    swap_sides_prob: Chance = 0.5  # swap left/right names only (no mirroring)
    joint_dropout: Chance = 0.05  # chance a joint is missing in a frame
    frame_dropout: Chance = 0.02  # chance a whole frame is missing (detector miss)
    noise_std: Amount = 0.01  # Gaussian jitter of x/y
    confidence_jitter: Chance = 0.3  # visible confidences scaled by U(1 - c, 1)
    speed: Factors = (0.75, 1.33)  # playback speed range when the window is cut
    min_crop: Kept = 0.8  # temporal crop keeps this..1 of the window's frames
    # 3D data: the virtual camera. Defaults stay near the recording view (on UT-Kinect, a +-90 degree yaw
    # cost 6 points of top-1 against none, benchmarks/train_small_data.py); a model that must work from
    # any side (the universal recipe) widens them up to CameraRanges' full ranges.
    camera_yaw: Range = (-30.0, 30.0)  # person turned by, degrees
    camera_pitch: Range = (-10.0, 20.0)  # camera above (+) or below, degrees
    camera_roll: Range = (-5.0, 5.0)  # image tilt, degrees
    camera_distance: Range = CameraRanges.distance  # metres to the person
    camera_focal: Range = CameraRanges.focal  # pixels
    # A body-worn sensor's recording (the run config's "augment": {"imu": {...}}).
    imu: SignalAugmentConfig = field(default_factory=SignalAugmentConfig)

    def camera_ranges(self) -> CameraRanges:
        """The ranges random virtual cameras are drawn from (3D datasets)."""
        return CameraRanges(
            yaw=self.camera_yaw,
            pitch=self.camera_pitch,
            roll=self.camera_roll,
            distance=self.camera_distance,
            focal=self.camera_focal,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> AugmentConfig:
        """The ``augment`` section of a run config (``imu``: its sensor subsection); keys left out keep
        their defaults."""
        if isinstance(data, dict) and "imu" in data:  # its own messages: "augment.imu: unknown keys ..."
            data = {**data, "imu": SignalAugmentConfig.from_dict(data["imu"], source)}
        return build(cls, data, source)

    def check_rules(self) -> None:
        """Valid camera ranges."""
        for name in ("camera_yaw", "camera_pitch", "camera_roll", "camera_distance", "camera_focal"):
            low, high = getattr(self, name)
            if low > high:
                raise ConfigError(f"augment.{name} must be a [low, high] pair with low <= high, got {[low, high]}")
        self.camera_ranges()

    @classmethod
    def off(cls) -> AugmentConfig:
        """No augmentation (3D data is still seen through random cameras: set the ``camera_*`` ranges to
        single values to fix the view)."""
        return cls(
            scale=(1.0, 1.0),
            aspect=0.0,
            rotation_deg=0.0,
            shift=0.0,
            flip_prob=0.0,
            swap_sides_prob=0.0,
            joint_dropout=0.0,
            frame_dropout=0.0,
            noise_std=0.0,
            confidence_jitter=0.0,
            speed=(1.0, 1.0),
            min_crop=1.0,
            imu=SignalAugmentConfig.off(),
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class SkeletonAugment:
    """Callable ``(window, rng) -> window`` for :class:`unihar.training.data.WindowDataset`.

    ``binary_confidence``: the model reads confidences as 0 / 1 (no confidence jitter then).
    """

    def __init__(self, layout: KeypointLayout, config: AugmentConfig | None = None, binary_confidence: bool = False):
        self.layout, self.cfg = layout, config or AugmentConfig()
        self.flip_index = np.asarray(layout.flip_index)
        self.binary_confidence = binary_confidence

    def __call__(self, window: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cfg = self.cfg
        out = window.astype(np.float32, copy=True)
        xy, conf = out[..., :2], out[..., 2]
        visible = conf > 0

        # One similarity transform per window (the camera does not change between clips).
        angle = np.deg2rad(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg))
        zoom = rng.uniform(*cfg.scale)
        stretch = 1.0 + rng.uniform(-cfg.aspect, cfg.aspect)
        c, s = np.cos(angle), np.sin(angle)
        matrix = zoom * np.array([[c * stretch, -s], [s * stretch, c]], dtype=np.float32)
        xy[:] = xy @ matrix.T + rng.uniform(-cfg.shift, cfg.shift, size=2).astype(np.float32)
        if cfg.noise_std > 0:
            xy += rng.normal(0.0, cfg.noise_std, size=xy.shape).astype(np.float32)

        if rng.random() < cfg.flip_prob:
            xy[..., 0] *= -1
            out = out[..., self.flip_index, :]
            visible = visible[..., self.flip_index]
            xy, conf = out[..., :2], out[..., 2]

        if rng.random() < cfg.swap_sides_prob:
            out = out[..., self.flip_index, :]
            visible = visible[..., self.flip_index]
            xy, conf = out[..., :2], out[..., 2]

        if cfg.confidence_jitter > 0 and not self.binary_confidence:
            conf *= rng.uniform(1.0 - cfg.confidence_jitter, 1.0, size=conf.shape).astype(np.float32)
        drop = rng.random(visible.shape) < cfg.joint_dropout
        drop |= (rng.random(visible.shape[:-1]) < cfg.frame_dropout)[..., None]
        visible = visible & ~drop
        conf[~visible] = 0.0
        xy[~visible] = 0.0
        return out
