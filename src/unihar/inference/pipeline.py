"""From a video to actions, for everyone in it: decode -> poses -> tracks -> windows -> probabilities.

    pipeline = VideoPipeline.from_pretrained()            # the bundled model; or a folder / Hub id
    result = pipeline("clip.mp4")
    result.people      # one PersonPrediction per tracked person: frames, windows, top-k
    result.topk        # the main person's whole-video top-k (largest size x duration, see main_track)
    result.to_dict()   # what ``unihar predict --json`` prints
    pipeline("clip.mp4", signals={"imu": "watch.csv"})   # a model with a sensor branch: the wearer's recording

The pose backend finds the people in each frame, the tracker gives them persistent ids, and the
windowing engine (:mod:`unihar.inference.engine`) classifies each person's windows: the same engine,
fed by the same threaded runner (:func:`~unihar.inference.streaming.run_source`), as ``unihar stream``
and the server, so a file gives the same numbers whichever way it is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from unihar.config import ImuModelConfig
from unihar.data.layouts import KeypointLayout
from unihar.data.pose import PoseSequence, fill_missing, get_pose_backend
from unihar.data.pose.tracking import Tracker, multi_person_tracker, single_person_tracker
from unihar.data.signals import SignalRecording, check_recording, read_signal_file
from unihar.data.video import DEFAULT_IMAGE_FOLDER_FPS, VideoInfo, open_video
from unihar.errors import InputError, NoPersonError
from unihar.inference.device import place_model
from unihar.inference.engine import TrackEnd, WindowEngine, WindowResult, max_gap_frames
from unihar.inference.results import PersonPrediction, VideoPrediction, WindowPrediction, scores_of
from unihar.inference.streaming import FrameUpdate, run_source
from unihar.loading import load_model
from unihar.models import HARModel

# A sensor recording, as a file (.npz / .csv, see unihar.data.signals) or already read.
SignalSource = str | Path | SignalRecording

__all__ = [
    "VideoPipeline",
    "ProgressCallback",
    "DEFAULT_MAX_PEOPLE",
    "single_person_tracker",
    "multi_person_tracker",
    "max_gap_frames",
]

# progress(frames_done, frames_expected_or_None), called while decoding / estimating poses
ProgressCallback = Callable[[int, "int | None"], None]
DEFAULT_MAX_PEOPLE = 6
MIN_SECONDS = 0.5  # a person seen for less is listed without a classification


@dataclass
class _TrackRecord:
    """A person's keypoints as the pose stage reported them (detected frames only)."""

    frames: list[int]
    keypoints: list[np.ndarray]


class VideoPipeline:
    """Runs a Uni-HAR model over videos, or over pose sequences you already have.

    Args:
        model: a :class:`~unihar.models.HARModel` (PyTorch or onnxruntime; see :func:`unihar.load_model`).
        pose_backend: a backend name (``"blazepose"``, ``"mediapipe"``, ``"openpose-json"``, ``"array"``) or object.
        device: where a PyTorch model runs; ``None``: a model already on an accelerator stays there, one
            on the CPU goes to CUDA if available (:func:`~unihar.inference.device.place_model`).
        max_people: most people followed at once; 1 follows one person through the whole video.
        batch_windows: windows classified together (default: 32 for pose-only models, 1 with images).
    """

    def __init__(
        self,
        model: HARModel,
        pose_backend: str | Any = "blazepose",
        device: str | torch.device | None = None,
        max_people: int = DEFAULT_MAX_PEOPLE,
        batch_windows: int | None = None,
    ) -> None:
        if not isinstance(max_people, int) or max_people < 1:
            raise InputError(f"max_people: expected a positive integer, got {max_people!r}")
        self.model = model.eval()
        self.device = place_model(self.model, device)  # decided once: every engine follows the model
        self.preprocessing = model.preprocessing
        self.labels = model.labels
        self.uses_images = model.has_image_branch
        self.max_people = max_people
        self.pose_backend = (
            get_pose_backend(pose_backend, max_people=max_people) if isinstance(pose_backend, str) else pose_backend
        )
        self.batch_windows = batch_windows or (1 if self.uses_images else 32)

    @classmethod
    def from_pretrained(
        cls, repo_or_path: str | Path | None = None, backend: str = "torch", **kwargs: Any
    ) -> VideoPipeline:
        """A pipeline around :func:`unihar.load_model` (the bundled model by default)."""
        return cls(load_model(repo_or_path, backend), **kwargs)

    # ------------------------------------------------------------------ the parts, shared with stream and serve
    def check_topk(self, topk: int) -> None:
        num_classes = len(self.labels)
        if not isinstance(topk, int) or isinstance(topk, bool) or not 1 <= topk <= num_classes:
            raise InputError(
                f"topk: expected an integer in [1, {num_classes}] (the model has {num_classes} classes), got {topk!r}"
            )

    def tracker(self, fps: float) -> Tracker:
        """A fresh tracker for one source at ``fps``: persistent ids for up to ``max_people`` people."""
        if self.max_people == 1:
            return single_person_tracker()
        return multi_person_tracker(max_gap_frames(fps))

    def load_signals(self, signals: Mapping[str, SignalSource] | None) -> dict[str, SignalRecording]:
        """Read and check sensor recordings (modality -> file or recording) before any frame is decoded:
        a modality the model reads, the model's channels and rate, at least one window long."""
        recordings: dict[str, SignalRecording] = {}
        for name, source in (signals or {}).items():
            if name not in self.model.config.signal_modalities:
                raise InputError(
                    f"this model has no {name!r} sensor modality (it reads {self.model.config.modalities})"
                )
            recording = source if isinstance(source, SignalRecording) else read_signal_file(source)
            imu = cast(ImuModelConfig, self.model.config.modality_config(name))  # the sensor sections are imu_model
            recordings[name] = check_recording(recording, self.preprocessing, imu)
        return recordings

    def _attach(self, engine: WindowEngine, recordings: Mapping[str, SignalRecording], wearer: int) -> None:
        for name, recording in recordings.items():
            engine.attach_signal(wearer, name, recording)

    def engine(self, fps: float, **options: Any) -> WindowEngine:
        """A windowing engine for one source at ``fps`` (options: see :class:`WindowEngine`)."""
        options.setdefault("batch_windows", self.batch_windows)
        options.setdefault("min_seconds", MIN_SECONDS)
        options.setdefault("max_gap", max_gap_frames(fps))
        options.setdefault("pose_layout", self.pose_backend.layout)
        return WindowEngine(self.model, fps, **options)

    # ------------------------------------------------------------------ videos
    def __call__(
        self,
        source: str | Path,
        topk: int = 5,
        poses: str | Path | None = None,
        fps: float | None = None,
        progress: ProgressCallback | None = None,
        signals: Mapping[str, SignalSource] | None = None,
        wearer: int | None = None,
    ) -> VideoPrediction:
        """Predict the actions of everyone in a video.

        With a pose estimator (``blazepose``, ``mediapipe``) ``source`` is the video. With an importer
        (``openpose-json``, ``array``) the poses come from ``poses`` if given (``source`` is then the
        matching video), else from ``source`` itself; a pose file alone has no frame rate, so ``fps``
        (default 30) sets the timeline.

        ``signals``: sensor recordings worn by one person (``{"imu": "watch.csv"}``), on the video's
        timeline; they belong to track ``wearer``, or without it to the one person followed through the
        video (as with ``max_people=1``).
        """
        self.check_topk(topk)
        recordings = self.load_signals(signals)
        if not getattr(self.pose_backend, "needs_video", True):
            return self._imported(source, poses, fps, topk, progress, recordings, wearer)
        if poses is not None:
            raise InputError(
                f"the {self.pose_backend.name!r} pose backend estimates poses from the video; --poses is for "
                "imported poses"
            )
        reader = open_video(source, fps=fps)
        return self.predict_frames(
            reader,
            reader.info,
            topk=topk,
            progress=progress,
            total=len(reader) or None,
            signals=recordings,
            wearer=wearer,
        )

    def predict_frames(
        self,
        frames: Iterable[np.ndarray],
        info: VideoInfo,
        topk: int = 5,
        progress: ProgressCallback | None = None,
        total: int | None = None,
        signals: Mapping[str, SignalSource] | None = None,
        wearer: int | None = None,
    ) -> VideoPrediction:
        """Everyone's actions in ``frames`` (the decoded video ``info`` describes), every frame handled;
        ``signals`` / ``wearer`` as in :meth:`__call__`."""
        self.check_topk(topk)
        recordings = self.load_signals(signals)
        engine = self.engine(info.fps)
        tracker = self.tracker(info.fps)
        if recordings:
            if wearer is None:  # the recording's wearer is the one person followed through the video
                tracker, wearer = single_person_tracker(), 0
            elif self.max_people == 1 and wearer != 0:
                raise InputError(f"with one person followed (max_people=1) the wearer is track 0, got wearer {wearer}")
            self._attach(engine, recordings, wearer)
        records: dict[int, _TrackRecord] = {}
        windows: list[WindowResult] = []
        frames_seen = [0]

        def record(update: FrameUpdate) -> None:
            for track_id, keypoints in update.people.items():
                entry = records.setdefault(track_id, _TrackRecord([], []))
                entry.frames.append(update.index)
                entry.keypoints.append(np.asarray(keypoints, dtype=np.float32))
            frames_seen[0] = update.index + 1
            if progress is not None:
                progress(update.index + 1, total)

        run_source(frames, self.pose_backend.frame_estimator, tracker, engine, windows.extend, on_frame=record)
        if frames_seen[0] == 0:
            raise NoPersonError(f"no frames to estimate poses from in {info.source}")
        if not records:
            raise NoPersonError(f"nobody was detected in any of the {frames_seen[0]} frames of {info.source}")
        result = self._assemble(
            info.source,
            frames_seen[0],
            info.fps,
            info.frame_size,
            self.pose_backend.layout,
            records,
            windows,
            engine.ended,
            topk,
        )
        result.corrupt_frames = getattr(frames, "corrupt_frames", 0)  # a VideoReader's undecodable frames
        return result

    # ------------------------------------------------------------------ pose sequences
    def classify(
        self,
        poses: PoseSequence,
        fps: float,
        topk: int = 5,
        source: str = "",
        frames: Iterable[np.ndarray] | None = None,
        signals: Mapping[str, SignalSource] | None = None,
    ) -> VideoPrediction:
        """One person's pose sequence (imported keypoints, the server's JSON) through the same engine.

        Frames where the person was not detected (``poses.detected``) are interpolated by the engine, as
        for a video; ``frames`` (the matching video) is needed by multimodal models; ``signals`` are the
        person's sensor recordings (``{"imu": ...}``), on the keypoints' timeline.
        """
        self.check_topk(topk)
        recordings = self.load_signals(signals)
        if self.uses_images and frames is None:
            raise InputError("this model also reads RGB frames (image_model.enabled); give the matching video too")
        engine = self.engine(fps, pose_layout=poses.layout)
        self._attach(engine, recordings, 0)
        detected = poses.detected if poses.detected is not None else np.ones(poses.num_frames, bool)
        if not detected.any():
            raise NoPersonError(
                f"nobody was detected in any of the {poses.num_frames} frames of {source or 'the keypoints'}"
            )
        images: Iterator[np.ndarray | None] = iter(frames) if frames is not None else iter(())
        windows: list[WindowResult] = []
        for index in range(poses.num_frames):
            image = next(images, None) if frames is not None else None
            if frames is not None and image is None:
                raise InputError(f"the video has {index} frames but the poses in {source!r} have {poses.num_frames}")
            people = {0: poses.keypoints[index]} if detected[index] else {}
            windows += engine.push(index, people, image)
        windows += engine.finish()
        record = _TrackRecord(
            [int(i) for i in np.flatnonzero(detected)], [poses.keypoints[i] for i in np.flatnonzero(detected)]
        )
        return self._assemble(
            source, poses.num_frames, fps, poses.frame_size, poses.layout, {0: record}, windows, engine.ended, topk
        )

    def _imported(
        self,
        source: str | Path,
        poses: str | Path | None,
        fps: float | None,
        topk: int,
        progress: ProgressCallback | None,
        recordings: Mapping[str, SignalRecording],
        wearer: int | None,
    ) -> VideoPrediction:
        if recordings and wearer not in (None, 0):
            raise InputError(f"imported keypoints are one person (track 0); wearer {wearer} does not exist")
        pose_path = Path(poses) if poses is not None else Path(source)
        video: VideoInfo | None = None
        frames = None
        if poses is not None:
            reader = open_video(source, fps=fps)
            video = reader.info
            frames = iter(reader) if self.uses_images else None
        elif self.uses_images:
            raise InputError(
                "this model also reads RGB frames (image_model.enabled); give the video as SOURCE and the keypoints "
                "with --poses"
            )
        sequence = self.pose_backend.load(pose_path, frame_size=video.frame_size if video is not None else None)
        # Counted in the file where the header only estimates it (mkv, webm: off for a variable frame rate).
        counted = reader.count_frames() if video is not None else None
        if counted is not None and counted != sequence.num_frames:
            raise InputError(
                f"the video has {counted} frames but the poses in {str(pose_path)!r} have {sequence.num_frames}"
            )
        rate = video.fps if video is not None else float(fps or DEFAULT_IMAGE_FOLDER_FPS)
        if progress is not None:
            progress(sequence.num_frames, sequence.num_frames)
        result = self.classify(sequence, rate, topk=topk, source=str(source), frames=frames, signals=recordings)
        if video is not None:
            result.frame_size = video.frame_size
        return result

    # ------------------------------------------------------------------ results
    def _assemble(
        self,
        source: str,
        num_frames: int,
        fps: float,
        frame_size: tuple[int, int],
        layout: KeypointLayout,
        records: dict[int, _TrackRecord],
        windows: list[WindowResult],
        ended: dict[int, TrackEnd],
        topk: int,
    ) -> VideoPrediction:
        by_track: dict[int, list[WindowResult]] = {}
        for window in windows:
            by_track.setdefault(window.track, []).append(window)
        people: list[PersonPrediction] = []
        for track_id in sorted(records):
            record = records[track_id]
            first, last = record.frames[0], record.frames[-1]
            keypoints = np.zeros((last - first + 1, *record.keypoints[0].shape), np.float32)
            detected = np.zeros(last - first + 1, bool)
            keypoints[np.array(record.frames) - first] = np.stack(record.keypoints)
            detected[np.array(record.frames) - first] = True
            person = PersonPrediction(track_id, first, last, fill_missing(keypoints, detected), detected, layout)
            track_windows = sorted(by_track.get(track_id, []), key=lambda w: w.end_frame)
            if track_windows:
                person.windows = [
                    WindowPrediction(
                        w.start_frame,
                        w.end_frame,
                        w.probs,
                        scores_of(w.probs, self.labels, topk),
                        modalities=w.modalities if self.model.config.signal_modalities else None,
                    )
                    for w in track_windows
                ]
                person.probs = np.mean(np.stack([w.probs for w in track_windows]), axis=0)
                person.topk = scores_of(person.probs, self.labels, topk)
            else:
                person.reason = ended[track_id].reason if track_id in ended else "not classified"
            people.append(person)
        if not any(p.topk is not None for p in people):
            longest = max(people, key=lambda p: p.num_frames)
            raise NoPersonError(
                f"nobody in {source or 'the video'} was seen long enough to classify: the longest track is "
                f"{longest.num_frames} frames ({longest.num_frames / fps:.2f} s), at least {MIN_SECONDS:g} s are needed"
            )
        return VideoPrediction(source, num_frames, float(fps), people, self.labels, frame_size)
