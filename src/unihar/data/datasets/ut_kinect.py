"""UTKinect-Action3D (Xia, Chen & Aggarwal, CVPRW 2012): 10 subjects x 2 continuous Kinect v1 recordings,
each with all 10 actions, cut into 199 labelled segments (20 joints, 3D, metres).

Format: ``joints/joints_sSS_eEE.txt``, one skeleton per line: ``frameID x1 y1 z1 ... x20 y20 z20``
(Kinect v1 order, layout ``kinect_v1``), and ``joints/actionLabel_modified.txt``: per recording a
line ``sSS_eEE`` then ``<action>: <start frame ID> <end frame ID>`` (inclusive). ``PATH`` is the
dataset folder or ``joints`` itself. The corrected ``actionLabel_modified.txt`` is used, never the
original ``actionLabel.txt`` (7 wrong ranges).

Protocol: cross-subject with the origin repository's half-subject splits (``tr_te_splits.mat``).
Default: the first one, train on subjects 2 5 7 8 9, test on 1 3 4 6 10. ``ut-kinect@N:PATH`` uses
split ``N`` (1-10); the published figure averages all ten.

Timing: rows are not at a fixed rate. Frame IDs are even numbers, 2-10 apart with gaps up to 16 inside
a segment, and some IDs repeat. They count at 60 per second (two per frame of the 30 fps camera): at
that rate a "walk" segment steps 1.4 times a second at 0.7 m/s and claps take 0.7 s, where 30 IDs/s
would give 0.7 steps/s; peak hand speeds in throw/clap/wave against UTD-MHAD's 30 Hz data give 57-84
IDs/s. Each segment keeps one row per frame ID (the first), maps a start/end ID missing from the file
to the nearest existing one (4 such boundaries), and is resampled by frame ID to a uniform 15 fps
(every 4 IDs, the usual spacing of the rows), each joint interpolated linearly.

The ``carry`` segment of ``s10_e02`` is ``NaN NaN`` (absent) and is skipped: 199 segments.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from unihar.data.camera import KINECT_V1
from unihar.data.datasets.base import SkeletonDataset
from unihar.data.datasets.formats import check_format_split
from unihar.data.datasets.readers import check_variant, kinect_joints, read_numbers, resample_uniform
from unihar.data.layouts import get_layout
from unihar.errors import InputError

__all__ = ["load_ut_kinect", "UT_KINECT_CLASSES", "UT_KINECT_FPS", "UT_KINECT_SPLITS", "FRAME_IDS_PER_SECOND"]

# Label-file spelling -> class name, in the order of the dataset's action_names.mat.
_SPELLING = {
    "walk": "walk",
    "sitDown": "sit_down",
    "standUp": "stand_up",
    "pickUp": "pick_up",
    "carry": "carry",
    "throw": "throw",
    "push": "push",
    "pull": "pull",
    "waveHands": "wave_hands",
    "clapHands": "clap_hands",
}
UT_KINECT_CLASSES = tuple(_SPELLING.values())
# Training subjects of the 10 half-subject splits (tr_te_splits.mat); the other five are tested.
UT_KINECT_SPLITS = (
    (2, 5, 7, 8, 9),
    (2, 3, 8, 9, 10),
    (2, 3, 6, 7, 8),
    (3, 5, 6, 8, 9),
    (2, 4, 5, 6, 10),
    (3, 6, 7, 8, 9),
    (1, 2, 4, 6, 7),
    (2, 7, 8, 9, 10),
    (1, 3, 6, 9, 10),
    (1, 6, 8, 9, 10),
)
FRAME_IDS_PER_SECOND = 60.0
UT_KINECT_FPS = 15.0
LABEL_FILE = "actionLabel_modified.txt"
_RECORDING = re.compile(r"^s(\d+)_e(\d+)$")
_NAME = "ut-kinect"


def _joints_dir(path: Path) -> Path:
    for candidate in (path / "joints", path):
        if (candidate / LABEL_FILE).is_file():
            return candidate
    raise InputError(f"{_NAME}: expected joints/{LABEL_FILE} and joints/joints_sSS_eEE.txt under {path}")


def read_segments(label_file: Path) -> list[tuple[str, str, float, float]]:
    """``(recording, class name, start ID, end ID)`` for every line of the label file (NaN when absent)."""
    segments, recording = [], None
    for number, raw in enumerate(label_file.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if _RECORDING.match(line):
            recording = line
            continue
        action, sep, span = line.partition(":")
        parts = span.split()
        if not sep or recording is None or len(parts) != 2 or action.strip() not in _SPELLING:
            raise InputError(
                f"{_NAME}: {label_file} line {number}: expected 'sSS_eEE' or '<action>: <start> <end>' with an action "
                f"of {list(_SPELLING)}, got {raw!r}"
            )
        try:
            start, end = float(parts[0]), float(parts[1])
        except ValueError:
            raise InputError(f"{_NAME}: {label_file} line {number}: frame IDs must be numbers, got {raw!r}") from None
        if start > end:
            raise InputError(f"{_NAME}: {label_file} line {number}: the start frame ID is after the end, got {raw!r}")
        segments.append((recording, _SPELLING[action.strip()], start, end))
    return segments


def _segment(rows: np.ndarray, start: float, end: float) -> np.ndarray:
    """Rows of one recording (one per frame ID, sorted) between two IDs, resampled to 15 fps -> (T, 20, 4)."""
    ids = rows[:, 0]
    start, end = (float(ids[np.argmin(np.abs(ids - value))]) for value in (start, end))
    inside = (ids >= start) & (ids <= end)
    step = FRAME_IDS_PER_SECOND / UT_KINECT_FPS
    grid = start + step * np.arange(int(math.floor((end - start) / step)) + 1)
    points = kinect_joints(rows[inside, 1:].reshape(-1, 20, 3))
    return resample_uniform(ids[inside], points, grid)


def load_ut_kinect(path: str | Path, split: str = "train", variant: str | None = None) -> SkeletonDataset:
    """Load one cross-subject split as 3D segments (``dims=3``, layout ``kinect_v1``, 15 fps)."""
    check_format_split(_NAME, split)
    number = int(check_variant(_NAME, variant, [str(i) for i in range(1, 11)], "1", "half-subject split (1-10)"))
    train_subjects = UT_KINECT_SPLITS[number - 1]
    path = Path(path)
    if not path.exists():
        raise InputError(f"{_NAME}: folder not found: {path}")
    folder = _joints_dir(path)
    label_file = folder / LABEL_FILE
    recordings: dict[str, np.ndarray] = {}
    sequences, labels, names = [], [], []
    for recording, action, start, end in read_segments(label_file):
        match = _RECORDING.match(recording)
        assert match is not None  # read_segments takes recording names from the lines this pattern matches
        subject = int(match.group(1))
        if (subject in train_subjects) != (split == "train") or math.isnan(start) or math.isnan(end):
            continue
        if recording not in recordings:
            joints_file = folder / f"joints_{recording}.txt"
            if not joints_file.is_file():
                raise InputError(f"{_NAME}: {label_file} labels {recording} but {joints_file} is missing")
            rows = read_numbers(joints_file, _NAME, 61, "a frame ID and 20 joints x (x, y, z)")
            _, first = np.unique(rows[:, 0], return_index=True)  # one row per frame ID, sorted by ID
            recordings[recording] = rows[first]
        sequences.append(_segment(recordings[recording], start, end))
        labels.append(UT_KINECT_CLASSES.index(action))
        names.append(f"{recording}_{action}")
    if not sequences:
        subjects = train_subjects if split == "train" else tuple(s for s in range(1, 11) if s not in train_subjects)
        raise InputError(f"{_NAME}: no {split} segments (subjects {list(subjects)}, split {number}) in {label_file}")
    return SkeletonDataset(
        sequences,
        np.asarray(labels),
        list(UT_KINECT_CLASSES),
        get_layout("kinect_v1"),
        fps=UT_KINECT_FPS,
        names=names,
        name=f"{_NAME}/{split}",
        dims=3,
        camera=KINECT_V1,
    )
