"""Frames in, actions out: the threaded runner shared by files and live sources, and the push API.

:func:`run_source` runs a frame source through three overlapping stages, decoding, pose estimation
(+ tracking) and the model (:class:`~unihar.inference.engine.WindowEngine`), so the slowest one sets the
pace. How frames move between decoding and pose estimation depends on the source:

* a **file** (``unihar predict``, ``unihar stream FILE --as-fast-as-possible``, the server) is read with
  back-pressure: decoding waits for the pose stage, every frame is handled, nothing is dropped;
* a **live** source (webcam, RTSP, or a file delivered at its own frame rate) cannot wait: a slot of a
  few frames (``max_pending``) absorbs jitter, and when it is full the oldest frame is dropped and
  counted. A dropped frame keeps its place on the timeline (frame numbers are the source's), and the
  engine interpolates the poses across it. A camera or stream that stalls or disconnects is opened
  again (:class:`LiveSource`, :class:`Reconnect`); the frames that went by meanwhile count as lost and
  the frame numbers move on by them, so the tracker and the engine see the gap that really was.

Each stage owns what it uses: the pose thread opens and closes the pose estimator, so an error anywhere
stops every stage without leaving one blocked or closing the estimator under a running thread.

:class:`StreamingPredictor` is the small push API for one person's keypoints you already have.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from unihar.data.layouts import KeypointLayout
from unihar.data.pose.tracking import Tracker
from unihar.data.preprocess import resize_frame
from unihar.data.video import MAX_PLAUSIBLE_FPS, open_stream, open_video
from unihar.errors import InputError, VideoError
from unihar.inference.device import place_model
from unihar.inference.engine import WindowEngine, WindowResult, max_gap_frames
from unihar.inference.results import ActionScore, scores_of
from unihar.models import HARModel

__all__ = [
    "StreamPrediction",
    "StreamingPredictor",
    "SourceSummary",
    "FrameUpdate",
    "run_source",
    "open_live_source",
    "LiveSource",
    "Reconnect",
    "Outage",
]


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
    def of(cls, window: WindowResult, fps: float, labels: list[str], k: int) -> StreamPrediction:
        last = window.last_frame
        return cls(
            last,
            last / fps,
            window.track,
            window.start_frame,
            window.probs,
            scores_of(window.probs, labels, k),
            window.clips,
        )

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
    the frame still counts, and the pose is interpolated once the person is seen again; with a model
    that reads frames, after more than ``max_gap_frames(fps)`` frames unseen the person starts afresh,
    with warm-up windows) and
    returns a prediction when a window ends at that frame. Windows match ``unihar predict``'s on the
    same frames, plus warm-up windows of the first clips. Memory stays bounded however long the
    stream. ``device``: as for :class:`~unihar.inference.pipeline.VideoPipeline`.
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
        self.device = place_model(model, device)
        self.engine = WindowEngine(
            model,
            fps,
            pose_layout=layout,
            stride=stride,
            warmup=True,
            image_stride=image_stride,
            image_size=image_size,
            max_gap=max_gap_frames(fps),
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

RATE_PROBE_SECONDS = 1.0  # a source that states no frame rate is timed over its first second of frames
MIN_LIVE_FPS = 1.0


@dataclass(frozen=True)
class Reconnect:
    """How a live source that stalls or disconnects is opened again.

    After a loss the source is tried again after ``first_delay`` s, then twice as long each time up to
    ``max_delay``, at most ``attempts`` times in a row and for at most ``timeout`` s per outage; after
    that its frames end, as a file's do. ``stall``: seconds without data before a network stream
    counts as lost. The first connection gets the same retries (a camera still starting up).
    """

    attempts: int = 5
    timeout: float = 30.0
    stall: float = 5.0
    first_delay: float = 0.5
    max_delay: float = 4.0

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 0:
            raise InputError(f"reconnect attempts: expected a whole number >= 0, got {self.attempts!r}")
        for name in ("timeout", "stall", "first_delay", "max_delay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise InputError(f"reconnect {name}: expected a positive number of seconds, got {value!r}")

    def delays(self) -> Iterator[float]:
        """The wait before each attempt: 0.5, 1, 2, 4, 4, ... s by default."""
        for attempt in range(self.attempts):
            yield min(self.first_delay * 2**attempt, self.max_delay)


@dataclass(frozen=True)
class Outage:
    """Yielded by a :class:`LiveSource` between two frames when it got its source back: ``lost`` frames
    went by while it was away (the gap at the source's rate), so the next frame's number is that much
    later and the timeline stays the real one."""

    lost: int


class LiveSource:
    """A webcam, a network stream or a file read as live: its RGB frames in order, with an
    :class:`Outage` wherever the source was lost and came back.

    The first connection is made here (with ``reconnect``'s retries), so a source that never answers
    fails with a :class:`VideoError` before anything else starts. A source that stalls or disconnects
    is opened again as ``reconnect`` says; when that gives up (``gave_up`` says why) the frames end.
    A file (``reconnect=None``) ends with its last frame.

    Read it once, from one thread; :meth:`close` may be called from any thread at any time (the q key,
    an error in another stage): the frames end after the one in hand, or within ``reconnect.stall`` s of
    a blocked read, and the thread reading releases the connection.
    """

    def __init__(
        self, name: str, connect: Callable[[], Any], reconnect: Reconnect | None = None, *, is_file: bool = False
    ) -> None:
        self.name, self.is_file, self.reconnect = name, is_file, reconnect
        self._open = connect  # -> a connection: iterable of frames, ``fps`` (None: not stated), close() (idempotent)
        self._fps: float | None = None  # known once the first connection is made (in here)
        self.reconnects = 0  # times the source was lost and came back
        self.lost = 0  # frames that went by while it was away
        self.gave_up: str | None = None  # why the frames ended before the source did, if they did
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._reading = False
        self._early: list[tuple[float, np.ndarray]] = []  # (arrival, frame) read while timing the source
        self._connection: tuple[Any, Iterator[np.ndarray]] | None
        try:
            self._connection = self._connect()
        except VideoError as err:
            connection = self._retry(str(err))
            if connection is None:
                raise VideoError(self.gave_up or str(err)) from None
            self._connection = connection

    @property
    def fps(self) -> float:
        """The source's frame rate: stated by it, or timed from its first frames."""
        assert self._fps is not None  # set by the first connection, which the constructor makes
        return self._fps

    def _connect(self) -> tuple[Any, Iterator[np.ndarray]]:
        connection = self._open()
        try:
            frames = iter(connection)
            if self._fps is None:
                self._fps = connection.fps or self._time_frames(frames)
        except BaseException:
            connection.close()
            raise
        return connection, frames

    def _time_frames(self, frames: Iterator[np.ndarray]) -> float:
        """The rate of a source that states none, from when its first frames arrive (kept for reading)."""
        self._early = []
        for frame in frames:
            self._early.append((time.monotonic(), frame))
            if len(self._early) >= 3 and self._early[-1][0] - self._early[0][0] >= RATE_PROBE_SECONDS:
                break
        arrivals = np.array([seen for seen, _ in self._early])
        intervals = np.diff(arrivals)
        interval = float(np.median(intervals)) if len(intervals) else 0.0
        if interval <= 0 and len(intervals):  # a burst at connection: the mean is all there is
            interval = float(arrivals[-1] - arrivals[0]) / len(intervals)
        fps = 1.0 / interval if interval > 0 else 0.0
        if not MIN_LIVE_FPS <= fps <= MAX_PLAUSIBLE_FPS:
            raise VideoError(
                f"cannot tell the frame rate of live source {self.name!r}: it states none and delivered "
                f"{len(self._early)} frames in {arrivals[-1] - arrivals[0] if len(arrivals) else 0:.2f} s"
            )
        return round(fps, 2)

    def _retry(self, reason: str) -> tuple[Any, Iterator[np.ndarray]] | None:
        """Connect again, waiting as ``reconnect`` says; None (``gave_up`` set) if that fails or the source is
        closed."""
        started, tried = time.monotonic(), 0
        reconnect = self.reconnect
        delays: Iterable[float] = reconnect.delays() if reconnect is not None else ()
        timeout = reconnect.timeout if reconnect is not None else 0.0  # unused without reconnect: no delays
        for delay in delays:
            if time.monotonic() - started + delay > timeout:
                break
            if self._closed.wait(delay):
                return None
            tried += 1
            try:
                return self._connect()
            except VideoError as err:
                reason = str(err)
        waited = time.monotonic() - started
        self.gave_up = (
            reason
            if not tried
            else f"{reason} (gave up after {tried} reconnection attempt{'s' if tried > 1 else ''} in {waited:.1f} s)"
        )
        return None

    def __iter__(self) -> Iterator[np.ndarray | Outage]:
        with self._lock:
            if self._closed.is_set():
                return
            if self._reading or self._connection is None:
                raise VideoError(f"live source {self.name!r} is already being read (read it once)")
            self._reading = True
            (connection, frames), self._connection = self._connection, None
        timed, self._early = self._early, []
        last_seen, away = 0.0, False  # arrival of the last frame; whether the source was lost since
        try:
            while True:
                try:
                    for seen, frame in itertools.chain(timed, ((time.monotonic(), f) for f in frames)):
                        if self._closed.is_set():
                            return
                        if away:
                            lost = max(0, round((seen - last_seen) * self.fps) - 1)
                            self.reconnects += 1
                            self.lost += lost
                            away = False
                            yield Outage(lost)
                        last_seen = seen
                        yield frame
                    reason = f"live source {self.name!r} ended"
                except VideoError as err:
                    reason = str(err)
                timed = []
                connection.close()
                if self.is_file or self._closed.is_set():
                    return
                again = self._retry(reason)
                if again is None:
                    return
                (connection, frames), away = again, True
        finally:
            with self._lock:
                self._reading = False
            connection.close()

    def close(self) -> None:
        """End the frames and release the source; safe from any thread, at any time, more than once."""
        self._closed.set()
        with self._lock:
            if self._reading:
                return  # the reading thread releases it as soon as it looks
            pending, self._connection = self._connection, None
        if pending is not None:
            pending[0].close()


class _Webcam:
    """One opening of a local camera (OpenCV)."""

    def __init__(self, index: int) -> None:
        import cv2

        self.index, self._cv2 = index, cv2
        self.capture = cv2.VideoCapture(index)
        if not self.capture.isOpened():
            self.capture.release()
            raise VideoError(f"cannot open webcam {index}")
        rate = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(rate) if 0 < rate <= MAX_PLAUSIBLE_FPS else None  # many webcams report 0

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            ok, bgr = self.capture.read()
            if not ok:
                raise VideoError(f"webcam {self.index} stopped delivering frames")
            yield self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self.capture.release()


class _FileFrames:
    """A video file read as live, by the reader offline prediction uses (rate, rotation, errors)."""

    def __init__(self, path: str) -> None:
        self.reader = open_video(path)
        self.fps = self.reader.info.fps
        self._frames: Generator[np.ndarray, None, None] | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        self._frames = iter(self.reader)
        return self._frames

    def close(self) -> None:
        if self._frames is not None:
            self._frames.close()  # a generator: closes the container


def open_live_source(source: str | int, reconnect: Reconnect | None = None) -> LiveSource:
    """A webcam index, an RTSP/HTTP URL or a video file as a :class:`LiveSource` (``fps``, ``is_file``).

    Cameras and streams are opened again as ``reconnect`` says (default :class:`Reconnect`) when they
    stall or disconnect; a file is not.
    """
    reconnect = reconnect if reconnect is not None else Reconnect()
    if isinstance(source, int) or str(source).isdigit():
        index = int(source)
        return _open_webcam(index, reconnect)
    if "://" not in str(source):
        path = str(source)
        return LiveSource(path, lambda: _FileFrames(path), None, is_file=True)
    url = str(source)
    return LiveSource(url, lambda: open_stream(url, stall_timeout=reconnect.stall), reconnect)


def _open_webcam(index: int, reconnect: Reconnect) -> LiveSource:
    return LiveSource(f"webcam {index}", lambda: _Webcam(index), reconnect)


# ---------------------------------------------------------------------- the runner


@dataclass
class SourceSummary:
    frames: int  # frames the source delivered
    dropped: int  # frames skipped because the pose stage was busy (live sources only)
    seconds: float  # wall time from the first frame to the last window
    lost: int = 0  # frames that went by while a live source was away (stalled or disconnected)
    reconnects: int = 0  # times a live source was lost and came back

    @property
    def fps(self) -> float:
        """Frames handled per second of wall time, dropped ones excluded."""
        return (self.frames - self.dropped) / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "dropped": self.dropped,
            "lost": self.lost,
            "reconnects": self.reconnects,
            "fps": round(self.fps, 2),
        }


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
        self.items: deque[Any] = deque()
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
    frames: Iterable[np.ndarray | Outage],
    estimator: Callable[[], AbstractContextManager[Callable[[np.ndarray], np.ndarray]]],
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
    """Decode -> pose + tracking -> engine, in three threads; returns what was delivered, dropped, lost, how fast.

    Args:
        frames: RGB ``(H, W, 3)`` uint8 frames in source order; an :class:`Outage` among them (a
            :class:`LiveSource` that got its source back) moves the frame numbers on by the frames lost.
            A :class:`LiveSource` is closed when the run ends, however it ends.
        estimator: opens the pose estimator (e.g. ``backend.frame_estimator``): a context manager
            yielding ``estimate(frame) -> (P, J, 3)`` people; opened and closed by the pose thread.
        track: ``track(people, frame_number)`` assigns track ids to each frame's people and reports
            tracks that ended.
        engine: the windowing engine; ``on_windows`` gets the windows each frame completes (and the
            last ones when the source ends), called from the caller's thread.
        live: drop the oldest waiting frame when the pose stage falls behind (``max_pending`` frames
            wait at most); otherwise every frame is handled.
        pace_fps: deliver frames no faster than this rate (a file read as if it were live).
        on_frame: called from the caller's thread for every frame handled (display, progress, recording);
            its ``FrameUpdate.frame`` is the decoded frame only with ``with_frames`` (a display).
    """
    run = _SourceRun(live, max_pending)
    threads = [
        threading.Thread(target=run.decode, args=(frames, pace_fps), name="unihar-decode", daemon=True),
        threading.Thread(
            target=run.estimate_poses, args=(estimator, track, engine, with_frames), name="unihar-pose", daemon=True
        ),
    ]
    for thread in threads:
        thread.start()
    try:
        run.classify(engine, on_windows, on_frame)
    except _Stop:
        pass
    finally:
        run.stop.set()
        if isinstance(frames, LiveSource):
            frames.close()  # wakes a reconnection wait, so the decoding thread stops now
        for thread in threads:
            thread.join(timeout=10)  # each stage gives up within 0.1 s of the stop; a stuck camera read may not
    if run.errors:
        raise run.errors[0]
    return run.summary()


class _SourceRun:
    """What the three stages of :func:`run_source` share: the stop signal, the channels between them,
    the errors to surface in the caller's thread, and the counts for the summary.

    Each stage is a method: :meth:`decode` and :meth:`estimate_poses` run on their own threads,
    :meth:`classify` on the caller's (the model and the callbacks stay there).
    """

    def __init__(self, live: bool, max_pending: int) -> None:
        self.stop = threading.Event()
        # Both channels are short: a 1080p frame is 6 MB, and memory must not grow with the video.
        self.to_pose = _Channel(max_pending if live else 4, self.stop, drop_oldest=live)
        self.to_model = _Channel(16, self.stop)
        self.errors: list[BaseException] = []
        self.delivered = self.lost = self.outages = 0
        self.started = time.perf_counter()

    def _guarded(self, stage: Callable[..., None], *args: Any) -> None:
        """Run a threaded stage: a stop ends it quietly, an error stops every stage and is kept for the caller."""
        try:
            stage(*args)
        except _Stop:
            pass
        except BaseException as err:  # surfaced in the caller's thread
            self.errors.append(err)
            self.stop.set()

    def decode(self, frames: Iterable[np.ndarray | Outage], pace_fps: float | None) -> None:
        """Stage 1: number the source's frames (an outage moves the numbers on) and hand them to the pose stage."""
        items = iter(frames)
        try:
            self._guarded(self._deliver, items, pace_fps)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator: releases its file or camera in the thread that read it

    def _deliver(self, items: Iterator[np.ndarray | Outage], pace_fps: float | None) -> None:
        index = 0  # the source's frame number of the next frame
        for item in items:
            if self.stop.is_set():
                return
            if isinstance(item, Outage):
                index += item.lost
                self.lost += item.lost
                self.outages += 1
                continue
            if pace_fps:
                delay = self.started + index / pace_fps - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            self.delivered += 1
            self.to_pose.put((index, item))
            index += 1
        self.to_pose.close()

    def estimate_poses(
        self,
        estimator: Callable[[], AbstractContextManager[Callable[[np.ndarray], np.ndarray]]],
        track: Tracker,
        engine: WindowEngine,
        with_frames: bool,
    ) -> None:
        """Stage 2: the people in each frame, tracked; it opens and closes the estimator itself."""
        self._guarded(self._estimate, estimator, track, engine, with_frames)

    def _estimate(
        self,
        estimator: Callable[[], AbstractContextManager[Callable[[np.ndarray], np.ndarray]]],
        track: Tracker,
        engine: WindowEngine,
        with_frames: bool,
    ) -> None:
        with estimator() as estimate:
            while True:
                item = self.to_pose.get()
                if item is _END:
                    break
                index, frame = item
                people, ended = track(estimate(frame), index)
                image = resize_frame(frame, engine.image_preprocessing.image_size) if engine.uses_images else None
                self.to_model.put(FrameUpdate(index, frame if with_frames else None, people, ended, image))
        self.to_model.close()

    def classify(
        self,
        engine: WindowEngine,
        on_windows: Callable[[list[WindowResult]], None],
        on_frame: Callable[[FrameUpdate], None] | None,
    ) -> None:
        """Stage 3: each frame's tracks into the engine, the windows it completes out; the last ones at the end."""
        while True:
            update = self.to_model.get()
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

    def summary(self) -> SourceSummary:
        return SourceSummary(
            self.delivered, self.to_pose.dropped, time.perf_counter() - self.started, self.lost, self.outages
        )
