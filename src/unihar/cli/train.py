"""``unihar train``: train a model on skeleton data and write a ``save_pretrained`` folder.

Also the body of ``python -m unihar.train`` (for ``torchrun --nproc_per_node N -m unihar.train ...``).
"""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

DATA_HELP = "Training data as FORMAT:PATH; FORMAT is penn-action, mpose, haa500, skeleton-npz or video-folder."


def train_command(
    data: str = typer.Option(..., "--data", help=DATA_HELP),
    out: Path = typer.Option(..., "--out", help="Output folder (config.json, model.safetensors, labels, metrics.csv)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Run config JSON: sections model, preprocessing, train, augment."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Override train.epochs."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Override train.batch_size (per process)."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from this save_pretrained folder (stage 2 / fine-tuning)."),
    freeze_pose: bool = typer.Option(False, "--freeze-pose", help="Keep the pose encoder fixed (with --init)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Override train.seed."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint.pt."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the files of a non-empty OUT."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes extracting poses from videos not cached yet (haa500, video-folder)."),
) -> None:
    """Train a model (stage 1: pose only; stage 2: --init a stage-1 folder) and evaluate it on the held-out split."""
    from unihar.training.trainer import RunConfig, train

    run = RunConfig.from_file(config) if config is not None else RunConfig()
    if seed is not None:
        run.train.seed = seed
    if freeze_pose:
        if init is None:
            from unihar.errors import InputError

            raise InputError("--freeze-pose needs --init (a pretrained pose encoder to keep)")
        run.train.freeze_pose = True
    command = " ".join(shlex.quote(a) for a in ["unihar", "train", *sys.argv[1:]]) if "train" not in sys.argv[1:2] else \
        " ".join(shlex.quote(a) for a in ["unihar", *sys.argv[1:]])
    metrics = train(data, out, run, init=init, resume=resume, overwrite=overwrite, epochs=epochs,
                    batch_size=batch_size, progress=progress, command=command, pose_workers=workers)
    if metrics and int(os.environ.get("RANK", "0")) == 0:
        typer.echo(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)


def main() -> None:
    """``python -m unihar.train``: the same options, as a one-command program."""
    from unihar.errors import UniHARError

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(train_command)
    try:
        app()
    except UniHARError as err:
        if os.environ.get("UNIHAR_DEBUG"):
            raise
        typer.echo(f"error: {'; '.join(l.strip() for l in str(err).splitlines() if l.strip())}", err=True)
        sys.exit(2)
