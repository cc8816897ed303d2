"""Penn Action (Zhang, Zhu & Derpanis, ICCV 2013): 2326 sports videos, 15 actions, 13 annotated joints.

Format: ``labels/NNNN.mat`` (MATLAB v5), one per video, with ``action``, ``x``/``y`` ``(frames, 13)``
pixel coordinates, ``visibility`` ``(frames, 13)`` 0/1, ``dimensions`` ``[H, W, frames]`` and ``train``
(1 = official train, -1 = official test). Occluded joints are annotated too (their coordinates are the
annotator's estimate), so they are kept with a lower confidence rather than dropped.

Reading 2326 ``.mat`` files takes a while, so the first load writes one ``.npz`` cache (under
``$UNIHAR_CACHE``, default ``~/.cache/unihar``) keyed by the folder, its file count and newest mtime.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from unihar.cache import cache_dir, save_npz_atomic
from unihar.data.datasets.base import SkeletonDataset
from unihar.data.datasets.formats import check_format_split
from unihar.data.layouts import get_layout
from unihar.errors import InputError

__all__ = ["load_penn_action", "PENN_ACTION_CLASSES", "PENN_ACTION_FPS"]

PENN_ACTION_CLASSES = (
    "baseball_pitch",
    "baseball_swing",
    "bench_press",
    "bowl",
    "clean_and_jerk",
    "golf_swing",
    "jump_rope",
    "jumping_jacks",
    "pullup",
    "pushup",
    "situp",
    "squat",
    "strum_guitar",
    "tennis_forehand",
    "tennis_serve",
)
# The dataset does not state a frame rate; its clips are YouTube videos, which are ~30 fps.
PENN_ACTION_FPS = 30.0
_CORNER_PX = 2.0  # unannotated joints sit at about (0.67, 0.67); no real joint is that close to the corner


def _labels_dir(path: Path) -> Path:
    for candidate in (path / "labels", path):
        if candidate.is_dir() and any(candidate.glob("*.mat")):
            return candidate
    raise InputError(f"penn-action: expected a folder with labels/*.mat (or the labels folder itself), got {path}")


def _read_all(files: list[Path]) -> dict[str, np.ndarray]:
    from scipy.io import loadmat

    xs, ys, vis, offsets, actions, train, sizes, ids = [], [], [], [0], [], [], [], []
    for f in files:
        try:
            m = loadmat(f)
            x, y, v = m["x"], m["y"], m["visibility"]
            action = str(np.ravel(m["action"])[0])
            flag = int(np.ravel(m["train"])[0])
            h, w = (int(d) for d in np.ravel(m["dimensions"])[:2])
        except Exception as err:  # scipy raises several types for a corrupt file
            raise InputError(f"penn-action: cannot read {f}: {err}") from None
        if x.ndim != 2 or x.shape[1] != 13 or x.shape != y.shape or x.shape != v.shape:
            raise InputError(
                f"penn-action: {f} has x/y/visibility of shapes {x.shape}/{y.shape}/{v.shape}, expected (frames, 13)"
            )
        xs.append(x.astype(np.float32))
        ys.append(y.astype(np.float32))
        vis.append(v.astype(np.uint8))
        offsets.append(offsets[-1] + x.shape[0])
        actions.append(action)
        train.append(flag)
        sizes.append((w, h))
        ids.append(f.stem)
    return {
        "x": np.concatenate(xs),
        "y": np.concatenate(ys),
        "visibility": np.concatenate(vis),
        "offsets": np.asarray(offsets, dtype=np.int64),
        "action": np.asarray(actions),
        "train": np.asarray(train),
        "size": np.asarray(sizes, dtype=np.int32),
        "id": np.asarray(ids),
    }


def _load_cached(labels: Path) -> dict[str, np.ndarray]:
    files = sorted(labels.glob("*.mat"))
    stamp = f"{labels.resolve()}|{len(files)}|{max(f.stat().st_mtime_ns for f in files)}"
    path = cache_dir() / "penn-action" / f"{hashlib.sha1(stamp.encode()).hexdigest()[:16]}.npz"
    if path.is_file():
        with np.load(path) as data:
            return dict(data)
    arrays = _read_all(files)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_npz_atomic(path, **arrays)
    return arrays


def load_penn_action(path: str | Path, split: str = "train", occluded_confidence: float = 0.5) -> SkeletonDataset:
    """Load one official split (``"train"`` or ``"test"``) in the ``penn13`` layout, pixel coordinates.

    Confidence: 1 for visible joints, ``occluded_confidence`` for annotated but occluded ones, 0 for
    joints without a position. The annotations park about 10 % of the invisible joints (mostly ones
    out of the frame) at the image corner, x and y below 2 px; those are not positions, and left in
    they would stretch every normalised window towards the corner, so they count as missing.
    """
    check_format_split("penn-action", split)
    path = Path(path)
    if not path.exists():
        raise InputError(f"penn-action: folder not found: {path}")
    data = _load_cached(_labels_dir(path))
    wanted = 1 if split == "train" else -1
    index = {name: i for i, name in enumerate(PENN_ACTION_CLASSES)}
    sequences, labels, names = [], [], []
    for i in np.flatnonzero(data["train"] == wanted):
        action = str(data["action"][i])
        if action not in index:
            raise InputError(f"penn-action: video {data['id'][i]} has unknown action {action!r}")
        s, e = data["offsets"][i], data["offsets"][i + 1]
        x, y, v = data["x"][s:e], data["y"][s:e], data["visibility"][s:e]
        conf = np.where(v > 0, 1.0, occluded_confidence).astype(np.float32)
        conf[(x < _CORNER_PX) & (y < _CORNER_PX)] = 0.0
        sequences.append(np.stack([x, y, conf], axis=-1))
        labels.append(index[action])
        names.append(str(data["id"][i]))
    if not sequences:
        raise InputError(f"penn-action: no videos in split {split!r} under {path}")
    return SkeletonDataset(
        sequences,
        np.asarray(labels),
        list(PENN_ACTION_CLASSES),
        get_layout("penn13"),
        fps=PENN_ACTION_FPS,
        names=names,
        name=f"penn-action/{split}",
    )
