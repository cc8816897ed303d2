"""UTD-MHAD (Chen, Jafari & Kehtarnavaz, ICIP 2015): 27 actions by 8 subjects x 4 trials, Kinect v1
skeletons (20 joints, 3D, metres, 30 Hz) and a wearable inertial sensor (6 axes, 50 Hz), recorded together.

Format: ``Skeleton/a<A>_s<S>_t<T>_skeleton.mat`` with ``d_skel`` ``(20, 3, frames)`` in UTD-MHAD's joint
order (layout ``utd_mhad``: the Kinect v1 joints, trunk listed top-down). ``PATH`` is the dataset folder
or ``Skeleton`` itself. A sample's name ``a<A>_s<S>_t<T>`` is its identity, shared with the inertial
files (``Inertial/a<A>_s<S>_t<T>_inertial.mat``).

Inertial part: ``d_iner`` ``(N, 6)``: accelerometer x, y, z in g, then gyroscope x, y, z in degrees per
second, at 50 Hz, from one sensor on the right wrist (actions 1-21) or the right thigh (22-27). When the
``Inertial`` folder is there, every sequence gets its recording (``signals["imu"]``; a missing or
malformed file is an error). The two recordings of a sequence start and stop at different moments (the
inertial one lasts 1.5-2x as long as the skeleton's nominal 30 Hz duration), so they are aligned by
relative position: the inertial samples are spread evenly over the skeleton sequence's duration.

Protocol: the standard cross-subject split trains on subjects 1, 3, 5, 7 and tests on 2, 4, 6, 8, and
that is what a folder holding even subjects gets. The shared copy holds only subjects 1, 3, 5, 7 (431
sequences; ``a8_s1_t4`` does not exist), so there the default holds one subject out: train = 1, 3, 5
(323), test = 7 (108), as CMC-CMKM (IJCNN 2022) validates. ``utd-mhad@S:PATH`` tests on subject ``S``
and trains on all the others.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from scipy.io import loadmat

from unihar.config import IMU_CHANNELS
from unihar.data.camera import KINECT_V1
from unihar.data.datasets.base import SkeletonDataset
from unihar.data.datasets.formats import check_format_split
from unihar.data.datasets.readers import check_variant, kinect_joints
from unihar.data.layouts import get_layout
from unihar.data.signals import SignalRecording
from unihar.errors import InputError

__all__ = [
    "load_utd_mhad",
    "UTD_MHAD_CLASSES",
    "UTD_MHAD_FPS",
    "UTD_MHAD_INERTIAL_RATE",
    "parse_utd_name",
    "read_inertial",
]

UTD_MHAD_CLASSES = (
    "swipe_left",
    "swipe_right",
    "wave",
    "clap",
    "throw",
    "arm_cross",
    "basketball_shoot",
    "draw_x",
    "draw_circle_clockwise",
    "draw_circle_counter_clockwise",
    "draw_triangle",
    "bowling",
    "boxing",
    "baseball_swing",
    "tennis_forehand",
    "arm_curl",
    "tennis_serve",
    "push",
    "knock",
    "catch",
    "pick_up_and_throw",
    "jog",
    "walk",
    "sit_to_stand",
    "stand_to_sit",
    "lunge",
    "squat",
)
UTD_MHAD_FPS = 30.0
UTD_MHAD_INERTIAL_RATE = 50.0
HELD_OUT_SUBJECT = 7
_FILE = re.compile(r"^a(\d+)_s(\d+)_t(\d+)_skeleton$")
_NAME = "utd-mhad"


def parse_utd_name(name: str) -> tuple[int, int, int]:
    """``(action, subject, trial)`` of a sample name ``a<A>_s<S>_t<T>`` (1-based, as in the file names)."""
    match = re.match(r"^a(\d+)_s(\d+)_t(\d+)", name)
    if match is None:
        raise InputError(f"{_NAME}: {name!r} is not a sample name a<A>_s<S>_t<T>")
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def _files(path: Path) -> list[Path]:
    for candidate in (path / "Skeleton", path):
        files = sorted(candidate.glob("a*_s*_t*_skeleton.mat"))
        if files:
            return files
    raise InputError(f"{_NAME}: expected Skeleton/a<A>_s<S>_t<T>_skeleton.mat files under {path}")


def _mat_array(f: Path, key: str, expected: str) -> np.ndarray:
    """Array ``key`` of a ``.mat`` file, or one error naming the file and what was expected."""
    try:
        return np.asarray(loadmat(f)[key], dtype=np.float64)
    except KeyError:
        raise InputError(f"{_NAME}: {f} has no '{key}' array ({expected})") from None
    except Exception as err:  # scipy raises several types for a corrupt file
        raise InputError(f"{_NAME}: cannot read {f}: {err}") from None


def read_skeleton(f: Path) -> np.ndarray:
    """One ``.mat`` file -> ``(frames, 20, 4)`` camera-space metres + confidence."""
    skel = _mat_array(f, "d_skel", "20 joints x 3 x frames")
    if skel.ndim != 3 or skel.shape[:2] != (20, 3) or skel.shape[2] < 1:
        raise InputError(
            f"{_NAME}: {f}: 'd_skel' has shape {skel.shape}, expected (20, 3, frames) (20 Kinect joints, x y z)"
        )
    return kinect_joints(np.transpose(skel, (2, 0, 1)))


def read_inertial(f: Path) -> SignalRecording:
    """One ``_inertial.mat`` file -> its 50 Hz recording (channels acc_x..gyro_z, g and deg/s)."""
    samples = _mat_array(f, "d_iner", "samples x 6 inertial channels")
    if samples.ndim != 2 or samples.shape[1] != len(IMU_CHANNELS) or samples.shape[0] < 2:
        raise InputError(
            f"{_NAME}: {f}: 'd_iner' has shape {samples.shape}, expected (samples, 6): "
            "acc x y z (g), gyro x y z (deg/s)"
        )
    return SignalRecording(samples, UTD_MHAD_INERTIAL_RATE, IMU_CHANNELS, source=str(f))


def _inertial_recordings(files: list[Path], skeletons: list[np.ndarray]) -> list[SignalRecording] | None:
    """Each skeleton file's inertial recording, stretched over the skeleton's duration; None without an
    Inertial folder."""
    folder = files[0].parent.parent / "Inertial"
    if not folder.is_dir():
        return None
    recordings = []
    for f, skeleton in zip(files, skeletons):
        inertial = folder / f.name.replace("_skeleton.mat", "_inertial.mat")
        if not inertial.is_file():
            raise InputError(
                f"{_NAME}: {inertial} is missing (the inertial recording of {f.name}); "
                "the Inertial folder must hold one per sequence"
            )
        recordings.append(read_inertial(inertial).stretched(0.0, len(skeleton) / UTD_MHAD_FPS))
    return recordings


def load_utd_mhad(path: str | Path, split: str = "train", variant: str | None = None) -> SkeletonDataset:
    """Load one cross-subject split as 3D skeletons (``dims=3``, layout ``utd_mhad``, 30 fps), with the
    inertial recordings (``signals["imu"]``) when the ``Inertial`` folder is present."""
    check_format_split(_NAME, split)
    path = Path(path)
    if not path.exists():
        raise InputError(f"{_NAME}: folder not found: {path}")
    files = _files(path)
    identity = {}
    for f in files:
        match = _FILE.match(f.stem)
        if match is None:  # the glob also takes names such as a1_s1_tX_skeleton.mat
            raise InputError(f"{_NAME}: unexpected file name {f.name} in {f.parent}; expected aA_sS_tT_skeleton.mat")
        action, subject, trial = (int(g) for g in match.groups())
        if not 1 <= action <= len(UTD_MHAD_CLASSES):
            raise InputError(f"{_NAME}: {f} names action a{action}; expected a1-a{len(UTD_MHAD_CLASSES)}")
        identity[f] = (action, subject, trial)
    subjects = sorted({s for _, s, _ in identity.values()})
    if variant:
        test_subjects = {int(check_variant(_NAME, variant, [str(s) for s in subjects], "", "test subject"))}
    elif any(s % 2 == 0 for s in subjects):
        test_subjects = {s for s in subjects if s % 2 == 0}
    else:
        test_subjects = {HELD_OUT_SUBJECT}
    chosen = [f for f in files if (identity[f][1] in test_subjects) == (split == "test")]
    if not chosen:
        raise InputError(
            f"{_NAME}: no {split} files (test subjects {sorted(test_subjects)}; found subjects {subjects}) under {path}"
        )
    chosen.sort(key=lambda f: identity[f])
    skeletons = [read_skeleton(f) for f in chosen]
    inertial = _inertial_recordings(chosen, skeletons)
    return SkeletonDataset(
        skeletons,
        np.asarray([identity[f][0] - 1 for f in chosen]),
        list(UTD_MHAD_CLASSES),
        get_layout("utd_mhad"),
        fps=UTD_MHAD_FPS,
        names=[f.stem.removesuffix("_skeleton") for f in chosen],
        name=f"{_NAME}/{split}",
        dims=3,
        camera=KINECT_V1,
        signals=None if inertial is None else {"imu": inertial},
    )
