"""Live recognition: push frames in, get top-k every ``stride`` frames, computing each clip only once.

A window is ``L`` consecutive clips of ``span`` source frames (``span = window_seconds * fps / L``).
Clip ``c`` of a window ending at frame ``f`` covers frames ``[f - (L - c) * span, f - (L - c - 1) * span)``,
so the clip that ends at frame ``e`` is the same in every window that contains it: its pose tokens
(and the image features of its frames) are computed when it completes and reused from the cache by
the next ``L - 1`` windows. Only the head (long-term encoder, mean, fusion, classifier) runs per window.

Each clip goes through :func:`unihar.data.preprocess.pose_window` / :func:`image_window` with one clip,
which resample and normalise exactly as a whole window does when its length is ``L * span`` frames: in
exact mode the streaming output equals the offline prediction on the same frames. The cost controls
(``image_stride``: image features for every k-th sampled frame only; ``image_size``: a smaller input
to the ResNet) trade that exactness for speed; ``benchmarks/streaming.py`` measures both.

:func:`run_live` runs a source (webcam index, RTSP/HTTP URL, or a file read at its own frame rate)
through three overlapping stages, decoding, pose estimation, model, so the slowest one sets the pace.
Between decoding and pose estimation sits a slot of a few frames (``max_pending``, 3 by default) that
absorbs jitter; when it is full, the oldest waiting frame is dropped and counted, never queued further.
A dropped frame keeps its place on the timeline: the predictor carries the last pose over it.
"""
from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from unihar.data.layouts import KeypointLayout, convert_keypoints, get_layout
from unihar.data.preprocess import PreprocessConfig, frame_indices, image_window, pose_window
from unihar.errors import InputError, VideoError
from unihar.models import UniHAR, UniHARFeatures

__all__ = ["StreamPrediction", "StreamingPredictor", "StreamSummary", "run_live", "open_live_source"]


@dataclass
class StreamPrediction:
    """The top-k over the window that ends at ``frame`` (0-based index of its last frame)."""

    frame: int
    t: float  # seconds on the source's timeline (frame / fps)
    probs: np.ndarray = field(repr=False)
    topk: list[tuple[int, str, float]]
    clips: int  # clips in the window (fewer than L while the stream warms up)

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame": self.frame,
            "t": round(self.t, 4),
            "topk": [{"id": i, "label": label, "prob": p} for i, label, p in self.topk],
        }


class StreamingPredictor:
    """Incremental Uni-HAR over a live stream of frames.

    Args:
        model: a loaded :class:`UniHAR` (eval mode is set here).
        fps: the source's frame rate: a window covers ``window_seconds`` of it.
        stride: emit a prediction every ``stride`` frames (default: once per clip, ``span``).
        topk: how many classes each prediction lists.
        image_stride: image features for every k-th sampled frame of a clip (1 = all: exact).
        image_size: ResNet input size (default: the model's, exact).
        device: where the model runs.
    """

    def __init__(
        self,
        model: UniHAR,
        fps: float,
        stride: int | None = None,
        topk: int = 5,
        image_stride: int = 1,
        image_size: int | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        from unihar.inference.predictor import resolve_device

        if not fps > 0:
            raise InputError(f"fps must be > 0, got {fps}")
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.prep = PreprocessConfig.from_model_config(model.config)
        self.layout: KeypointLayout = get_layout(self.prep.layout)
        self.fps = float(fps)
        self.span = max(1, round(self.prep.window_seconds * self.fps / self.prep.clips))
        self.window = self.prep.clips * self.span
        self.stride = int(stride) if stride else self.span
        if self.stride < 1:
            raise InputError(f"stride must be >= 1 frame, got {stride}")
        num_classes = model.config["classifier"]["num_classes"]
        if not 1 <= topk <= num_classes:
            raise InputError(f"topk: expected an integer in [1, {num_classes}], got {topk}")
        self.topk = topk
        self.labels = list(model.labels) if model.labels else [f"class_{i}" for i in range(num_classes)]
        self.uses_images = model.has_image_branch
        if image_stride < 1:
            raise InputError(f"image_stride must be >= 1, got {image_stride}")
        self.image_stride = image_stride
        self.image_prep = dataclasses.replace(self.prep, image_size=image_size or self.prep.image_size)
        self.clip_prep = dataclasses.replace(self.prep, clips=1)
        # Per-clip sample positions: the same as a whole window's, clip by clip (see module docstring).
        self.sample_offsets = frame_indices(self.span, self.prep.clip_len)
        self.image_offsets = self.sample_offsets[:: self.image_stride]
        self._image_positions = {int(o) for o in self.image_offsets}
        self.reset()

    def reset(self) -> None:
        """Forget the stream (a new source)."""
        self.frames_seen = 0
        self.missing = 0
        self._poses: deque[np.ndarray] = deque(maxlen=self.window)
        self._frames: deque[np.ndarray] = deque(maxlen=self.window)
        self._clip_cache: OrderedDict[int, Tensor] = OrderedDict()  # clip end frame -> (T, D)
        self._image_cache: OrderedDict[int, Tensor] = OrderedDict()  # frame index -> (Di,)
        self._last_pose: np.ndarray | None = None
        self._last_frame: np.ndarray | None = None
        self.clips_computed = 0
        self.frames_encoded = 0
        self._image_lock = threading.Lock()  # the prefetch thread and predict() share the image cache

    # ------------------------------------------------------------------ input
    def push(
        self, keypoints: np.ndarray | None, frame: np.ndarray | None = None, layout: KeypointLayout | str | None = None
    ) -> StreamPrediction | None:
        """Add the next frame: ``keypoints`` (J, 3) pixel x/y + confidence in ``layout`` (default: the
        model's), or None when nobody was detected (the last pose is carried); ``frame`` (H, W, 3)
        uint8 RGB for multimodal models (None: the last frame is repeated). Returns a prediction when
        one is due."""
        if keypoints is None:
            if self._last_pose is None:  # nothing to carry yet: the timeline starts at the first detection
                self.missing += 1
                return None
            self.missing += 1
            pose = self._last_pose
        else:
            keypoints = np.asarray(keypoints, dtype=np.float32)
            source = self.layout if layout is None else get_layout(layout)
            if keypoints.shape != (source.num_joints, 3):
                raise InputError(f"keypoints: expected shape ({source.num_joints}, 3) for layout {source.name!r}, got {keypoints.shape}")
            pose = keypoints if source is self.layout else convert_keypoints(keypoints, source, self.layout)
        self._last_pose = pose
        self._poses.append(pose)
        if self.uses_images:
            if frame is None and self._last_frame is None:
                raise InputError("this model also reads RGB frames: the first frame pushed needs one")
            self._last_frame = frame if frame is not None else self._last_frame
            self._frames.append(self._last_frame)
        self.frames_seen += 1
        if self.frames_seen >= self.span and (self.frames_seen - self.span) % self.stride == 0:
            return self.predict()
        return None

    # ------------------------------------------------------------------ cached features
    def _buffer_index(self, frame: int) -> int:
        return frame - (self.frames_seen - len(self._poses))

    @torch.inference_mode()
    def _clip_tokens(self, end: int) -> Tensor:
        """(T, D) frame tokens of the clip of frames [end - span, end), computed once."""
        cached = self._clip_cache.get(end)
        if cached is not None:
            return cached
        first = self._buffer_index(end - self.span)
        clip = np.stack([self._poses[first + i] for i in range(self.span)])
        pose = torch.from_numpy(pose_window(clip, self.clip_prep)).to(self.device)  # (1, T, J, 3)
        tokens = self.model.encode_clips(pose)[0]
        self._clip_cache[end] = tokens
        self.clips_computed += 1
        return tokens

    def needs_image(self, index: int) -> bool:
        """Whether frame ``index`` is one whose image features some window will use."""
        if not self.uses_images:
            return False
        # Clips end at span + k * stride, so they start at k * stride.
        for k in range(max(0, (index - self.span) // self.stride), index // self.stride + 1):
            if 0 <= index - k * self.stride < self.span and (index - k * self.stride) in self._image_positions:
                return True
        return False

    @torch.inference_mode()
    def _encode_images(self, indices: list[int], frames: list[np.ndarray]) -> None:
        prep = dataclasses.replace(self.image_prep, clips=1, clip_len=len(frames))  # identity resampling
        batch = image_window(np.stack(frames), prep)[0].to(self.device)
        if self.device.type == "cpu":
            batch = batch.contiguous(memory_format=torch.channels_last)
        features = self.model.encode_frames(batch)
        with self._image_lock:
            for index, feature in zip(indices, features):
                self._image_cache[index] = feature
            self.frames_encoded += len(indices)

    def prefetch_image(self, index: int, frame: np.ndarray) -> None:
        """Encode frame ``index`` ahead of time if a window will need it (called from another thread,
        so image encoding overlaps pose estimation; :meth:`predict` computes whatever is still missing)."""
        if self.needs_image(index) and index not in self._image_cache:
            self._encode_images([index], [frame])

    def _clip_images(self, end: int) -> Tensor:
        """(T', Di) image features of the clip's sampled frames, each frame encoded once."""
        start = end - self.span
        wanted = [start + int(o) for o in self.image_offsets]
        with self._image_lock:
            todo = [i for i in dict.fromkeys(wanted) if i not in self._image_cache]
        if todo:
            self._encode_images(todo, [self._frames[self._buffer_index(i)] for i in todo])
        with self._image_lock:
            return torch.stack([self._image_cache[i] for i in wanted])

    def _evict(self) -> None:
        oldest = self.frames_seen - self.window
        while self._clip_cache and next(iter(self._clip_cache)) - self.span < oldest:
            self._clip_cache.popitem(last=False)
        with self._image_lock:
            for index in [i for i in self._image_cache if i < oldest]:
                del self._image_cache[index]

    # ------------------------------------------------------------------ output
    @torch.inference_mode()
    def predict(self) -> StreamPrediction:
        """The prediction for the window ending at the latest frame (fewer clips while warming up)."""
        if self.frames_seen < self.span:
            raise InputError(f"need at least one clip ({self.span} frames) before predicting, got {self.frames_seen}")
        ends = [self.frames_seen - k * self.span for k in range(self.prep.clips)]
        ends = sorted(e for e in ends if e - self.span >= self.frames_seen - len(self._poses))
        frame_tokens = torch.stack([self._clip_tokens(e) for e in ends]).unsqueeze(0)  # (1, L', T, D)
        image_frames = None
        if self.uses_images:
            image_frames = torch.stack([self._clip_images(e) for e in ends]).unsqueeze(0)  # (1, L', T', Di)
        logits = self.model.forward_head(UniHARFeatures(frame_tokens, image_frames))
        probs = torch.softmax(logits.float(), dim=-1)[0].cpu().numpy()
        self._evict()
        order = np.argsort(-probs, kind="stable")[: self.topk]
        topk = [(int(i), self.labels[int(i)], float(probs[i])) for i in order]
        last = self.frames_seen - 1
        return StreamPrediction(frame=last, t=last / self.fps, probs=probs, topk=topk, clips=len(ends))


# ---------------------------------------------------------------------- live sources


def open_live_source(source: str | int) -> tuple[Iterator[np.ndarray], float, bool]:
    """(frames, fps, is_file) for a webcam index, an RTSP/HTTP URL or a video file."""
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        return _open_webcam(int(source))
    if "://" not in str(source):  # a file: the same reader as offline prediction (rate, rotation, errors)
        from unihar.data.video import open_video

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


@dataclass
class StreamSummary:
    frames: int  # frames the source delivered
    dropped: int  # frames skipped because the pose stage was busy
    seconds: float  # wall time from the first frame to the last prediction

    @property
    def fps(self) -> float:
        """Frames handled per second of wall time, dropped ones excluded."""
        return (self.frames - self.dropped) / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "dropped": self.dropped, "fps": round(self.fps, 2)}


_DONE = object()


def run_live(
    frames: Iterator[np.ndarray],
    predictor: StreamingPredictor,
    estimate_pose: Callable[[np.ndarray], np.ndarray | None],
    pose_layout: KeypointLayout | str,
    on_prediction: Callable[[StreamPrediction], None],
    pace_fps: float | None = None,
    on_frame: Callable[[int, np.ndarray, np.ndarray | None], None] | None = None,
    max_pending: int = 3,
) -> StreamSummary:
    """Decode -> pose -> model in three threads (plus image encoding in a fourth for multimodal
    models); returns what was delivered, dropped and how fast.

    ``pace_fps``: deliver frames no faster than this rate (a file read as if live). ``estimate_pose``
    maps an RGB frame to (J, 3) keypoints in ``pose_layout`` or None. ``on_frame(index, frame,
    keypoints)`` is called from the model thread for every frame handled (display). ``max_pending``:
    frames that may wait for the pose stage (a few absorb jitter; beyond that the oldest is dropped,
    so latency stays under ``max_pending`` frame intervals).
    """
    slot: queue.Queue = queue.Queue(maxsize=max_pending)  # decode -> pose: when full, the oldest frame goes
    to_model: queue.Queue = queue.Queue(maxsize=4 * predictor.span)  # pose -> model: bounded
    counts = {"frames": 0, "dropped": 0}
    errors: list[BaseException] = []
    stop = threading.Event()
    started = time.perf_counter()

    def offer(item: object) -> bool:
        """Put ``item`` in the slot, dropping the oldest waiting frame if it is full; False if one was dropped."""
        while True:
            try:
                slot.put_nowait(item)
                return True
            except queue.Full:
                try:
                    slot.get_nowait()
                    replaced = True
                except queue.Empty:
                    replaced = False
                try:
                    slot.put_nowait(item)
                    return not replaced
                except queue.Full:
                    continue

    def decode() -> None:
        try:
            for index, frame in enumerate(frames):
                if stop.is_set():
                    break
                if pace_fps:
                    delay = started + index / pace_fps - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                counts["frames"] += 1
                if not offer((index, frame)):
                    counts["dropped"] += 1
        except BaseException as err:  # surfaced in the caller's thread
            errors.append(err)
        finally:  # the end marker waits its turn: the last frame is not dropped for it
            while not stop.is_set():
                try:
                    slot.put(_DONE, timeout=0.1)
                    break
                except queue.Full:
                    continue

    def pose() -> None:
        try:
            while True:
                item = slot.get()
                if item is _DONE:
                    break
                index, frame = item
                if predictor.needs_image(index):
                    try:  # prefetch only: a frame the image thread cannot take is encoded on demand
                        to_images.put_nowait((index, frame))
                    except queue.Full:
                        pass
                to_model.put((index, frame, estimate_pose(frame)))
        except BaseException as err:
            errors.append(err)
            stop.set()
        finally:
            to_model.put(_DONE)
            to_images.put(_DONE)

    def images() -> None:
        try:
            while not stop.is_set():
                item = to_images.get()
                if item is _DONE:
                    break
                predictor.prefetch_image(*item)
        except BaseException as err:
            errors.append(err)

    to_images: queue.Queue = queue.Queue(maxsize=predictor.span)
    threads = [threading.Thread(target=decode, daemon=True), threading.Thread(target=pose, daemon=True)]
    if predictor.uses_images:
        threads.append(threading.Thread(target=images, daemon=True))
    for thread in threads:
        thread.start()
    expected = 0
    try:
        while True:
            item = to_model.get()
            if item is _DONE:
                break
            index, frame, keypoints = item
            while expected < index:  # frames dropped before the pose stage: keep the timeline
                result = predictor.push(None, None)
                expected += 1
                if result is not None:
                    on_prediction(result)
            result = predictor.push(keypoints, frame if predictor.uses_images else None, pose_layout if keypoints is not None else None)
            expected = index + 1
            if on_frame is not None:
                on_frame(index, frame, keypoints)
            if result is not None:
                on_prediction(result)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
    if errors:
        raise errors[0]
    return StreamSummary(counts["frames"], counts["dropped"], time.perf_counter() - started)
