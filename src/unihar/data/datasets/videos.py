"""Video datasets: poses are extracted once with a pose backend and cached.

``haa500:PATH``
    HAA500 (Chung et al., ICCV 2021): ``PATH/video/<class>/<class>_NNN.mp4`` (``PATH`` may also be the
    ``video`` folder itself), 20 clips per class. Official split by clip number: 0-15 train, 16 val,
    17-19 test.
``video-folder:DIR``
    Your own videos, ``DIR/<class>/*.mp4`` (and every extension ``unihar predict`` finds in a folder:
    :data:`unihar.data.video.VIDEO_EXTENSIONS`; hidden files are skipped). With ``DIR/train/<class>/``
    and ``DIR/test/<class>/`` (and optionally ``val``) those folders are the splits; otherwise every
    fifth video of each class (sorted by name: the 5th, 10th, ...) is ``test`` and the rest ``train``.

Extraction runs the pose backend (BlazePose, the package's default, unless ``pose_backend`` names
another) over every video that has no cached poses yet, ``workers`` videos at a time in separate
processes, and keeps the main person of each. Each video's poses go to their own file under
``$UNIHAR_CACHE/poses/<backend>/`` the moment it is done, keyed by the video's path, size and mtime, so
an interrupted extraction resumes where it stopped and an edited video is extracted again.

A video whose poses cannot be extracted (nobody in view, undecodable) stops the loading with one error
listing every such video: a split must never shrink without the user knowing (an evaluation on fewer
videos is another evaluation). ``skip_failed=True`` (``--skip-failed-videos``) leaves them out instead
and says which, in a warning. All sequences are resampled to 30 fps, so one dataset has one time base
whatever its videos' frame rates.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import re
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from unihar.cache import cache_dir, save_npz_atomic
from unihar.data.datasets.base import SkeletonDataset
from unihar.data.datasets.formats import check_format_split
from unihar.data.layouts import get_layout
from unihar.data.pose import get_pose_backend
from unihar.data.pose.extract import estimate_main_person
from unihar.data.preprocess import frame_indices
from unihar.data.video import is_video_file, open_video
from unihar.errors import InputError, NoPersonError, UniHARError

__all__ = [
    "load_haa500",
    "load_video_folder",
    "extract_poses",
    "pose_cache_path",
    "TIME_BASE_FPS",
    "POSE_BACKEND",
]

POSE_BACKEND = "blazepose"  # the package's default pose backend (see unihar.data.pose.get_pose_backend)
TIME_BASE_FPS = 30.0
HAA500_SPLITS = {"train": range(0, 16), "val": range(16, 17), "test": range(17, 20)}


def pose_cache_path(video: Path, backend: str) -> Path:
    stat = video.stat()
    key = f"{video.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return cache_dir() / "poses" / backend / f"{hashlib.sha1(key.encode()).hexdigest()[:20]}.npz"


def _extract_one(video: str, backend: str, out: str) -> tuple[str, str | None]:
    """Worker: poses of one video -> ``out`` (.npz). Returns (video, error message or None)."""
    import torch  # only the worker processes set their thread count

    torch.set_num_threads(1)
    try:
        reader = open_video(video)
        seq = estimate_main_person(get_pose_backend(backend, max_people=1), reader)
        fps = float(reader.info.fps)
    except NoPersonError as err:
        return video, f"no person: {err}"
    except UniHARError as err:
        return video, str(err)
    save_npz_atomic(
        out,
        keypoints=seq.keypoints.astype(np.float32),
        joints=np.asarray(seq.layout.joints),
        fps=np.asarray(fps),  # what np.savez makes of the numbers anyway
        missing=np.asarray(seq.missing),
        frame_size=np.asarray(seq.frame_size),
    )
    return video, None


def extract_poses(
    videos: list[Path],
    backend: str = POSE_BACKEND,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[Path, Path], dict[Path, str]]:
    """The cached pose file of each video (extracting the missing ones in parallel), and for each video
    that gave no usable poses, why."""
    result: dict[Path, Path] = {}
    todo: list[tuple[Path, Path]] = []
    for video in videos:
        cache = pose_cache_path(video, backend)
        if cache.is_file():
            result[video] = cache
        else:
            todo.append((video, cache))
    if todo:
        todo[0][1].parent.mkdir(parents=True, exist_ok=True)
    failed: dict[Path, str] = {}
    done = len(result)
    if workers <= 1:
        outcomes = (_extract_one(str(v), backend, str(c)) for v, c in todo)
        pool = None
    else:
        # "spawn", not the Linux default "fork": a forked copy of a process whose torch / MediaPipe
        # threads are running can crash or hang in the child.
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        futures = [pool.submit(_extract_one, str(v), backend, str(c)) for v, c in todo]
        outcomes = (f.result() for f in as_completed(futures))
    cache_of = {str(v): c for v, c in todo}
    try:
        for source, error in outcomes:
            done += 1
            if error:
                failed[Path(source)] = error
            else:
                result[Path(source)] = cache_of[source]
            if progress is not None:
                progress(done, len(videos))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return result, failed


def _load_sequences(
    items: list[tuple[Path, int]], classes: list[str], backend: str, workers: int, name: str, skip_failed: bool = False
) -> SkeletonDataset:
    if not items:
        raise InputError(f"{name}: no videos found")
    caches, failed = extract_poses([v for v, _ in items], backend, workers)
    if failed:
        listed = "; ".join(f"{video}: {why}" for video, why in list(failed.items())[:10])
        more = f" (and {len(failed) - 10} more)" if len(failed) > 10 else ""
        if not skip_failed:
            raise InputError(
                f"{name}: no poses could be extracted from {len(failed)} of {len(items)} videos: "
                f"{listed}{more}; fix or remove them, or pass --skip-failed-videos to leave them out"
            )
        warnings.warn(
            f"{name}: {len(failed)} of {len(items)} videos left out (--skip-failed-videos): {listed}{more}",
            stacklevel=3,
        )
    sequences, labels, names, sources, layout = [], [], [], [], None
    for video, label in items:
        cache = caches.get(video)
        if cache is None:
            continue
        with np.load(cache) as z:
            kpts, fps, joints = z["keypoints"], float(z["fps"]), tuple(str(j) for j in z["joints"])
        layout = layout or get_layout(list(joints))
        if joints != layout.joints:
            raise InputError(f"{name}: cached poses of {video} have a different joint layout; clear {cache.parent}")
        n_out = max(1, int(round(len(kpts) * TIME_BASE_FPS / fps))) if fps > 0 else len(kpts)
        sequences.append(kpts[frame_indices(len(kpts), n_out)])
        labels.append(label)
        names.append(video.stem)
        sources.append((str(video), len(kpts)))
    if not sequences:
        raise InputError(f"{name}: no video gave usable poses")
    assert layout is not None  # set with the first sequence
    return SkeletonDataset(
        sequences, np.asarray(labels), classes, layout, fps=TIME_BASE_FPS, names=names, name=name, videos=sources
    )


def _videos_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_video_file(p))


def load_haa500(
    path: str | Path,
    split: str = "train",
    workers: int = 1,
    pose_backend: str = POSE_BACKEND,
    skip_failed: bool = False,
) -> SkeletonDataset:
    """One HAA500 split (``train``: clips 0-15, ``val``: 16, ``test``: 17-19 of every class)."""
    check_format_split("haa500", split)
    root = Path(path)
    video_dir = root / "video" if (root / "video").is_dir() else root
    class_dirs = sorted(d for d in video_dir.iterdir() if d.is_dir()) if video_dir.is_dir() else []
    if not class_dirs:
        raise InputError(f"haa500: expected class folders under {root}/video (video/<class>/<class>_NNN.mp4)")
    classes = [d.name for d in class_dirs]
    pattern = re.compile(r"_(\d+)$")
    items = []
    for label, folder in enumerate(class_dirs):
        for video in _videos_in(folder):
            match = pattern.search(video.stem)
            if match is None:
                raise InputError(f"haa500: {video.name} does not end in _NNN (the clip number)")
            if int(match.group(1)) in HAA500_SPLITS[split]:
                items.append((video, label))
    return _load_sequences(items, classes, pose_backend, workers, f"haa500/{split}", skip_failed)


def load_video_folder(
    path: str | Path,
    split: str = "train",
    workers: int = 1,
    pose_backend: str = POSE_BACKEND,
    skip_failed: bool = False,
) -> SkeletonDataset:
    """``DIR/<class>/*.mp4`` (split every 5th video to ``test``) or ``DIR/<split>/<class>/*.mp4``."""
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"video-folder: folder not found: {root}")
    explicit = (root / "train").is_dir() and (root / "test").is_dir()
    if explicit:
        if not (root / split).is_dir():
            raise InputError(f"video-folder: no {split}/ folder in {root}")
        classes = sorted(d.name for d in (root / "train").iterdir() if d.is_dir())
        split_root = root / split
    else:
        if split not in ("train", "test"):
            raise InputError(
                f"video-folder: without train/ and test/ folders the splits are train and test, got {split!r}"
            )
        classes = sorted(d.name for d in root.iterdir() if d.is_dir())
        split_root = root
    if not classes:
        raise InputError(f"video-folder: expected one folder per class in {root} (DIR/<class>/*.mp4)")
    items: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        folder = split_root / name
        if not folder.is_dir():
            continue
        videos = _videos_in(folder)
        if not explicit:
            videos = [v for i, v in enumerate(videos) if (i % 5 == 4) == (split == "test")]
        items.extend((v, label) for v in videos)
    return _load_sequences(items, classes, pose_backend, workers, f"video-folder/{split}", skip_failed)
