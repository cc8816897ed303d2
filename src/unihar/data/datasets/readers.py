"""Small pieces the skeleton-dataset loaders share: the variant check, reading numeric text files
with one clear error, Kinect joints with a confidence channel, and resampling to a uniform frame rate."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from unihar.data.camera import from_kinect
from unihar.errors import InputError

__all__ = ["check_variant", "read_numbers", "kinect_joints", "resample_uniform"]


def check_variant(dataset: str, variant: str | None, choices: Sequence[str], default: str, meaning: str) -> str:
    """The protocol variant named after ``@`` in ``FORMAT@VARIANT:PATH`` (``default`` when absent)."""
    if variant is None or variant == "":
        return default
    key = str(variant).strip().lower()
    if key not in choices:
        raise InputError(f"{dataset}@{variant}: unknown {meaning}; expected one of {list(choices)}")
    return key


def read_numbers(path: Path, dataset: str, columns: int, what: str, delimiter: str | None = None) -> np.ndarray:
    """A text file of numbers as ``(lines, columns)`` float64, or one error naming the file and what it holds."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns on an empty file; the check below says it better
            values = np.loadtxt(path, delimiter=delimiter, ndmin=2, dtype=np.float64)
    except (OSError, ValueError) as err:
        raise InputError(f"{dataset}: cannot read {path} as {columns} numbers per line ({what}): {err}") from None
    if values.shape[0] == 0:
        raise InputError(f"{dataset}: {path} is empty; expected lines of {columns} numbers ({what})")
    if values.shape[1] != columns:
        raise InputError(f"{dataset}: {path} has {values.shape[1]} numbers per line, expected {columns} ({what})")
    return values


def kinect_joints(xyz: np.ndarray) -> np.ndarray:
    """Kinect v1 joints ``(..., J, 3)`` (metres, x left, y up, z forward) -> ``(..., J, 4)`` float32 in the
    camera axes of :mod:`unihar.data.camera` plus a confidence: 1, or 0 for the tracker's (0, 0, 0)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    missing = ~np.isfinite(xyz).all(axis=-1) | (xyz == 0).all(axis=-1)
    points = np.concatenate([from_kinect(np.nan_to_num(xyz)), (~missing)[..., None].astype(np.float64)], axis=-1)
    points[missing] = 0.0
    return points.astype(np.float32)


def resample_uniform(times: np.ndarray, points: np.ndarray, new_times: np.ndarray) -> np.ndarray:
    """Joints ``(N, J, C)`` (last channel a confidence) sampled at increasing ``times`` -> ``(M, J, C)`` at
    ``new_times``, each joint interpolated linearly between the samples where it is visible (held at
    the ends); a joint never visible stays missing."""
    times = np.asarray(times, dtype=np.float64)
    out = np.zeros((len(new_times),) + points.shape[1:], dtype=np.float32)
    for j in range(points.shape[1]):
        seen = points[:, j, -1] > 0
        if not seen.any():
            continue
        for c in range(points.shape[2]):
            out[:, j, c] = np.interp(new_times, times[seen], points[seen, j, c])
    return out
