"""Dataset loaders, named on the command line as ``FORMAT:PATH`` (or ``FORMAT@VARIANT:PATH``).

=================  ==========================================================================
``penn-action``    Penn Action ``labels/*.mat`` (13 joints, official train/test)
``mpose``          MPOSE2021 arrays as the ``mpose`` package writes them (splits 1-3)
``haa500``         HAA500 ``video/<class>/<class>_NNN.mp4``; poses extracted once and cached
``skeleton-npz``   your own keypoints: ``DIR/dataset.json`` + ``DIR/{train,test}/*.npz``
``sensor-npz``     your own keypoints + a wearable sensor (``imu``) per file (docs/sensors.md)
``video-folder``   your own videos: ``DIR/<class>/*.mp4``; poses extracted once and cached
``nw-ucla``        NW-UCLA Kinect skeletons (3D); cross-view: views 1+2 train, view 3 test
``ut-kinect``      UTKinect-Action3D (3D); cross-subject, the first half-subject split
``msr-action3d``   MSR Action3D (back-projected to 3D); cross-subject, odd train / even test
``mall-cctv``      shopping-mall CCTV OpenPose tracks (2D); test = videos 1 and 10
``sbu``            SBU Kinect Interaction (3D, the actor); official 5 folds, fold 1 tested
``ur-fall``        UR Fall MoveNet poses (2D); test = every third sequence; fall moment marked
``utd-mhad``       UTD-MHAD Kinect skeletons (3D) + wrist/thigh inertial sensor; cross-subject (here: test = subject 7)
=================  ==========================================================================

The protocol of each is in docs/datasets.md. ``VARIANTS`` lists the formats that take a protocol
variant after ``@`` (``sbu@3:PATH`` tests on SBU's fold 3).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from unihar.data.datasets.base import SkeletonDataset, sequence_windows, window_spans
from unihar.errors import InputError

__all__ = [
    "FORMATS",
    "VARIANTS",
    "SPLITS",
    "check_split",
    "parse_data_spec",
    "split_variant",
    "load_dataset",
    "SkeletonDataset",
    "sequence_windows",
    "window_spans",
]


def _penn(path: str, split: str, **kw) -> SkeletonDataset:
    from unihar.data.datasets.penn_action import load_penn_action

    return load_penn_action(path, split)


def _mpose(path: str, split: str, **kw) -> SkeletonDataset:
    from unihar.data.datasets.mpose import load_mpose

    return load_mpose(path, split)


def _npz(path: str, split: str, **kw) -> SkeletonDataset:
    from unihar.data.datasets.skeleton_npz import load_skeleton_npz

    return load_skeleton_npz(path, split)


def _sensor_npz(path: str, split: str, **kw) -> SkeletonDataset:
    from unihar.data.datasets.sensor_npz import load_sensor_npz

    return load_sensor_npz(path, split)


def _haa500(path: str, split: str, **kw) -> SkeletonDataset:
    from unihar.data.datasets.videos import load_haa500

    return load_haa500(path, split, **kw)


def _video_folder(path: str, split: str, **kw) -> SkeletonDataset:
    from unihar.data.datasets.videos import load_video_folder

    return load_video_folder(path, split, **kw)


def _nw_ucla(path: str, split: str, variant: str | None = None, **kw) -> SkeletonDataset:
    from unihar.data.datasets.nw_ucla import load_nw_ucla

    return load_nw_ucla(path, split, variant)


def _ut_kinect(path: str, split: str, variant: str | None = None, **kw) -> SkeletonDataset:
    from unihar.data.datasets.ut_kinect import load_ut_kinect

    return load_ut_kinect(path, split, variant)


def _msr_action3d(path: str, split: str, variant: str | None = None, **kw) -> SkeletonDataset:
    from unihar.data.datasets.msr_action3d import load_msr_action3d

    return load_msr_action3d(path, split, variant)


def _mall_cctv(path: str, split: str, variant: str | None = None, **kw) -> SkeletonDataset:
    from unihar.data.datasets.mall_cctv import load_mall_cctv

    return load_mall_cctv(path, split, variant)


def _sbu(path: str, split: str, variant: str | None = None, **kw) -> SkeletonDataset:
    from unihar.data.datasets.sbu import load_sbu

    return load_sbu(path, split, variant)


def _ur_fall(path: str, split: str, variant: str | None = None, **kw) -> SkeletonDataset:
    from unihar.data.datasets.ur_fall import load_ur_fall

    return load_ur_fall(path, split, variant)


def _utd_mhad(path: str, split: str, variant: str | None = None, **kw) -> SkeletonDataset:
    from unihar.data.datasets.utd_mhad import load_utd_mhad

    return load_utd_mhad(path, split, variant)


FORMATS: dict[str, Callable[..., SkeletonDataset]] = {
    "penn-action": _penn,
    "mpose": _mpose,
    "haa500": _haa500,
    "skeleton-npz": _npz,
    "sensor-npz": _sensor_npz,
    "video-folder": _video_folder,
    "nw-ucla": _nw_ucla,
    "ut-kinect": _ut_kinect,
    "msr-action3d": _msr_action3d,
    "mall-cctv": _mall_cctv,
    "sbu": _sbu,
    "ur-fall": _ur_fall,
    "utd-mhad": _utd_mhad,
}

# Formats that take a protocol variant (``FORMAT@VARIANT:PATH``), and what it selects.
VARIANTS: dict[str, str] = {
    "nw-ucla": "the test view, 1-3 (default 3)",
    "ut-kinect": "the half-subject split, 1-10 (default 1)",
    "msr-action3d": "the action subset: all, as1, as2, as3 (default all)",
    "mall-cctv": "the test videos joined by '+', e.g. 9+10 (default 1+10)",
    "sbu": "the test fold, 1-5 (default 1)",
    "ur-fall": "the test fold: sequence number % 3, 0-2 (default 0)",
    "utd-mhad": "the test subject (default: subjects 2, 4, 6, 8 when present, else 7)",
}


# The splits of each format (``--split``, ``train.eval_split``). haa500's val split is clip 16 of each
# class; the folder formats read ``DIR/val`` when the user made one; the others define train and test.
SPLITS: dict[str, tuple[str, ...]] = {
    name: ("train", "val", "test")
    if name in ("haa500", "skeleton-npz", "sensor-npz", "video-folder")
    else ("train", "test")
    for name in FORMATS
}


def check_split(spec: str, split: str) -> str:
    """``split`` if the format of ``spec`` has it, else one error listing the splits it has: checked
    before anything is loaded (a model, poses from video)."""
    name = split_variant(parse_data_spec(spec)[0])[0]
    if split not in SPLITS[name]:
        raise InputError(f"{name}: split must be one of {list(SPLITS[name])}, got {split!r}")
    return split


def parse_data_spec(spec: str) -> tuple[str, Path]:
    """Split ``FORMAT:PATH`` into its parts, checking the format name. A protocol variant stays on the
    format (``"sbu@3"``); :func:`split_variant` takes it off."""
    fmt, sep, path = spec.partition(":")
    if not sep or not path:
        raise InputError(f"--data must be FORMAT:PATH with FORMAT one of {list(FORMATS)}, got {spec!r}")
    fmt = fmt.strip().lower()
    name, variant = split_variant(fmt)
    if name not in FORMATS:
        raise InputError(f"unknown data format {name!r} in {spec!r}; expected one of {list(FORMATS)}")
    if variant is not None and name not in VARIANTS:
        raise InputError(
            f"data format {name!r} takes no variant (got {fmt!r}); formats with variants: {list(VARIANTS)}"
        )
    if variant is not None and not variant:
        raise InputError(f"empty variant after '@' in {spec!r}; {name}@VARIANT selects {VARIANTS[name]}")
    return fmt, Path(path).expanduser()


def split_variant(fmt: str) -> tuple[str, str | None]:
    """``"sbu@3"`` -> ``("sbu", "3")``; ``"sbu"`` -> ``("sbu", None)``."""
    name, sep, variant = fmt.partition("@")
    return name, (variant if sep else None)


def load_dataset(spec: str, split: str = "train", **options) -> SkeletonDataset:
    """Load one split of the dataset named by ``FORMAT:PATH``.

    ``options`` go to loaders that extract poses from video (``workers``, ``pose_backend``).
    """
    fmt, path = parse_data_spec(spec)
    check_split(spec, split)
    if not path.exists():
        raise InputError(f"{fmt}: path not found: {path}")
    name, variant = split_variant(fmt)
    if name in VARIANTS:
        options["variant"] = variant
    return FORMATS[name](str(path), split, **options)
