"""``unihar train``: train a model on skeleton data (one dataset or a mixture) and write a
``save_pretrained`` folder.

Also the body of ``python -m unihar.training`` (for ``torchrun --nproc_per_node N -m unihar.training ...``).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import typer

DATA_HELP = (
    "Training data as FORMAT:PATH (FORMAT@VARIANT:PATH for a protocol variant); repeat for a mixture, whose "
    "classes are merged through the taxonomy. FORMAT: penn-action, mpose, haa500, skeleton-npz, video-folder, "
    "nw-ucla, ut-kinect, msr-action3d, mall-cctv, sbu, ur-fall, utd-mhad, sensor-npz. Default: the run config's "
    "'data' list."
)


def train_command(
    data: list[str] | None = typer.Option(None, "--data", help=DATA_HELP),
    out: Path = typer.Option(..., "--out", help="Output folder (config.json, model.safetensors, labels, metrics.csv)."),
    config: str | None = typer.Option(
        None,
        "--config",
        help="Run config JSON (sections data, model, preprocessing, train, augment), or the name of a "
        "recipe shipped with the package (e.g. universal). Without it, sizes and schedule are chosen from the data.",
    ),
    data_root: Path | None = typer.Option(
        None, "--data-root", help="Folder the relative dataset paths of a recipe are in."
    ),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Override train.epochs."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Override train.batch_size (per process)."),
    init: Path | None = typer.Option(
        None, "--init", help="Start from this save_pretrained folder (stage 2 / fine-tuning)."
    ),
    freeze_pose: bool = typer.Option(False, "--freeze-pose", help="Keep the pose encoder fixed (with --init)."),
    seed: int | None = typer.Option(None, "--seed", help="Override train.seed."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint.pt."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the files of a non-empty OUT."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    workers: int = typer.Option(
        1, "--workers", min=1, help="Processes extracting poses from videos not cached yet (haa500, video-folder)."
    ),
    skip_failed_videos: bool = typer.Option(
        False,
        "--skip-failed-videos",
        help="Leave out (and list) videos whose poses cannot be extracted, instead of stopping.",
    ),
    modalities: str | None = typer.Option(
        None,
        "--modalities",
        help="The model's branches, joined by ',': skeleton, imu (a wearable inertial sensor; "
        "data: utd-mhad, sensor-npz), rgb. E.g. skeleton,imu | imu | skeleton. Default: the run config's (skeleton).",
    ),
) -> None:
    """Train a model (stage 1: pose only; stage 2: --init a stage-1 folder) and evaluate it on the held-out split."""
    from unihar.errors import InputError
    from unihar.training.trainer import RunConfig, train

    run = RunConfig.from_file(config) if config is not None else RunConfig()
    if seed is not None:
        run.train.seed = seed
    if freeze_pose:
        if init is None:
            raise InputError("--freeze-pose needs --init (a pretrained pose encoder to keep)")
        run.train.freeze_pose = True
    args = sys.argv[1:]
    command = " ".join(shlex.quote(a) for a in ["unihar", *([] if args[:1] == ["train"] else ["train"]), *args])
    metrics = train(
        data or None,
        out,
        run,
        init=init,
        resume=resume,
        overwrite=overwrite,
        epochs=epochs,
        batch_size=batch_size,
        progress=progress,
        command=command,
        pose_workers=workers,
        data_root=data_root,
        skip_failed_videos=skip_failed_videos,
        modalities=modalities,
    )
    if metrics and int(os.environ.get("RANK", "0")) == 0:
        per_dataset = metrics if all(isinstance(v, dict) for v in metrics.values()) else {"": metrics}
        for name, values in per_dataset.items():
            line = " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
            typer.echo(f"{name}: {line}" if name else line)


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)


def main() -> None:
    """``python -m unihar.training``: the same options, as a one-command program."""
    from unihar.errors import UniHARError, one_line

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(train_command)
    try:
        app()
    except UniHARError as err:
        if os.environ.get("UNIHAR_DEBUG"):
            raise
        typer.echo(f"error: {one_line(err)}", err=True)
        sys.exit(2)
