"""``unihar serve``: the HTTP API and the web page, on one process.

    unihar serve                                   # bundled default model, http://127.0.0.1:8000
    unihar serve --weights m97j/uni-har --port 9000
    unihar serve --backend onnxruntime --weights model.onnx   # from `unihar export`
    curl -F file=@clip.mp4 http://127.0.0.1:8000/v1/predict

The web page is at ``/``, the API documentation at ``/docs``. Listening on anything other than
127.0.0.1 (e.g. ``--host 0.0.0.0``) makes the server reachable from other machines. Logs, the access
log included (one line per request), go to stderr.
"""

from __future__ import annotations

import copy
from typing import Any

import typer

from unihar.errors import ConfigError


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", "-p", min=0, max=65535, help="TCP port."),
    weights: str | None = typer.Option(
        None,
        "--weights",
        "-w",
        help="Model folder or Hugging Face Hub id (e.g. m97j/uni-har). Default: the bundled model.",
    ),
    backend: str = typer.Option(
        "torch",
        "--backend",
        help="torch (a model folder / Hub id) or onnxruntime (an .onnx file from `unihar export`).",
    ),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:N or mps (default: cuda if available)."),
    pose_backend: str = typer.Option(
        "blazepose", "--pose-backend", help="blazepose (several people) or mediapipe (legacy, one person)."
    ),
    max_people: int = typer.Option(
        6, "--max-people", min=1, help="Most people followed at once in a video; 1 = one person."
    ),
    max_upload_mb: float = typer.Option(
        200.0, "--max-upload-mb", min=0.001, help="Largest video upload accepted, in MB (413 beyond)."
    ),
    max_json_mb: float = typer.Option(
        20.0, "--max-json-mb", min=0.001, help="Largest JSON body accepted, in MB (413 beyond)."
    ),
    max_seconds: float = typer.Option(
        120.0, "--max-seconds", min=0.1, help="Longest clip accepted, in seconds (422 beyond)."
    ),
    workers: int = typer.Option(
        2, "--workers", min=1, help="Threads classifying keypoint (JSON) requests; videos are analysed one at a time."
    ),
    max_pending: int = typer.Option(
        16,
        "--max-pending",
        min=0,
        help="Video (and JSON) jobs that may wait for a worker; beyond that, 503 with Retry-After. A waiting video "
        "holds only its upload on disk: at most (1 + N) x --max-upload-mb in all.",
    ),
) -> None:
    """Serve the model over HTTP: JSON API (/v1/predict) and a web page (/)."""
    try:
        import uvicorn

        from unihar.serving.app import create_app
    except ImportError as exc:
        raise ConfigError(f"unihar serve needs FastAPI and uvicorn: pip install 'unihar[serve]' ({exc})") from None

    from unihar.data.pose import get_pose_backend
    from unihar.loading import check_backend
    from unihar.recognizer import Recognizer
    from unihar.serving.server import uvicorn_options
    from unihar.serving.service import ServeSettings

    # Check everything the user gave before loading the model.
    backend = check_backend(backend, weights)
    settings = ServeSettings(
        max_upload_bytes=int(max_upload_mb * 1e6),
        max_json_bytes=int(max_json_mb * 1e6),
        max_seconds=max_seconds,
        workers=workers,
        max_pending=max_pending,
    )
    pose = get_pose_backend(pose_backend, max_people=max_people)
    if not pose.needs_video:
        raise ConfigError(
            f"--pose-backend: the server estimates poses from videos; {pose_backend!r} only imports keypoint files"
        )
    recognizer = Recognizer(weights, backend=backend, device=device, pose_backend=pose, max_people=max_people)
    with (
        pose.frame_estimator()
    ):  # load the pose models once now: their runtime's start-up lines come before the server's
        pass
    app = create_app(recognizer, settings)
    typer.echo(f"Uni-HAR: web page at http://{host}:{port}/ , API docs at http://{host}:{port}/docs", err=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=True,
        log_config=log_config(),
        **uvicorn_options(settings),
    )


def log_config() -> dict[str, Any]:
    """uvicorn's logging, with its access log on stderr (uvicorn sends it to stdout) and Uni-HAR's own errors too."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    config["loggers"]["unihar"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to the ``unihar`` app."""
    app.command("serve")(serve)
