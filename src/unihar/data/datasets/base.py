"""What every dataset loader returns, and how a sequence becomes training / evaluation windows.

Each loader reads its own format into a :class:`SkeletonDataset`: whole sequences of keypoints in the
dataset's own joint layout, with integer labels and class names. Converting to the model's layout,
cutting windows and normalising happen afterwards, through :mod:`unihar.data.preprocess` -- the same
path inference uses (training windows: :mod:`unihar.training.data`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from unihar.data.camera import KINECT_V1, Camera, project
from unihar.data.layouts import KeypointLayout, convert_keypoints, get_layout, source_joints
from unihar.data.preprocess import frame_indices
from unihar.data.signals import SignalRecording
from unihar.data.video import open_video
from unihar.errors import InputError

__all__ = ["SkeletonDataset"]


@dataclass
class SkeletonDataset:
    """Whole labelled keypoint sequences of one split, in the dataset's own joint layout.

    ``sequences[i]`` is ``(frames, J, dims + 1)`` float32. With ``dims=2`` (what the model reads): x, y
    (pixels, or any unit: windows are normalised later) and a confidence in [0, 1] (0 = missing). With
    ``dims=3`` (Kinect-style data): x, y, z in metres in camera space (OpenCV axes: x right, y down, z
    forward; see :mod:`unihar.data.camera`) and the confidence; :meth:`projected` / :meth:`view` turn it
    into 2D through a camera (``camera``, the recording camera, by default). ``fps`` is the frame rate the
    sequences were recorded at, or ``None`` when unknown: then a whole sequence is one model window.
    ``events[i]`` lists frames of sequence ``i`` where its action happens (e.g. the moment of a fall), for
    training windows centred on it; empty when the whole sequence is the action.
    ``signals`` maps a sensor modality (``"imu"``) to one :class:`~unihar.data.signals.SignalRecording`
    per sequence, on the sequence's timeline (frame ``f`` at ``f / fps`` s); None when there are none.
    """

    sequences: list[np.ndarray]
    labels: np.ndarray
    classes: list[str]
    layout: KeypointLayout
    fps: float | None = None
    names: list[str] = field(default_factory=list)
    name: str = "dataset"
    # For datasets made from videos: (video path, the video's frame count) per sequence, so a stage-2
    # (image) model can fetch the RGB frames behind any stretch of a sequence (see ``video_frames``).
    videos: list[tuple[str, int]] | None = None
    dims: int = 2
    camera: Camera | None = None
    events: list[list[int]] | None = None
    signals: dict[str, list[SignalRecording]] | None = None

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.sequences) != len(self.labels):
            raise InputError(
                f"{self.name}: {len(self.sequences)} sequences but {len(self.labels)} labels; they must match"
            )
        if not self.names:
            self.names = [str(i) for i in range(len(self.sequences))]
        if self.dims not in (2, 3):
            raise InputError(f"{self.name}: dims must be 2 or 3, got {self.dims}")
        channels = self.dims + 1
        for seq, seq_name in zip(self.sequences, self.names):
            if seq.ndim != 3 or seq.shape[1:] != (self.layout.num_joints, channels):
                raise InputError(
                    f"{self.name}: sequence {seq_name!r} has shape {seq.shape}, expected "
                    f"(frames, {self.layout.num_joints}, {channels}) for layout {self.layout.name!r} in {self.dims}D"
                )
            if seq.shape[0] < 1:
                raise InputError(f"{self.name}: sequence {seq_name!r} has no frames")
        if self.events is not None:
            if len(self.events) != len(self.sequences):
                raise InputError(f"{self.name}: {len(self.events)} event lists for {len(self.sequences)} sequences")
            for seq, frames, seq_name in zip(self.sequences, self.events, self.names):
                if any(not 0 <= f < len(seq) for f in frames):
                    raise InputError(
                        f"{self.name}: sequence {seq_name!r} has event frames {frames} outside 0..{len(seq) - 1}"
                    )
        for modality, recordings in (self.signals or {}).items():
            if len(recordings) != len(self.sequences):
                raise InputError(
                    f"{self.name}: {len(recordings)} {modality} recordings for {len(self.sequences)} sequences"
                )
        bad = self.labels[(self.labels < 0) | (self.labels >= len(self.classes))]
        if bad.size:
            raise InputError(
                f"{self.name}: label {int(bad[0])} is outside 0..{len(self.classes) - 1} ({len(self.classes)} classes)"
            )

    def __len__(self) -> int:
        return len(self.sequences)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.classes))

    def subset(self, indices: Sequence[int] | np.ndarray, **changes: Any) -> SkeletonDataset:
        """The sequences ``indices`` (in that order) with everything kept per sequence (names, videos,
        events, signals); ``changes`` replace other fields (e.g. ``labels`` and ``classes`` together)."""
        keep = [int(i) for i in indices]
        picked = {
            "sequences": [self.sequences[i] for i in keep],
            "labels": self.labels[keep],
            "names": [self.names[i] for i in keep],
            "videos": None if self.videos is None else [self.videos[i] for i in keep],
            "events": None if self.events is None else [self.events[i] for i in keep],
            "signals": None if self.signals is None else {k: [v[i] for i in keep] for k, v in self.signals.items()},
        }
        return replace(self, **{**picked, **changes})

    def to_layout(self, layout: str | Sequence[str] | KeypointLayout) -> SkeletonDataset:
        """The same data with joints converted by name to ``layout`` (see :func:`convert_keypoints`).

        Warns once about source joints the target cannot use and target joints the source cannot fill.
        """
        dst = get_layout(layout)
        if dst.joints == self.layout.joints:
            return self
        sources = {joint: source_joints(joint, self.layout) for joint in dst.joints}
        used = {part for parts in sources.values() for part in parts}
        dropped = [j for j in self.layout.joints if j not in used]
        missing = [j for j, parts in sources.items() if not parts]
        if dropped:
            warnings.warn(
                f"{self.name}: joints not in the model's layout {dst.name!r} are dropped: {dropped}", stacklevel=2
            )
        if missing:
            warnings.warn(
                f"{self.name}: the model's joints {missing} are not in the data; "
                "they are fed as missing (confidence 0)",
                stacklevel=2,
            )
        sequences = [convert_keypoints(seq, self.layout, dst) for seq in self.sequences]
        return replace(self, sequences=sequences, layout=dst)

    @property
    def recording_camera(self) -> Camera:
        """The camera 3D data is viewed through by default (Kinect v1's when the loader names none)."""
        return self.camera or KINECT_V1

    def view(self, index: int, camera: Camera | None = None) -> np.ndarray:
        """Sequence ``index`` as 2D joints ``(frames, J, 3)``: 3D data seen through ``camera`` (default: the
        recording camera), 2D data as it is (then ``camera`` must be ``None``)."""
        seq = self.sequences[index]
        if self.dims == 2:
            if camera is not None:
                raise InputError(f"{self.name}: the data is 2D; a camera can only view 3D skeletons")
            return seq
        return project(seq, camera or self.recording_camera)

    def projected(self, camera: Camera | None = None) -> SkeletonDataset:
        """The whole dataset in 2D, every sequence seen through ``camera`` (default: the recording camera,
        the fixed frontal view evaluation uses). 2D data is returned as it is."""
        if self.dims == 2:
            if camera is not None:
                raise InputError(f"{self.name}: the data is 2D; a camera can only view 3D skeletons")
            return self
        sequences = [self.view(i, camera) for i in range(len(self))]
        return replace(self, sequences=sequences, dims=2, camera=None)

    def video_frames(self, index: int, start: int, end: int) -> np.ndarray:
        """RGB frames ``(end - start, H, W, 3)`` uint8 behind frames ``[start, end)`` of sequence ``index``.

        Sequences of video datasets are resampled to one time base; this maps their frames back to
        the video's own frames and decodes only up to the last one needed.
        """
        if self.videos is None:
            raise InputError(f"{self.name}: a model with an image branch needs video data (haa500 or video-folder)")
        path, total = self.videos[index]
        wanted = frame_indices(total, len(self.sequences[index]))[start:end]
        frames: dict[int, np.ndarray] = {}
        needed = set(wanted.tolist())
        for i, frame in enumerate(open_video(path)):
            if i in needed:
                frames[i] = frame
            if i >= wanted.max():
                break
        last = frames[max(frames)] if frames else None
        if last is None:
            raise InputError(f"{self.name}: could not decode frames of {path}")
        return np.stack([frames.get(int(i), last) for i in wanted])
