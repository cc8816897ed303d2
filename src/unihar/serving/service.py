"""The work behind the HTTP API: one shared pipeline, worker threads with bounded waiting lines.

The model is loaded once and shared by every request: in eval mode a forward pass only reads the
weights, so threads can run it at the same time. Videos go through the same threaded runner as
``unihar predict`` (decode -> pose + tracking -> windowing engine), one video at a time: that runner
already keeps several cores busy. Pose sequences sent as JSON skip pose estimation and run on a
separate pool of ``workers`` threads, so they are never stuck behind a long video.

Each kind of job has a waiting line of at most ``max_pending`` jobs (:class:`JobQueue`); a request
that finds it full is refused at once (:class:`ServerBusy`, HTTP 503 with ``Retry-After``), before
its body is read. A waiting video holds only its upload's temporary file (and a queued call), so the
line can be long enough for a page used by several people at once; what it costs at most is
:attr:`ServeSettings.upload_disk_bytes` of disk and :attr:`ServeSettings.json_memory_bytes` of memory.
Nothing here ever touches a path the client chose: videos arrive as server-made temporary files
(see :mod:`unihar.serving.uploads`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from unihar.data.pose.arrays import poses_from_array
from unihar.data.video import DEFAULT_IMAGE_FOLDER_FPS, open_video
from unihar.errors import ConfigError, InputError, UniHARError
from unihar.inference.palette import MIN_DRAW_CONFIDENCE, person_colour
from unihar.inference.pipeline import VideoPipeline
from unihar.inference.results import VideoPrediction
from unihar.recognizer import Recognizer

__all__ = [
    "ServeSettings",
    "PredictionService",
    "JobQueue",
    "ServerBusy",
    "ClipTooLongError",
    "TooManyKeypointsError",
    "poses_payload",
    "DEFAULT_KEYPOINTS_FPS",
]

T = TypeVar("T")

# A pose sequence sent as JSON has no frame rate of its own; like a keypoint file given to
# ``unihar predict``, it is read at 30 fps unless the client says otherwise.
DEFAULT_KEYPOINTS_FPS = DEFAULT_IMAGE_FOLDER_FPS
FIRST_GUESS_SECONDS = 10.0  # how long a job is assumed to take before one has been timed


class ClipTooLongError(InputError):
    """A video or pose sequence longer than the server accepts (``ServeSettings.max_seconds``/``max_frames``)."""


class TooManyKeypointsError(InputError):
    """A JSON pose request with more keypoints (frames x joints) than ``ServeSettings.max_keypoints`` (HTTP 413)."""


class ServerBusy(Exception):
    """Every worker is busy and the waiting line is full: come back in ``retry_after`` seconds (HTTP 503)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class ServeSettings:
    """Limits and resources of one server.

    Attributes:
        max_upload_bytes: largest video upload accepted; larger ones get 413.
        max_json_bytes: largest JSON body accepted; larger ones get 413 before anything is parsed.
        max_keypoints: most keypoints (frames x joints) in one JSON request (413 beyond, checked on the raw bytes).
        max_seconds: longest clip accepted, in seconds of video (422 beyond).
        max_frames: longest clip accepted, in frames, whatever the frame rate claims (422 beyond).
        workers: threads classifying pose sequences sent as JSON (videos have their own single thread).
        max_pending: jobs of each kind (videos, JSON) that may wait for a worker; one more gets 503. A video
            holds its place from its request's arrival to its answer, so ``1 + max_pending`` videos
            may be uploading or waiting at once: at most :attr:`upload_disk_bytes` on disk.
        upload_dir: where uploads are spooled (``None``: the system's temporary folder).
        header_timeout: seconds a connection has to send a request's head (and, after an answer sent
            before the body was read, the rest of that body) before it must keep up ``min_upload_rate``;
            slower connections are closed (see :mod:`unihar.serving.server`).
        body_timeout: seconds a request body may pause, and the grace before ``min_upload_rate`` applies
            to it; a slower body is cut off with 408 and its place given back.
        min_upload_rate: bytes per second a body must average after ``body_timeout`` seconds.
    """

    max_upload_bytes: int = 200_000_000  # 200 MB
    max_json_bytes: int = 20_000_000  # 20 MB: 400k joints as [x.x, y.y, c.cc] with room to spare
    max_keypoints: int = 400_000  # 120 s at 60 fps of 33 joints is 237,600
    max_seconds: float = 120.0
    max_frames: int = 10_000
    workers: int = 2
    # Waiting videos cost disk, not memory: 16 keeps a page used by a few people from seeing 503s
    # (17 x 200 MB = 3.4 GB of uploads at worst), and 18 JSON bodies of 20 MB are 360 MB.
    max_pending: int = 16
    upload_dir: str | None = None
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    min_upload_rate: float = 50_000.0  # 0.4 Mbit/s: 200 MB may take 67 minutes; a trickle is cut after 30 s

    def __post_init__(self) -> None:
        positive = {
            "max_upload_bytes": self.max_upload_bytes,
            "max_json_bytes": self.max_json_bytes,
            "max_keypoints": self.max_keypoints,
            "max_seconds": self.max_seconds,
            "max_frames": self.max_frames,
            "workers": self.workers,
            "header_timeout": self.header_timeout,
            "body_timeout": self.body_timeout,
            "min_upload_rate": self.min_upload_rate,
        }
        wrong = [f"{name}={value} (expected > 0)" for name, value in positive.items() if not value > 0]
        if self.max_pending < 0:
            wrong.append(f"max_pending={self.max_pending} (expected >= 0)")
        if wrong:
            raise ConfigError(f"serve settings: {', '.join(wrong)}")

    @property
    def upload_disk_bytes(self) -> int:
        """Most disk the video uploads can hold at once: the running one and every waiting one, each at the size
        limit."""
        return (1 + self.max_pending) * self.max_upload_bytes

    @property
    def json_memory_bytes(self) -> int:
        """Most memory the JSON bodies being classified or waiting can hold at once (before parsing)."""
        return (self.workers + self.max_pending) * self.max_json_bytes

    def frame_limit(self, fps: float) -> int:
        """Most frames accepted from a clip at ``fps``."""
        return max(1, min(self.max_frames, int(math.floor(self.max_seconds * fps + 1e-6))))


@dataclass
class _Place:
    handed_over: bool = False  # True once a job owns the place (the job gives it back)


class JobQueue:
    """``workers`` threads and a waiting line of at most ``max_pending`` jobs.

    A request takes a place with :meth:`place` before it reads its body (the line is full: :class:`ServerBusy`)
    and hands it to :meth:`run`; the place is given back when the job ends, or when the request ends
    without a job. So at most ``workers + max_pending`` requests of this kind hold resources at once.
    """

    def __init__(self, name: str, workers: int, max_pending: int) -> None:
        self.name = name
        self.workers = workers
        self.capacity = workers + max_pending
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"unihar-{name}")
        self._lock = threading.Lock()
        self._held = 0
        self._mean_seconds: float | None = None  # running mean of the last jobs' durations

    @property
    def held(self) -> int:
        """Requests holding a place: running, waiting for a worker, or still receiving their body."""
        return self._held

    def retry_after(self) -> int:
        """Seconds until a place is likely to be free: the jobs ahead, shared by the workers, at the recent pace."""
        per_job = self._mean_seconds if self._mean_seconds is not None else FIRST_GUESS_SECONDS
        return int(min(3600, max(1, math.ceil(per_job * math.ceil(self._held / self.workers)))))

    @contextlib.contextmanager
    def place(self) -> Iterator[_Place]:
        with self._lock:
            if self._held >= self.capacity:
                waiting = self._held - self.workers
                raise ServerBusy(
                    f"the server is busy: {self.workers} {self.name} job{'s' if self.workers > 1 else ''} running and "
                    f"{waiting} waiting (at most {self.capacity - self.workers}); try again later",
                    self.retry_after(),
                )
            self._held += 1
        place = _Place()
        try:
            yield place
        finally:
            if not place.handed_over:
                self._release()

    async def run(self, place: _Place, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` on a worker thread, holding ``place`` until it ends; awaited off the event loop."""
        place.handed_over = True
        future: Future[T] = self._executor.submit(self._timed, function, *args)
        # A job cancelled before it started (the request went away) never runs _timed: give its place back here.
        future.add_done_callback(lambda done: self._release() if done.cancelled() else None)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _timed(self, function: Callable[..., T], *args: Any) -> T:
        started = time.perf_counter()
        try:
            return function(*args)
        finally:
            seconds = time.perf_counter() - started
            with self._lock:
                self._mean_seconds = seconds if self._mean_seconds is None else 0.7 * self._mean_seconds + 0.3 * seconds
            self._release()

    def _release(self) -> None:
        with self._lock:
            self._held -= 1


def poses_payload(result: VideoPrediction) -> dict[str, Any]:
    """Everyone's keypoints over their frames and the skeleton's bones, for drawing over the video.

    Each person carries their id and colour (:func:`~unihar.inference.palette.person_colour`, the
    annotated video's palette) so the page draws them alike. Pixel x/y are rounded to 0.1 px and
    confidences to 0.01 to keep the response small.
    """
    layout = result.people[0].layout
    people = []
    for person in result.people:
        keypoints = person.keypoints.astype(np.float64)
        keypoints[..., :2] = np.round(keypoints[..., :2], 1)
        keypoints[..., 2] = np.round(keypoints[..., 2], 2)
        people.append(
            {
                "id": person.id,
                "colour": "#{:02x}{:02x}{:02x}".format(*person_colour(person.id)),
                "start_frame": person.start_frame,
                "keypoints": keypoints.tolist(),
                "detected": person.detected.astype(bool).tolist(),
            }
        )
    return {
        "layout": layout.name,
        "joints": list(layout.joints),
        "edges": [list(edge) for edge in layout.edge_index],
        "frame_size": [int(result.frame_size[0]), int(result.frame_size[1])],
        "min_confidence": MIN_DRAW_CONFIDENCE,
        "main_person": result.main.id,
        "people": people,
    }


class PredictionService:
    """Runs a :class:`~unihar.recognizer.Recognizer` for the API: videos on one thread, JSON pose
    sequences on ``workers``. A bare :class:`VideoPipeline` is accepted too (wrapped in one)."""

    def __init__(self, recognizer: Recognizer | VideoPipeline, settings: ServeSettings | None = None) -> None:
        if isinstance(recognizer, VideoPipeline):
            recognizer = Recognizer.from_pipeline(recognizer)
        pipeline = recognizer.pipeline
        if not pipeline.pose_backend.needs_video:
            raise ConfigError(
                f"the server estimates poses from uploaded videos; the pipeline's pose backend "
                f"{pipeline.pose_backend.name!r} only imports keypoint files"
            )
        self.recognizer = recognizer
        self.settings = settings or ServeSettings()
        self.videos = JobQueue("video", 1, self.settings.max_pending)
        self.keypoints = JobQueue("keypoint", self.settings.workers, self.settings.max_pending)

    @property
    def pipeline(self) -> VideoPipeline:
        return self.recognizer.pipeline

    @property
    def labels(self) -> list[str]:
        return self.recognizer.labels

    def close(self) -> None:
        self.videos.close()
        self.keypoints.close()

    # ------------------------------------------------------------------ work (on worker threads)
    def predict_video(self, path: Path, source: str, topk: int = 5, with_poses: bool = False) -> dict[str, Any]:
        """Everyone in the video at ``path`` (a server-made file called ``source`` by the client): the predict JSON."""
        try:
            reader = open_video(path)
            info = dataclasses.replace(reader.info, source=source)
            limit = self.settings.frame_limit(info.fps)  # open_video reads a webcam webm's rate off its timestamps
            if info.num_frames is not None and info.num_frames > limit:
                raise self._too_long(info.num_frames, info.fps, limit)
            result = self.pipeline.predict_frames(self._at_most(reader, info.fps, limit), info, topk=topk)
        except UniHARError as error:
            # Messages name the file: show the client its own file name, not the server's temporary path.
            message = str(error).replace(repr(str(path)), repr(source)).replace(str(path), source)
            raise type(error)(message) from None
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
        """One person's pose sequence (``(frames, joints, 3)`` pixels + confidence) through the model: the predict
        JSON."""
        pipeline = self.pipeline
        pipeline.check_topk(topk)
        if pipeline.uses_images:
            raise InputError(
                "this model also reads RGB frames (image_model.enabled); upload the video instead of keypoints"
            )
        try:
            array = np.asarray(keypoints, dtype=np.float32)
        except (ValueError, TypeError):
            raise InputError(
                "keypoints: expected a (frames, joints, 3) array of numbers with the same number of joints in every "
                "frame"
            ) from None
        if array.ndim == 3 and array.shape[0] * array.shape[1] > self.settings.max_keypoints:
            raise TooManyKeypointsError(
                f"too many keypoints: this server accepts at most {self.settings.max_keypoints} keypoints "
                f"(frames x joints) per request, got {array.shape[0]} x {array.shape[1]}"
            )
        if array.ndim == 3 and array.shape[-1] == 3:
            array[..., 2] = np.clip(array[..., 2], 0.0, 1.0)
        frame_size = (width, height) if width and height else None
        sequence = poses_from_array(array, layout, frame_size, "keypoints")
        if frame_size is None and (width or height):  # one side given: the other from the keypoints' extent
            sequence = dataclasses.replace(
                sequence, frame_size=(width or sequence.frame_size[0], height or sequence.frame_size[1])
            )
        limit = self.settings.frame_limit(fps)
        if sequence.num_frames > limit:
            raise self._too_long(sequence.num_frames, fps, limit)
        return self._response(self.recognizer.predict(sequence, fps=fps, topk=topk, name=source), with_poses)

    def _at_most(self, frames: Iterable[np.ndarray], fps: float, limit: int) -> Iterator[np.ndarray]:
        # The header's frame count can be missing or wrong (webm): count while decoding, too.
        for index, frame in enumerate(frames):
            if index >= limit:
                raise self._too_long(None, fps, limit)
            yield frame

    def _too_long(self, frames: int | None, fps: float, limit: int) -> ClipTooLongError:
        got = (
            f"{frames} frames ({frames / fps:.1f} s at {fps:.2f} fps)"
            if frames is not None
            else f"more than {limit} frames"
        )
        return ClipTooLongError(
            f"clip too long: this server accepts at most {limit} frames "
            f"({self.settings.max_seconds:g} s, at most {self.settings.max_frames} frames), got {got}"
        )

    @staticmethod
    def _response(result: VideoPrediction, with_poses: bool) -> dict[str, Any]:
        data = result.to_dict()
        if with_poses:
            data["poses"] = poses_payload(result)
        return data
