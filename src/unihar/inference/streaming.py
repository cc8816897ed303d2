"""Frames in, actions out: the threaded runner shared by files and live sources, and the push API.

:func:`run_source` runs a frame source through three overlapping stages, decoding, pose estimation
(+ tracking) and the model (:class:`~unihar.inference.engine.WindowEngine`), so the slowest one sets the
pace. How frames move between decoding and pose estimation depends on the source:

* a **file** (``unihar predict``, ``unihar stream FILE --as-fast-as-possible``, the server) is read with
  back-pressure: decoding waits for the pose stage, every frame is handled, nothing is dropped;
* a **live** source (webcam, RTSP, or a file delivered at its own frame rate) cannot wait: a slot of a
  few frames (``max_pending``) absorbs jitter, and when it is full the oldest frame is dropped and
  counted. A dropped frame keeps its place on the timeline (frame numbers are the source's), and the
  engine interpolates the poses across it.

Each stage owns what it uses: the pose thread opens and closes the pose estimator, so an error anywhere
stops every stage without leaving one blocked or closing the estimator under a running thread.

:class:`StreamingPredictor` is the small push API for one person's keypoints you already have.
"""
from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Iterable, Iterator

import numpy as np
import torch

from unihar.data.layouts import KeypointLayout
from unihar.data.preprocess import resize_frame
from unihar.data.video import open_video
from unihar.errors import InputError, VideoError
from unihar.inference.engine import WindowEngine, WindowResult
from unihar.inference.results import ActionScore, scores_of
from unihar.models import HARModel

__all__ = ["StreamPrediction", "StreamingPredictor", "SourceSummary", "FrameUpdate", "run_source", "open_live_source"]

# track(people (P, J, 3)) -> ({track id: (J, 3)}, [ids of tracks that ended])
Tracker = Callable[[np.ndarray], "tuple[dict[int, np.ndarray], list[int]]"]


@dataclass
class StreamPrediction:
    """The top-k of one person over the window that ends at source frame ``frame`` (inclusive)."""

    frame: int
    t: float  # seconds on the source's timeline (frame / fps)
    person: int
    start_frame: int
    probs: np.ndarray = field(repr=False)
    topk: list[ActionScore]
    clips: int  # clips in the window (fewer than L while a track warms up)

    @classmethod
    def of(cls, window: WindowResult, fps: float, labels: list[str], k: int) -> "StreamPrediction":
        last = window.last_frame
        return cls(last, last / fps, window.track, window.start_frame, window.probs, scores_of(window.probs, labels, k), window.clips)

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame": self.frame,
            "t": round(self.t, 4),
            "person": self.person,
            "topk": [score.to_dict() for score in self.topk],
        }


class StreamingPredictor:
    """Incremental recognition for one person's keypoints, frame by frame (see :class:`WindowEngine`).

    ``push(keypoints, frame)`` adds the next source frame (``keypoints`` None when nobody was found:
    the frame still counts, and the pose is interpolated once the person is seen again) and returns a
    prediction when a window ends at that frame. Windows match ``unihar predict``'s on the same frames,
    plus warm-up windows of the first clips.
    """

    def __init__(
        self,
        model: HARModel,
        fps: float,
        stride: int | None = None,
        topk: int = 5,
        image_stride: int = 1,
        image_size: int | None = None,
        device: str | torch.device | None = None,
        layout: KeypointLayout | str | None = None,
    ) -> None:
        if not 1 <= topk <= model.num_classes:
            raise InputError(f"topk: expected an integer in [1, {model.num_classes}], got {topk}")
        self.model, self.fps, self.topk = model, float(fps), topk
        self.engine = WindowEngine(
            model, fps, pose_layout=layout, stride=stride, warmup=True, image_stride=image_stride,
            image_size=image_size, device=device, max_gap=1 << 30,
        )
        self.geometry = self.engine.geometry
        self.frames_seen = 0

    def push(self, keypoints: np.ndarray | None, frame: np.ndarray | None = None) -> StreamPrediction | None:
        index = self.frames_seen
        self.frames_seen += 1
        people = {} if keypoints is None else {0: keypoints}
        results = self.engine.push(index, people, frame)
        return self._latest(results)

    def finish(self) -> StreamPrediction | None:
        """The source ended: the tail window, if the last one did not reach the last frame."""
        return self._latest(self.engine.finish())

    def _latest(self, results: list[WindowResult]) -> StreamPrediction | None:
        return StreamPrediction.of(results[-1], self.fps, self.model.labels, self.topk) if results else None


# ---------------------------------------------------------------------- sources


def open_live_source(source: str | int) -> tuple[Iterator[np.ndarray], float, bool]:
    """(frames, fps, is_file) for a webcam index, an RTSP/HTTP URL or a video file."""
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        return _open_webcam(int(source))
    if "://" not in str(source):  # a file: the same reader as offline prediction (rate, rotation, errors)
        reader = open_video(source)
        return iter(reader), reader.info.fps, True
    import av

    try:
        container = av.open(str(source), options={"rtsp_transport": "tcp"} if str(source).startswith("rtsp") else None)
    except (av.error.FFmpegError, OSError) as err:
        raise VideoError(f"cannot open live source {source!r}: {str(err).splitlines()[0]}") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"live source {source!r} has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    fps = float(stream.average_rate or stream.guessed_rate or 30.0)

    def frames() -> Iterator[np.ndarray]:
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as err:
            raise VideoError(f"decoding {source!r} failed: {str(err).splitlines()[0]}") from None
        finally:
            container.close()

    return frames(), fps, False


def _open_webcam(index: int) -> tuple[Iterator[np.ndarray], float, bool]:
    import cv2

    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        raise VideoError(f"cannot open webcam {index}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0

    def frames() -> Iterator[np.ndarray]:
        try:
            while True:
                ok, bgr = capture.read()
                if not ok:
                    return
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()

    return frames(), float(fps), False


# ---------------------------------------------------------------------- the runner


@dataclass
class SourceSummary:
    frames: int  # frames the source delivered
    dropped: int  # frames skipped because the pose stage was busy (live sources only)
    seconds: float  # wall time from the first frame to the last window

    @property
    def fps(self) -> float:
        """Frames handled per second of wall time, dropped ones excluded."""
        return (self.frames - self.dropped) / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "dropped": self.dropped, "fps": round(self.fps, 2)}


@dataclass
class FrameUpdate:
    """What the pose stage found in one source frame."""

    index: int
    frame: np.ndarray | None  # the decoded frame, kept only for an ``on_frame`` that draws it
    people: dict[int, np.ndarray]  # track id -> (J, 3) keypoints in the backend's layout
    ended: list[int]  # tracks that ended before this frame
    image: torch.Tensor | None = None  # the frame resized for the image branch (multimodal models)


class _Stop(Exception):
    """Raised inside a stage when another stage failed or the run is over."""


class _Channel:
    """A bounded queue between two stages that gives up when the run stops.

    ``drop_oldest``: a full channel drops its oldest item to take a new one (live sources) instead of
    making the producer wait (files).
    """

    def __init__(self, size: int, stop: threading.Event, drop_oldest: bool = False) -> None:
        self.items: deque = deque()
        self.size, self.stop, self.drop_oldest = size, stop, drop_oldest
        self.cond = threading.Condition()
        self.dropped = 0

    def put(self, item: Any) -> None:
        with self.cond:
            while len(self.items) >= self.size:
                if self.drop_oldest:
                    self.items.popleft()
                    self.dropped += 1
                    break
                if self.stop.is_set():
                    raise _Stop
                self.cond.wait(0.1)
            self.items.append(item)
            self.cond.notify_all()

    def close(self) -> None:
        """The end marker: waits for room even on a live source, so the last frame is not dropped for it."""
        with self.cond:
            while len(self.items) >= self.size and not self.stop.is_set():
                self.cond.wait(0.1)
            self.items.append(_END)
            self.cond.notify_all()

    def get(self) -> Any:
        with self.cond:
            while not self.items:
                if self.stop.is_set():
                    raise _Stop
                self.cond.wait(0.1)
            item = self.items.popleft()
            self.cond.notify_all()
            return item


_END = object()


def run_source(
    frames: Iterable[np.ndarray],
    estimator: Callable[[], ContextManager[Callable[[np.ndarray], np.ndarray]]],
    track: Tracker,
    engine: WindowEngine,
    on_windows: Callable[[list[WindowResult]], None],
    *,
    live: bool = False,
    pace_fps: float | None = None,
    max_pending: int = 3,
    on_frame: Callable[[FrameUpdate], None] | None = None,
    with_frames: bool = False,
) -> SourceSummary:
    """Decode -> pose + tracking -> engine, in three threads; returns what was delivered, dropped, how fast.

    Args:
        frames: RGB ``(H, W, 3)`` uint8 frames in source order.
        estimator: opens the pose estimator (e.g. ``backend.frame_estimator``): a context manager
            yielding ``estimate(frame) -> (P, J, 3)`` people; opened and closed by the pose thread.
        track: assigns track ids to each frame's people and reports tracks that ended.
        engine: the windowing engine; ``on_windows`` gets the windows each frame completes (and the
            last ones when the source ends), called from the caller's thread.
        live: drop the oldest waiting frame when the pose stage falls behind (``max_pending`` frames
            wait at most); otherwise every frame is handled.
        pace_fps: deliver frames no faster than this rate (a file read as if it were live).
        on_frame: called from the caller's thread for every frame handled (display, progress, recording);
            its ``FrameUpdate.frame`` is the decoded frame only with ``with_frames`` (a display).
    """
    stop = threading.Event()
    # Both channels are short: a 1080p frame is 6 MB, and memory must not grow with the video.
    to_pose = _Channel(max_pending if live else 4, stop, drop_oldest=live)
    to_model = _Channel(16, stop)
    errors: list[BaseException] = []
    delivered = [0]
    started = time.perf_counter()

    def decode() -> None:
        try:
            for index, frame in enumerate(frames):
                if stop.is_set():
                    return
                if pace_fps:
                    delay = started + index / pace_fps - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                delivered[0] += 1
                to_pose.put((index, frame))
            to_pose.close()
        except _Stop:
            pass
        except BaseException as err:  # surfaced in the caller's thread
            errors.append(err)
            stop.set()

    def pose() -> None:
        try:
            with estimator() as estimate:
                while True:
                    item = to_pose.get()
                    if item is _END:
                        break
                    index, frame = item
                    people, ended = track(estimate(frame))
                    image = resize_frame(frame, engine.image_prep.image_size) if engine.uses_images else None
                    to_model.put(FrameUpdate(index, frame if with_frames else None, people, ended, image))
            to_model.close()
        except _Stop:
            pass
        except BaseException as err:
            errors.append(err)
            stop.set()

    threads = [threading.Thread(target=decode, name="unihar-decode", daemon=True),
               threading.Thread(target=pose, name="unihar-pose", daemon=True)]
    for thread in threads:
        thread.start()
    try:
        while True:
            update = to_model.get()
            if update is _END:
                break
            windows: list[WindowResult] = []
            for track_id in update.ended:
                windows += engine.end_track(track_id)
            windows += engine.push(update.index, update.people, update.image)
            if on_frame is not None:
                on_frame(update)
            if windows:
                on_windows(windows)
        windows = engine.finish()
        if windows:
            on_windows(windows)
    except _Stop:
        pass
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)  # each stage gives up within 0.1 s of the stop; a stuck camera read may not
    if errors:
        raise errors[0]
    return SourceSummary(delivered[0], to_pose.dropped, time.perf_counter() - started)
