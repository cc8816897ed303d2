"""SBU Kinect Interaction v2.0 clean (Yun et al., CVPRW 2012): 21 two-person sets x 8 interactions, 282
sequences of two 15-joint OpenNI skeletons (3D) per frame.

Format: ``sAAsBB/<class 01-08>/<sequence>/skeleton_pos.txt``, one frame per line: ``frame, A1x, A1y,
A1z, ..., A15z, B1x, ..., B15z`` (91 numbers; layout ``sbu15``), in normalised units that the SBU
documentation converts back as X = 1280 - 2560 x, Y = 960 - 1920 y, Z = 1280 z (mm, X left, Y up).
Here: x = 2.56 x' - 1.28, y = 1.92 y' - 0.96, z = 1.28 z' (metres, OpenCV camera axes). On the data
this gives a right-handed body with the tracker's labels: taking each person's forward as the
direction to the partner, left = up x forward for 91 % of people. macOS ``.DS_Store`` files are
ignored (only ``*/*/*/skeleton_pos.txt`` is read).

Protocol: the official 5-fold cross-validation by set; report the mean over folds. ``sbu:PATH`` tests
on fold 1 (s01s02 s03s04 s05s02 s06s04) and trains on folds 2-5; ``sbu@K:PATH`` tests on fold K.

One skeleton per sample (the model reads one person), chosen per class and checked on the data:

- approaching, departing: the person whose torso travels farther (the mover: its path is 11-14 times
  the partner's in median, at least 3 times);
- kicking / pushing, punching: the person whose feet / hands come closest to the other's head, neck,
  torso or shoulders (the one who makes contact). On the data the kicker chosen so lifts a foot higher
  than the partner in 40 of 40 kicks, the pushed partner moves away (> 5 cm) in 36 of 41 pushes, and the
  puncher has the faster hand in 33 of 38 punches; plain motion energy would pick the reacting partner,
  who is shoved or dodges, in about 30 % of pushes and punches;
- shaking_hands, hugging, exchanging (an object): both act, so each person is a sample, giving 360
  samples from the 282 sequences.

A sample's name is ``sAAsBB/<class>/<sequence>/<person>``, the person being ``A`` or ``B``.

Frame rate: 15 fps, as the dataset's authors state; peak hand speed in punches against UTD-MHAD's
30 Hz boxing agrees (17 fps).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unihar.data.camera import KINECT_V1
from unihar.data.datasets.base import SkeletonDataset
from unihar.data.datasets.formats import check_format_split
from unihar.data.datasets.readers import check_variant, read_numbers
from unihar.data.layouts import get_layout
from unihar.errors import InputError

__all__ = ["load_sbu", "SBU_CLASSES", "SBU_FOLDS", "SBU_FPS", "choose_actors"]

SBU_CLASSES = (
    "approaching",
    "departing",
    "kicking",
    "pushing",
    "shaking_hands",
    "hugging",
    "exchanging",
    "punching",
)
SBU_FOLDS = (
    ("s01s02", "s03s04", "s05s02", "s06s04"),
    ("s02s03", "s02s07", "s03s05", "s05s03"),
    ("s01s03", "s01s07", "s07s01", "s07s03"),
    ("s02s01", "s02s06", "s03s02", "s03s06"),
    ("s04s02", "s04s03", "s04s06", "s06s02", "s06s03"),
)
SBU_FPS = 15.0
PERSONS = ("A", "B")
_MOVERS = {"approaching", "departing"}
_CONTACT = {
    "kicking": ("left_foot", "right_foot"),
    "pushing": ("left_hand", "right_hand"),
    "punching": ("left_hand", "right_hand"),
}
_TARGETS = ("head", "neck", "spine", "left_shoulder", "right_shoulder")
_NAME = "sbu"


def to_metres(values: np.ndarray) -> np.ndarray:
    """SBU's normalised (x, y, z) -> camera-space metres (x right, y down, z forward)."""
    return np.stack([2.56 * values[..., 0] - 1.28, 1.92 * values[..., 1] - 0.96, 1.28 * values[..., 2]], axis=-1)


def choose_actors(persons: np.ndarray, action: str) -> tuple[int, ...]:
    """Indices (0 = A, 1 = B) of the people who perform ``action`` in ``persons`` ``(frames, 2, 15, 3)`` metres."""
    if action not in _MOVERS and action not in _CONTACT:
        return (0, 1)
    layout = get_layout("sbu15")
    if action in _MOVERS:
        torso = persons[:, :, layout.index("spine")]
        travel = np.linalg.norm(np.diff(torso, axis=0), axis=-1).sum(axis=0)
        return (int(np.argmax(travel)),)
    ends = [layout.index(j) for j in _CONTACT[action]]
    targets = [layout.index(j) for j in _TARGETS]
    reach = []
    for p in (0, 1):
        gaps = persons[:, p, ends][:, :, None] - persons[:, 1 - p, targets][:, None]  # (T, ends, targets, 3)
        reach.append(np.linalg.norm(gaps, axis=-1).min())
    return (int(np.argmin(reach)),)


def _fold_of(set_name: str, folder: Path) -> int:
    for k, fold in enumerate(SBU_FOLDS, start=1):
        if set_name in fold:
            return k
    raise InputError(f"{_NAME}: set folder {folder} is not in the official folds {SBU_FOLDS}")


def load_sbu(path: str | Path, split: str = "train", variant: str | None = None) -> SkeletonDataset:
    """Load one fold split (default: fold 1 tested) as 3D single-person samples (``dims=3``, layout
    ``sbu15``, 15 fps)."""
    check_format_split(_NAME, split)
    test_fold = int(check_variant(_NAME, variant, ("1", "2", "3", "4", "5"), "1", "test fold (1-5)"))
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"{_NAME}: folder not found: {root}")
    files = sorted(root.glob("*/*/*/skeleton_pos.txt"))
    if not files:
        raise InputError(f"{_NAME}: expected sAAsBB/<class 01-08>/<sequence>/skeleton_pos.txt files under {root}")
    sequences, labels, names = [], [], []
    for f in files:
        set_dir, class_dir, sequence_dir = f.parent.parent.parent, f.parent.parent, f.parent
        if (_fold_of(set_dir.name, set_dir) == test_fold) != (split == "test"):
            continue
        if not (class_dir.name.isdigit() and 1 <= int(class_dir.name) <= len(SBU_CLASSES)):
            raise InputError(f"{_NAME}: class folder {class_dir} must be 01-{len(SBU_CLASSES):02d}")
        label = int(class_dir.name) - 1
        rows = read_numbers(f, _NAME, 91, "a frame number and 2 persons x 15 joints x (x, y, z)", delimiter=",")
        persons = to_metres(rows[:, 1:].reshape(-1, 2, 15, 3))
        conf = np.ones(persons.shape[:1] + (15, 1))
        for p in choose_actors(persons, SBU_CLASSES[label]):
            sequences.append(np.concatenate([persons[:, p], conf], axis=-1).astype(np.float32))
            labels.append(label)
            names.append(f"{set_dir.name}/{class_dir.name}/{sequence_dir.name}/{PERSONS[p]}")
    if not sequences:
        raise InputError(
            f"{_NAME}: no {split} sequences for test fold {test_fold} ({SBU_FOLDS[test_fold - 1]}) under {root}"
        )
    return SkeletonDataset(
        sequences,
        np.asarray(labels),
        list(SBU_CLASSES),
        get_layout("sbu15"),
        fps=SBU_FPS,
        names=names,
        name=f"{_NAME}/{split}",
        dims=3,
        camera=KINECT_V1,
    )
