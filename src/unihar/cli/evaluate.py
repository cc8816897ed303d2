"""``unihar eval``: score a model on a labelled dataset (top-1, top-5, mean class accuracy, calibration
error, per class, confusion matrix). Sequences are cut into windows exactly as a video is at inference."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

DATA_HELP = (
    "Evaluation data as FORMAT:PATH (FORMAT@VARIANT:PATH for a protocol variant): penn-action, mpose, haa500, "
    "skeleton-npz, video-folder, nw-ucla, ut-kinect, msr-action3d, mall-cctv, sbu, ur-fall, utd-mhad. Class names "
    "are matched to the model's through the taxonomy."
)


def eval_command(
    data: str = typer.Option(..., "--data", help=DATA_HELP),
    split: str = typer.Option(
        "test",
        "--split",
        help="Which split to score: train or test; val for haa500, and for skeleton-npz, sensor-npz "
        "and video-folder data with a val/ folder.",
    ),
    weights: str | None = typer.Option(
        None, "--weights", help="save_pretrained folder or Hub repo id; default: the bundled model."
    ),
    backend: str = typer.Option(
        "torch",
        "--backend",
        help="torch (a model folder / Hub id) or onnxruntime (an .onnx file from `unihar export`).",
    ),
    as_json: bool = typer.Option(
        False, "--json", help='Print only {"n", "top1", "top5", "mean_class_acc", "ece"} as one JSON object.'
    ),
    closed_set: bool = typer.Option(
        False,
        "--closed-set",
        help="Predict only among the dataset's own classes (the dataset's standard protocol, "
        "for a model that knows more classes).",
    ),
    plot: Path | None = typer.Option(
        None, "--plot", help="Confusion-matrix PNG (default: confusion_matrix.png; none with --json unless given)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --plot file."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Windows per forward pass."),
    workers: int = typer.Option(
        1, "--workers", min=1, help="Processes extracting poses from videos not cached yet (haa500, video-folder)."
    ),
    skip_failed_videos: bool = typer.Option(
        False,
        "--skip-failed-videos",
        help="Leave out (and list) videos whose poses cannot be extracted, instead of stopping.",
    ),
) -> None:
    """Evaluate a model on a dataset split."""
    from unihar.data.datasets import check_split, load_dataset, parse_data_spec, split_variant
    from unihar.errors import InputError
    from unihar.loading import check_backend, load_model
    from unihar.training.evaluation import evaluate, plot_confusion

    backend = check_backend(backend, weights)
    check_split(data, split)  # before the model loads: the format alone says which splits it has
    if plot is None and not as_json:
        plot = Path("confusion_matrix.png")
    if plot is not None and plot.exists() and not overwrite:
        raise InputError(f"{plot} already exists; pass --overwrite to replace it or choose another --plot path")
    model = load_model(weights, backend)
    options = {}
    if split_variant(parse_data_spec(data)[0])[0] in ("haa500", "video-folder"):
        options = {"workers": workers, "skip_failed": skip_failed_videos}
    dataset = load_dataset(data, split, **options)
    result = evaluate(model, dataset, batch_size=batch_size, closed_set=closed_set)
    metrics = result.metrics()
    if plot is not None:
        plot_confusion(result, plot, title=f"{data} [{split}]  top-1 {metrics['top1']:.3f}")
    if as_json:
        sys.stdout.write(json.dumps(metrics) + "\n")
        return

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{data} [{split}]{' (closed set)' if closed_set else ''}")
    for col in ("class", "n", "accuracy", "most confused with"):
        table.add_column(col, justify="left" if col in ("class", "most confused with") else "right")
    cm = result.confusion
    per_class = result.per_class_accuracy
    for i, name in enumerate(result.classes):
        support = int(cm[i].sum())
        if support == 0:
            continue
        off = cm[i].copy()
        if i < result.num_classes:
            off[i] = 0
        worst = f"{result.classes[int(off.argmax())]} ({int(off.max())})" if off.max() > 0 else "-"
        table.add_row(name, str(support), f"{per_class[i]:.3f}", worst)
    console = Console()
    console.print(table)
    line = (
        f"n={metrics['n']}  top-1={metrics['top1']:.4f}  top-5={metrics['top5']:.4f}  "
        f"mean class accuracy={metrics['mean_class_acc']:.4f}  ECE={metrics['ece']:.4f}"
    )
    if "negatives" in metrics:
        line += f"  negatives={metrics['negatives']} (false alarms {metrics['negative_false_alarm']:.4f})"
    console.print(line)
    if plot is not None:
        console.print(f"confusion matrix: {plot}")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
