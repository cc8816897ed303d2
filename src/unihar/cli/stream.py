"""``unihar stream SOURCE``: live recognition from a webcam, an RTSP/HTTP stream or a file read as if live.

    unihar stream 0                                   # webcam 0, window with everyone's skeleton and action
    unihar stream rtsp://camera/stream --headless --json
    unihar stream clip.mp4 --headless --json          # a file, delivered at its own frame rate
    unihar stream clip.mp4 --json --as-fast-as-possible   # every frame, as fast as the machine goes
    unihar stream 0 --backend onnxruntime --weights model.onnx   # from `unihar export`

With ``--json``, one JSON object per line: ``{"frame", "t", "person", "topk"}`` per person and
prediction (``frame``: the last source frame of the window), then
``{"summary": {"frames", "dropped", "lost", "reconnects", "fps"}}``.
A live source drops frames when the machine falls behind (counted in the summary); a file read with
``--as-fast-as-possible`` handles every frame and gives ``unihar predict``'s windows.

A camera or stream that stalls or disconnects is opened again (``--reconnect-attempts``,
``--reconnect-timeout``, ``--stall-timeout``); the frames that went by meanwhile are ``lost`` and the
frame numbers move on by them. When reconnecting gives up, the stream ends with its summary (exit 0);
a source that never answers is an error. q (or Esc) in the window ends the stream the same way.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from unihar.errors import InputError

if TYPE_CHECKING:
    from unihar.data.layouts import KeypointLayout
    from unihar.inference.streaming import FrameUpdate, StreamPrediction
    from unihar.recognizer import StreamEnd


def stream(
    source: str = typer.Argument(..., help="Webcam index (0), RTSP/HTTP URL, or a video file."),
    weights: str | None = typer.Option(
        None, "--weights", "-w", help="Model folder or Hub id (default: the bundled model)."
    ),
    model_backend: str = typer.Option(
        "torch",
        "--backend",
        help="torch (a model folder / Hub id) or onnxruntime (an .onnx file from `unihar export`).",
    ),
    headless: bool = typer.Option(False, "--headless", help="No window: print predictions instead."),
    json_output: bool = typer.Option(False, "--json", help="One JSON object per line on stdout."),
    stride: int | None = typer.Option(
        None, "--stride", help="Frames between predictions (default: the model's stride)."
    ),
    topk: int = typer.Option(5, "--topk", "-k", help="Actions per prediction."),
    max_people: int = typer.Option(6, "--max-people", help="Most people followed at once."),
    pose_backend: str = typer.Option(
        "blazepose", "--pose-backend", help="blazepose (several people) or mediapipe (legacy, one person)."
    ),
    image_stride: int = typer.Option(
        1, "--image-stride", help="Multimodal models: image features for every k-th sampled frame."
    ),
    image_size: int | None = typer.Option(
        None, "--image-size", help="Multimodal models: ResNet input size (default: the model's)."
    ),
    realtime: bool = typer.Option(
        True, "--realtime/--as-fast-as-possible", help="Read a file at its own frame rate, as a camera delivers it."
    ),
    reconnect_attempts: int = typer.Option(
        5,
        "--reconnect-attempts",
        help="A camera or stream that stalls or disconnects is opened again up to this many times in a row, after "
        "0.5 s, then twice as long each time up to 4 s (0: the stream ends instead).",
    ),
    reconnect_timeout: float = typer.Option(
        30.0, "--reconnect-timeout", help="Seconds an outage may last before reconnecting gives up and the stream ends."
    ),
    stall_timeout: float = typer.Option(
        5.0, "--stall-timeout", help="Seconds without data before a network stream counts as lost."
    ),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:N or mps."),
) -> None:
    """Recognise everyone's actions live, emitting each person's top-k every STRIDE frames."""
    from unihar.data.pose import get_pose_backend
    from unihar.inference.streaming import Reconnect, StreamPrediction
    from unihar.loading import check_backend
    from unihar.recognizer import Recognizer, check_stream_source

    # Check everything the user gave before loading the model or opening the source.
    model_backend = check_backend(model_backend, weights)
    if stride is not None and stride < 1:
        raise InputError(f"--stride: expected a positive number of frames, got {stride}")
    if reconnect_attempts < 0:
        raise InputError(f"--reconnect-attempts: expected 0 or more, got {reconnect_attempts}")
    for option, seconds in (("--reconnect-timeout", reconnect_timeout), ("--stall-timeout", stall_timeout)):
        if not 0 < seconds < float("inf"):
            raise InputError(f"{option}: expected a positive number of seconds, got {seconds:g}")
    reconnect = Reconnect(reconnect_attempts, reconnect_timeout, stall_timeout)
    check_stream_source(source)
    backend = get_pose_backend(pose_backend, max_people=max_people)
    if not backend.needs_video:
        raise InputError(
            f"--pose-backend {pose_backend!r} imports keypoint files; a stream needs an estimator (blazepose)"
        )
    recognizer = Recognizer(
        weights, backend=model_backend, device=device, pose_backend=backend, max_people=max_people, topk=topk
    )
    events = recognizer.stream(
        source, stride=stride, realtime=realtime, reconnect=reconnect, image_stride=image_stride, image_size=image_size
    )
    display = None
    end: StreamEnd | None = None
    try:  # whatever fails from here on (the window, the run), the source is closed
        if not headless:
            display = _Display(backend.layout, on_quit=events.close)
            events.on_frame = display.show
        for event in events:
            if json_output:
                sys.stdout.write(json.dumps(event.to_dict()) + "\n")
                sys.stdout.flush()
            if not isinstance(event, StreamPrediction):
                end = event
                continue
            if display is not None:
                display.latest[event.person] = event
            if headless and not json_output:
                best = ", ".join(f"{s.label} {s.prob:.2f}" for s in event.topk[:3])
                typer.echo(f"{event.t:8.2f}s  frame {event.frame:6d}  person {event.person:3d}  {best}")
    finally:
        events.close()
        if display is not None:
            display.close()
    assert end is not None  # a stream's last event is its StreamEnd (or it raised)
    summary = end.summary
    if not json_output:
        typer.echo(
            f"{summary.frames} frames, {summary.dropped} dropped, {summary.lost} lost in {summary.reconnects} "
            f"reconnection{'s' if summary.reconnects != 1 else ''}, {summary.fps:.1f} fps",
            err=True,
        )
    if end.gave_up:
        typer.echo(f"warning: {end.gave_up}", err=True)


class _Display:
    """An OpenCV window with everyone's skeleton, id and latest action (drawn by the video renderer)."""

    def __init__(self, layout: KeypointLayout, on_quit: Callable[[], None]) -> None:
        import cv2

        self.cv2 = cv2
        self.layout = layout
        self.on_quit = on_quit  # ends the stream as if the source had: the last windows and the summary follow
        self.latest: dict[int, StreamPrediction] = {}  # person -> their latest StreamPrediction
        try:
            cv2.namedWindow("unihar", cv2.WINDOW_NORMAL)
        except cv2.error:
            raise InputError("cannot open a window here (no display): use --headless") from None

    def show(self, update: FrameUpdate) -> None:
        from unihar.inference.render import PersonOverlay, draw_frame

        assert update.frame is not None  # with an on_frame, the stream sends the decoded frames
        people = []
        for person, keypoints in update.people.items():
            prediction = self.latest.get(person)
            people.append(PersonOverlay(person, keypoints, prediction.topk[0] if prediction else None))
        drawn = draw_frame(update.frame, people, self.layout)
        self.cv2.imshow("unihar", self.cv2.cvtColor(drawn, self.cv2.COLOR_RGB2BGR))
        if (self.cv2.waitKey(1) & 0xFF) in (ord("q"), 27):  # q or Esc
            self.on_quit()

    def close(self) -> None:
        self.cv2.destroyAllWindows()


def register(app: typer.Typer) -> None:
    """Add the ``stream`` command to the ``unihar`` app."""
    app.command("stream")(stream)
