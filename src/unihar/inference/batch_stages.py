"""What every stage of a batch run shares, wherever it runs (this process, a spawned worker, a Ray actor).

:class:`BatchSettings` rebuilds the same pipeline in each of them; :func:`estimate_poses` is the pose
stage, :class:`PoseClassifier` the model stage, :func:`predict_whole_video` both at once, and
:func:`failure` the line of a video that failed. :mod:`unihar.inference.batch` (local workers) and
:mod:`unihar.inference.batch_ray` (a Ray cluster) both run these, so neither imports the other's code.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unihar.data.pose import get_pose_backend
from unihar.data.video import VideoInfo, open_video
from unihar.errors import InputError, UniHARError, one_line
from unihar.inference.pipeline import DEFAULT_MAX_PEOPLE, VideoPipeline
from unihar.loading import check_backend, load_model
from unihar.models import HARModel
from unihar.recognizer import Recognizer

__all__ = [
    "UNEXPECTED",
    "BatchSettings",
    "PoseClassifier",
    "VideoOutcome",
    "VideoPoses",
    "estimate_poses",
    "failure",
    "predict_whole_video",
]

# How the error of a video starts when the video is not to blame (a bug, a crash): the same error on
# many videos is the setup's, and stops the run (see unihar.inference.batch.predict_videos).
UNEXPECTED = "unexpected "


@dataclass(frozen=True)
class BatchSettings:
    """The ``unihar predict`` options of a batch run: picklable, so every worker (a process, a Ray
    actor) builds the same pipeline from them.

    ``pose_backend`` is a backend name or a picklable backend object; ``device`` None means CUDA when
    available (CPU for onnxruntime, as ``unihar predict`` does).
    """

    weights: str | None = None
    backend: str = "torch"
    pose_backend: Any = "blazepose"
    max_people: int = DEFAULT_MAX_PEOPLE
    device: str | None = None
    topk: int = 5
    fps: float | None = None

    def check(self) -> None:
        """Everything that can be checked without loading a model or reading a video."""
        check_backend(self.backend, self.weights)
        if self.fps is not None and not self.fps > 0:
            raise InputError(f"--fps: expected a positive frame rate, got {self.fps}")
        pose = self.pose()
        if not getattr(pose, "needs_video", False):
            raise InputError(
                f"batch prediction estimates poses from videos: the {pose.name!r} pose backend imports keypoint files; "
                "use a backend that reads video (blazepose, mediapipe)"
            )

    def pose(self, threads: int | None = None) -> Any:
        """The pose backend; ``threads`` caps the CPU threads of backends that have that setting."""
        if isinstance(self.pose_backend, str):
            backend = get_pose_backend(self.pose_backend, max_people=self.max_people)
        else:
            backend = self.pose_backend
        if threads is not None and hasattr(backend, "num_threads"):
            backend.num_threads = threads
        return backend

    def model(self) -> HARModel:
        return load_model(self.weights, self.backend)

    @property
    def model_device(self) -> str | None:
        return "cpu" if self.backend == "onnxruntime" and self.device is None else self.device

    def recognizer(self, model: HARModel, pose: Any) -> Recognizer:
        """The recognizer of one stage: the stages of a run share one loaded model, each with its own pose
        backend (checks ``topk`` and the device)."""
        pipeline = VideoPipeline(model, pose_backend=pose, device=self.model_device, max_people=self.max_people)
        return Recognizer.from_pipeline(pipeline, topk=self.topk)


@dataclass
class VideoPoses:
    """What the pose stage found in one video: everything a pose-only model needs to classify it."""

    info: VideoInfo
    people: list[np.ndarray]  # per decoded frame: (P, J, 3) everyone the estimator found, in its order
    seconds: float = 0.0  # decoding + pose estimation
    corrupt_frames: int = 0  # frames that could not be decoded (see VideoReader._iter_file)


@dataclass
class VideoOutcome:
    """One video's line for the output file, and where its time went."""

    line: dict[str, Any]
    frames: int = 0
    worker_seconds: float = 0.0  # decoding + poses (+ the model too, when one stage does everything)
    model_seconds: float = 0.0  # tracking + windows + model, when a separate stage does it

    @property
    def failed(self) -> bool:
        return "error" in self.line


def failure(source: str | Path, err: BaseException) -> dict[str, Any]:
    """The line of a video that failed: the message ``unihar predict VIDEO`` would print after ``error:``.

    An error that is not the input's fault (a bug, out of memory) is recorded too, named by its type, so
    one bad video cannot stop a run over thousands; ``UNIHAR_DEBUG=1`` raises it instead.
    """
    if not isinstance(err, UniHARError):
        if os.environ.get("UNIHAR_DEBUG"):
            raise err
        return {"source": str(source), "error": f"{UNEXPECTED}{type(err).__name__}: {one_line(err)}"}
    return {"source": str(source), "error": one_line(err)}


def estimate_poses(source: str | Path, pose_backend: Any, fps: float | None = None) -> VideoPoses:
    """Decode a video and find everyone in each frame: the first, expensive half of ``unihar predict``.

    The estimator sees the frames in the same order as in :meth:`VideoPipeline.predict_frames`, so it
    finds the same people; tracking is left to :class:`PoseClassifier`.
    """
    started = time.perf_counter()
    reader = open_video(source, fps=fps)
    with pose_backend.frame_estimator() as estimate:
        people = [np.asarray(estimate(frame), dtype=np.float32) for frame in reader]
    return VideoPoses(reader.info, people, time.perf_counter() - started, reader.corrupt_frames)


class _EstimatedPoses:
    """Stands in for the pose backend when the poses were estimated elsewhere: each "frame" handed to
    the pipeline is already that frame's people, so estimation is the identity."""

    needs_video = True

    def __init__(self, backend: Any) -> None:
        self.name = backend.name
        self.layout = backend.layout

    @contextlib.contextmanager
    def frame_estimator(self) -> Iterator[Callable[[np.ndarray], np.ndarray]]:
        yield lambda people: people


class PoseClassifier:
    """The second half of ``unihar predict`` for poses estimated elsewhere: tracking, windows and the
    model, through :meth:`VideoPipeline.predict_frames` itself (so the numbers cannot drift apart)."""

    def __init__(self, settings: BatchSettings, model: HARModel) -> None:
        if model.has_image_branch:
            raise InputError("this model also reads RGB frames: its videos are predicted whole (predict_whole_video)")
        self.settings = settings
        self.pipeline = settings.recognizer(model, _EstimatedPoses(settings.pose())).pipeline

    def __call__(self, poses: VideoPoses) -> VideoOutcome:
        started = time.perf_counter()
        try:
            result = self.pipeline.predict_frames(poses.people, poses.info, topk=self.settings.topk)
            result.corrupt_frames = poses.corrupt_frames
            line = result.to_dict()
        except Exception as err:
            line = failure(poses.info.source, err)
        return VideoOutcome(line, len(poses.people), poses.seconds, time.perf_counter() - started)


def predict_whole_video(source: str | Path, recognizer: Recognizer, settings: BatchSettings) -> VideoOutcome:
    """One video through the whole pipeline, as ``unihar predict VIDEO --json``."""
    started = time.perf_counter()
    frames = [0]

    def count(done: int, total: int | None) -> None:
        frames[0] = done

    try:
        line = recognizer.predict(source, topk=settings.topk, fps=settings.fps, progress=count).to_dict()
    except Exception as err:
        line = failure(source, err)
    return VideoOutcome(line, frames[0], time.perf_counter() - started)
