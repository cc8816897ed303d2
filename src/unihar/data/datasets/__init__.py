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

from pathlib import Path
from typing import Any

from unihar.data.datasets.base import SkeletonDataset
from unihar.data.datasets.formats import FORMATS, check_format_split
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
]

# Views of the one table (unihar.data.datasets.formats.FORMATS): the formats that take a protocol
# variant (``FORMAT@VARIANT:PATH``) and what it selects, and the splits of each format (``--split``,
# ``train.eval_split``).
VARIANTS: dict[str, str] = {name: f.variant for name, f in FORMATS.items() if f.variant is not None}
SPLITS: dict[str, tuple[str, ...]] = {name: f.splits for name, f in FORMATS.items()}


def check_split(spec: str, split: str) -> str:
    """``split`` if the format of ``spec`` has it, else one error listing the splits it has: checked
    before anything is loaded (a model, poses from video)."""
    return check_format_split(split_variant(parse_data_spec(spec)[0])[0], split)


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


def load_dataset(spec: str, split: str = "train", **options: Any) -> SkeletonDataset:
    """Load one split of the dataset named by ``FORMAT:PATH``.

    ``options`` go to loaders that extract poses from video (``workers``, ``pose_backend``).
    """
    fmt, path = parse_data_spec(spec)
    check_split(spec, split)
    if not path.exists():
        raise InputError(f"{fmt}: path not found: {path}")
    name, variant = split_variant(fmt)
    return FORMATS[name].load(str(path), split, variant, **options)
