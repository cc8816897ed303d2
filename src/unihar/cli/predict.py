"""``unihar predict VIDEO``: the actions in a video, as a table, as JSON, or drawn onto the video.

    unihar predict clip.mp4                          # bundled default model, top-5 table
    unihar predict clip.mp4 --weights m97j/uni-har   # the published Hub checkpoint
    unihar predict clip.mp4 --json                   # one JSON object on stdout
    unihar predict clip.mp4 --output annotated.mp4   # skeleton + top-3 bars on every frame
    unihar predict clip.mp4 --pose-backend openpose-json --poses clip_json/
    unihar predict clip.mp4 --backend onnxruntime --weights model.onnx   # from `unihar export`
    unihar predict clip.mp4 --weights runs/fused --imu watch.csv   # + the wearer's inertial sensor
    unihar predict videos/ --out results.jsonl       # every video under videos/: one JSON line each
    unihar predict "clips/**/*.mp4" --out results.jsonl --workers 4
    unihar predict videos/ --out results.jsonl --ray auto   # on a Ray cluster

With ``--out`` (batch mode, :mod:`unihar.inference.batch`) each video's line is the object ``--json``
prints, or ``{"source", "error"}`` for a video that failed; the run goes on, and exits with code 1
if any failed. Running the same command again skips the videos already in the file.

Bad input (missing or corrupt video, nobody in view, an existing --output without --overwrite, ...)
ends with one ``error: ...`` line on stderr and exit code 2 (see :func:`unihar.cli.main`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from unihar.errors import InputError

if TYPE_CHECKING:
    from rich.console import Console

    from unihar.data.signals import SignalRecording
    from unihar.inference.results import VideoPrediction
    from unihar.recognizer import Recognizer


def predict(
    videos: list[Path] = typer.Argument(
        ...,
        help="Video file (mp4, avi, mkv, webm, mov, ...) or folder of images; or, with an importing "
        "--pose-backend and no --poses, the keypoint file/folder itself. With --out: any number of videos, "
        "folders (searched recursively) and quoted glob patterns.",
        show_default=False,
    ),
    weights: str | None = typer.Option(
        None,
        "--weights",
        "-w",
        help="Model folder or Hugging Face Hub id (e.g. m97j/uni-har). Default: the bundled model.",
    ),
    topk: int = typer.Option(5, "--topk", "-k", help="How many actions to list."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object on stdout instead of a table."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the video with the skeleton and the top-3 actions drawn on it."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --output if it exists."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:N or mps (default: cuda if available)."),
    pose_backend: str = typer.Option(
        "blazepose",
        "--pose-backend",
        help="blazepose (estimate from the video; several people), mediapipe (legacy, one person), "
        "openpose-json or array (import).",
    ),
    max_people: int = typer.Option(
        6, "--max-people", help="Most people followed at once; 1 = one person through the whole video."
    ),
    poses: Path | None = typer.Option(
        None,
        "--poses",
        help="Keypoints for openpose-json (folder) or array (.npy/.npz) when VIDEO is the matching video.",
    ),
    fps: float | None = typer.Option(
        None, "--fps", help="Frame rate of an image folder or of keypoints without a video (default 30)."
    ),
    backend: str = typer.Option(
        "torch",
        "--backend",
        help="torch (a model folder / Hub id) or onnxruntime (an .onnx file from `unihar export`).",
    ),
    imu: Path | None = typer.Option(
        None,
        "--imu",
        help="The wearer's inertial sensor recording (.npz or .csv, see docs/sensors.md), on the video's "
        "timeline; for models with an imu branch. Followed person: one (as --max-people 1), or --wearer.",
    ),
    wearer: int | None = typer.Option(
        None,
        "--wearer",
        min=0,
        help="With --imu and several people followed: the track id of the person wearing the sensor.",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Batch mode: append one JSON line per video to this file; run again to continue where it stopped.",
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=0,
        show_default=False,
        help="Batch mode: processes decoding videos and estimating poses (default: one per CPU core, at most 8; "
        "0: all in this process). With --ray: pose actors (default: one per CPU of the cluster).",
    ),
    ray_address: str | None = typer.Option(
        None,
        "--ray",
        metavar="ADDRESS",
        help="Batch mode on a Ray cluster: auto (the cluster this machine is in), HOST:PORT, ray://HOST:10001, "
        "or local.",
    ),
) -> None:
    """Recognise the actions in a video, or in many (--out)."""
    if wearer is not None and imu is None:
        raise InputError("--wearer names who wears the sensor: give the recording with --imu")
    if out is not None:
        if imu is not None:
            raise InputError("--imu is one video's sensor recording; batch mode (--out) takes none")
        _predict_batch(
            videos,
            out,
            weights=weights,
            topk=topk,
            json_output=json_output,
            output=output,
            device=device,
            pose_backend=pose_backend,
            max_people=max_people,
            poses=poses,
            fps=fps,
            backend=backend,
            workers=workers,
            ray_address=ray_address,
        )
        return
    if len(videos) > 1:
        raise InputError(
            f"{len(videos)} videos given: to predict several, add --out results.jsonl (one JSON line per video)"
        )
    if workers is not None or ray_address is not None:
        raise InputError("--workers and --ray are for batch mode: add --out results.jsonl")
    _predict_one(
        videos[0],
        weights=weights,
        topk=topk,
        json_output=json_output,
        output=output,
        overwrite=overwrite,
        device=device,
        pose_backend=pose_backend,
        max_people=max_people,
        poses=poses,
        fps=fps,
        backend=backend,
        imu=imu,
        wearer=wearer,
    )


def _predict_one(
    video: Path,
    *,
    weights: str | None,
    topk: int,
    json_output: bool,
    output: Path | None,
    overwrite: bool,
    device: str | None,
    pose_backend: str,
    max_people: int,
    poses: Path | None,
    fps: float | None,
    backend: str,
    imu: Path | None,
    wearer: int | None,
) -> None:
    """One video: checked, recognised (:class:`unihar.Recognizer`), drawn if asked, and printed."""
    from rich.console import Console

    from unihar.recognizer import Recognizer

    pose = _check_one(video, backend, weights, pose_backend, max_people, poses, fps, output, overwrite)
    recognizer = Recognizer(
        weights, backend=backend, device=device, pose_backend=pose, max_people=max_people, topk=topk
    )
    signals = recognizer.pipeline.load_signals({"imu": imu}) if imu is not None else None  # checked before decoding
    console = Console(stderr=True)
    result = _run_with_progress(recognizer, video, console, json_output, output, overwrite, poses, fps, signals, wearer)
    if json_output:
        sys.stdout.write(result.to_json() + "\n")
        sys.stdout.flush()
        return
    _print_table(result, output)
    _note_missing_sensor(result, recognizer.config.modalities, recognizer.config.signal_modalities, console)


def _check_one(
    video: Path,
    backend: str,
    weights: str | None,
    pose_backend: str,
    max_people: int,
    poses: Path | None,
    fps: float | None,
    output: Path | None,
    overwrite: bool,
) -> Any:
    """Check everything the user gave before loading a model or decoding a frame; the pose backend."""
    from unihar.data.pose import get_pose_backend
    from unihar.data.video import open_video
    from unihar.inference.render import check_output_path
    from unihar.loading import check_backend

    check_backend(backend, weights)
    pose = get_pose_backend(pose_backend, max_people=max_people)
    if fps is not None and not fps > 0:
        raise InputError(f"--fps: expected a positive frame rate, got {fps}")
    if output is not None:
        check_output_path(output, overwrite)
        if not pose.needs_video and poses is None:
            raise InputError("--output needs the video: pass it as VIDEO and the keypoints with --poses")
    if pose.needs_video and poses is None:
        _suggest_batch_mode(video)
    if pose.needs_video or poses is not None:
        open_video(video, fps=fps)  # raises VideoError for a missing / unreadable video
    elif not Path(video).exists():
        raise InputError(f"keypoints not found: {str(video)!r} does not exist")
    return pose


def _run_with_progress(
    recognizer: Recognizer,
    video: Path,
    console: Console,
    json_output: bool,
    output: Path | None,
    overwrite: bool,
    poses: Path | None,
    fps: float | None,
    signals: dict[str, SignalRecording] | None,
    wearer: int | None,
) -> VideoPrediction:
    """The prediction (and the annotated video), with progress bars on a terminal; the VideoPrediction."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from unihar.inference.render import render_video

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=json_output or not console.is_terminal,
    ) as bar:
        task = bar.add_task("poses", total=None)

        def advance(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        result = recognizer.predict(video, poses=poses, fps=fps, progress=advance, signals=signals, wearer=wearer)
        if output is not None:
            render_task = bar.add_task("writing video", total=result.frames)
            render_video(
                video,
                result,
                output,
                overwrite=overwrite,
                fps=fps,
                progress=lambda done, total: bar.update(render_task, completed=done, total=total),
            )
    return result


def _note_missing_sensor(result: VideoPrediction, modalities: list[str], sensors: list[str], console: Console) -> None:
    """Say how many of the main person's windows a sensor the model reads did not cover (classified without it)."""
    windows = result.windows
    for name in sensors:
        without = sum(name not in (w.modalities or ()) for w in windows)
        if without:
            console.print(
                f"note: {without} of {len(windows)} windows of person {result.main.id} had no {name} data (no "
                "recording, or it "
                f"does not cover them); they were classified from {', '.join(m for m in modalities if m != name)}",
                soft_wrap=True,
                highlight=False,
                markup=False,
            )


def _suggest_batch_mode(video: Path) -> None:
    """A glob pattern or a folder of videos (not of images) given without --out: say how to predict them all."""
    from unihar.data.video import GLOB_CHARACTERS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

    if not video.exists() and GLOB_CHARACTERS & set(str(video)):
        raise InputError(
            f"{str(video)!r} looks like a glob pattern: to predict every video it matches, add --out results.jsonl"
        )
    if video.is_dir():
        names = [p.suffix.lower() for p in video.rglob("*")]
        if not any(n in IMAGE_EXTENSIONS for n in names) and any(n in VIDEO_EXTENSIONS for n in names):
            raise InputError(f"{str(video)!r} is a folder of videos: to predict each of them, add --out results.jsonl")


def _predict_batch(
    specs: list[Path],
    out: Path,
    *,
    weights: str | None,
    topk: int,
    json_output: bool,
    output: Path | None,
    device: str | None,
    pose_backend: str,
    max_people: int,
    poses: Path | None,
    fps: float | None,
    backend: str,
    workers: int | None,
    ray_address: str | None,
) -> None:
    """``--out``: every video found, one JSON line each (see :mod:`unihar.inference.batch`)."""
    import os

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from unihar.inference.batch import BatchSettings, BatchSummary, find_videos, predict_videos

    for flag, value in (("--output", output), ("--poses", poses)):
        if value is not None:
            raise InputError(f"{flag} is for one video; with --out every video gets a JSON line in {str(out)!r}")
    if json_output:
        raise InputError(
            f"--json prints one video's JSON on stdout; with --out each video's JSON is a line of {str(out)!r}"
        )
    settings = BatchSettings(weights, backend.strip().lower(), pose_backend, max_people, device, topk, fps)
    settings.check()
    videos = find_videos(specs)
    if workers is None:
        workers = 0 if ray_address is not None else min(os.cpu_count() or 1, 8)

    console = Console(stderr=True)
    with Progress(
        TextColumn("videos"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task("videos", total=None, failed=0, rate="")

        def advance(summary: BatchSummary) -> None:
            rate = f"{summary.videos_per_minute:.1f}/min" if summary.finished else ""
            bar.update(
                task,
                completed=summary.finished,
                total=summary.total - summary.skipped,
                failed=summary.failed,
                rate=rate,
            )

        summary = predict_videos(videos, out, settings, workers=workers, ray_address=ray_address, progress=advance)

    if summary.dropped_tail:
        console.print(
            f"note: removed an incomplete last line from {out} (a run was stopped while writing it); that video is "
            "predicted again",
            soft_wrap=True,
            highlight=False,
            markup=False,
        )
    report = (
        f"{summary.total} video{'s' if summary.total != 1 else ''}: {summary.done} predicted, {summary.failed} failed"
    )
    if summary.skipped:
        report += f", {summary.skipped} already in {out}"
    if summary.finished:
        report += f" ({summary.videos_per_minute:.1f} videos/min)"
    typer.echo(report + f"; results in {out}")
    if summary.failed:
        raise typer.Exit(1)


def _print_table(result: VideoPrediction, output: Path | None) -> None:
    from rich.console import Console

    from unihar.inference.results import print_prediction

    console = Console()
    print_prediction(result, console)
    if output is not None:
        console.print(f"annotated video written to {output}", soft_wrap=True, highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    """Add the ``predict`` command to the ``unihar`` app."""
    app.command("predict")(predict)
