"""Shopping-mall CCTV person tracks ("Carosello" mall, Hao-Quan/ActivityRecognition): 1179 tracks from five
640x426, 30 fps videos, 18 OpenPose keypoints per frame (2D pixels), one activity per track, 11 classes.

Format: ``<video>_carosello/<track>/X.txt`` (one line per frame: ``x0,y0,...,x17,y17`` in OpenPose
COCO-18 order, layout ``coco18``; ``-1.0,-1.0`` = missing), ``Y.txt`` (one class ID per line, the
same on every line of a track) and ``class_map.json`` (``{name: id}``). ``PATH`` is the folder holding
them.

Protocol: there is no official split, and the origin code's random split of 32-frame windows puts
windows of one track on both sides. Here whole videos are held out: test = videos 1 and 10 (234 of
1179 tracks, 20 %), train = videos 3, 4 and 9. Only videos 9 and 10 have ``sitting_phone_talking``
and only 1, 3 and 9 ``window_shopping``; this choice leaves every class in the training split.
``mall-cctv@9:PATH`` (or ``@9+10``...) names other test videos.

Every track is kept (2-5085 frames); rows skipped by the pose model (0.5 %) are not re-inserted, so a
track's frames are at 30 fps up to those gaps. There is no detection score: visible keypoints get
confidence 1, ``-1`` ones 0.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from unihar.data.datasets.base import SkeletonDataset
from unihar.data.datasets.formats import check_format_split
from unihar.data.datasets.readers import read_numbers
from unihar.data.layouts import get_layout
from unihar.errors import InputError

__all__ = ["load_mall_cctv", "MALL_CCTV_FPS", "MALL_TEST_VIDEOS"]

MALL_CCTV_FPS = 30.0
MALL_TEST_VIDEOS = (1, 10)
_VIDEO = re.compile(r"^(\d+)_carosello$")
_NAME = "mall-cctv"


def read_class_map(root: Path) -> list[str]:
    """Class names in ID order from ``class_map.json`` (IDs must be 0..K-1)."""
    f = root / "class_map.json"
    if not f.is_file():
        raise InputError(f"{_NAME}: expected {f} ({{class name: id}}) beside the <video>_carosello folders")
    try:
        mapping = json.loads(f.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{_NAME}: {f} is not valid JSON: {err}") from None
    if not isinstance(mapping, dict) or sorted(mapping.values()) != list(range(len(mapping))):
        raise InputError(f"{_NAME}: {f} must map class names to the IDs 0..K-1, got {mapping!r}")
    return [name for name, _ in sorted(mapping.items(), key=lambda item: item[1])]


def _test_videos(variant: str | None) -> tuple[int, ...]:
    if variant is None or variant == "":
        return MALL_TEST_VIDEOS
    try:
        return tuple(int(v) for v in str(variant).split("+"))
    except ValueError:
        raise InputError(f"{_NAME}@{variant}: expected test video numbers joined by '+', e.g. mall-cctv@9+10") from None


def read_track(track: Path, num_classes: int) -> tuple[np.ndarray, int]:
    """One track as ``(frames, 18, 3)`` pixels + confidence, and its class ID."""
    xy = read_numbers(track / "X.txt", _NAME, 36, "18 keypoints x (x, y) pixels", delimiter=",").reshape(-1, 18, 2)
    ids = read_numbers(track / "Y.txt", _NAME, 1, "one class ID per frame").ravel()
    if len(ids) != len(xy):
        raise InputError(
            f"{_NAME}: {track / 'Y.txt'} has {len(ids)} lines but X.txt has {len(xy)}; expected one label per frame"
        )
    if (ids != ids[0]).any() or not (0 <= ids[0] < num_classes) or ids[0] != int(ids[0]):
        raise InputError(
            f"{_NAME}: {track / 'Y.txt'} must hold one class ID in 0..{num_classes - 1} on every line, "
            f"got {np.unique(ids)}"
        )
    missing = (xy == -1.0).any(axis=-1)
    kpts = np.concatenate([xy, (~missing)[..., None]], axis=-1).astype(np.float32)
    kpts[missing] = 0.0
    return kpts, int(ids[0])


def load_mall_cctv(path: str | Path, split: str = "train", variant: str | None = None) -> SkeletonDataset:
    """Load the tracks of the train videos or the test videos (2D pixels, layout ``coco18``, 30 fps)."""
    check_format_split(_NAME, split)
    test_videos = _test_videos(variant)
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"{_NAME}: folder not found: {root}")
    classes = read_class_map(root)
    videos = {int(m.group(1)): d for d in root.iterdir() if d.is_dir() and (m := _VIDEO.match(d.name))}
    unknown = sorted(set(test_videos) - set(videos))
    if unknown:
        raise InputError(
            f"{_NAME}: test videos {unknown} have no <video>_carosello folder in {root} (found {sorted(videos)})"
        )
    chosen = [v for v in sorted(videos) if (v in test_videos) == (split == "test")]
    sequences, labels, names = [], [], []
    for video in chosen:
        tracks = sorted((d for d in videos[video].iterdir() if d.is_dir()), key=lambda d: (len(d.name), d.name))
        for track in tracks:
            kpts, label = read_track(track, len(classes))
            sequences.append(kpts)
            labels.append(label)
            names.append(f"{video}_carosello/{track.name}")
    if not sequences:
        raise InputError(f"{_NAME}: no {split} tracks (videos {chosen or 'none'}) under {root}")
    return SkeletonDataset(
        sequences,
        np.asarray(labels),
        classes,
        get_layout("coco18"),
        fps=MALL_CCTV_FPS,
        names=names,
        name=f"{_NAME}/{split}",
    )
