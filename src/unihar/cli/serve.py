"""``unihar serve``: the HTTP API and the web page, on one process.

    unihar serve                                   # bundled default model, http://127.0.0.1:8000
    unihar serve --weights m97j/uni-har --port 9000
    curl -F file=@clip.mp4 http://127.0.0.1:8000/v1/predict

The web page is at ``/``, the API documentation at ``/docs``. Listening on anything other than
127.0.0.1 (e.g. ``--host 0.0.0.0``) makes the server reachable from other machines.
"""
from __future__ import annotations

from typing import Optional

import typer

from unihar.errors import ConfigError


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", "-p", min=0, max=65535, help="TCP port."),
    weights: Optional[str] = typer.Option(
        None, "--weights", "-w", help="Model folder or Hugging Face Hub id (e.g. m97j/uni-har). Default: the bundled model."
    ),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:N or mps (default: cuda if available)."),
    max_upload_mb: float = typer.Option(200.0, "--max-upload-mb", min=0.001, help="Largest upload accepted, in MB (413 beyond)."),
    max_seconds: float = typer.Option(120.0, "--max-seconds", min=0.1, help="Longest clip accepted, in seconds (422 beyond)."),
    workers: int = typer.Option(2, "--workers", min=1, help="Threads classifying keypoint (JSON) requests; videos are analysed one at a time."),
) -> None:
    """Serve the model over HTTP: JSON API (/v1/predict) and a web page (/)."""
    try:
        import uvicorn

        from unihar.serving.app import create_app
    except ImportError as exc:
        raise ConfigError(f"unihar serve needs FastAPI and uvicorn: pip install 'unihar[serve]' ({exc})") from None

    from unihar.loading import load_model
    from unihar.inference.pipeline import VideoPipeline
    from unihar.serving.service import ServeSettings

    settings = ServeSettings(
        max_upload_bytes=int(max_upload_mb * 1e6), max_seconds=max_seconds, workers=workers
    )
    model = load_model(weights)
    app = create_app(VideoPipeline(model, device=device), settings)
    typer.echo(f"Uni-HAR: web page at http://{host}:{port}/ , API docs at http://{host}:{port}/docs", err=True)
    uvicorn.run(app, host=host, port=port, log_level="info")


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to the ``unihar`` app."""
    app.command("serve")(serve)
