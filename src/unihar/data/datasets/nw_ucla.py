"""NW-UCLA Multiview Action 3D (Wang et al., CVPR 2014): 10 everyday actions by 10 subjects, each seen at
once by three Kinect v1 sensors; 1484 skeleton sequences (20 joints, 3D, metres).

Format: ``all_sqe/aAA_sSS_eEE_vVV.json`` (action, subject, repetition, view), each
``{"file_name", "label", "skeletons": [[[x, y, z] x 20] x T]}`` in Kinect v1 skeleton space and
order (layout ``kinect_v1``). ``PATH`` is the dataset folder or ``all_sqe`` itself.

Protocol: cross-view, views 1 and 2 train (1020 files), view 3 test (464 files). ``nw-ucla@V:PATH``
tests on view ``V`` instead (and trains on the other two).

Pitfalls handled: ``label`` is not the action number (a07 and a10 do not exist, so a08 is label 7 ...
a12 is label 10); the class comes from the file name and the JSON label is checked against it. The
tracker's (0, 0, 0) joints are missing. Single-frame sequences are kept.

Frame rate: not stated by the source. About 15 fps, estimated from the data: in "walk around" a step
takes 1/0.125 = 8 frames and the hip moves 0.066 m per frame, i.e. 1.9 steps/s and 1.0 m/s at 15 fps
(normal walking); peak hand speed in "throw" against UTD-MHAD's 30 Hz throws gives at most ~20 fps.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from unihar.data.camera import KINECT_V1
from unihar.data.datasets.base import SkeletonDataset
from unihar.data.datasets.formats import check_format_split
from unihar.data.datasets.readers import check_variant, kinect_joints
from unihar.data.layouts import get_layout
from unihar.errors import InputError

__all__ = ["load_nw_ucla", "NW_UCLA_CLASSES", "NW_UCLA_FPS"]

# (action code in the file name, class name); the JSON label is the 1-based position here.
_ACTIONS = (
    (1, "pick_up_with_one_hand"),
    (2, "pick_up_with_two_hands"),
    (3, "drop_trash"),
    (4, "walk_around"),
    (5, "sit_down"),
    (6, "stand_up"),
    (8, "donning"),
    (9, "doffing"),
    (11, "throw"),
    (12, "carry"),
)
NW_UCLA_CLASSES = tuple(name for _, name in _ACTIONS)
NW_UCLA_FPS = 15.0
_FILE = re.compile(r"^a(\d+)_s(\d+)_e(\d+)_v(\d+)$")
_NAME = "nw-ucla"


def _json_dir(path: Path) -> Path:
    for candidate in (path / "all_sqe", path):
        if candidate.is_dir() and any(candidate.glob("*.json")):
            return candidate
    raise InputError(
        f"{_NAME}: expected a folder with all_sqe/aAA_sSS_eEE_vVV.json files (or all_sqe itself), got {path}"
    )


def _read(f: Path, label_by_action: dict[int, int]) -> tuple[np.ndarray, int]:
    match = _FILE.match(f.stem)
    assert match is not None  # the files were picked by this pattern (load_nw_ucla)
    action = int(match.group(1))
    if action not in label_by_action:
        raise InputError(f"{_NAME}: {f} names action a{action:02d}; expected one of {sorted(label_by_action)}")
    try:
        record = json.loads(f.read_text(encoding="utf-8"))
        xyz = np.asarray(record["skeletons"], dtype=np.float64)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise InputError(f"{_NAME}: cannot read {f}: expected JSON with 'skeletons' (frames x 20 x 3): {err}") from None
    if xyz.ndim != 3 or xyz.shape[1:] != (20, 3) or xyz.shape[0] < 1:
        raise InputError(
            f"{_NAME}: {f}: 'skeletons' has shape {xyz.shape}, expected (frames, 20, 3) (20 Kinect joints, x y z)"
        )
    label = label_by_action[action]
    if "label" in record and record["label"] != label + 1:
        raise InputError(
            f"{_NAME}: {f}: label {record['label']} does not match its action a{action:02d} (label {label + 1})"
        )
    return kinect_joints(xyz), label


def load_nw_ucla(path: str | Path, split: str = "train", variant: str | None = None) -> SkeletonDataset:
    """Load one cross-view split as 3D skeletons (``dims=3``, layout ``kinect_v1``, 15 fps)."""
    check_format_split(_NAME, split)
    test_view = int(check_variant(_NAME, variant, ("1", "2", "3"), "3", "test view"))
    path = Path(path)
    if not path.exists():
        raise InputError(f"{_NAME}: folder not found: {path}")
    folder = _json_dir(path)
    label_by_action = {action: i for i, (action, _) in enumerate(_ACTIONS)}
    files = []
    for f in sorted(folder.glob("*.json")):
        match = _FILE.match(f.stem)
        if match is None:
            raise InputError(f"{_NAME}: unexpected file name {f.name} in {folder}; expected aAA_sSS_eEE_vVV.json")
        if (int(match.group(4)) == test_view) == (split == "test"):
            files.append(f)
    if not files:
        views = f"view {test_view}" if split == "test" else f"views other than {test_view}"
        raise InputError(f"{_NAME}: no {split} files ({views}, *_vVV.json) in {folder}")
    sequences, labels = zip(*(_read(f, label_by_action) for f in files))
    return SkeletonDataset(
        list(sequences),
        np.asarray(labels),
        list(NW_UCLA_CLASSES),
        get_layout("kinect_v1"),
        fps=NW_UCLA_FPS,
        names=[f.stem for f in files],
        name=f"{_NAME}/{split}",
        dims=3,
        camera=KINECT_V1,
    )
