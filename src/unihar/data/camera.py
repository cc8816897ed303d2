"""Pinhole virtual cameras: how a 3D skeleton becomes the 2D pose a monocular estimator would report.

The model reads 2D poses. Kinect datasets give 3D joints, so they are *viewed* through a camera: fixed
(the recording camera) for evaluation, random (:func:`random_camera`) for training, which shows every
action from many viewpoints and makes the model indifferent to where the camera stands.

Axes (OpenCV's camera convention): ``x`` to the right of the image, ``y`` down, ``z`` forward along the
optical axis, all in metres, camera at the origin. A skeleton sequence in 3D is ``(frames, J, 4)``:
x, y, z and a confidence (0 = missing). Kinect v1's own skeleton space (x towards the sensor's left,
y up, z forward) is this one turned 180 degrees about the optical axis (:func:`from_kinect`).

A camera does not move the world, it turns the skeleton about the skeleton's own centre (the mean of
its visible joints over the whole sequence, so walking still moves across the image) and then projects:

    p' = R (p - c) + c * distance / |c|        u = cx + f x'/z',  v = cy + f y'/z'

with ``R = Rz(roll) Rx(pitch) Ry(yaw)``: first the person turns about the vertical axis (yaw), then the
camera rises above them (pitch), then it tilts about its optical axis (roll). All three at 0 and
``distance=None`` is the recording camera itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unihar.errors import InputError

__all__ = [
    "Camera",
    "CameraRanges",
    "random_camera",
    "project",
    "back_project",
    "skeleton_centre",
    "from_kinect",
    "KINECT_V1",
    "MIN_DEPTH",
]

MIN_DEPTH = 0.1  # metres; a joint closer to (or behind) the camera cannot be seen: it is projected as missing


@dataclass(frozen=True)
class Camera:
    """A pinhole camera looking at a skeleton.

    ``yaw`` (degrees) turns the person about the vertical axis through their centre; positive yaw shows
    more of the person's left side (at +90 a person facing the camera is seen from their left).
    ``pitch`` raises the camera: positive looks down on the person (as a ceiling or CCTV camera does).
    ``roll`` turns the image about the optical axis, clockwise on screen for positive values.
    ``distance`` (metres) moves the person along the line of sight so their centre is that far from the
    camera; ``None`` keeps the recorded distance. ``focal`` and ``center`` are the intrinsics in pixels.
    """

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    distance: float | None = None
    focal: float = 525.0
    center: tuple[float, float] = (320.0, 240.0)

    def __post_init__(self) -> None:
        if not self.focal > 0:
            raise InputError(f"Camera: focal must be > 0 pixels, got {self.focal}")
        if self.distance is not None and not self.distance > MIN_DEPTH:
            raise InputError(
                f"Camera: distance must be > {MIN_DEPTH} m (or None to keep the recorded one), got {self.distance}"
            )

    @property
    def is_recording_view(self) -> bool:
        """True when the camera neither turns nor moves the skeleton (it only projects)."""
        return self.yaw == 0 and self.pitch == 0 and self.roll == 0 and self.distance is None

    def rotation(self) -> np.ndarray:
        """The 3x3 matrix ``Rz(roll) @ Rx(pitch) @ Ry(yaw)`` applied to the skeleton (camera axes)."""
        yaw, pitch, roll = np.radians([self.yaw, self.pitch, self.roll])
        cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
        ry = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
        rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
        rz = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
        rotation: np.ndarray = rz @ rx @ ry
        return rotation


# Kinect v1 colour camera (640x480): the view 2D poses of Kinect recordings would be estimated in.
KINECT_V1 = Camera(focal=525.0, center=(320.0, 240.0))


@dataclass(frozen=True)
class CameraRanges:
    """Uniform ranges :func:`random_camera` draws from (degrees, metres, pixels).

    Defaults: the front half of the circle around the person (``yaw`` +-90: frontal to profile on either
    side; widen to +-180 to include views from behind), eye level to a high surveillance camera
    (``pitch`` -10..35), a slightly tilted hand-held camera (``roll`` +-10), 2-8 m away (close ones
    exaggerate perspective, far ones are nearly orthographic) and focal lengths of webcams to zoomed
    lenses. After per-clip normalisation only the angles and the perspective (distance against body size)
    change what the model sees; ``focal`` just scales the pixels.
    """

    yaw: tuple[float, float] = (-90.0, 90.0)
    pitch: tuple[float, float] = (-10.0, 35.0)
    roll: tuple[float, float] = (-10.0, 10.0)
    distance: tuple[float, float] = (2.0, 8.0)
    focal: tuple[float, float] = (400.0, 1500.0)
    center: tuple[float, float] = (640.0, 360.0)

    def __post_init__(self) -> None:
        for name in ("yaw", "pitch", "roll", "distance", "focal"):
            low, high = getattr(self, name)
            if not low <= high:
                raise InputError(f"CameraRanges.{name}: expected (low, high) with low <= high, got {(low, high)}")
        if not self.distance[0] > MIN_DEPTH or not self.focal[0] > 0:
            raise InputError(
                f"CameraRanges: distance must stay > {MIN_DEPTH} m and focal > 0, got {self.distance}, {self.focal}"
            )


def random_camera(rng: np.random.Generator, ranges: CameraRanges | None = None) -> Camera:
    """A camera with every parameter drawn uniformly from ``ranges`` (defaults: :class:`CameraRanges`)."""
    r = ranges or CameraRanges()
    draw = {name: float(rng.uniform(*getattr(r, name))) for name in ("yaw", "pitch", "roll", "distance", "focal")}
    return Camera(**draw, center=r.center)


def _check_3d(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points)
    if points.ndim < 2 or points.shape[-1] != 4:
        raise InputError(f"expected 3D joints shaped (..., J, 4) (x, y, z, confidence), got shape {points.shape}")
    return points.astype(np.float64, copy=False)


def skeleton_centre(points: np.ndarray) -> np.ndarray:
    """The mean of the visible joints (confidence > 0) over all frames and joints, ``(3,)``; the origin
    when nothing is visible."""
    points = _check_3d(points)
    visible = points[..., 3] > 0
    if not visible.any():
        return np.zeros(3)
    centre: np.ndarray = points[..., :3][visible].mean(axis=0)
    return centre


def project(points: np.ndarray, camera: Camera) -> np.ndarray:
    """View 3D joints ``(..., J, 4)`` through ``camera`` -> 2D joints ``(..., J, 3)`` float32 (u, v pixels,
    confidence).

    One centre is used for the whole array (pass one sequence at a time). Missing joints stay missing;
    joints that end up closer than :data:`MIN_DEPTH` to the camera become missing. Missing joints are
    written as (0, 0, 0).
    """
    points = _check_3d(points)
    xyz, conf = points[..., :3], points[..., 3]
    if not camera.is_recording_view:
        centre = skeleton_centre(points)
        target = centre
        if camera.distance is not None:
            norm = np.linalg.norm(centre)
            target = centre * (camera.distance / norm) if norm > 1e-6 else np.array([0.0, 0.0, camera.distance])
        xyz = (xyz - centre) @ camera.rotation().T + target
    z = xyz[..., 2]
    visible = (conf > 0) & (z > MIN_DEPTH)
    safe_z = np.where(visible, z, 1.0)
    u = camera.center[0] + camera.focal * xyz[..., 0] / safe_z
    v = camera.center[1] + camera.focal * xyz[..., 1] / safe_z
    out = np.stack([u, v, conf], axis=-1)
    out[~visible] = 0.0
    return out.astype(np.float32)


def back_project(uv: np.ndarray, depth: np.ndarray, focal: float, center: tuple[float, float]) -> np.ndarray:
    """Pixels ``(..., 2)`` at ``depth`` metres ``(...)`` -> camera-space points ``(..., 3)`` (the inverse of
    :func:`project` through an unmoved camera with these intrinsics)."""
    uv, depth = np.asarray(uv, dtype=np.float64), np.asarray(depth, dtype=np.float64)
    x = (uv[..., 0] - center[0]) * depth / focal
    y = (uv[..., 1] - center[1]) * depth / focal
    return np.stack([x, y, depth], axis=-1)


def from_kinect(xyz: np.ndarray) -> np.ndarray:
    """Kinect v1 skeleton space (x to the sensor's left, y up, z forward) -> this module's camera axes
    (x right, y down, z forward): a half turn about the optical axis, so handedness is kept."""
    xyz = np.asarray(xyz)
    return np.stack([-xyz[..., 0], -xyz[..., 1], xyz[..., 2]], axis=-1)
