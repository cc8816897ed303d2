"""MediaPipe BlazePose (full) as the default pose estimator.

``mediapipe==0.10.21`` ships the BlazePose detector and the "full" landmark model
(``model_complexity=1``) inside its wheel, so this runs offline from what pip installs. Output: the 33
MediaPipe landmarks in pixel coordinates, with each landmark's *visibility* as its confidence.

Several people: BlazePose follows one person. It detects the most prominent person, then tracks that
person's region from frame to frame (re-detecting only when the track is lost), which in practice
keeps the main actor. Frames where it finds nobody are filled by :func:`~unihar.data.pose.base.fill_missing`
and counted in ``PoseSequence.missing``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from unihar.data.layouts import LAYOUTS
from unihar.data.pose.native_log import native_stderr_silenced
from unihar.errors import ConfigError, InputError

__all__ = ["MediaPipePose"]


class MediaPipePose:
    """BlazePose (full) from ``mediapipe==0.10.21``'s legacy API, in the ``mediapipe33`` layout; one person.

    Kept for Python <= 3.12 with numpy < 2, where that wheel installs; the default backend is
    :class:`~unihar.data.pose.blazepose.BlazePose`, which runs the same models on every current Python
    and finds several people.
    """

    name = "mediapipe"
    needs_video = True
    layout = LAYOUTS["mediapipe33"]

    def __init__(
        self,
        model_complexity: int = 1,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        max_people: int = 1,
    ) -> None:
        if model_complexity not in (0, 1, 2):
            raise ConfigError(f"model_complexity must be 0 (lite), 1 (full) or 2 (heavy), got {model_complexity}")
        if max_people < 1:
            raise ConfigError(f"max_people must be >= 1, got {max_people}")
        self.model_complexity = model_complexity
        self.min_detection_confidence = min_detection_confidence
        self.min_tracking_confidence = min_tracking_confidence

    def _solution(self) -> Any:  # a mediapipe.solutions.pose.Pose (mediapipe has no type information)
        try:
            from mediapipe.python.solutions import pose as mp_pose
        except ImportError as exc:
            raise ConfigError(
                "the 'mediapipe' pose backend needs mediapipe==0.10.21 (Python <= 3.12, numpy < 2): "
                f"pip install 'unihar[mediapipe]'; or use the default 'blazepose' backend. Import failed with: {exc}"
            ) from None
        return mp_pose.Pose(
            static_image_mode=False,  # video mode: detect once, then track (faster, and keeps one person)
            model_complexity=self.model_complexity,
            smooth_landmarks=True,
            enable_segmentation=False,
            min_detection_confidence=self.min_detection_confidence,
            min_tracking_confidence=self.min_tracking_confidence,
        )

    @contextlib.contextmanager
    def frame_estimator(self) -> Iterator[Callable[[np.ndarray], np.ndarray]]:
        """Per-stream state: ``estimate(frame) -> (P, 33, 3)`` with P = 0 or 1 (pixel x, y, visibility).

        MediaPipe's C++ side logs to the process's stderr while its graph starts; only that start (and a
        warm-up frame, whose first run is several times slower) is silenced, never the running stream.
        """
        with native_stderr_silenced():
            solution = self._solution()
            # Nobody to find in an empty frame, so no tracking state is left behind.
            solution.process(np.zeros((256, 256, 3), np.uint8))
        try:
            yield lambda frame: self._landmarks(solution, frame)
        finally:
            solution.close()

    def _landmarks(self, solution: Any, frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise InputError(f"expected RGB frames as (height, width, 3) uint8 arrays, got {frame.shape} {frame.dtype}")
        height, width = frame.shape[:2]
        result = solution.process(frame)
        if result.pose_landmarks is None:
            return np.zeros((0, self.layout.num_joints, 3), np.float32)
        points = np.array(
            [(lm.x * width, lm.y * height, lm.visibility) for lm in result.pose_landmarks.landmark], dtype=np.float32
        )
        points[:, 2] = np.clip(points[:, 2], 0.0, 1.0)
        return points[None]
