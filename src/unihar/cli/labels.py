"""``unihar labels``: the classes a model predicts, one per line (or a JSON list)."""

from __future__ import annotations

import json
import sys

import typer


def labels_command(
    weights: str | None = typer.Option(
        None, "--weights", help="save_pretrained folder, Hub repo id or .onnx file; default: the bundled model."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON list of the class names, in the model's order."),
) -> None:
    """Print a model's vocabulary (the class names it can answer), in the order of its outputs."""
    from unihar.loading import load_model

    backend = "onnxruntime" if weights is not None and weights.lower().endswith(".onnx") else "torch"
    labels = list(load_model(weights, backend=backend).labels)
    if as_json:
        sys.stdout.write(json.dumps(labels) + "\n")
    else:
        sys.stdout.write("".join(f"{name}\n" for name in labels))


def register(app: typer.Typer) -> None:
    app.command("labels")(labels_command)
