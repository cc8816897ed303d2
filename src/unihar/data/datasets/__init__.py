"""Dataset loaders, named on the command line as ``FORMAT:PATH``.

=================  ==========================================================================
``penn-action``    Penn Action ``labels/*.mat`` (13 joints, official train/test)
``mpose``          MPOSE2021 arrays as the ``mpose`` package writes them (splits 1-3)
``haa500``         HAA500 ``video/<class>/<class>_NNN.mp4``; poses extracted once and cached
``skeleton-npz``   your own keypoints: ``DIR/dataset.json`` + ``DIR/{train,test}/*.npz``
``video-folder``   your own videos: ``DIR/<class>/*.mp4``; poses extracted once and cached
=================  ==========================================================================
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from unihar.data.datasets.base import SkeletonDataset, WindowDataset, crop_for_training, sequence_windows, window_spans
from unihar.errors import InputError

__all__ = ["FORMATS", "parse_data_spec", "load_dataset", "SkeletonDataset", "WindowDataset", "sequence_windows",
           "crop_for_training", "window_spans"]


def _penn(path: str, split: str, **kw) -> SkeletonDataset:
    from unihar.data.datasets.penn_action import load_penn_action

    return load_penn_action(path, split)


def _mpose(path: str, split: str, **kw) -> SkeletonDataset:
    from unihar.data.datasets.mpose import load_mpose

    return load_mpose(path, split)


def _npz(path: str, split: str, **kw) -> SkeletonDataset:
    from unihar.data.datasets.skeleton_npz import load_skeleton_npz

    return load_skeleton_npz(path, split)


def _haa500(path: str, split: str, **kw) -> SkeletonDataset:
    from unihar.data.datasets.videos import load_haa500

    return load_haa500(path, split, **kw)


def _video_folder(path: str, split: str, **kw) -> SkeletonDataset:
    from unihar.data.datasets.videos import load_video_folder

    return load_video_folder(path, split, **kw)


FORMATS: dict[str, Callable[..., SkeletonDataset]] = {
    "penn-action": _penn,
    "mpose": _mpose,
    "haa500": _haa500,
    "skeleton-npz": _npz,
    "video-folder": _video_folder,
}


def parse_data_spec(spec: str) -> tuple[str, Path]:
    """Split ``FORMAT:PATH`` into its parts, checking the format name."""
    fmt, sep, path = spec.partition(":")
    if not sep or not path:
        raise InputError(f"--data must be FORMAT:PATH with FORMAT one of {list(FORMATS)}, got {spec!r}")
    fmt = fmt.strip().lower()
    if fmt not in FORMATS:
        raise InputError(f"unknown data format {fmt!r} in {spec!r}; expected one of {list(FORMATS)}")
    return fmt, Path(path).expanduser()


def load_dataset(spec: str, split: str = "train", **options) -> SkeletonDataset:
    """Load one split of the dataset named by ``FORMAT:PATH``.

    ``options`` go to loaders that extract poses from video (``workers``, ``pose_backend``).
    """
    fmt, path = parse_data_spec(spec)
    if not path.exists():
        raise InputError(f"{fmt}: path not found: {path}")
    return FORMATS[fmt](str(path), split, **options)
