"""Your own skeleton data: ``skeleton-npz:DIR``.

::

    DIR/dataset.json   {"joints": ["nose", "left_shoulder", ...], "classes": ["wave", "clap", ...],
                        "fps": 30}                   # fps optional: without it a file is one window
    DIR/train/*.npz    each with "keypoints" (T, J, 3) float (x, y, confidence in [0, 1]) and "label" int
    DIR/test/*.npz     (and optionally DIR/val/*.npz)

Joint names follow Uni-HAR's naming (COCO names in lower_snake_case, plus ``neck``, ``mid_hip``,
``head`` and the BODY_25 / MediaPipe extras); they are mapped onto the model's layout by name, and
names the model cannot use are dropped with a warning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from unihar.data.datasets.base import SkeletonDataset
from unihar.data.layouts import get_layout
from unihar.errors import InputError
from unihar.jsonfile import read_json

__all__ = ["load_skeleton_npz", "read_dataset_json"]


def read_dataset_json(root: Path) -> dict[str, Any]:
    """``DIR/dataset.json``, checked: joint and class names, and the frame rate when it has one."""
    meta_file = root / "dataset.json"
    if not meta_file.is_file():
        raise InputError(f"skeleton-npz: expected {meta_file} with {{'joints': [...], 'classes': [...]}}")
    meta = read_json(meta_file, "skeleton-npz:", InputError, kind=None)
    for key in ("joints", "classes"):
        value = meta.get(key) if isinstance(meta, dict) else None
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise InputError(f"skeleton-npz: {meta_file} needs '{key}' as a non-empty list of names, got {value!r}")
    fps = meta.get("fps")
    if fps is not None and not (isinstance(fps, (int, float)) and fps > 0):
        raise InputError(f"skeleton-npz: 'fps' in {meta_file} must be a positive number, got {fps!r}")
    checked: dict[str, Any] = meta  # an object: the checks above raise for anything else
    return checked


def load_skeleton_npz(path: str | Path, split: str = "train") -> SkeletonDataset:
    """Load ``DIR/<split>/*.npz`` (sorted by file name) in the joint layout ``dataset.json`` declares."""
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"skeleton-npz: folder not found: {root}")
    meta = read_dataset_json(root)
    layout = get_layout(meta["joints"])
    files = sorted((root / split).glob("*.npz"))
    if not files:
        raise InputError(f"skeleton-npz: no .npz files in {root / split}")
    sequences, labels = [], []
    for f in files:
        try:
            with np.load(f, allow_pickle=False) as z:
                kpts, label = z["keypoints"], z["label"]
        except KeyError as err:
            raise InputError(f"skeleton-npz: {f} lacks the array {err}; expected 'keypoints' and 'label'") from None
        except (OSError, ValueError) as err:
            raise InputError(f"skeleton-npz: cannot read {f}: {err}") from None
        if kpts.ndim != 3 or kpts.shape[1:] != (layout.num_joints, 3) or kpts.shape[0] < 1:
            raise InputError(
                f"skeleton-npz: {f}: 'keypoints' must be (frames, {layout.num_joints}, 3) "
                f"({layout.num_joints} joints in dataset.json), got {kpts.shape}"
            )
        if label.size != 1 or label.dtype.kind not in "iu":
            raise InputError(f"skeleton-npz: {f}: 'label' must be one integer, got {label!r}")
        sequences.append(kpts.astype(np.float32))
        labels.append(int(label.reshape(())))
    return SkeletonDataset(
        sequences,
        np.asarray(labels),
        list(meta["classes"]),
        layout,
        fps=meta.get("fps"),
        names=[f.stem for f in files],
        name=f"skeleton-npz/{split}",
    )
