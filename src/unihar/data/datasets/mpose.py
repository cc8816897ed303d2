"""MPOSE2021 (Mazzia et al., 2021): 30-frame 2D pose sequences of 20 actions, in the layout the
``mpose`` package writes: ``<cache>/<pose_extractor>/<split>/X_train.npy`` ``(N, 30, K, 3)`` (x, y,
confidence; K = 25 for OpenPose BODY_25, 17 for PoseNet's COCO order), ``y_train.npy``, ``X_test.npy``,
``y_test.npy``; splits ``1``, ``2`` and ``3``.

``PATH`` is the folder that holds the arrays (``.../openpose/1``) or the extractor folder above the
split folders (then split ``1`` is used). Each sequence is already one action instance, so it is one
model window (no frame rate).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unihar.data.datasets.base import SkeletonDataset
from unihar.data.datasets.formats import check_format_split
from unihar.data.layouts import get_layout
from unihar.errors import InputError

__all__ = ["load_mpose", "MPOSE_CLASSES"]

# Label order of the mpose package (config.yaml, DATASET.labels).
MPOSE_CLASSES = (
    "standing",
    "check-watch",
    "cross-arms",
    "scratch-head",
    "sit-down",
    "get-up",
    "turn",
    "walk",
    "wave1",
    "box",
    "kick",
    "point",
    "pick-up",
    "bend",
    "hands-clap",
    "wave2",
    "jog",
    "jump",
    "pjump",
    "run",
)
_LAYOUT_BY_K = {25: "body25", 17: "coco17"}


def _arrays_dir(path: Path) -> Path:
    if (path / "X_train.npy").is_file() or (path / "X_test.npy").is_file():
        return path
    for split in ("1", "2", "3"):
        if (path / split / "X_train.npy").is_file():
            return path / split
    raise InputError(f"mpose: expected X_train.npy / X_test.npy in {path} (or in {path}/1, /2, /3)")


def load_mpose(path: str | Path, split: str = "train") -> SkeletonDataset:
    """Load ``X_<split>.npy`` / ``y_<split>.npy`` (``split`` = ``"train"`` or ``"test"``)."""
    check_format_split("mpose", split)
    path = Path(path)
    if not path.exists():
        raise InputError(f"mpose: folder not found: {path}")
    folder = _arrays_dir(path)
    x_file, y_file = folder / f"X_{split}.npy", folder / f"y_{split}.npy"
    for f in (x_file, y_file):
        if not f.is_file():
            raise InputError(f"mpose: missing {f}")
    try:
        X = np.load(x_file, allow_pickle=False)
        y = np.load(y_file, allow_pickle=False)
    except ValueError as err:
        raise InputError(f"mpose: cannot read {x_file} / {y_file}: {err}") from None
    if X.ndim != 4 or X.shape[-1] != 3 or X.shape[2] not in _LAYOUT_BY_K:
        raise InputError(
            f"mpose: {x_file} must be (N, frames, K, 3) with K = 25 (OpenPose) or 17 (PoseNet), got {X.shape}"
        )
    y = np.ravel(y)
    if y.shape[0] != X.shape[0]:
        raise InputError(f"mpose: {x_file} has {X.shape[0]} sequences but {y_file} has {y.shape[0]} labels")
    if y.dtype.kind in "US":
        index = {name: i for i, name in enumerate(MPOSE_CLASSES)}
        unknown = sorted({str(v) for v in y} - set(index))
        if unknown:
            raise InputError(f"mpose: unknown labels {unknown[:5]} in {y_file}; expected {list(MPOSE_CLASSES)}")
        y = np.asarray([index[str(v)] for v in y])
    X = X.astype(np.float32)
    return SkeletonDataset(
        list(X),
        y.astype(np.int64),
        list(MPOSE_CLASSES),
        get_layout(_LAYOUT_BY_K[X.shape[2]]),
        fps=None,
        names=[f"{split}_{i}" for i in range(X.shape[0])],
        name=f"mpose/{split}",
    )
