"""``unihar export``: a model as one self-contained ONNX file (config and labels in its metadata).

    unihar export --out model.onnx                         # the bundled model
    unihar export --weights m97j/uni-har --out uni-har.onnx
    unihar export --out model-int8.onnx --quantize         # dynamic int8 weights
    unihar predict clip.mp4 --backend onnxruntime --weights model.onnx   # run it with onnxruntime

The graph takes whole windows (``pose`` [+ ``images``] -> ``logits``, for any onnxruntime user) and
also exposes each encoder and the head, which ``unihar predict`` / ``stream`` run so that every clip
is encoded once (see :mod:`unihar.inference.onnx_backend`).
"""

from __future__ import annotations

from pathlib import Path

import typer

from unihar.errors import InputError


def export(
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the .onnx file."),
    weights: str | None = typer.Option(
        None, "--weights", "-w", help="Model folder or Hub id (default: the bundled model)."
    ),
    export_format: str = typer.Option("onnx", "--format", help="Export format (onnx)."),
    quantize: bool = typer.Option(False, "--quantize", help="Dynamic int8 quantization of the weights (onnxruntime)."),
    pose_only: bool = typer.Option(False, "--pose-only", help="Export only the pose path of a multimodal model."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
) -> None:
    """Export a model for onnxruntime: dynamic batch size, clip count and clip length; config and labels inside."""
    from unihar.recognizer import Recognizer, check_export_path

    if export_format != "onnx":
        raise InputError(f"--format: only 'onnx' is supported, got {export_format!r}")
    check_export_path(out, overwrite, flag="--out", replace="--overwrite")
    recognizer = Recognizer(weights, backend="torch", device="cpu")  # the export traces on the CPU
    path = recognizer.export(out, quantize=quantize, pose_only=pose_only, overwrite=overwrite)
    size = path.stat().st_size / 1e6
    typer.echo(f"wrote {path} ({size:.1f} MB{', int8 weights' if quantize else ''})")


def register(app: typer.Typer) -> None:
    """Add the ``export`` command to the ``unihar`` app."""
    app.command("export")(export)
