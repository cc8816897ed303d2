"""``unihar stream SOURCE``: live recognition from a webcam, an RTSP/HTTP stream or a file read as if live.

    unihar stream 0                                   # webcam 0, window with skeleton and top-k bars
    unihar stream rtsp://camera/stream --headless --json
    unihar stream clip.mp4 --headless --json          # a file, delivered at its own frame rate

With ``--json``, one JSON object per line: ``{"frame", "t", "topk"}`` per prediction, then
``{"summary": {"frames", "dropped", "fps"}}``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from unihar.errors import InputError, VideoError


def stream(
    source: str = typer.Argument(..., help="Webcam index (0), RTSP/HTTP URL, or a video file read at its own frame rate."),
    weights: Optional[str] = typer.Option(None, "--weights", "-w", help="Model folder or Hub id (default: the bundled model)."),
    headless: bool = typer.Option(False, "--headless", help="No window: print predictions instead."),
    json_output: bool = typer.Option(False, "--json", help="One JSON object per line on stdout."),
    stride: Optional[int] = typer.Option(None, "--stride", help="Frames between predictions (default: one clip)."),
    topk: int = typer.Option(5, "--topk", "-k", help="Actions per prediction."),
    image_stride: int = typer.Option(1, "--image-stride", help="Multimodal models: image features for every k-th sampled frame."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Multimodal models: ResNet input size (default: the model's)."),
    realtime: bool = typer.Option(True, "--realtime/--as-fast-as-possible", help="Read a file at its own frame rate, as a camera delivers it."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:N or mps."),
) -> None:
    """Recognise actions live, emitting the top-k every STRIDE frames."""
    from unihar.data.pose import get_pose_backend
    from unihar.hub import load_model
    from unihar.inference.streaming import StreamingPredictor, open_live_source, run_live

    if stride is not None and stride < 1:
        raise InputError(f"--stride: expected a positive number of frames, got {stride}")
    is_device = source.isdigit() or "://" in source
    if not is_device and not Path(source).is_file():
        raise VideoError(f"video not found: {source}")
    model = load_model(weights)
    frames, fps, is_file = open_live_source(source)
    predictor = StreamingPredictor(model, fps, stride=stride, topk=topk, image_stride=image_stride, image_size=image_size, device=device)
    backend = get_pose_backend("mediapipe")
    display = None if headless else _Display(predictor)

    def emit(prediction) -> None:
        if display is not None:
            display.latest = prediction
        if json_output:
            sys.stdout.write(json.dumps(prediction.to_dict()) + "\n")
            sys.stdout.flush()
        elif headless:
            best = ", ".join(f"{label} {prob:.2f}" for _, label, prob in prediction.topk[:3])
            typer.echo(f"{prediction.t:8.2f}s  frame {prediction.frame:6d}  {best}")

    with backend.frame_estimator() as estimate:
        summary = run_live(
            frames, predictor, estimate, backend.layout, emit,
            pace_fps=fps if (is_file and realtime) else None,
            on_frame=display.show if display is not None else None,
        )
    if display is not None:
        display.close()
    if json_output:
        sys.stdout.write(json.dumps({"summary": summary.to_dict()}) + "\n")
    else:
        typer.echo(f"{summary.frames} frames, {summary.dropped} dropped, {summary.fps:.1f} fps", err=True)


class _Display:
    """An OpenCV window with the skeleton and the latest top-k bars (drawn by the video renderer)."""

    def __init__(self, predictor) -> None:
        import cv2

        self.cv2 = cv2
        self.predictor = predictor
        self.latest = None
        try:
            cv2.namedWindow("unihar", cv2.WINDOW_NORMAL)
        except cv2.error:
            raise InputError("cannot open a window here (no display): use --headless") from None

    def show(self, index: int, frame: np.ndarray, keypoints: np.ndarray | None) -> None:
        from unihar.data.pose import get_pose_backend
        from unihar.inference.pipeline import ActionScore, WindowPrediction
        from unihar.inference.render import draw_frame

        window = None
        if self.latest is not None:
            scores = [ActionScore(i, label, p) for i, label, p in self.latest.topk]
            window = WindowPrediction(0, 0, self.latest.probs, scores)
        layout = get_pose_backend("mediapipe").layout
        drawn = draw_frame(frame, keypoints, layout, window, detected=keypoints is not None)
        self.cv2.imshow("unihar", self.cv2.cvtColor(drawn, self.cv2.COLOR_RGB2BGR))
        if self.cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            raise KeyboardInterrupt

    def close(self) -> None:
        self.cv2.destroyAllWindows()


def register(app: typer.Typer) -> None:
    """Add the ``stream`` command to the ``unihar`` app."""
    app.command("stream")(stream)
