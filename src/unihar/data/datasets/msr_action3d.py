"""MSR Action3D (Li, Zhang & Liu, CVPRW 2010): 20 actions by 10 subjects facing a depth camera; 567
sequences of 20 joints estimated from the depth maps.

Format: ``aAA_sSS_eEE_skeleton.txt``, four numbers per line (u, v, depth, confidence), one line per joint
and 20 lines per frame: u and v are pixels of the 320x240 depth image, depth is in units of 4 mm, the
confidence is in [0, 1]. Joints in the dataset's own order (layout ``msr_action3d``). ``PATH`` is the
folder holding the files (or a folder above it, such as ``skeleton-2d``'s parent).

The joints are back-projected to metric 3D with the pinhole model the dataset README gives (focal
285 px, principal point (160, 120), Z = 4 mm x depth). The depth image is mirrored (the right shoulder
is at the larger u in 99.6 % of the files, subjects facing the camera), so x is negated to give a true camera-space
skeleton like the Kinect datasets'; the recording camera (``camera``) therefore shows the depth image
flipped left-right.

Protocol: cross-subject on all 20 classes, odd subjects (1 3 5 7 9: 292 files) train, even subjects
(275 files) test. ``msr-action3d@as1:PATH`` (``as2``, ``as3``) keeps only that 8-class subset.

Missing joints: the integer-overflow sentinel ``v = 2147480000`` (85 entries on wrists and hands) and
the 432 all-zero frames (``a13_s09_e02`` is all zeros: it stays, as a sequence with nothing visible, so
the counts match the protocol). Other joints keep the dataset's confidence (0 for 27 % of joints, mostly
the neck, spine, hip centre and feet the estimator fills in).

Frame rate: 15 fps, as the dataset paper states ("about 15 frames per second"); peak hand speeds in
throw/punch/wave/clap against UTD-MHAD's 30 Hz data agree (16-20 fps).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from unihar.data.camera import Camera, back_project
from unihar.data.datasets.base import SkeletonDataset
from unihar.data.datasets.formats import check_format_split
from unihar.data.datasets.readers import check_variant, read_numbers
from unihar.data.layouts import get_layout
from unihar.errors import InputError

__all__ = ["load_msr_action3d", "MSR_ACTION3D_CLASSES", "MSR_ACTION3D_FPS", "MSR_SUBSETS", "MSR_CAMERA"]

MSR_ACTION3D_CLASSES = (
    "high_arm_wave",
    "horizontal_arm_wave",
    "hammer",
    "hand_catch",
    "forward_punch",
    "high_throw",
    "draw_x",
    "draw_tick",
    "draw_circle",
    "hand_clap",
    "two_hand_wave",
    "side_boxing",
    "bend",
    "forward_kick",
    "side_kick",
    "jogging",
    "tennis_swing",
    "tennis_serve",
    "golf_swing",
    "pick_up_and_throw",
)
# Action numbers (1-based) of the three 8-class subsets of Li et al. 2010.
MSR_SUBSETS = {
    "as1": (2, 3, 5, 6, 10, 13, 18, 20),
    "as2": (1, 4, 7, 8, 9, 11, 12, 14),
    "as3": (6, 14, 15, 16, 17, 18, 19, 20),
}
MSR_ACTION3D_FPS = 15.0
MSR_CAMERA = Camera(focal=285.0, center=(160.0, 120.0))
DEPTH_UNIT_M = 0.004
_SENTINEL = 1e6  # v = 2147480000 is an overflow, not a row; no real coordinate comes near
_FILE = re.compile(r"^a(\d+)_s(\d+)_e(\d+)_skeleton$")
_NAME = "msr-action3d"


def _files(path: Path) -> list[Path]:
    for candidate in (path, path / "skeleton-2d"):
        files = sorted(candidate.glob("a*_s*_e*_skeleton.txt"))
        if files:
            return files
    raise InputError(f"{_NAME}: expected aAA_sSS_eEE_skeleton.txt files in {path} (or {path / 'skeleton-2d'})")


def read_msr_file(f: Path) -> np.ndarray:
    """One sequence as metric 3D joints ``(frames, 20, 4)``: x, y, z (camera axes) and confidence."""
    rows = read_numbers(f, _NAME, 4, "u v depth confidence, one line per joint")
    if rows.shape[0] % 20:
        raise InputError(f"{_NAME}: {f} has {rows.shape[0]} joint lines, not a multiple of 20 (20 joints per frame)")
    frames = rows.reshape(-1, 20, 4)
    u, v, depth, conf = np.moveaxis(frames, -1, 0)
    missing = (frames == 0).all(axis=(1, 2))[:, None] | (np.abs(v) > _SENTINEL) | (depth <= 0)
    xyz = back_project(np.stack([u, v], axis=-1), depth * DEPTH_UNIT_M, MSR_CAMERA.focal, MSR_CAMERA.center)
    xyz[..., 0] *= -1.0  # un-mirror the depth image
    points = np.concatenate([xyz, np.clip(conf, 0.0, 1.0)[..., None]], axis=-1)
    points[missing] = 0.0
    return points.astype(np.float32)


def load_msr_action3d(path: str | Path, split: str = "train", variant: str | None = None) -> SkeletonDataset:
    """Load one cross-subject split as 3D skeletons (``dims=3``, layout ``msr_action3d``, 15 fps)."""
    check_format_split(_NAME, split)
    subset = check_variant(_NAME, variant, ["all", *MSR_SUBSETS], "all", "action subset")
    actions = tuple(range(1, 21)) if subset == "all" else MSR_SUBSETS[subset]
    path = Path(path)
    if not path.exists():
        raise InputError(f"{_NAME}: folder not found: {path}")
    wanted_parity = 1 if split == "train" else 0
    sequences, labels, names = [], [], []
    for f in _files(path):
        match = _FILE.match(f.stem)
        if match is None:  # the glob also takes names such as a01_s01_eX_skeleton.txt
            raise InputError(f"{_NAME}: unexpected file name {f.name} in {f.parent}; expected aAA_sSS_eEE_skeleton.txt")
        action, subject = int(match.group(1)), int(match.group(2))
        if not 1 <= action <= 20:
            raise InputError(f"{_NAME}: {f} names action a{action:02d}; expected a01-a20")
        if subject % 2 != wanted_parity or action not in actions:
            continue
        sequences.append(read_msr_file(f))
        labels.append(actions.index(action))
        names.append(f.stem.removesuffix("_skeleton"))
    if not sequences:
        raise InputError(f"{_NAME}: no {split} files ({'odd' if wanted_parity else 'even'} subjects) in {path}")
    return SkeletonDataset(
        sequences,
        np.asarray(labels),
        [MSR_ACTION3D_CLASSES[a - 1] for a in actions],
        get_layout("msr_action3d"),
        fps=MSR_ACTION3D_FPS,
        names=names,
        name=f"{_NAME}/{split}",
        dims=3,
        camera=MSR_CAMERA,
    )
