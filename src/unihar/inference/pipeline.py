"""From a video file to actions: decode -> poses -> the model's layout -> windows -> probabilities.

    pipeline = VideoPipeline.from_pretrained("path/to/model")      # or VideoPipeline(model)
    result = pipeline("clip.mp4")
    result.topk        # [ActionScore(id, label, prob), ...] for the whole video
    result.windows     # one WindowPrediction per timeline window, each with its own top-k
    result.to_dict()   # {"source", "frames", "fps", "topk", "windows"}: what ``unihar predict --json`` prints

How a video becomes model input (all of it in :mod:`unihar.data.preprocess`, shared with training):
the timeline is cut into windows of ``window_seconds`` every ``stride_seconds`` (:func:`window_ranges`);
each window's frames are resampled uniformly to ``L * T`` and split into ``L`` clips of ``T`` frames
(:func:`pose_window`, :func:`image_window`). Each window gets its own probabilities; the video's
probabilities are the mean over its windows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from unihar.data.pose import PoseSequence, get_pose_backend
from unihar.data.preprocess import PreprocessConfig, image_window, pose_window, window_ranges
from unihar.data.video import DEFAULT_IMAGE_FOLDER_FPS, VideoInfo, open_video
from unihar.errors import InputError

__all__ = ["ActionScore", "WindowPrediction", "VideoPrediction", "VideoPipeline", "ProgressCallback"]

# progress(frames_done, frames_expected_or_None), called while decoding / estimating poses
ProgressCallback = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class ActionScore:
    id: int
    label: str
    prob: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "prob": self.prob}


@dataclass
class WindowPrediction:
    """Probabilities for the frames ``[start_frame, end_frame)``."""

    start_frame: int
    end_frame: int
    probs: np.ndarray = field(repr=False)  # (K,)
    topk: list[ActionScore]

    def to_dict(self) -> dict[str, Any]:
        return {
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "topk": [score.to_dict() for score in self.topk],
        }


@dataclass
class VideoPrediction:
    """Everything ``unihar predict`` reports about one video."""

    source: str
    frames: int
    fps: float
    probs: np.ndarray = field(repr=False)  # (K,) mean of the window probabilities
    topk: list[ActionScore]
    windows: list[WindowPrediction]
    poses: PoseSequence = field(repr=False)  # as the backend gave them (its own layout), gaps filled
    labels: list[str] = field(repr=False)
    frame_size: tuple[int, int] = (0, 0)

    @property
    def missing_frames(self) -> int:
        """Frames where nobody was detected (filled by interpolation / carrying the nearest pose)."""
        return self.poses.missing

    def window_for_frame(self, frame: int) -> WindowPrediction:
        """The window whose centre is nearest to ``frame``: what the annotated video shows at that frame."""
        return self.windows[int(self.window_index(np.array([frame]))[0])]

    def window_index(self, frames: np.ndarray) -> np.ndarray:
        """For each frame index, the index of the window whose centre is nearest (ties: the earlier window)."""
        centres = np.array([(w.start_frame + w.end_frame - 1) / 2 for w in self.windows])
        frames = np.asarray(frames, dtype=np.float64)
        right = np.clip(np.searchsorted(centres, frames), 0, len(centres) - 1)
        left = np.clip(right - 1, 0, len(centres) - 1)
        return np.where(np.abs(centres[left] - frames) <= np.abs(centres[right] - frames), left, right)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "frames": self.frames,
            "fps": self.fps,
            "topk": [score.to_dict() for score in self.topk],
            "windows": [window.to_dict() for window in self.windows],
        }


def _topk(probs: np.ndarray, labels: list[str], k: int) -> list[ActionScore]:
    order = np.argsort(-probs, kind="stable")[:k]
    return [ActionScore(int(i), labels[int(i)], float(probs[int(i)])) for i in order]


class VideoPipeline:
    """Runs a Uni-HAR model over a whole video, window by window.

    Args:
        model: a :class:`~unihar.models.UniHAR` (e.g. from :func:`unihar.hub.from_pretrained`).
        pose_backend: a backend name (``"mediapipe"``, ``"openpose-json"``, ``"array"``) or object.
        device: where the model runs (``None``: CUDA if available, else CPU).
        batch_size: windows per forward pass (image models use 1 to bound memory).
    """

    def __init__(self, model: Any, pose_backend: str | Any = "mediapipe", device: str | None = None, batch_size: int = 16) -> None:
        from unihar.inference.predictor import resolve_device

        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.prep = PreprocessConfig.from_model_config(model.config)
        self.pose_backend = get_pose_backend(pose_backend) if isinstance(pose_backend, str) else pose_backend
        self.uses_images = bool(getattr(model, "has_image_branch", False))
        self.batch_size = 1 if self.uses_images else max(1, int(batch_size))
        num_classes = int(model.config["classifier"]["num_classes"])
        labels = list(model.labels) if getattr(model, "labels", None) else [f"class_{i}" for i in range(num_classes)]
        self.labels = labels

    @classmethod
    def from_pretrained(cls, repo_or_path: str | Path | None = None, **kwargs: Any) -> "VideoPipeline":
        from unihar.hub import from_pretrained

        return cls(from_pretrained(repo_or_path), **kwargs)

    # ------------------------------------------------------------------ poses
    def extract(
        self,
        source: str | Path,
        poses: str | Path | None = None,
        fps: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> tuple[PoseSequence, VideoInfo | None, np.ndarray | None]:
        """Poses (backend layout), the video's info (None for a pose file alone) and frames (image models only).

        With a pose estimator (``mediapipe``) ``source`` is the video. With an importer
        (``openpose-json``, ``array``) the poses come from ``poses`` if given (``source`` is then the
        matching video), else from ``source`` itself; a pose file alone has no frame rate, so ``fps``
        (default 30) sets the timeline.
        """
        backend = self.pose_backend
        if getattr(backend, "needs_video", True):
            if poses is not None:
                raise InputError(f"the {backend.name!r} pose backend estimates poses from the video; --poses is for imported poses")
            reader = open_video(source, fps=fps)
            frames: list[np.ndarray] | None = [] if self.uses_images else None
            sequence = backend.estimate(self._watch(reader, len(reader) or None, frames, progress), str(source))
            return sequence, reader.info, None if frames is None else np.stack(frames)

        pose_path = Path(poses) if poses is not None else Path(source)
        video_path = Path(source) if poses is not None else None
        info: VideoInfo | None = None
        frames_array = None
        if video_path is not None:
            reader = open_video(video_path, fps=fps)
            info = reader.info
            if self.uses_images:
                collected: list[np.ndarray] = []
                for _ in self._watch(reader, len(reader) or None, collected, progress):
                    pass
                frames_array = np.stack(collected)
        elif self.uses_images:
            raise InputError(
                "this model also reads RGB frames (image_model.enabled); give the video as SOURCE and the "
                "keypoints with --poses"
            )
        sequence = backend.load(pose_path, frame_size=info.frame_size if info is not None else None)
        if frames_array is not None and len(frames_array) != sequence.num_frames:
            raise InputError(
                f"the video has {len(frames_array)} frames but the poses in {str(pose_path)!r} have {sequence.num_frames}"
            )
        if progress is not None:
            progress(sequence.num_frames, sequence.num_frames)
        return sequence, info, frames_array

    @staticmethod
    def _watch(
        frames: Iterable[np.ndarray], total: int | None, keep: list[np.ndarray] | None, progress: ProgressCallback | None
    ) -> Iterator[np.ndarray]:
        for done, frame in enumerate(frames, start=1):
            if keep is not None:
                keep.append(frame)
            if progress is not None:
                progress(done, total)
            yield frame

    # ------------------------------------------------------------------ classification
    def check_topk(self, topk: int) -> None:
        num_classes = len(self.labels)
        if not isinstance(topk, int) or isinstance(topk, bool) or not 1 <= topk <= num_classes:
            raise InputError(f"topk: expected an integer in [1, {num_classes}] (the model has {num_classes} classes), got {topk!r}")

    @torch.inference_mode()
    def classify(
        self,
        poses: PoseSequence,
        fps: float,
        frames: np.ndarray | None = None,
        topk: int = 5,
        source: str = "",
    ) -> VideoPrediction:
        """Window the poses (and frames), run the model, and gather per-window and whole-video top-k."""
        self.check_topk(topk)
        if self.uses_images and frames is None:
            raise InputError("this model also reads RGB frames (image_model.enabled), but no frames were given")
        keypoints = poses.to_layout(self.prep.layout).keypoints
        ranges = window_ranges(poses.num_frames, fps, self.prep)
        window_probs: list[np.ndarray] = []
        for first in range(0, len(ranges), self.batch_size):
            batch = ranges[first : first + self.batch_size]
            pose = torch.from_numpy(np.stack([pose_window(keypoints[s:e], self.prep) for s, e in batch]))
            images = None
            if self.uses_images:
                images = torch.stack([image_window(frames[s:e], self.prep) for s, e in batch]).to(self.device)
            logits = self.model(pose.to(self.device), images=images)
            window_probs.extend(torch.softmax(logits.float(), dim=-1).cpu().numpy())
        windows = [
            WindowPrediction(s, e, p, _topk(p, self.labels, topk)) for (s, e), p in zip(ranges, window_probs)
        ]
        mean = np.mean(np.stack(window_probs), axis=0)
        return VideoPrediction(
            source=source,
            frames=poses.num_frames,
            fps=float(fps),
            probs=mean,
            topk=_topk(mean, self.labels, topk),
            windows=windows,
            poses=poses,
            labels=self.labels,
            frame_size=poses.frame_size,
        )

    def __call__(
        self,
        source: str | Path,
        topk: int = 5,
        poses: str | Path | None = None,
        fps: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> VideoPrediction:
        """Predict the actions in a video (see :meth:`extract` for ``poses`` / ``fps``)."""
        self.check_topk(topk)
        sequence, info, frames = self.extract(source, poses=poses, fps=fps, progress=progress)
        rate = info.fps if info is not None else float(fps or DEFAULT_IMAGE_FOLDER_FPS)
        result = self.classify(sequence, rate, frames=frames, topk=topk, source=str(source))
        if info is not None:
            result.frame_size = info.frame_size
        return result
