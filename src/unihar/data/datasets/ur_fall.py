"""UR Fall Detection (Kwolek & Kepski, 2014), camera-0 RGB frames (640x480, 30 fps) run through MoveNet
Thunder (alastairrr/fall_detector): 30 fall and 40 activities-of-daily-living sequences, 13 keypoints.

Format: ``fall/<i>/<j>.npy`` (i = 1-30) and ``not_fall/<i>/<j>.npy`` (i = 1-40), each a float array of 52
values = 13 keypoints x (x, y, x hip-centred, y); x, y are divided by the image width and height, (0, 0)
is a keypoint MoveNet scored below 0.2. Layout ``movenet13`` (COCO-17 without eyes and ears). ``PATH`` is
the folder holding ``fall`` and ``not_fall``.

Handled: ``j`` is sorted numerically (``10.npy`` after ``9.npy``); x, y become pixels (x 640, y 480:
they are normalised by different sizes); (0, 0) is missing (confidence 0, the others 1: the score is
not stored); the hip-centred copy is ignored. ``j.npy`` holds image frame max(j - 1, 1), so ``1.npy``
and ``2.npy`` both hold frame 1, ``1.npy`` with MoveNet's crop carried over from the previous sequence:
``1.npy`` is dropped, leaving frames 1..N-1 evenly spaced at 30 fps.

Split (the source defines none): by sequence, test = every third of each kind (fall-03, 06, ... 30 and
adl-03, 06, ... 39: 10 falls and 13 activities, 23 of 70 sequences, 33 %); train = the other 47. The
falls are interleaved so both sides see every kind of fall. ``ur-fall@1:PATH`` (``@2``) takes the
sequences with number % 3 == 1 (2) as test instead: the three together are a 3-fold cross-validation.

Fall sequences start standing and end lying. The loader marks the fall itself in ``events``: the
frame where the torso (mean of the visible shoulders and hips) moves down fastest in the image, after a
5-frame moving average (:func:`fall_moment`). On the data that frame lies inside the descent (between
10 % and 90 % of the torso's drop from its first to its last height) in 28 of 30 falls; in the other two
it is a second drop just after it. Activity sequences have no event. The label stays per sequence
(``fall`` / ``not_fall``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter1d

from unihar.data.datasets.base import SkeletonDataset
from unihar.data.datasets.formats import check_format_split
from unihar.data.datasets.readers import check_variant
from unihar.data.layouts import get_layout
from unihar.errors import InputError

__all__ = ["load_ur_fall", "UR_FALL_CLASSES", "UR_FALL_FPS", "IMAGE_SIZE", "fall_moment"]

UR_FALL_CLASSES = ("fall", "not_fall")
UR_FALL_FPS = 30.0
IMAGE_SIZE = (640, 480)
_PREFIX = {"fall": "fall", "not_fall": "adl"}
_TORSO = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")
_SMOOTH_FRAMES = 5
_NAME = "ur-fall"


def fall_moment(kpts: np.ndarray) -> int:
    """The frame of a ``(frames, 13, 3)`` pixel sequence where the torso drops fastest (image y grows)."""
    layout = get_layout("movenet13")
    torso = kpts[:, [layout.index(j) for j in _TORSO]]
    seen = torso[..., 2] > 0
    frames = np.flatnonzero(seen.any(axis=1))
    if len(frames) < 2:
        return 0
    height = (torso[..., 1] * seen).sum(axis=1)[frames] / seen.sum(axis=1)[frames]
    height = np.interp(np.arange(len(kpts)), frames, height)
    speed = np.gradient(uniform_filter1d(height, _SMOOTH_FRAMES, mode="nearest"))
    return int(np.argmax(speed))


def read_sequence(folder: Path) -> np.ndarray:
    """One sequence folder -> ``(frames, 13, 3)`` pixels + confidence, ``1.npy`` dropped (see the module)."""
    files = list(folder.glob("*.npy"))
    if not all(f.stem.isdigit() for f in files):
        raise InputError(f"{_NAME}: {folder} must hold only <j>.npy files with j = 1, 2, ...")
    files.sort(key=lambda f: int(f.stem))
    if [int(f.stem) for f in files] != list(range(1, len(files) + 1)):
        raise InputError(
            f"{_NAME}: {folder} must hold 1.npy ... N.npy without gaps, got {[f.name for f in files[:5]]}..."
        )
    if len(files) < 2:
        raise InputError(f"{_NAME}: {folder} has {len(files)} frame file(s); expected at least 2 (1.npy repeats 2.npy)")
    frames = []
    for f in files[1:]:
        try:
            values = np.load(f, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise InputError(f"{_NAME}: cannot read {f}: {err}") from None
        if values.size != 52:
            raise InputError(
                f"{_NAME}: {f} has {values.size} values, expected 52 (13 keypoints x (x, y, x centred, y))"
            )
        frames.append(values.reshape(13, 4)[:, :2])
    xy = np.stack(frames).astype(np.float64)
    missing = (xy == 0).all(axis=-1)
    kpts = np.concatenate([xy * IMAGE_SIZE, (~missing)[..., None]], axis=-1).astype(np.float32)
    kpts[missing] = 0.0
    return kpts


def load_ur_fall(path: str | Path, split: str = "train", variant: str | None = None) -> SkeletonDataset:
    """Load one split (2D pixels, layout ``movenet13``, 30 fps) with the fall moment in ``events``."""
    check_format_split(_NAME, split)
    residue = int(check_variant(_NAME, variant, ("0", "1", "2"), "0", "test fold (sequence number % 3)"))
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"{_NAME}: folder not found: {root}")
    sequences, labels, names, events = [], [], [], []
    for label, kind in enumerate(UR_FALL_CLASSES):
        kind_dir = root / kind
        if not kind_dir.is_dir():
            raise InputError(f"{_NAME}: expected {kind_dir} with one folder of <j>.npy per sequence")
        numbered = sorted((int(d.name), d) for d in kind_dir.iterdir() if d.is_dir() and d.name.isdigit())
        for number, folder in numbered:
            if (number % 3 == residue) != (split == "test"):
                continue
            kpts = read_sequence(folder)
            sequences.append(kpts)
            labels.append(label)
            names.append(f"{_PREFIX[kind]}-{number:02d}")
            events.append([fall_moment(kpts)] if kind == "fall" else [])
    if not sequences:
        raise InputError(
            f"{_NAME}: no {split} sequences (number % 3 {'==' if split == 'test' else '!='} {residue}) under {root}"
        )
    return SkeletonDataset(
        sequences,
        np.asarray(labels),
        list(UR_FALL_CLASSES),
        get_layout("movenet13"),
        fps=UR_FALL_FPS,
        names=names,
        name=f"{_NAME}/{split}",
        events=events,
    )
