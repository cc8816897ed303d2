"""The windowing engine: the one way Uni-HAR turns a timeline of poses (and frames) into windows and
classifies them, shared by ``unihar predict`` (files), ``unihar stream`` (live), the server and
evaluation.

The timeline belongs to the frame source: every frame has its source frame number, and a window is
``[start_frame, end_frame)`` in those numbers, whoever asks. Several people are several *tracks*; each
track starts at its first detection and has its own windows (see :class:`~unihar.data.preprocess.WindowGeometry`):

* a *full* window is ``L`` clips of ``span`` frames; one ends every ``stride`` frames once the track is
  a window long, at ``first + window + k * stride``;
* with ``warmup`` (live streams) a window of the first ``c < L`` clips ends at ``first + c * span``, so a
  camera answers after one clip instead of a whole window;
* when a track ends (the person left, or the video did), a *tail* window aligned to its last frame
  covers what the last full window missed; a track shorter than a window gets one window over all of
  it, if it lasted at least ``min_seconds`` (else it is reported as too brief to classify).

A clip is identified by its source frames, so the clip shared by overlapping windows is encoded once and
taken from the cache afterwards; image features are cached per source frame and shared by every track.
Frames where a tracked person was not found (occlusion, a frame dropped by a live source) are filled in
by linear interpolation once the person is seen again, joint by joint: a joint seen at both ends of the
gap follows the straight line between them, one missing at either end stays missing (confidence 0)
instead of sliding towards the image origin. A track that is never seen again ends at its last
detection. Memory is bounded whatever the length of the source: each track keeps its last ``window``
poses, the frame ring buffer its last ``window + max_gap`` resized frames, and the caches only what a
future window can still use. So with a model that reads frames, a track unseen for more than
``max_gap`` frames (the tracker's ``max_age``) cannot be interpolated across, the frames of such a
window being gone: what it had is classified as when a track ends (its tail window), and its next
detection starts a new *stretch* of the same track id from scratch (with warm-up windows again). A
pose-only window needs only the track's poses, so a pose-only track is interpolated across any gap
(the tracker decides when a person is gone).

``batch_windows`` trades latency for throughput: 1 classifies each window as soon as it is due (live);
larger values gather windows (and their new clips) into batches (files, evaluation).

Sensor signals (a wearable inertial sensor, a model with an ``imu`` modality) belong to one person:
:meth:`WindowEngine.attach_signal` gives a track its recording, on the source's timeline (frame ``f`` is at
``f / fps`` s). Each clip of that track's windows then also reads the samples in its time span,
resampled to the model's rate (:func:`unihar.data.signals.signal_clips`), encoded once and cached like
its pose tokens. A window the recording does not cover (``MIN_SIGNAL_COVERAGE``), or a track without
one, is classified from the modalities it has (the sensor dropped out); ``WindowResult.modalities``
says which.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

import numpy as np
import torch
from torch import Tensor

from unihar.config import ImuModelConfig, PreprocessConfig
from unihar.data.layouts import KeypointLayout, convert_keypoints, get_layout
from unihar.data.pose.base import interpolate_gap
from unihar.data.preprocess import WindowGeometry, clip_indices, normalize_frames, pose_clips, resize_frame
from unihar.data.signals import MIN_RATE_FRACTION, SignalRecording, clip_spans, coverage, signal_clips
from unihar.errors import InputError
from unihar.inference.device import runtime_device
from unihar.models import HARModel, UniHARFeatures

__all__ = [
    "WindowResult",
    "TrackEnd",
    "WindowEngine",
    "run_sequences",
    "max_gap_frames",
    "MAX_UNSEEN_SECONDS",
]

CLIP_BATCH = 256  # clips per encoder call
FRAME_BATCH = 32  # frames per image-encoder call
HEAD_BATCH = 256  # windows per head call
SIGNAL_BATCH = 256  # sensor clips per encoder call
# A window gets a track's sensor signal when the recording covers at least this fraction of it; the
# rest (at most 10 %) is held at the recording's first / last sample.
MIN_SIGNAL_COVERAGE = 0.9
MAX_UNSEEN_SECONDS = 1.0  # a person unseen for longer is gone: a later detection is someone new (or a new stretch)

ClipKey = tuple[int, ...]  # a pose clip: (track, *source frames)
SignalKey = tuple[str, int, float, float]  # a sensor clip: (modality, track, t0, t1)
_Key = TypeVar("_Key", bound=Hashable)
_T = TypeVar("_T")


def max_gap_frames(fps: float) -> int:
    """Frames a person may go unseen (occluded, missed) and keep their id: the usual ``max_gap``."""
    return max(1, int(round(MAX_UNSEEN_SECONDS * fps)))


@dataclass
class WindowResult:
    """The probabilities of one window of one track: source frames ``[start_frame, end_frame)``."""

    track: int
    start_frame: int
    end_frame: int
    clips: int  # clips in the window (fewer than L only for warm-up windows)
    probs: np.ndarray = field(repr=False)
    modalities: tuple[str, ...] = ()  # what it was classified from (fewer than the model's: a sensor missing here)

    @property
    def last_frame(self) -> int:
        return self.end_frame - 1


@dataclass
class TrackEnd:
    """How a track ended: its first and last frame (inclusive), and why it got no window if it got none."""

    track: int
    first_frame: int
    last_frame: int
    classified: bool
    reason: str | None = None


class _Track:
    """One person's poses (model layout) for the frames a future window can still need.

    A track is one or more *stretches*: with a model that reads frames a gap longer than the engine's
    ``max_gap`` closes one, and the next detection opens another (``first``: the current stretch's first
    frame; ``start``: the track's).
    """

    def __init__(self, track_id: int, first: int, capacity: int) -> None:
        self.id = track_id
        self.start = first
        self.poses: deque[np.ndarray] = deque(maxlen=capacity)
        self.classified = False  # a closed stretch got a window
        self.longest = 0  # frames of its longest closed stretch
        self.open(first)

    def open(self, first: int) -> None:
        """Start a stretch at ``first``: nothing before it is carried over."""
        self.poses.clear()
        self.first = first
        self.next_frame = first  # the next source frame this track expects
        self.last_full_end = first  # end of its last full window (first: none yet)
        self.closed = False

    @property
    def length(self) -> int:
        return self.next_frame - self.first

    def pose_at(self, frame: int) -> np.ndarray:
        return self.poses[frame - (self.next_frame - len(self.poses))]


@dataclass
class _Pending:
    track: int
    start: int
    end: int
    clip_keys: list[ClipKey] | None  # None: the model reads no poses
    image_frames: list[list[int]] | None
    signal_keys: dict[str, list[SignalKey]] = field(default_factory=dict)  # modality -> clip keys, where covered
    clips: int = 0

    @property
    def modalities(self) -> tuple[str, ...]:
        have = ["skeleton"] if self.clip_keys is not None else []
        have += ["rgb"] if self.image_frames is not None else []
        return tuple(have + list(self.signal_keys))  # in the model's order


class _Cache(Generic[_Key]):
    """Encoder outputs by key, and the inputs of the keys not encoded yet (``pending``): what overlapping
    windows share is encoded once, in batches, when the windows run."""

    def __init__(self, batch: int) -> None:
        self.batch = batch  # inputs per encoder call
        self.values: dict[_Key, Tensor] = {}
        self.pending: dict[_Key, Any] = {}  # key -> model input, until encoded
        self.encoded = 0

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, key: _Key) -> Tensor:
        return self.values[key]

    def wants(self, key: _Key) -> bool:
        """Neither encoded nor waiting to be."""
        return key not in self.values and key not in self.pending

    def encode(self, encoder: Callable[[list[_Key], list[Any]], Iterable[tuple[_Key, Tensor]]]) -> None:
        """Encode every pending input: ``encoder(keys, inputs)`` gets ``batch`` at a time and yields (key, output)."""
        keys = list(self.pending)
        for first in range(0, len(keys), self.batch):
            chunk = keys[first : first + self.batch]
            for key, value in encoder(chunk, [self.pending[k] for k in chunk]):
                self.values[key] = value
        self.encoded += len(keys)
        self.pending.clear()

    def forget(self, stale: Callable[[_Key], bool]) -> None:
        for key in [k for k in self.values if stale(k)]:
            del self.values[key]


class _Features:
    """The encoders' outputs behind the windows, each made once: pose tokens per clip ``(track, *source
    frames)``, image features per source frame (shared by every track), sensor tokens per clip span
    ``(modality, track, t0, t1)``."""

    def __init__(
        self,
        model: HARModel,
        preprocessing: PreprocessConfig,
        image_preprocessing: PreprocessConfig,
        device: torch.device,
    ) -> None:
        self.model, self.preprocessing, self.image_preprocessing, self.device = (
            model,
            preprocessing,
            image_preprocessing,
            device,
        )
        self.clips: _Cache[ClipKey] = _Cache(CLIP_BATCH)
        self.frames: _Cache[int] = _Cache(FRAME_BATCH)
        self.signals: _Cache[SignalKey] = _Cache(SIGNAL_BATCH)

    def encode_pending(self) -> None:
        self.clips.encode(self._encode_clips)
        self.frames.encode(self._encode_frames)
        self.signals.encode(self._encode_signals)

    def tokens(self, batch: Sequence[_Pending]) -> dict[str, Tensor]:
        """The head's input for windows with as many clips and the same modalities (all encoded)."""
        tokens: dict[str, Tensor] = {}
        if batch[0].clip_keys is not None:
            tokens["skeleton"] = torch.stack(
                [torch.stack([self.clips[k] for k in _same_as_first(w.clip_keys)]) for w in batch]
            )
        if batch[0].image_frames is not None:
            tokens["rgb"] = torch.stack(
                [
                    torch.stack(
                        [torch.stack([self.frames[i] for i in frames]) for frames in _same_as_first(w.image_frames)]
                    )
                    for w in batch
                ]
            )
        for name in batch[0].signal_keys:
            tokens[name] = torch.stack([torch.stack([self.signals[k] for k in w.signal_keys[name]]) for w in batch])
        return tokens

    def _encode_clips(self, keys: list[ClipKey], poses: list[np.ndarray]) -> Iterable[tuple[ClipKey, Tensor]]:
        clips = pose_clips(np.stack(poses), self.preprocessing)
        return zip(keys, self.model.encode_clips(torch.from_numpy(clips).to(self.device)))

    def _encode_frames(self, indices: list[int], frames: list[Tensor]) -> Iterable[tuple[int, Tensor]]:
        batch = normalize_frames(torch.stack(frames), self.image_preprocessing).to(self.device)
        if self.device.type == "cpu":
            batch = batch.contiguous(memory_format=torch.channels_last)
        return zip(indices, self.model.encode_frames(batch))

    def _encode_signals(self, keys: list[SignalKey], clips: list[np.ndarray]) -> Iterable[tuple[SignalKey, Tensor]]:
        """One encoder call per modality: a batch may hold clips of several sensors."""
        out: list[tuple[SignalKey, Tensor]] = []
        for name in dict.fromkeys(k[0] for k in keys):
            mine = [i for i, k in enumerate(keys) if k[0] == name]
            batch = torch.from_numpy(np.stack([clips[i] for i in mine])).to(self.device)
            out += zip([keys[i] for i in mine], self.model.encode(name, batch))
        return out


def _same_as_first(inputs: list[_T] | None) -> list[_T]:
    """A window's inputs of a modality the first window of its batch has: a batch's windows have the same."""
    assert inputs is not None  # windows are batched by their modalities (WindowEngine._run)
    return inputs


class _FrameBuffer:
    """The source's recent frames, resized for the image encoder: source frame -> ``(3, S, S)`` uint8.

    The engine keeps the frames a window can still need (``window + max_gap``) and forgets older ones,
    but never the last one left: it stands in for frames a live source dropped.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: dict[int, Tensor] = {}

    def __len__(self) -> int:
        return len(self.images)

    def add(self, frame: int, image: np.ndarray | Tensor) -> None:
        size = self.size
        if not (isinstance(image, Tensor) and tuple(image.shape) == (3, size, size) and image.dtype == torch.uint8):
            image = resize_frame(image, size)
        self.images[frame] = image

    def at(self, frame: int) -> Tensor:
        """The frame at ``frame``, or the latest one before it (a frame a live source dropped)."""
        if frame in self.images:
            return self.images[frame]
        earlier = [i for i in self.images if i <= frame]
        if not earlier:
            raise InputError(f"no image for frame {frame}: frames of image models must come with their pictures")
        return self.images[max(earlier)]

    def forget_before(self, horizon: int) -> None:
        for i in [i for i in self.images if i < horizon]:
            if len(self.images) > 1:
                del self.images[i]


class _SensorSignals:
    """The sensor recordings the tracks wear, and which clips of a window they cover.

    A sensor clip is keyed ``(modality, track, t0, t1)`` (seconds on the source's timeline) and its
    input queued in ``cache``, so overlapping windows share it as they share pose clips.
    """

    def __init__(
        self, model: HARModel, fps: float | None, preprocessing: PreprocessConfig, cache: _Cache[SignalKey]
    ) -> None:
        self.model, self.fps, self.preprocessing, self.cache = model, fps, preprocessing, cache
        self.names = model.config.signal_modalities
        self.recordings: dict[int, dict[str, SignalRecording]] = {}  # track -> modality -> recording
        self.windows_without: dict[str, int] = {name: 0 for name in self.names}  # windows a signal did not cover

    def attach(
        self,
        track_id: int,
        name: str,
        samples: SignalRecording | np.ndarray,
        rate: float | None,
        channels: tuple[str, ...] | list[str] | None,
        start: float,
        ended: bool,
    ) -> None:
        """See :meth:`WindowEngine.attach_signal`; ``ended``: the track ended already."""
        if name not in self.names:
            raise InputError(
                f"this model has no {name!r} sensor modality (it reads {list(self.model.config.modalities)}); "
                + ("a model with an imu_model section reads one" if name == "imu" else "check the modality name")
            )
        if self.fps is None:
            raise InputError("a sensor signal needs a timeline: give the engine the source's fps")
        if ended:
            raise InputError(f"track {track_id} already ended: attach its {name} signal before its windows are due")
        config = _signal_config(self.model, name)
        if not isinstance(samples, SignalRecording):
            if rate is None:
                raise InputError("attach_signal: samples given as an array need their rate (Hz)")
            samples = SignalRecording(
                np.asarray(samples), rate, tuple(channels or config.channels), start, source=f"the {name} signal"
            )
        recording = samples.select(config.channels)
        if recording.rate < MIN_RATE_FRACTION * config.rate:
            raise InputError(
                f"{recording.source}: sampled at {recording.rate:g} Hz; the model reads {config.rate:g} Hz "
                f"and needs at least {MIN_RATE_FRACTION * config.rate:g} Hz"
            )
        self.recordings.setdefault(track_id, {})[name] = recording

    def drop(self, track_id: int) -> None:
        self.recordings.pop(track_id, None)

    def window_keys(self, track_id: int, start: int, end: int, clips: int) -> dict[str, list[SignalKey]]:
        """The sensor clips of window ``[start, end)`` of a track, for each signal its recording covers
        (queueing the inputs of those not encoded yet)."""
        out: dict[str, list[SignalKey]] = {}
        for name in self.names:
            recording = self.recordings.get(track_id, {}).get(name)
            # (attach takes a recording only with a timeline: there is one where there is a recording)
            if (
                recording is None
                or self.fps is None
                or coverage(recording, start / self.fps, end / self.fps) < MIN_SIGNAL_COVERAGE
            ):
                self.windows_without[name] += 1
                continue
            spans = clip_spans(start, end, clips, self.fps)
            keys: list[SignalKey] = [(name, track_id, a, b) for a, b in spans]
            todo = [(k, span) for k, span in zip(keys, spans) if self.cache.wants(k)]
            if todo:
                config = _signal_config(self.model, name)
                inputs = signal_clips(recording, [span for _, span in todo], self.preprocessing, config)
                for (key, _), clip in zip(todo, inputs):
                    self.cache.pending[key] = clip
            out[name] = keys
        return out


def _signal_config(model: HARModel, name: str) -> ImuModelConfig:
    """The config section of the sensor modality ``name``: the sensor sections are :class:`ImuModelConfig`."""
    return cast(ImuModelConfig, model.config.modality_config(name))


class WindowEngine:
    """Cuts tracks into windows and classifies them with a :class:`~unihar.models.HARModel`.

    Args:
        model: the model (PyTorch or onnxruntime); its ``preprocessing`` says how windows are made.
        fps: frames per second of the source; ``None`` for sequences without a rate, where each track
            is one window.
        pose_layout: the joint layout of the keypoints pushed (default: the model's).
        stride: frames between full windows (default: the model's ``stride_seconds``).
        warmup: also classify the first 1..L-1 clips of a track (live streams).
        image_stride: image features for every k-th sampled frame of a clip only (1 = all: exact).
        image_size: ResNet input size (default: the model's; smaller is faster, not exact).
        batch_windows: windows gathered before the model runs (1 = each as soon as it is due).
        min_seconds: shortest track that is classified (a short track gets one window over all of it).
        max_gap: most frames a track may go unseen and continue (the tracker's ``max_age``); frames are
            kept for this long so a window across the gap can still be classified, and a longer gap
            closes the stretch of a track of a model that reads frames (see the module docstring). It
            bounds memory: keep it small.
        device: where a PyTorch model runs (it is moved there); None: wherever the model is.
    """

    def __init__(
        self,
        model: HARModel,
        fps: float | None,
        *,
        pose_layout: KeypointLayout | str | None = None,
        stride: int | None = None,
        warmup: bool = False,
        image_stride: int = 1,
        image_size: int | None = None,
        batch_windows: int = 1,
        min_seconds: float = 1.0,
        max_gap: int = 30,
        device: str | torch.device | None = None,
    ) -> None:
        self.model = model
        self.preprocessing = model.preprocessing
        self.layout = get_layout(self.preprocessing.layout)
        self.pose_layout = self.layout if pose_layout is None else get_layout(pose_layout)
        self.fps = fps
        if fps is None:  # a sequence without a rate: every track is one window over all of it
            self.geometry = None
            self.capacity = None
        else:
            self.geometry = WindowGeometry.at(self.preprocessing, fps, stride)
            self.capacity = self.geometry.window
        if image_stride < 1:
            raise InputError(f"image_stride must be >= 1, got {image_stride}")
        if batch_windows < 1:
            raise InputError(f"batch_windows must be >= 1, got {batch_windows}")
        self.warmup = warmup
        self.image_stride = image_stride
        self.uses_images = model.has_image_branch
        self.modalities = list(model.config.modalities)
        self.uses_poses = "skeleton" in self.modalities
        self.signal_names = model.config.signal_modalities  # recordings attached per track
        self.image_preprocessing = (
            self.preprocessing.replace(image_size=image_size) if image_size else self.preprocessing
        )
        self.batch_windows = batch_windows
        self.min_frames = 1 if fps is None else max(1, int(round(min_seconds * fps)))
        self.max_gap = max(0, int(max_gap))
        self.device = runtime_device(model, device)  # the model's own device unless one is asked for
        self.tracks: dict[int, _Track] = {}
        self.ended: dict[int, TrackEnd] = {}
        self._latest_frame = -1
        self._pending: list[_Pending] = []  # windows due, waiting for the model
        self.images = _FrameBuffer(self.image_preprocessing.image_size)  # the last window + max_gap frames
        self.features = _Features(model, self.preprocessing, self.image_preprocessing, self.device)
        self.signals = _SensorSignals(model, fps, self.preprocessing, self.features.signals)

    @property
    def clips_encoded(self) -> int:
        return self.features.clips.encoded

    @property
    def frames_encoded(self) -> int:
        return self.features.frames.encoded

    @property
    def signal_clips_encoded(self) -> int:
        return self.features.signals.encoded

    @property
    def windows_without(self) -> dict[str, int]:
        """Per sensor modality, the windows its recording did not cover."""
        return self.signals.windows_without

    # ------------------------------------------------------------------ input
    def push(
        self, frame: int, people: Mapping[int, np.ndarray], image: np.ndarray | Tensor | None = None
    ) -> list[WindowResult]:
        """Add source frame ``frame``: ``people`` maps track id -> ``(J, 3)`` keypoints (pixel x, y,
        confidence; ``pose_layout``) of the people seen in it; ``image`` is the ``(H, W, 3)`` uint8 RGB
        frame (multimodal models; or already resized to ``(3, S, S)``). Returns the windows this frame
        completed (all of them, or none while ``batch_windows`` gathers)."""
        if frame <= self._latest_frame:
            raise InputError(f"frames must be pushed in order: got frame {frame} after frame {self._latest_frame}")
        self._latest_frame = frame
        if self.uses_images and self.geometry is not None:
            for track in self.tracks.values():
                if not track.closed and frame - track.next_frame > self.max_gap:
                    self._close(track)  # the gap's frames are about to be forgotten: classify what it had
        if self.uses_images:
            if image is None and not self.images:
                raise InputError("this model also reads RGB frames: the first frame pushed needs one")
            if image is not None:
                self.images.add(frame, image)
        for track_id, keypoints in people.items():
            self._add_pose(int(track_id), frame, keypoints)
        self._forget_old_frames()
        return self._run_if_due()

    def add_sequence(self, track_id: int, keypoints: np.ndarray, first_frame: int = 0) -> list[WindowResult]:
        """A whole recorded sequence ``(N, J, 3)`` as one track that ends with it (evaluation, imports)."""
        keypoints = np.asarray(keypoints, dtype=np.float32)
        if self.uses_images:
            raise InputError("add_sequence is for pose-only models; push frames with their images instead")
        if keypoints.ndim != 3 or len(keypoints) < 1:
            raise InputError(f"expected a sequence of keypoints (frames, joints, 3), got shape {keypoints.shape}")
        for offset, pose in enumerate(keypoints):
            self._add_pose(track_id, first_frame + offset, pose)
        return self.end_track(track_id)

    def attach_signal(
        self,
        track_id: int,
        name: str,
        samples: SignalRecording | np.ndarray,
        rate: float | None = None,
        *,
        channels: tuple[str, ...] | list[str] | None = None,
        start: float = 0.0,
    ) -> None:
        """Give track ``track_id`` (now or before it appears) the ``name`` sensor recording it wears:
        a :class:`~unihar.data.signals.SignalRecording`, or ``samples`` ``(N, C)`` at ``rate`` Hz whose
        ``channels`` default to the model's, starting at ``start`` s on the source's timeline."""
        self.signals.attach(track_id, name, samples, rate, channels, start, ended=track_id in self.ended)

    def end_track(self, track_id: int) -> list[WindowResult]:
        """The person of ``track_id`` is gone: classify what its windows have not covered yet."""
        track = self.tracks.pop(track_id, None)
        if track is None:
            return []
        if not track.closed:
            self._close(track)
        reason = None
        if not track.classified:
            assert self.fps is not None  # without a rate every track gets one window: all are classified
            n = track.longest
            reason = (
                f"seen for {n} frame{'s' if n != 1 else ''} ({n / self.fps:.2f} s); "
                f"at least {self.min_frames} frames ({self.min_frames / self.fps:.2f} s) are needed to classify"
            )
        self.ended[track_id] = TrackEnd(track_id, track.start, track.next_frame - 1, track.classified, reason)
        self.signals.drop(track_id)  # its windows hold their sensor clips already
        return self._run_if_due()

    def finish(self) -> list[WindowResult]:
        """The source ended: end every track and classify everything still pending."""
        results: list[WindowResult] = []
        for track_id in list(self.tracks):
            results += self.end_track(track_id)
        return results + self._run()

    # ------------------------------------------------------------------ tracks and windows
    def _close(self, track: _Track) -> None:
        """End the track's current stretch: queue the window covering what its windows have not."""
        n = track.length
        window = self.geometry.window if self.geometry is not None else None
        classified = track.last_full_end > track.first
        if window is not None and n >= window:
            if track.last_full_end < track.next_frame:
                self._queue(track, track.next_frame - window, track.next_frame, self.preprocessing.clips)
            classified = True
        elif n >= self.min_frames:
            self._queue(track, track.first, track.next_frame, self.preprocessing.clips)
            classified = True
        track.classified = track.classified or classified
        track.longest = max(track.longest, n)
        track.closed = True

    def _add_pose(self, track_id: int, frame: int, keypoints: np.ndarray) -> None:
        pose = np.asarray(keypoints, dtype=np.float32)
        if pose.shape != (self.pose_layout.num_joints, 3):
            raise InputError(
                f"keypoints: expected shape ({self.pose_layout.num_joints}, 3) for layout "
                f"{self.pose_layout.name!r}, got {pose.shape}"
            )
        if self.pose_layout is not self.layout:
            pose = convert_keypoints(pose, self.pose_layout, self.layout)
        track = self.tracks.get(track_id)
        if track is None:
            if track_id in self.ended:
                raise InputError(f"track {track_id} already ended; a returning person needs a new track id")
            track = self.tracks[track_id] = _Track(track_id, frame, self.capacity or 1 << 31)
        if frame < track.next_frame:
            raise InputError(f"track {track_id}: frame {frame} pushed after frame {track.next_frame - 1}")
        if track.closed:  # back after a gap longer than max_gap: a new stretch
            track.open(frame)
        if frame > track.next_frame:  # unseen since: interpolate the gap, now that both ends are known
            for between in interpolate_gap(track.poses[-1], pose, frame - track.next_frame + 1):
                self._append(track, between)
        self._append(track, pose)

    def _append(self, track: _Track, pose: np.ndarray) -> None:
        track.poses.append(pose)
        track.next_frame += 1
        if self.geometry is None:
            return
        n, end = track.length, track.next_frame
        g = self.geometry
        if n >= g.window and (n - g.window) % g.stride == 0:
            self._queue(track, end - g.window, end, g.clips)
            track.last_full_end = end
        elif self.warmup and n < g.window and n % g.span == 0:
            self._queue(track, end - n, end, n // g.span)

    def _queue(self, track: _Track, start: int, end: int, clips: int) -> None:
        """Make the window ``[start, end)`` of ``track`` due: gather the inputs of its clips not yet encoded."""
        keys: list[ClipKey] | None = [] if self.uses_poses else None
        image_frames: list[list[int]] | None = [] if self.uses_images else None
        signal_keys = self.signals.window_keys(track.id, start, end, clips)
        if keys is None and image_frames is None and not signal_keys:
            raise InputError(
                f"track {track.id}: this model reads only {self.signal_names}, and no recording covers frames "
                f"{start}-{end - 1}; attach_signal the track's recording"
            )
        for frames in clip_indices(start, end, clips, self.preprocessing.clip_len):
            if keys is not None:
                key = (track.id, *frames.tolist())
                keys.append(key)
                if self.features.clips.wants(key):
                    self.features.clips.pending[key] = np.stack([track.pose_at(int(i)) for i in frames])
            if image_frames is not None:
                wanted = [int(i) for i in frames[:: self.image_stride]]
                image_frames.append(wanted)
                for i in wanted:
                    if self.features.frames.wants(i):
                        self.features.frames.pending[i] = self.images.at(i)
        self._pending.append(_Pending(track.id, start, end, keys, image_frames, signal_keys, clips))

    # ------------------------------------------------------------------ memory
    def _forget_old_frames(self) -> None:
        if not self.uses_images or self.geometry is None:
            return
        self.images.forget_before(self._latest_frame - (self.geometry.window + self.max_gap))

    def _forget_old_features(self) -> None:
        """Drop cached clips and frame features no future window can use (called with nothing pending)."""
        reach = None if self.geometry is None else self.geometry.window + self.max_gap
        # keys: clips (track, *source frames), frames the source frame, signals (modality, track, t0, t1)
        self.features.clips.forget(lambda key: self._out_of_reach(key[0], key[1], reach))
        if reach is None:
            return
        horizon = self._latest_frame - reach
        self.features.frames.forget(lambda frame: frame < horizon)
        fps = self.fps
        assert fps is not None  # a window geometry (reach) comes with the source's rate
        self.features.signals.forget(lambda key: self._out_of_reach(key[1], key[3] * fps, reach))

    def _out_of_reach(self, track_id: int, frame: float, reach: int | None) -> bool:
        """No future window of the track can use what starts at source frame ``frame`` (or the track is gone)."""
        track = self.tracks.get(track_id)
        return track is None or (reach is not None and frame < track.next_frame - reach)

    # ------------------------------------------------------------------ the model
    def _run_if_due(self) -> list[WindowResult]:
        return self._run() if len(self._pending) >= self.batch_windows else []

    @torch.inference_mode()
    def _run(self) -> list[WindowResult]:
        """Encode the new clips and frames of the pending windows, then run the head on them."""
        if not self._pending:
            return []
        self.features.encode_pending()
        pending, self._pending = self._pending, []
        results: list[WindowResult] = []
        # windows with as many clips and the same modalities run together
        groups: dict[tuple[int, tuple[str, ...]], list[_Pending]] = {}
        for item in pending:
            groups.setdefault((item.clips, item.modalities), []).append(item)
        for group in groups.values():
            for first in range(0, len(group), HEAD_BATCH):
                batch = group[first : first + HEAD_BATCH]
                logits = self.model.forward_head(UniHARFeatures(self.features.tokens(batch)))
                probs = self.model.probabilities(logits).cpu().numpy()
                results += [
                    WindowResult(w.track, w.start, w.end, w.clips, p, w.modalities) for w, p in zip(batch, probs)
                ]
        self._forget_old_features()
        results.sort(key=lambda r: (r.end_frame, r.track))
        return results


def run_sequences(
    model: HARModel,
    sequences: Iterable[np.ndarray],
    fps: float | None,
    *,
    pose_layout: KeypointLayout | str | None = None,
    batch_windows: int = 64,
    device: str | torch.device | None = None,
    signals: Mapping[str, Sequence[SignalRecording | None]] | None = None,
) -> list[list[WindowResult]]:
    """The windows of each recorded sequence ``(N, J, 3)``, as the engine cuts a video (evaluation).

    ``signals``: modality -> one recording per sequence (on the sequence's timeline; None: none for it).
    """
    engine = WindowEngine(
        model, fps, pose_layout=pose_layout, batch_windows=batch_windows, min_seconds=0.0, device=device
    )
    per_sequence: dict[int, list[WindowResult]] = {}
    for index, sequence in enumerate(sequences):
        for name, recordings in (signals or {}).items():
            recording = recordings[index]
            if recording is not None:
                engine.attach_signal(index, name, recording)
        for result in engine.add_sequence(index, sequence):
            per_sequence.setdefault(result.track, []).append(result)
        per_sequence.setdefault(index, [])
    for result in engine.finish():
        per_sequence[result.track].append(result)
    return [sorted(per_sequence[i], key=lambda r: r.end_frame) for i in range(len(per_sequence))]
