"""The work behind the HTTP API: one shared model, inference on a bounded pool of worker threads.

The model is loaded once and shared by every request: in eval mode under ``torch.inference_mode`` a
forward pass only reads the weights, so threads can run it at the same time. Videos go through pose
estimation one at a time, on their own worker thread: the MediaPipe backend redirects the process-wide
stderr while it runs (which two threads must not do at once), and it already uses several cores for
one video. Pose sequences sent as JSON skip that step and run on a separate pool of ``workers``
threads, so they are never stuck behind a long video. Nothing here ever touches a path the client
chose: videos arrive as server-made temporary files (see :mod:`unihar.serving.uploads`).
"""
from __future__ import annotations

import asyncio
import functools
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import numpy as np

from unihar.data.layouts import get_layout
from unihar.data.pose import PoseSequence, finalize_poses
from unihar.data.pose.arrays import LAYOUT_BY_NUM_JOINTS
from unihar.data.video import DEFAULT_IMAGE_FOLDER_FPS, open_video
from unihar.errors import ConfigError, InputError, UniHARError
from unihar.inference.pipeline import VideoPipeline, VideoPrediction

__all__ = ["ServeSettings", "PredictionService", "ClipTooLongError", "poses_payload", "DEFAULT_KEYPOINTS_FPS"]

T = TypeVar("T")

# A pose sequence sent as JSON has no frame rate of its own; like a keypoint file given to
# ``unihar predict``, it is read at 30 fps unless the client says otherwise.
DEFAULT_KEYPOINTS_FPS = DEFAULT_IMAGE_FOLDER_FPS


class ClipTooLongError(InputError):
    """A video or pose sequence longer than the server accepts (``ServeSettings.max_seconds``/``max_frames``)."""


@dataclass(frozen=True)
class ServeSettings:
    """Limits and resources of one server.

    Attributes:
        max_upload_bytes: largest request body accepted (video upload or JSON); larger ones get 413.
        max_seconds: longest clip accepted, in seconds of video (422 beyond).
        max_frames: longest clip accepted, in frames, whatever the frame rate claims (422 beyond).
        workers: threads classifying pose sequences sent as JSON (videos have their own single thread);
            requests beyond that wait their turn.
        upload_dir: where uploads are spooled (``None``: the system's temporary folder).
    """

    max_upload_bytes: int = 200_000_000  # 200 MB
    max_seconds: float = 120.0
    max_frames: int = 10_000
    workers: int = 2
    upload_dir: str | None = None

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1 or self.max_frames < 1 or self.workers < 1 or not self.max_seconds > 0:
            raise ConfigError(
                "serve settings: max_upload_bytes, max_seconds, max_frames and workers must be positive, got "
                f"{self.max_upload_bytes}, {self.max_seconds}, {self.max_frames}, {self.workers}"
            )

    def frame_limit(self, fps: float) -> int:
        """Most frames accepted from a clip at ``fps``."""
        return max(1, min(self.max_frames, int(math.floor(self.max_seconds * fps + 1e-6))))


def poses_payload(poses: PoseSequence) -> dict[str, Any]:
    """Per-frame keypoints and the bones between them, for drawing the skeleton over the video.

    Pixel x/y are rounded to 0.1 px and confidences to 0.01 to keep the response small.
    """
    from unihar.inference.render import MIN_DRAW_CONFIDENCE

    keypoints = poses.keypoints.astype(np.float64)
    keypoints[..., :2] = np.round(keypoints[..., :2], 1)
    keypoints[..., 2] = np.round(keypoints[..., 2], 2)
    detected = poses.detected if poses.detected is not None else np.ones(poses.num_frames, dtype=bool)
    return {
        "layout": poses.layout.name,
        "joints": list(poses.layout.joints),
        "edges": [list(edge) for edge in poses.layout.edge_index],
        "frame_size": [int(poses.frame_size[0]), int(poses.frame_size[1])],
        "min_confidence": MIN_DRAW_CONFIDENCE,
        "keypoints": keypoints.tolist(),
        "detected": [bool(d) for d in detected],
    }


def _frame_extent(keypoints: np.ndarray) -> tuple[int, int]:
    """A frame size holding every visible joint, when the client does not give one."""
    visible = keypoints[..., 2] > 0
    if not visible.any():
        return (0, 0)
    xy = keypoints[visible][:, :2]
    return (int(np.ceil(max(xy[:, 0].max(), 0))) + 1, int(np.ceil(max(xy[:, 1].max(), 0))) + 1)


def keypoints_to_sequence(
    keypoints: Any, layout: str | list[str] | None, width: int | None, height: int | None
) -> PoseSequence:
    """``(T, J, 3)`` pixel keypoints (``(T, J, 2)`` gets confidence 1) from a JSON body -> :class:`PoseSequence`.

    The layout defaults to the one implied by ``J`` (17 coco17, 25 body25, 18 coco18, 33 mediapipe33,
    13 penn13); the frame size to the extent of the visible joints. A frame whose joints all have
    confidence 0 counts as "nobody detected" and is filled in, as for a keypoint file.
    """
    try:
        array = np.asarray(keypoints, dtype=np.float32)
    except (ValueError, TypeError):
        raise InputError(
            "keypoints: expected a (frames, joints, 3) array of numbers with the same number of joints in "
            "every frame; got frames of different lengths"
        ) from None
    if array.ndim != 3 or array.shape[0] < 1 or array.shape[1] < 1 or array.shape[2] not in (2, 3):
        raise InputError(f"keypoints: expected shape (frames, joints, 3) as [x, y, confidence], got {array.shape}")
    if array.shape[2] == 2:
        array = np.concatenate([array, np.ones(array.shape[:2] + (1,), np.float32)], axis=-1)
    if not np.isfinite(array).all():
        raise InputError("keypoints: NaN or infinite values; mark a missing joint with confidence 0")
    array[..., 2] = np.clip(array[..., 2], 0.0, 1.0)
    if layout is None:
        known = LAYOUT_BY_NUM_JOINTS.get(array.shape[1])
        if known is None:
            names = {j: candidate.name for j, candidate in sorted(LAYOUT_BY_NUM_JOINTS.items())}
            raise InputError(
                f"keypoints: cannot guess the layout of {array.shape[1]} joints; expected one of {names} "
                "or an explicit 'layout'"
            )
        resolved = known
    else:
        resolved = get_layout(layout)
    if resolved.num_joints != array.shape[1]:
        raise InputError(
            f"keypoints: layout {resolved.name!r} has {resolved.num_joints} joints, the keypoints have {array.shape[1]}"
        )
    extent = _frame_extent(array)
    frame_size = (int(width) if width else extent[0], int(height) if height else extent[1])
    detected = (array[..., 2] > 0).any(axis=1)
    return finalize_poses(array, detected, resolved, frame_size, "the keypoints")


class PredictionService:
    """Runs a :class:`VideoPipeline` for the API, off the event loop, a bounded number at a time."""

    def __init__(self, pipeline: VideoPipeline, settings: ServeSettings | None = None) -> None:
        if not getattr(pipeline.pose_backend, "needs_video", False):
            raise ConfigError(
                f"the server estimates poses from uploaded videos; the pipeline's pose backend "
                f"{getattr(pipeline.pose_backend, 'name', pipeline.pose_backend)!r} only imports keypoint files"
            )
        self.pipeline = pipeline
        self.settings = settings or ServeSettings()
        self._executor = ThreadPoolExecutor(max_workers=self.settings.workers, thread_name_prefix="unihar-inference")
        self._video_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unihar-video")
        self._pose_lock = threading.Lock()  # for callers that use predict_video from threads of their own

    @property
    def labels(self) -> list[str]:
        return self.pipeline.labels

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``function`` on a worker thread and wait for it without blocking the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(function, *args, **kwargs))

    async def run_video(self, path: Path, source: str, topk: int = 5, with_poses: bool = False) -> dict[str, Any]:
        """:meth:`predict_video` on the video thread, awaited without blocking the event loop."""
        loop = asyncio.get_running_loop()
        job = functools.partial(self.predict_video, path, source, topk, with_poses)
        return await loop.run_in_executor(self._video_executor, job)

    def close(self) -> None:
        for executor in (self._executor, self._video_executor):
            executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ work (on worker threads)
    def predict_video(self, path: Path, source: str, topk: int = 5, with_poses: bool = False) -> dict[str, Any]:
        """Poses from the video at ``path`` (a server-made file), then the model; the predict JSON."""
        try:
            return self._predict_video(path, source, topk, with_poses)
        except UniHARError as error:
            # Messages name the file: show the client its own file name, not the server's temporary path.
            message = str(error).replace(repr(str(path)), repr(source)).replace(str(path), source)
            raise type(error)(message) from None

    def _predict_video(self, path: Path, source: str, topk: int, with_poses: bool) -> dict[str, Any]:
        pipeline = self.pipeline
        pipeline.check_topk(topk)
        reader = open_video(path)
        info = reader.info
        fps, num_frames = info.fps, info.num_frames  # open_video reads webcam webm's rate off its timestamps
        limit = self.settings.frame_limit(fps)
        if num_frames is not None and num_frames > limit:
            raise self._too_long(num_frames, fps, limit)
        kept: list[np.ndarray] | None = [] if pipeline.uses_images else None

        def frames() -> Iterator[np.ndarray]:
            # The header's frame count can be missing or wrong (webm): count while decoding, too.
            for index, frame in enumerate(reader):
                if index >= limit:
                    raise self._too_long(None, fps, limit)
                if kept is not None:
                    kept.append(frame)
                yield frame

        with self._pose_lock:
            sequence = pipeline.pose_backend.estimate(frames(), source)
        result = pipeline.classify(
            sequence, fps, frames=None if kept is None else np.stack(kept), topk=topk, source=source
        )
        result.frame_size = info.frame_size
        return self._response(result, with_poses)

    def predict_keypoints(
        self,
        keypoints: Any,
        layout: str | list[str] | None = None,
        fps: float = DEFAULT_KEYPOINTS_FPS,
        width: int | None = None,
        height: int | None = None,
        topk: int = 5,
        with_poses: bool = False,
        source: str = "keypoints",
    ) -> dict[str, Any]:
        """The model on a pose sequence sent as JSON (pose-only models)."""
        pipeline = self.pipeline
        pipeline.check_topk(topk)
        if pipeline.uses_images:
            raise InputError("this model also reads RGB frames (image_model.enabled); upload the video instead of keypoints")
        sequence = keypoints_to_sequence(keypoints, layout, width, height)
        limit = self.settings.frame_limit(fps)
        if sequence.num_frames > limit:
            raise self._too_long(sequence.num_frames, fps, limit)
        result = pipeline.classify(sequence, fps, topk=topk, source=source)
        return self._response(result, with_poses)

    def _too_long(self, frames: int | None, fps: float, limit: int) -> ClipTooLongError:
        got = f"{frames} frames ({frames / fps:.1f} s at {fps:.2f} fps)" if frames is not None else f"more than {limit} frames"
        return ClipTooLongError(
            f"clip too long: this server accepts at most {limit} frames "
            f"({self.settings.max_seconds:g} s, at most {self.settings.max_frames} frames), got {got}"
        )

    @staticmethod
    def _response(result: VideoPrediction, with_poses: bool) -> dict[str, Any]:
        data = result.to_dict()
        if with_poses:
            data["poses"] = poses_payload(result.poses)
        return data
