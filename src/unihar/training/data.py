"""Training samples: which sequence each step sees (:class:`BalancedSampler`) and how a sequence becomes
one augmented model window (:class:`WindowDataset`).

A run trains on one dataset or on a mixture of several, all relabelled (:func:`relabel`) into
one vocabulary and converted to the model's joint layout. Every epoch draws ``epoch_size`` samples:

* a dataset ``d`` with probability proportional to ``w_d * n_d ** dataset_balance`` (``n_d``: its
  training sequences; ``w_d``: its weight, 1 unless the run gives one), so 1 keeps the natural
  proportions, 0 gives every dataset the same share and the default 0.5 sits between (a 1000-sequence
  dataset is drawn ~3x as often as a 100-sequence one, not 10x); a weight lifts a small dataset whose
  classes matter more than its size says (UR Fall's 20 training falls in the bundled recipe);
* then, within ``d``, a class ``c`` with probability proportional to ``n_dc ** class_balance``;
* then one of that class's sequences uniformly.

With both exponents at 1 (or a single dataset whose classes are already balanced) this is plain
shuffling, and each epoch is a permutation of the sequences; otherwise samples are drawn with
replacement. A class shared by several datasets (``walk``) collects the shares of all of them.

Each sample is one random window of its sequence (:func:`crop_for_training`), a 3D sequence seen
through a random virtual camera (:func:`unihar.data.camera.random_camera`), normalised as at inference
(:func:`unihar.data.preprocess.pose_window`) and augmented. Randomness comes from a generator seeded
with ``(seed, epoch, position in the epoch)``, never from a worker's state, so the same run gives the
same batches with any number of DataLoader workers, and a resumed run draws what an uninterrupted one
would have drawn. The sampler yields :class:`SampleKey` s that carry all of it, so the dataset itself
holds no per-epoch state (workers may persist across epochs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from unihar.config import PreprocessConfig
from unihar.data.camera import CameraRanges, project, random_camera
from unihar.data.datasets import SkeletonDataset
from unihar.data.preprocess import image_window, pose_window
from unihar.data.signals import SignalRecording, clip_spans, signal_clips
from unihar.errors import InputError

__all__ = [
    "SampleKey",
    "BalancedSampler",
    "WindowDataset",
    "crop_for_training",
    "sampling_weights",
    "relabel",
    "hold_out",
]

# A skeleton augmentation: (window, rng) -> the augmented window.
Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]

# Where in a training window an event (e.g. the moment of a fall) may fall: between these fractions.
EVENT_WINDOW_RANGE = (0.25, 0.75)


class SampleKey(NamedTuple):
    """One training sample: draw number ``position`` of ``epoch``, sequence ``index`` of dataset ``source``."""

    epoch: int
    position: int
    source: int
    index: int  # type: ignore[assignment]  # typeshed: a field named like tuple.index shadows the method


def relabel(data: SkeletonDataset, mapping: dict[str, str], classes: Sequence[str]) -> SkeletonDataset:
    """``data`` with its labels re-indexed into ``classes`` through ``mapping`` (its class -> a name in
    ``classes``). Sequences of classes mapped to nothing are dropped."""
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({mapping[c] for c in data.classes if mapping.get(c) is not None} - set(index))
    if unknown:
        raise InputError(f"{data.name}: classes {unknown} are not in the vocabulary {list(classes)[:20]}...")
    target = np.asarray([index[mapping[c]] if mapping.get(c) is not None else -1 for c in data.classes])
    new_labels = target[data.labels]
    keep = np.flatnonzero(new_labels >= 0)
    if len(keep) == 0:
        raise InputError(f"{data.name}: none of its classes {data.classes} is in the run's vocabulary")
    return data.subset(keep, labels=new_labels[keep], classes=list(classes))


def hold_out(data: SkeletonDataset, fraction: float, seed: int) -> tuple[SkeletonDataset, SkeletonDataset | None]:
    """Split ``data`` into (kept, held out): ``fraction`` of every class's sequences (rounded; none of a
    class with fewer than 3), chosen at random with ``seed``. The held-out part calibrates the model."""
    if fraction <= 0:
        return data, None
    rng = np.random.default_rng([seed, 104729])
    held: list[int] = []
    for label in np.unique(data.labels):
        members = np.flatnonzero(data.labels == label)
        count = int(round(fraction * len(members))) if len(members) >= 3 else 0
        held += rng.choice(members, size=count, replace=False).tolist()
    if not held:
        return data, None
    held_mask = np.zeros(len(data), dtype=bool)
    held_mask[held] = True
    return data.subset(np.flatnonzero(~held_mask)), data.subset(np.flatnonzero(held_mask), name=f"{data.name}/held-out")


def sampling_weights(
    datasets: Sequence[SkeletonDataset],
    dataset_balance: float,
    class_balance: float,
    dataset_weights: Sequence[float] | None = None,
) -> list[np.ndarray]:
    """The probability of drawing each sequence of each dataset (see the module docstring); sums to 1."""
    sizes = np.asarray([len(d) for d in datasets], dtype=np.float64)
    dataset_p = sizes**dataset_balance
    if dataset_weights is not None:
        dataset_p *= np.asarray(dataset_weights, dtype=np.float64)
    dataset_p /= dataset_p.sum()
    weights = []
    for data, p_dataset in zip(datasets, dataset_p):
        counts = data.class_counts().astype(np.float64)
        class_p = np.where(counts > 0, counts, 0.0) ** class_balance * (counts > 0)
        class_p /= class_p.sum()
        per_sequence = class_p[data.labels] / counts[data.labels]
        weights.append(p_dataset * per_sequence)
    return weights


class BalancedSampler(torch.utils.data.Sampler[SampleKey]):
    """Yields the :class:`SampleKey` s of one epoch for one process (rank ``rank`` of ``world``).

    ``epoch_size`` draws per epoch in all (0: as many as there are sequences), split evenly over the
    processes; ``dataset_weights`` (one per dataset, > 0) scale each dataset's share; call
    :meth:`set_epoch` before each epoch.
    """

    def __init__(
        self,
        datasets: Sequence[SkeletonDataset],
        epoch_size: int = 0,
        dataset_balance: float = 0.5,
        class_balance: float = 0.5,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        dataset_weights: Sequence[float] | None = None,
    ) -> None:
        for name, value in (("dataset_balance", dataset_balance), ("class_balance", class_balance)):
            if not 0.0 <= value <= 1.0:
                raise InputError(f"train.{name} must be in [0, 1], got {value}")
        if dataset_weights is not None and (len(dataset_weights) != len(datasets) or min(dataset_weights) <= 0):
            raise InputError(
                f"dataset weights: expected {len(datasets)} numbers > 0 (one per dataset), got {list(dataset_weights)}"
            )
        self.sources = np.concatenate([np.full(len(d), i) for i, d in enumerate(datasets)])
        self.indices = np.concatenate([np.arange(len(d)) for d in datasets])
        self.weights = np.concatenate(sampling_weights(datasets, dataset_balance, class_balance, dataset_weights))
        total = len(self.sources)
        self.epoch_size = int(epoch_size) if epoch_size > 0 else total
        # Equal weights: shuffle (every sequence once per epoch) rather than draw with replacement.
        self.permute = self.epoch_size == total and np.allclose(self.weights, 1.0 / total)
        self.seed, self.rank, self.world, self.epoch = seed, rank, world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.epoch_size // self.world)

    def positions(self) -> np.ndarray:
        """Flat sequence numbers of this epoch's draws (all processes), in order."""
        rng = np.random.default_rng([self.seed, self.epoch, 7919])
        if self.permute:
            return rng.permutation(len(self.sources))
        return rng.choice(len(self.sources), size=self.epoch_size, replace=True, p=self.weights)

    def __iter__(self) -> Iterator[SampleKey]:
        flat = self.positions()
        padded = np.resize(flat, len(self) * self.world)  # every process gets as many samples
        for position in range(self.rank, len(padded), self.world):
            i = int(padded[position])
            yield SampleKey(self.epoch, position, int(self.sources[i]), int(self.indices[i]))


def crop_for_training(
    num_frames: int,
    fps: float | None,
    preprocessing: PreprocessConfig,
    rng: np.random.Generator,
    speed: tuple[float, float] = (1.0, 1.0),
    min_crop: float = 1.0,
    events: Sequence[int] = (),
) -> tuple[int, int]:
    """``[start, end)`` of a random stretch of a ``num_frames``-frame sequence that one training window covers.

    With a known ``fps`` a window spans ``window_seconds * fps`` frames (as at inference), times a
    random playback ``speed`` factor so the model sees the action faster and slower; a shorter sequence
    is taken whole. Without ``fps`` the whole sequence is one window. Then a random ``min_crop``..1
    fraction of the chosen frames is kept (temporal crop). When the sequence marks ``events`` (frames
    where its action happens, e.g. a fall inside a longer recording), the window is placed so that one
    of them lies in its middle half: the label is true of the window, not only of the recording.
    """
    if fps is None:
        span = num_frames
    else:
        factor = rng.uniform(*speed) if speed[1] > speed[0] else speed[0]
        span = min(num_frames, max(1, int(round(preprocessing.window_seconds * fps * factor))))
    if min_crop < 1.0:
        span = max(1, int(round(span * rng.uniform(min_crop, 1.0))))
    last_start = num_frames - span
    if len(events):
        event = int(events[int(rng.integers(len(events)))])
        low = event - int(EVENT_WINDOW_RANGE[1] * span)
        high = event - int(EVENT_WINDOW_RANGE[0] * span)
        low, high = min(max(low, 0), last_start), min(max(high, 0), last_start)
        start = int(rng.integers(low, high + 1))
    else:
        start = int(rng.integers(0, last_start + 1))
    return start, start + span


class WindowDataset(torch.utils.data.Dataset[tuple[Any, ...]]):
    """One augmented training window per :class:`SampleKey` (see the module docstring).

    Items are ``(pose (L, T, J, 3), label)``, or ``(pose, images (L, T, 3, S, S), label)`` with
    ``images=True`` (stage 2; video datasets only). With ``signals`` (sensor modality -> its config
    section, e.g. ``{"imu": ImuModelConfig}``) a dict of each sensor's clips ``(L, S, C)`` comes before
    the label: the samples in the same time span as the skeleton window, augmented by ``signal_augment``.
    ``datasets`` must already be in the model's layout (2D, or 3D seen through ``camera_ranges``). An
    ``int`` index is sequence ``i`` of the datasets laid end to end, drawn in the epoch set by
    :meth:`set_epoch` (for inspection and tests).
    """

    def __init__(
        self,
        datasets: SkeletonDataset | Sequence[SkeletonDataset],
        preprocessing: PreprocessConfig,
        augment: Augment | Sequence[Augment | None] | None = None,
        speed: tuple[float, float] = (1.0, 1.0),
        min_crop: float = 1.0,
        seed: int = 0,
        images: bool = False,
        camera_ranges: CameraRanges | None = None,
        signals: Mapping[str, Any] | None = None,
        signal_augment: Callable[[SignalRecording, np.random.Generator], SignalRecording] | None = None,
    ):
        datasets = [datasets] if isinstance(datasets, SkeletonDataset) else list(datasets)
        self.datasets = [d.to_layout(preprocessing.layout) for d in datasets]
        for data in self.datasets:
            if images and data.videos is None:
                raise InputError(f"{data.name}: training the image branch needs video data (haa500 or video-folder)")
        # one augmentation for all datasets, or one per dataset (datasets differ in what may be mirrored)
        self.augments = list(augment) if isinstance(augment, Sequence) else [augment] * len(self.datasets)
        if len(self.augments) != len(self.datasets):
            raise ValueError(f"augment: expected one per dataset ({len(self.datasets)}), got {len(self.augments)}")
        self.preprocessing, self.images = preprocessing, images
        self.speed, self.min_crop, self.seed, self.epoch = speed, min_crop, seed, 0
        self.camera_ranges = camera_ranges or CameraRanges()
        self.signals, self.signal_augment = dict(signals or {}), signal_augment
        for data in self.datasets:
            missing = [name for name in self.signals if not data.signals or name not in data.signals]
            if missing:
                raise InputError(f"{data.name}: training the {missing} branch needs its recordings; the data has none")
        self._offsets = np.cumsum([0] + [len(d) for d in self.datasets])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def key(self, index: int) -> SampleKey:
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} of {len(self)}")
        source = int(np.searchsorted(self._offsets, index, side="right") - 1)
        return SampleKey(self.epoch, index, source, index - int(self._offsets[source]))

    def __getitem__(self, item: SampleKey | int) -> tuple[Any, ...]:
        key = item if isinstance(item, SampleKey) else self.key(int(item))
        data = self.datasets[key.source]
        rng = np.random.default_rng([self.seed, key.epoch, key.position])
        sequence = data.sequences[key.index]
        events = data.events[key.index] if data.events is not None else ()
        start, end = crop_for_training(
            len(sequence), data.fps, self.preprocessing, rng, self.speed, self.min_crop, events
        )
        part = sequence[start:end]
        if data.dims == 3:
            part = project(part, random_camera(rng, self.camera_ranges))
        window = pose_window(part, self.preprocessing)
        augment = self.augments[key.source]
        if augment is not None:
            window = augment(window, rng)
        pose = torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32))
        label = int(data.labels[key.index])
        inputs: tuple[Any, ...] = (pose,)
        if self.images:
            inputs += (image_window(data.video_frames(key.index, start, end), self.preprocessing),)
        if self.signals:
            inputs += ({name: self._signal_window(data, name, key.index, start, end, rng) for name in self.signals},)
        return (*inputs, label)

    def _signal_window(
        self, data: SkeletonDataset, name: str, index: int, start: int, end: int, rng: np.random.Generator
    ) -> torch.Tensor:
        """The sensor's clips over the same frames as the skeleton window (same crop, same speed)."""
        assert data.signals is not None  # checked in __init__: every dataset carries every sensor read
        recording = data.signals[name][index]
        if self.signal_augment is not None:
            recording = self.signal_augment(recording, rng)
        assert data.fps is not None  # recordings are placed on the skeleton's timeline by its frame rate
        spans = clip_spans(start, end, self.preprocessing.clips, data.fps)
        return torch.from_numpy(signal_clips(recording, spans, self.preprocessing, self.signals[name]))
