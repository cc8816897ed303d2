"""The dataset formats ``--data FORMAT:PATH`` names: where each loader is, its splits, its variant.

One table (:data:`FORMATS`), read by :func:`unihar.data.datasets.load_dataset` before anything is
loaded and by each loader called on its own, so the two cannot disagree on a format's splits. A loader's
module is imported when its format is loaded, not when the table is read.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from unihar.data.datasets.base import SkeletonDataset
from unihar.errors import InputError

__all__ = ["DatasetFormat", "FORMATS", "check_format_split"]


@dataclass(frozen=True)
class DatasetFormat:
    """A format's loader (``module:function`` under :mod:`unihar.data.datasets`) and what it takes.

    ``variant``: what ``FORMAT@VARIANT`` selects (None: the format takes no variant; the loader then
    takes no ``variant`` argument). ``options``: whether :func:`~unihar.data.datasets.load_dataset`'s
    options (``workers``, ``pose_backend``) reach the loader: the loaders that extract poses from video.
    """

    loader: str
    splits: tuple[str, ...] = ("train", "test")
    variant: str | None = None
    options: bool = False

    def load(self, path: str, split: str, variant: str | None = None, **options: Any) -> SkeletonDataset:
        module, _, function = self.loader.partition(":")
        loader = getattr(importlib.import_module(f"unihar.data.datasets.{module}"), function)
        args = (path, split) if self.variant is None else (path, split, variant)
        dataset: SkeletonDataset = loader(*args, **(options if self.options else {}))
        return dataset


# haa500's val split is clip 16 of each class; the folder formats read DIR/val when the user made one.
_WITH_VAL = ("train", "val", "test")

FORMATS: dict[str, DatasetFormat] = {
    "penn-action": DatasetFormat("penn_action:load_penn_action"),
    "mpose": DatasetFormat("mpose:load_mpose"),
    "haa500": DatasetFormat("videos:load_haa500", _WITH_VAL, options=True),
    "skeleton-npz": DatasetFormat("skeleton_npz:load_skeleton_npz", _WITH_VAL),
    "sensor-npz": DatasetFormat("sensor_npz:load_sensor_npz", _WITH_VAL),
    "video-folder": DatasetFormat("videos:load_video_folder", _WITH_VAL, options=True),
    "nw-ucla": DatasetFormat("nw_ucla:load_nw_ucla", variant="the test view, 1-3 (default 3)"),
    "ut-kinect": DatasetFormat("ut_kinect:load_ut_kinect", variant="the half-subject split, 1-10 (default 1)"),
    "msr-action3d": DatasetFormat(
        "msr_action3d:load_msr_action3d", variant="the action subset: all, as1, as2, as3 (default all)"
    ),
    "mall-cctv": DatasetFormat(
        "mall_cctv:load_mall_cctv", variant="the test videos joined by '+', e.g. 9+10 (default 1+10)"
    ),
    "sbu": DatasetFormat("sbu:load_sbu", variant="the test fold, 1-5 (default 1)"),
    "ur-fall": DatasetFormat("ur_fall:load_ur_fall", variant="the test fold: sequence number % 3, 0-2 (default 0)"),
    "utd-mhad": DatasetFormat(
        "utd_mhad:load_utd_mhad", variant="the test subject (default: subjects 2, 4, 6, 8 when present, else 7)"
    ),
}


def check_format_split(name: str, split: str) -> str:
    """``split`` if the format ``name`` has it, else one error listing the splits it has."""
    splits = FORMATS[name].splits
    if split not in splits:
        raise InputError(f"{name}: split must be one of {list(splits)}, got {split!r}")
    return split
