"""BlazePose for every person in the frame, on LiteRT: 33 MediaPipe landmarks per person.

The two BlazePose networks (Apache-2.0, shipped in ``unihar/assets/pose_models``) run on LiteRT
(``ai-edge-litert``, XNNPACK on the CPU); the crops are cut by exact bilinear interpolation
(:func:`~unihar.data.pose.blazepose_geometry.warp_crop`), so the keypoints do not depend on the OpenCV
version installed. Per frame:

1. *Detect* (whenever nobody is tracked, else every ``detect_every`` frames): the frame, letterboxed
   to 224x224 (and, if it is wide, square tiles of it, where small people look bigger), gives SSD
   detections of a face box plus four body keypoints, merged by weighted NMS. Each new person's
   region (a rotated square around the body) comes from the hip centre and the body-circle keypoint.
   Detections of a person already tracked are dropped.
2. *Landmarks*: each region is cut out at 256x256 and the landmark model gives 33 landmarks (plus
   6 auxiliary ones), a visibility per landmark and a "pose presence" score; the landmarks are
   refined with the model's heatmap and mapped back to frame pixels.
3. *Track*: a person whose presence falls to ``min_presence`` or below is dropped; two regions that
   ended on the same body are merged; the ``max_people`` most present people are kept; every kept
   person's region for the next frame comes from their own auxiliary landmarks, so nobody needs the
   detector again while they stay in view.

``frame_estimator()`` returns everyone found in a frame, in no particular order: stable ids come from
:class:`~unihar.data.pose.tracking.PoseTracker`. ``estimate()`` / ``__call__`` follow the main actor
of a whole video, like the other video backends.

LiteRT prints one line, ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.``, to the process's
stderr the first time an interpreter is created. It has no option or environment variable to turn
that off, and this module never redirects file descriptor 2 (that would hide a server's own logs).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit

from unihar.data.layouts import LAYOUTS
from unihar.data.pose.base import PoseSequence, finalize_poses
from unihar.data.pose.blazepose_geometry import (
    DETECTOR_SIZE,
    LANDMARK_SIZE,
    crop_matrix,
    decode_detections,
    detection_regions,
    refine_with_heatmap,
    rois_from_points,
    ssd_anchor_centers,
    warp_crop,
    weighted_nms,
)
from unihar.data.pose.native_log import native_stderr_silenced
from unihar.data.pose.tracking import select_main_actor
from unihar.data.video import VideoReader, open_video
from unihar.errors import ConfigError, InputError

__all__ = ["BlazePose", "MODEL_DIR"]

MODEL_DIR = Path(str(files("unihar") / "assets" / "pose_models"))
DETECTOR_FILE = "pose_detection.tflite"
LANDMARK_FILES = {"lite": "pose_landmark_lite.tflite", "full": "pose_landmark_full.tflite"}

NUM_LANDMARKS = 33
ALL_LANDMARKS = 39  # 33 + auxiliary: 33 = body centre, 34 = point on the body circle (35-38 unused)
HIP_CENTRE, BODY_CIRCLE = 33, 34
HEATMAP_SHAPE = (64, 64, ALL_LANDMARKS)
SHOULDERS = (11, 12)
DETECTOR_HIP, DETECTOR_CIRCLE, DETECTOR_SHOULDER = 0, 1, 2  # detector keypoints

SAME_PERSON_TORSO = 0.4  # detection within 0.4 torso lengths (hip and shoulder centres) of a tracked person: them
SAME_BODY = 0.3  # landmarks of two regions closer than this (see _body_distance) are one body
# ... and so are two regions whose landmarks are fairly close when one's box lies inside the other's: the
# landmark model lost on an unusual pose (a flip, a dive) gives each region its own distorted skeleton.
SAME_BODY_NESTED = 0.6
NESTED = 0.8  # share of the smaller box inside the larger one
MIN_ROI_SIDE = 4.0  # pixels; a smaller region cannot hold a person


def _check_frame(frame: np.ndarray) -> np.ndarray:
    """The frame as a contiguous (H, W, 3) uint8 array (what OpenCV needs), or one clear InputError."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InputError(
            f"BlazePose expects an RGB frame as a (height, width, 3) uint8 array, got shape {frame.shape} {frame.dtype}"
        )
    return np.ascontiguousarray(frame)


def _to_frame(points: np.ndarray, to_frame: np.ndarray) -> np.ndarray:
    """Points normalized to a detector input (``(..., 2)``) -> frame pixels, by the crop's matrix."""
    pixels: np.ndarray = points * DETECTOR_SIZE @ to_frame[:, :2].T + to_frame[:, 2]
    return pixels


_loaded_once = threading.Event()


class _TFLiteModel:
    """One ``.tflite`` network on a LiteRT interpreter; outputs are looked up by their shape."""

    def __init__(
        self,
        interpreter_class: Callable[..., Any],  # LiteRT's Interpreter (ai_edge_litert has no type information)
        path: Path,
        num_threads: int,
        expected_outputs: list[tuple[int, ...]],
    ) -> None:
        try:
            self._interpreter = interpreter_class(model_path=str(path), num_threads=num_threads)
            # The first model of the process prints a line about its XNNPACK delegate on fd 2: hide that one.
            with native_stderr_silenced() if not _loaded_once.is_set() else contextlib.nullcontext():
                self._interpreter.allocate_tensors()
            _loaded_once.set()
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"cannot load the BlazePose model {path}: {exc}") from None
        (model_input,) = self._interpreter.get_input_details()
        self._input_index = model_input["index"]
        self._outputs = {
            tuple(int(v) for v in d["shape"][1:]): d["index"] for d in self._interpreter.get_output_details()
        }
        missing = [shape for shape in expected_outputs if shape not in self._outputs]
        if missing:
            raise ConfigError(
                f"{path} is not the expected BlazePose model: no output of shape {missing}; it has "
                f"{sorted(self._outputs)}"
            )

    def run(self, tensor: np.ndarray) -> None:
        self._interpreter.set_tensor(self._input_index, tensor)
        self._interpreter.invoke()

    def output(self, shape: tuple[int, ...]) -> np.ndarray:
        tensor: np.ndarray = self._interpreter.get_tensor(self._outputs[shape])[0]
        return tensor


class _PoseStream:
    """The per-stream state: both interpreters and the regions of the people being tracked."""

    def __init__(self, config: BlazePose) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise ConfigError(
                f"the 'blazepose' pose backend needs LiteRT: pip install ai-edge-litert; import failed with: {exc}"
            ) from None
        self.config = config
        self.detector = _TFLiteModel(
            Interpreter, config.detector_path, config.num_threads, [(len(config.anchors), 12), (len(config.anchors), 1)]
        )
        self.landmarker = _TFLiteModel(
            Interpreter, config.landmark_path, config.num_threads, [(ALL_LANDMARKS * 5,), (1,), HEATMAP_SHAPE]
        )
        self.frame_size: tuple[int, int] | None = None
        self.reset()

    def reset(self) -> None:
        self.rois = np.zeros((0, 4), np.float32)  # next frame's region of each tracked person
        self.tracked = np.zeros((0, ALL_LANDMARKS, 3), np.float32)  # their landmarks in the last frame
        self.frames_since_detection = self.config.detect_every  # detect on the next frame

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        frame = _check_frame(frame)
        size = (frame.shape[1], frame.shape[0])
        if size != self.frame_size:  # a new stream, or the camera changed resolution: regions are stale
            self.frame_size = size
            self.reset()
        rois = self.rois
        self.frames_since_detection += 1
        if len(rois) == 0 or self.frames_since_detection >= self.config.detect_every:
            rois = np.concatenate([rois, self._detect(frame)[: self.config.max_people]])
            self.frames_since_detection = 0
        people, presence = self._landmarks(frame, rois)
        keep = self._keep(people, presence)
        if (keep < len(self.rois)).sum() < len(self.rois):  # someone tracked was lost: look again right away
            self.frames_since_detection = self.config.detect_every
        self.tracked = people[keep]
        self.rois = rois_from_points(self.tracked[:, HIP_CENTRE, :2], self.tracked[:, BODY_CIRCLE, :2])
        return np.ascontiguousarray(self.tracked[:, :NUM_LANDMARKS])

    def _detect(self, frame: np.ndarray) -> np.ndarray:
        """Regions ``(D, 4)`` of the people the detector finds that are not tracked yet, best first."""
        anchors = self.config.anchors
        found = []  # (scores, face boxes, keypoints) per searched region, in frame pixels
        for region in detection_regions(frame.shape[1], frame.shape[0]):  # the frame_size __call__ just set
            to_frame = crop_matrix(region, DETECTOR_SIZE)
            image = warp_crop(frame, to_frame, DETECTOR_SIZE, border="zeros")
            self.detector.run((image / 127.5 - 1.0)[None])
            scores, boxes, keypoints = decode_detections(
                self.detector.output((len(anchors), 12)),
                self.detector.output((len(anchors), 1))[:, 0],
                anchors,
                self.config.min_detection_confidence,
            )
            boxes = _to_frame(boxes.reshape(-1, 2, 2), to_frame).reshape(-1, 4)  # upright regions: corners stay corners
            found.append((scores, boxes, _to_frame(keypoints, to_frame)))
        scores, boxes, keypoints = (np.concatenate(parts) for parts in zip(*found))
        _, _, keypoints = weighted_nms(scores, boxes, keypoints)
        keypoints = keypoints[~self._already_tracked(keypoints)]
        return rois_from_points(keypoints[:, DETECTOR_HIP], keypoints[:, DETECTOR_CIRCLE])

    def _already_tracked(self, keypoints: np.ndarray) -> np.ndarray:
        """``(D,)`` True for detections whose hip and shoulder centres sit on a tracked person's."""
        if len(self.tracked) == 0 or len(keypoints) == 0:
            return np.zeros(len(keypoints), dtype=bool)
        hips = self.tracked[:, HIP_CENTRE, :2]
        shoulders = self.tracked[:, SHOULDERS, :2].mean(axis=1)
        torso = np.linalg.norm(shoulders - hips, axis=1)  # (T,)
        hip_gap = np.linalg.norm(keypoints[:, None, DETECTOR_HIP] - hips[None], axis=-1)  # (D, T)
        shoulder_gap = np.linalg.norm(keypoints[:, None, DETECTOR_SHOULDER] - shoulders[None], axis=-1)
        same: np.ndarray = (np.maximum(hip_gap, shoulder_gap) < SAME_PERSON_TORSO * torso[None]).any(axis=1)
        return same

    def _landmarks(self, frame: np.ndarray, rois: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks ``(K, 39, 3)`` (pixel x, pixel y, visibility) and presence ``(K,)`` for each region."""
        people = np.zeros((len(rois), ALL_LANDMARKS, 3), np.float32)
        presence = np.zeros(len(rois), np.float32)
        for index, roi in enumerate(rois):
            if not np.isfinite(roi).all() or roi[2] < MIN_ROI_SIDE:
                continue  # presence stays 0: dropped
            to_frame = crop_matrix(roi, LANDMARK_SIZE)
            crop = warp_crop(frame, to_frame, LANDMARK_SIZE, border="replicate")
            self.landmarker.run((crop / 255.0)[None])
            raw = self.landmarker.output((ALL_LANDMARKS * 5,)).reshape(ALL_LANDMARKS, 5)
            heatmap = self.landmarker.output(HEATMAP_SHAPE)
            points = refine_with_heatmap(raw[:, :2] / LANDMARK_SIZE, heatmap) * LANDMARK_SIZE
            people[index, :, :2] = points @ to_frame[:, :2].T + to_frame[:, 2]
            people[index, :, 2] = expit(raw[:, 3])
            presence[index] = expit(self.landmarker.output((1,))[0])
        return people, presence

    def _keep(self, people: np.ndarray, presence: np.ndarray) -> np.ndarray:
        """Indices of the people to keep: present, most present first, at most ``max_people``, and not
        a second region on a body already kept.

        Two regions on one body do not always agree on which landmark is which (left and right
        swapped, or a region turned upside down), so "same body" compares the landmarks as point
        sets. Of two such regions the more present one stays; so does a newly detected person over a
        region left on a ghost (after a fast camera pan, say).
        """
        distance = _body_distance(people[:, :NUM_LANDMARKS, :2])
        nested = _nested(people[:, :NUM_LANDMARKS, :2])
        same = (distance < SAME_BODY) | ((nested >= NESTED) & (distance < SAME_BODY_NESTED))
        keep: list[int] = []
        for index in np.argsort(-presence, kind="stable"):
            if presence[index] <= self.config.min_presence or len(keep) == self.config.max_people:
                break
            if not any(same[kept, index] for kept in keep):
                keep.append(int(index))
        return np.array(keep, dtype=np.int64)


def _body_distance(points: np.ndarray) -> np.ndarray:
    """``(K, K)`` mean distance from each landmark of one person to the nearest landmark of another
    (both ways, averaged), in units of their size (square root of their boxes' geometric-mean area)."""
    distance = np.linalg.norm(points[:, None, :, None] - points[None, :, None, :], axis=-1)  # (K, K, 33, 33)
    spread = np.sqrt(np.maximum(np.ptp(points, axis=1).prod(axis=1), 1e-6))  # (K,)
    mean_nearest = (distance.min(axis=3).mean(axis=2) + distance.min(axis=2).mean(axis=2)) / 2
    dissimilarity: np.ndarray = mean_nearest / np.sqrt(spread[:, None] * spread[None, :])
    return dissimilarity


def _nested(points: np.ndarray) -> np.ndarray:
    """``(K, K)`` share of the smaller of two people's landmark boxes that lies inside the other's."""
    lo, hi = points.min(axis=1), points.max(axis=1)  # (K, 2)
    overlap = np.clip(np.minimum(hi[:, None], hi[None]) - np.maximum(lo[:, None], lo[None]), 0, None).prod(axis=-1)
    area = np.maximum((hi - lo).prod(axis=1), 1e-6)
    overlap_share: np.ndarray = overlap / np.minimum(area[:, None], area[None])
    return overlap_share


class BlazePose:
    """BlazePose (MediaPipe's pose models) for up to ``max_people`` people per frame, offline, on LiteRT.

    Args:
        max_people: the most people tracked at once (>= 1).
        model: landmark model, ``"full"`` (default, as ``model_complexity=1``) or ``"lite"`` (faster).
        min_detection_confidence: detector score needed to start following someone.
        min_presence: landmark model's "pose presence" needed to keep following them.
        detect_every: look for newcomers every this many frames (every frame while nobody is followed).
        num_threads: CPU threads for the networks (default: the CPU count, at most 4).
        model_dir: folder with the ``.tflite`` files (default: the ones shipped in the package).
    """

    name = "blazepose"
    needs_video = True
    layout = LAYOUTS["mediapipe33"]

    def __init__(
        self,
        max_people: int = 6,
        model: str = "full",
        min_detection_confidence: float = 0.5,
        min_presence: float = 0.5,
        detect_every: int = 10,
        num_threads: int | None = None,
        model_dir: str | Path | None = None,
    ) -> None:
        if isinstance(max_people, bool) or not isinstance(max_people, (int, np.integer)) or max_people < 1:
            raise ConfigError(f"BlazePose max_people must be an integer >= 1, got {max_people!r}")
        if model not in LANDMARK_FILES:
            raise ConfigError(f"unknown BlazePose model {model!r}; expected one of {sorted(LANDMARK_FILES)}")
        for label, value in (("min_detection_confidence", min_detection_confidence), ("min_presence", min_presence)):
            if not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"BlazePose {label} must be in [0, 1], got {value}")
        if isinstance(detect_every, bool) or not isinstance(detect_every, (int, np.integer)) or detect_every < 1:
            raise ConfigError(f"BlazePose detect_every must be an integer >= 1 (frames), got {detect_every!r}")
        if num_threads is not None and (not isinstance(num_threads, (int, np.integer)) or num_threads < 1):
            raise ConfigError(f"BlazePose num_threads must be an integer >= 1, got {num_threads!r}")
        folder = Path(model_dir) if model_dir is not None else MODEL_DIR
        self.detector_path = folder / DETECTOR_FILE
        self.landmark_path = folder / LANDMARK_FILES[model]
        for path in (self.detector_path, self.landmark_path):
            if not path.is_file():
                raise ConfigError(f"BlazePose model file not found: {path} (expected {path.name} in {folder})")
        self.max_people = int(max_people)
        self.model = model
        self.min_detection_confidence = float(min_detection_confidence)
        self.min_presence = float(min_presence)
        self.detect_every = int(detect_every)
        self.num_threads = int(num_threads) if num_threads is not None else min(os.cpu_count() or 1, 4)
        self.anchors = ssd_anchor_centers()

    def __repr__(self) -> str:
        return f"BlazePose(model={self.model!r}, max_people={self.max_people}, detect_every={self.detect_every})"

    @contextlib.contextmanager
    def frame_estimator(self) -> Iterator[Callable[[np.ndarray], np.ndarray]]:
        """Per-stream state. ``estimate(frame)`` with ``frame`` ``(H, W, 3)`` uint8 RGB returns
        ``(P, 33, 3)`` float32: pixel x, pixel y, visibility in [0, 1], for the ``P`` (0 to ``max_people``)
        people in the frame, in no particular order. Use one per stream (it tracks between calls)."""
        yield _PoseStream(self)

    def estimate(self, frames: Iterable[np.ndarray], source: str = "the video") -> PoseSequence:
        """Poses of the main actor (see :func:`~unihar.data.pose.tracking.select_main_actor`) over
        ``frames`` (``(H, W, 3)`` uint8 RGB, all the same size)."""
        people: list[np.ndarray] = []
        frame_size: tuple[int, int] | None = None
        with self.frame_estimator() as estimate:
            for index, frame in enumerate(frames):
                frame = _check_frame(frame)
                if frame_size is None:
                    frame_size = (frame.shape[1], frame.shape[0])
                elif frame_size != (frame.shape[1], frame.shape[0]):
                    raise InputError(
                        f"frame {index} of {source} is {frame.shape[1]}x{frame.shape[0]}, expected "
                        f"{frame_size[0]}x{frame_size[1]}"
                    )
                people.append(estimate(frame))
        keypoints, detected = select_main_actor(people, metric="oks")
        if not people:
            keypoints = np.zeros((0, NUM_LANDMARKS, 3), np.float32)
        return finalize_poses(keypoints, detected, self.layout, frame_size or (0, 0), source)

    def __call__(self, source: str | Path | VideoReader | Iterable[np.ndarray]) -> PoseSequence:
        """``source``: a video path / image folder, a :class:`~unihar.data.video.VideoReader`, or frames."""
        if isinstance(source, (str, Path)):
            source = open_video(source)
        return self.estimate(source, str(getattr(getattr(source, "info", None), "source", "the frames")))
