"""``unihar teach``: add new actions to a pose model from a few labelled clips each, keeping every
action it knew, and write the result as a model folder every other command loads."""

from __future__ import annotations

from pathlib import Path

import typer

DATA_HELP = (
    "Examples as FORMAT:PATH: video-folder:DIR (DIR/<action>/*.mp4, poses extracted once and cached), "
    "skeleton-npz:DIR, or any format `unihar train` reads (its training split). Repeat for several. Every "
    "class the model does not know becomes a new action."
)


def teach_command(
    data: list[str] = typer.Option(..., "--data", help=DATA_HELP),
    out: Path = typer.Option(..., "--out", help="Folder for the taught model (config.json, weights, labels, card)."),
    weights: str | None = typer.Option(
        None, "--weights", help="The model to teach (save_pretrained folder or Hub id); default: the bundled model."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the model files of a non-empty --out."),
    workers: int = typer.Option(
        1, "--workers", min=1, help="Processes extracting poses from videos not cached yet (video-folder)."
    ),
    skip_failed_videos: bool = typer.Option(
        False, "--skip-failed-videos", help="Leave out (and list) videos whose poses cannot be extracted."
    ),
) -> None:
    """Teach the model new actions from a few clips each (nothing it knew is forgotten)."""
    import warnings

    from unihar.data.datasets import parse_data_spec, split_variant
    from unihar.loading import check_backend
    from unihar.recognizer import Recognizer
    from unihar.teaching import check_teach_out

    check_backend("torch", weights)
    specs = [parse_data_spec(spec) for spec in data]  # a bad format fails before the model loads
    check_teach_out(out, overwrite, Path(weights) if weights is not None else None)
    options = {}
    if any(split_variant(fmt)[0] in ("haa500", "video-folder") for fmt, _ in specs):
        options = {"workers": workers, "skip_failed": skip_failed_videos}
    recognizer = Recognizer(weights, backend="torch", device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        taught = recognizer.teach(data, out=out, overwrite=overwrite, **options)
    for warning in caught:
        typer.echo(f"warning: {warning.message}", err=True)
    report = taught.last_teach_report
    assert report is not None  # set by Recognizer.teach
    typer.echo(report.summary())
    typer.echo(f"wrote {out} ({len(taught.labels)} actions); try: unihar predict VIDEO --weights {out}")


def register(app: typer.Typer) -> None:
    app.command("teach")(teach_command)
