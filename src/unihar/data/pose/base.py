"""What every pose backend returns, and the gap filling they share."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from unihar.data.layouts import KeypointLayout, convert_keypoints, get_layout
from unihar.errors import InputError, NoPersonError

__all__ = ["PoseSequence", "fill_missing", "finalize_poses", "interpolate_gap"]


@dataclass(frozen=True)
class PoseSequence:
    """One person's 2D keypoints over a video.

    Attributes:
        keypoints: ``(N, J, 3)`` float32: pixel x, pixel y, confidence in [0, 1]; frames where nobody was
            detected are already filled in (see :func:`fill_missing`).
        layout: the joint order of ``keypoints``.
        frame_size: ``(width, height)`` of the frames the pixels refer to.
        missing: how many of the ``N`` frames had nobody detected (and were filled in).
        detected: ``(N,)`` bool, True where the person was actually detected.
    """

    keypoints: np.ndarray = field(repr=False)
    layout: KeypointLayout
    frame_size: tuple[int, int]
    missing: int = 0
    detected: np.ndarray | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return (
            f"PoseSequence(frames={self.num_frames}, layout={self.layout.name!r}, "
            f"frame_size={self.frame_size}, missing={self.missing})"
        )

    @property
    def num_frames(self) -> int:
        return int(self.keypoints.shape[0])

    def to_layout(self, layout: str | list[str] | KeypointLayout) -> PoseSequence:
        """The same poses in another joint order (see :func:`~unihar.data.layouts.convert_keypoints`)."""
        target = get_layout(layout)
        if target is self.layout:
            return self
        return PoseSequence(
            convert_keypoints(self.keypoints, self.layout, target), target, self.frame_size, self.missing, self.detected
        )


def interpolate_gap(before: np.ndarray, after: np.ndarray, steps: int) -> np.ndarray:
    """The ``steps - 1`` poses ``(steps - 1, J, C)`` strictly between two detections ``(J, C)`` (last
    channel a confidence), joint by joint: a joint seen (confidence > 0) at both ends is interpolated
    linearly (x, y and confidence); one missing at either end stays missing (all zeros), instead of
    sliding towards (0, 0) as if it had been seen there and stretching the person's box.

    The one gap rule: :func:`fill_missing` and the windowing engine both use it.
    """
    before = np.asarray(before, dtype=np.float32)
    after = np.asarray(after, dtype=np.float32)
    fractions = (np.arange(1, steps) / steps).astype(np.float32)[:, None, None]
    between = before + (after - before) * fractions
    both = (before[:, -1] > 0) & (after[:, -1] > 0)
    gap: np.ndarray = np.where(both[None, :, None], between, np.float32(0.0)).astype(np.float32)
    return gap


def fill_missing(keypoints: np.ndarray, detected: np.ndarray) -> np.ndarray:
    """Fill the frames where nobody was detected.

    Gaps between two detections are interpolated linearly, joint by joint (:func:`interpolate_gap`: a
    joint missing at either end of the gap stays missing); frames before the first or after the last
    detection carry the nearest detection. A model then sees smooth motion through a short occlusion
    instead of a person teleporting to (0, 0).
    """
    keypoints = np.asarray(keypoints, dtype=np.float32)
    detected = np.asarray(detected, dtype=bool)
    if keypoints.ndim != 3 or detected.shape != keypoints.shape[:1]:
        raise InputError(
            f"fill_missing: expected keypoints (N, J, C) and a detected mask (N,), got {keypoints.shape} and "
            f"{detected.shape}"
        )
    if not detected.any():
        raise NoPersonError("nobody was detected in any frame")
    if detected.all():
        whole: np.ndarray = keypoints.copy()
        return whole
    known = np.flatnonzero(detected)
    filled: np.ndarray = keypoints.copy()
    filled[: known[0]] = keypoints[known[0]]  # carried back
    filled[known[-1] + 1 :] = keypoints[known[-1]]  # carried forward
    for a, b in zip(known[:-1], known[1:]):
        if b > a + 1:
            filled[a + 1 : b] = interpolate_gap(keypoints[a], keypoints[b], int(b - a))
    return filled


def finalize_poses(
    keypoints: np.ndarray, detected: np.ndarray, layout: KeypointLayout, frame_size: tuple[int, int], source: str
) -> PoseSequence:
    """Fill gaps and package a backend's raw output; :class:`NoPersonError` if nobody was ever detected."""
    detected = np.asarray(detected, dtype=bool)
    if keypoints.shape[0] == 0:
        raise NoPersonError(f"no frames to estimate poses from in {source}")
    if not detected.any():
        raise NoPersonError(f"nobody was detected in any of the {keypoints.shape[0]} frames of {source}")
    filled = fill_missing(keypoints, detected)
    return PoseSequence(filled, layout, (int(frame_size[0]), int(frame_size[1])), int((~detected).sum()), detected)
