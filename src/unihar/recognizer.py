"""One object to hold: a loaded model with its pose backend, for videos, live sources and export.

    rec = Recognizer()                                  # the bundled model
    rec = Recognizer("m97j/uni-har")                    # a Hub repo or a save_pretrained folder
    rec = Recognizer("model.onnx")                      # an `unihar export` file: runs on onnxruntime
    result = rec.predict("clip.mp4")                    # a VideoPrediction: print(result), result.to_json()
    for event in rec.stream(0):                         # a webcam: StreamPrediction events, then a StreamEnd
        print(event.to_dict())
    rec.export("model.onnx")

``unihar predict``, ``stream``, ``export`` and ``serve`` are command lines around this class, so what
a script gets is what the commands print.
"""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from unihar import assets
from unihar.data.pose import PoseSequence, get_pose_backend
from unihar.data.pose.arrays import poses_from_array
from unihar.data.video import DEFAULT_IMAGE_FOLDER_FPS
from unihar.errors import InputError, VideoError
from unihar.inference import streaming
from unihar.inference.pipeline import DEFAULT_MAX_PEOPLE, ProgressCallback, SignalSource, VideoPipeline
from unihar.inference.results import VideoPrediction
from unihar.inference.streaming import FrameUpdate, LiveSource, Reconnect, SourceSummary, StreamPrediction
from unihar.loading import check_backend, load_model
from unihar.models import HARModel, UniHAR

if TYPE_CHECKING:
    from unihar.data.datasets import SkeletonDataset
    from unihar.teaching import TeachReport

__all__ = ["Recognizer", "LiveStream", "StreamEnd", "check_stream_source", "check_export_path"]


def check_stream_source(source: str | int) -> None:
    """A stream source is a webcam index, a URL, or a video file that exists."""
    text = str(source)
    if not (text.isdigit() or "://" in text) and not Path(text).is_file():
        raise VideoError(f"video not found: {text}")


def check_export_path(path: str | Path, overwrite: bool, flag: str = "path", replace: str = "overwrite=True") -> Path:
    """Where an export goes: an ``.onnx`` name, not an existing file unless replacing it. ``flag`` and
    ``replace`` name the argument and the switch the way the caller's user knows them."""
    path = Path(path)
    if path.suffix != ".onnx":
        raise InputError(f"{flag}: expected a file name ending in .onnx, got {str(path)!r}")
    if path.exists() and not overwrite:
        raise InputError(f"{str(path)!r} already exists; pass {replace} to replace it")
    return path


@dataclass
class StreamEnd:
    """The last event of a stream: frames delivered, dropped and lost; ``gave_up`` says why a camera or
    stream that went away was not reconnected (None when the source simply ended)."""

    summary: SourceSummary
    gave_up: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The line ``unihar stream --json`` ends with."""
        return {"summary": self.summary.to_dict()}


# What Recognizer.stream yields: a prediction per person and window, then one StreamEnd.
StreamEvent = StreamPrediction | StreamEnd


class _Abandoned(Exception):
    """The consumer of a stream stopped iterating: the runner thread stops too."""


class LiveStream:
    """What :meth:`Recognizer.stream` returns: iterate it once for its events.

    The model runs on a thread of its own while the caller iterates; ``on_frame`` (set before
    iterating) is still called on the caller's thread, with each frame's :class:`FrameUpdate` (the
    decoded frame included), so it can draw a window. :meth:`close` ends the source early, as a
    camera being unplugged would: the last windows and the :class:`StreamEnd` still follow. Leaving
    the loop early stops everything and closes the source.
    """

    def __init__(
        self,
        frames: LiveSource,
        pipeline: VideoPipeline,
        engine: Any,
        topk: int,
        realtime: bool,
        on_frame: Callable[[FrameUpdate], None] | None = None,
    ) -> None:
        self.frames = frames
        self.fps = frames.fps
        self.on_frame = on_frame
        self._pipeline, self._engine, self._topk, self._realtime = pipeline, engine, topk, realtime
        self._started = False

    def close(self) -> None:
        self.frames.close()

    def __enter__(self) -> LiveStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[StreamEvent]:
        if self._started:
            raise InputError("a stream can be iterated only once; call Recognizer.stream again")
        self._started = True
        # bounded: a slow consumer slows the runner, not memory
        events: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=4)
        abandoned = threading.Event()
        thread = threading.Thread(target=self._run, args=(events, abandoned), name="unihar-stream", daemon=True)
        thread.start()
        try:
            while True:
                kind, value = events.get()
                if kind == "frame":
                    assert self.on_frame is not None  # frames are sent only to an on_frame
                    self.on_frame(value)
                elif kind == "windows":
                    for window in value:
                        yield StreamPrediction.of(window, self.fps, self._pipeline.labels, self._topk)
                elif kind == "error":
                    raise value
                else:
                    yield StreamEnd(value, self.frames.gave_up)
                    return
        finally:
            abandoned.set()
            self.frames.close()
            thread.join(timeout=10)

    def _run(self, events: queue.Queue[tuple[str, Any]], abandoned: threading.Event) -> None:
        def put(item: tuple[str, Any]) -> None:
            while True:
                if abandoned.is_set():
                    raise _Abandoned
                try:
                    events.put(item, timeout=0.1)
                    return
                except queue.Full:
                    pass

        frames, fps = self.frames, self.fps
        try:
            summary = streaming.run_source(
                frames,
                self._pipeline.pose_backend.frame_estimator,
                self._pipeline.tracker(fps),
                self._engine,
                lambda windows: put(("windows", windows)),
                live=not frames.is_file or self._realtime,
                pace_fps=fps if (frames.is_file and self._realtime) else None,
                on_frame=(lambda update: put(("frame", update))) if self.on_frame is not None else None,
                with_frames=self.on_frame is not None,
            )
            put(("end", summary))
        except _Abandoned:
            pass
        except BaseException as err:  # raised again on the caller's thread
            try:
                put(("error", err))
            except _Abandoned:
                pass


class Recognizer:
    """A model ready to recognise actions: in videos, in poses you already have, and live.

    Args:
        weights: a ``save_pretrained`` folder, a Hub repo id, or an ``.onnx`` file from ``unihar export``;
            None: the model bundled with the package (see :func:`unihar.load_model`).
        backend: ``"torch"`` or ``"onnxruntime"``; default: onnxruntime for an ``.onnx`` file, else torch.
        device: where a PyTorch model runs (``cpu``, ``cuda``, ``cuda:N``, ``mps``); default CUDA if available.
        pose_backend: ``blazepose`` (several people), ``mediapipe`` (legacy, one person), or an importer
            (``openpose-json``, ``array``) for keypoint files; or a pose backend object.
        max_people: most people followed at once; 1 follows one person through the whole video.
        topk: how many actions each prediction lists (default 5, or every class of a smaller model);
            each call may ask for another number.
        revision: a Hub revision (branch, tag or commit) of ``weights``.
    """

    last_teach_report: TeachReport | None = None  # set on a recognizer made by :meth:`teach`

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        backend: str | None = None,
        device: str | None = None,
        pose_backend: str | Any = "blazepose",
        max_people: int = DEFAULT_MAX_PEOPLE,
        topk: int | None = None,
        revision: str | None = None,
    ) -> None:
        if backend is None:
            backend = "onnxruntime" if weights is not None and str(weights).lower().endswith(".onnx") else "torch"
        backend = check_backend(backend, weights)
        if isinstance(pose_backend, str):
            pose_backend = get_pose_backend(pose_backend, max_people=max_people)
        if backend == "onnxruntime" and device is None:
            device = "cpu"
        model = load_model(weights, backend, revision=revision)
        self._setup(VideoPipeline(model, pose_backend=pose_backend, device=device, max_people=max_people), topk)
        self.weights, self.backend, self.revision = weights, backend, revision
        self._loaded_here = True

    @classmethod
    def from_pipeline(cls, pipeline: VideoPipeline, topk: int | None = None) -> Recognizer:
        """A recognizer around a pipeline you built yourself (a custom pose backend, a model in memory)."""
        recognizer = cls.__new__(cls)
        recognizer._setup(pipeline, topk)
        recognizer.weights, recognizer.revision, recognizer._loaded_here = None, None, False
        recognizer.backend = "torch" if isinstance(pipeline.model, UniHAR) else "onnxruntime"
        return recognizer

    def _setup(self, pipeline: VideoPipeline, topk: int | None) -> None:
        topk = min(5, len(pipeline.labels)) if topk is None else topk
        pipeline.check_topk(topk)
        self.pipeline = pipeline
        self.topk = topk

    # ------------------------------------------------------------------ what it holds
    @property
    def model(self) -> HARModel:
        return self.pipeline.model

    @property
    def config(self) -> Any:
        """The model's :class:`~unihar.config.ModelConfig` (branches, preprocessing, classes)."""
        return self.pipeline.model.config

    @property
    def labels(self) -> list[str]:
        return self.pipeline.labels

    @property
    def device(self) -> Any:
        return self.pipeline.device

    def __repr__(self) -> str:
        weights = "the bundled model" if self.weights is None else repr(str(self.weights))
        return (
            f"Recognizer({weights}, backend={self.backend!r}, pose_backend={self.pipeline.pose_backend.name!r}, "
            f"max_people={self.pipeline.max_people}, {len(self.labels)} classes)"
        )

    # ------------------------------------------------------------------ videos and poses
    def predict(
        self,
        source: str | Path | PoseSequence | np.ndarray,
        *,
        topk: int | None = None,
        poses: str | Path | None = None,
        fps: float | None = None,
        signals: Mapping[str, SignalSource] | None = None,
        wearer: int | None = None,
        progress: ProgressCallback | None = None,
        name: str | None = None,
    ) -> VideoPrediction:
        """Everyone's actions in a video, as ``unihar predict`` reports them (``print(result)``, ``result.to_json()``).

        ``source``: a video file or image folder; with an importing pose backend, a keypoint file, or the
        video with its keypoints in ``poses``. One person's poses you already have can be given as a
        ``PoseSequence`` or a ``(frames, joints, 3)`` array of pixel x, y and confidence, read at
        ``fps`` (default 30) and called ``name`` in the result. ``signals``: sensor recordings of the
        person ``wearer`` (``{"imu": "watch.csv"}``) for models with a sensor branch.
        """
        topk = self.topk if topk is None else topk
        if isinstance(source, (PoseSequence, np.ndarray)):
            if poses is not None or wearer not in (None, 0) or progress is not None:
                raise InputError("poses given as an array are one person: poses=, wearer= and progress= do not apply")
            name = name if name is not None else "keypoints"
            sequence = source if isinstance(source, PoseSequence) else poses_from_array(source, None, None, name)
            rate = float(fps if fps is not None else DEFAULT_IMAGE_FOLDER_FPS)
            if not rate > 0:
                raise InputError(f"fps: expected a positive frame rate, got {fps}")
            return self.pipeline.classify(sequence, rate, topk=topk, source=name, signals=signals)
        if name is not None:
            raise InputError("name= names poses given as an array; a video is named by its path")
        return self.pipeline(source, topk=topk, poses=poses, fps=fps, progress=progress, signals=signals, wearer=wearer)

    # ------------------------------------------------------------------ live
    def stream(
        self,
        source: str | int,
        *,
        topk: int | None = None,
        stride: int | None = None,
        realtime: bool = True,
        reconnect: Reconnect | None = None,
        image_stride: int = 1,
        image_size: int | None = None,
        on_frame: Callable[[FrameUpdate], None] | None = None,
    ) -> LiveStream:
        """Recognise everyone's actions live, as ``unihar stream`` does: iterate the result for a
        :class:`StreamPrediction` per person every ``stride`` frames, then a :class:`StreamEnd`.

        ``source``: a webcam index, an RTSP/HTTP URL, or a video file (delivered at its own frame rate,
        or with ``realtime=False`` every frame as fast as possible, giving :meth:`predict`'s windows).
        A camera or stream that stalls or disconnects is opened again as ``reconnect`` says.
        """
        topk = self.topk if topk is None else topk
        self.pipeline.check_topk(topk)
        if stride is not None and stride < 1:
            raise InputError(f"stride: expected a positive number of frames, got {stride}")
        if not self.pipeline.pose_backend.needs_video:
            raise InputError(
                f"the {self.pipeline.pose_backend.name!r} pose backend imports keypoint files; "
                "a stream needs an estimator (blazepose)"
            )
        check_stream_source(source)
        frames = streaming.open_live_source(source, reconnect)  # looked up here, so a test can stand in for it
        try:
            engine = self.pipeline.engine(
                frames.fps,
                stride=stride,
                warmup=True,
                image_stride=image_stride,
                image_size=image_size,
                batch_windows=1,
            )
        except BaseException:
            frames.close()
            raise
        return LiveStream(frames, self.pipeline, engine, topk, realtime, on_frame)

    # ------------------------------------------------------------------ export
    def export(
        self, path: str | Path, quantize: bool = False, pose_only: bool = False, overwrite: bool = False
    ) -> Path:
        """The model as one self-contained ``.onnx`` file, which ``Recognizer(path)`` runs on onnxruntime.

        ``quantize``: dynamic int8 weights; ``pose_only``: leave a multimodal model's image branch out.
        """
        from unihar.inference.onnx_backend import export_onnx

        path = check_export_path(path, overwrite)
        model = self.model
        if not isinstance(model, UniHAR):  # onnxruntime: export the PyTorch model it was made from
            if self.weights is not None and str(self.weights).lower().endswith(".onnx"):
                raise InputError(f"{self.weights} is already an ONNX file: there is no PyTorch model to export")
            if not self._loaded_here:
                raise InputError("this recognizer was given an onnxruntime model: there is no PyTorch model to export")
            model = cast(UniHAR, load_model(self.weights, "torch", revision=self.revision))  # torch: a UniHAR
        elif next(model.parameters()).device.type != "cpu":
            model = copy.deepcopy(model).cpu()  # the export traces on the CPU
        return export_onnx(
            model, path, with_images=False if pose_only else None, quantize=quantize, overwrite=overwrite
        )

    # ------------------------------------------------------------------ teaching
    def teach(
        self,
        data: str | Sequence[str] | SkeletonDataset,
        out: str | Path | None = None,
        overwrite: bool = False,
        **options: Any,
    ) -> Recognizer:
        """A recognizer that also knows every action of ``data`` this one does not, from a few clips each.

        ``data``: one or more ``FORMAT:PATH`` specs (``video-folder:DIR`` of ``DIR/<action>/*.mp4``,
        ``skeleton-npz:DIR``...) or a loaded ``SkeletonDataset``. The old actions' scores are kept exactly
        (see :mod:`unihar.teaching`). ``out``: also written there as a model folder every command loads
        (refused when it exists and is not empty, unless ``overwrite``). ``options`` reach the loaders
        that extract poses from video (``workers``, ``skip_failed``). This recognizer is left as it is.
        """
        from unihar.teaching import check_teach_out, teach_model, write_taught_card

        base_dir: Path | None = None  # where the base model's card is, if anywhere
        if self.weights is not None:
            base, base_dir = f"`{self.weights}`", Path(self.weights) if Path(self.weights).is_dir() else None
        elif self._loaded_here:
            base, base_dir = "the bundled model", assets.default_model_dir()
        else:
            base = "a model given in memory"
        target = None if out is None else check_teach_out(out, overwrite, base_dir)
        if self.backend != "torch" or not isinstance(self.model, UniHAR):
            raise InputError("teaching needs a PyTorch model: create the Recognizer with backend='torch'")
        model = copy.deepcopy(self.model).cpu()
        taught, report = teach_model(model, data, base=base, **options)
        if target is not None:
            taught.save_pretrained(target, overwrite=overwrite)
            write_taught_card(target, report, base_dir)
        pipeline = VideoPipeline(
            taught, pose_backend=self.pipeline.pose_backend, device=self.device, max_people=self.pipeline.max_people
        )
        recognizer = Recognizer.from_pipeline(pipeline, topk=min(self.topk, len(taught.labels)))
        recognizer.last_teach_report = report
        if target is not None:
            recognizer.weights, recognizer._loaded_here = str(target), True
        return recognizer
