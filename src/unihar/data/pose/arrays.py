"""Importing precomputed keypoints: ``.npy`` / ``.npz`` arrays of shape ``(T, J, 3)``.

x, y in pixels and a confidence in [0, 1] (``(T, J, 2)`` is accepted and gets confidence 1). The layout
is given, stored in an ``.npz`` under ``layout`` (a name or a list of joint names), or guessed from J
(17 coco17, 25 body25, 18 coco18, 33 mediapipe33, 13 penn13). A frame whose joints all have confidence 0
counts as "nobody detected" and is filled in.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import cast

import numpy as np

from unihar.config import LAYOUT_BY_NUM_JOINTS
from unihar.data.layouts import KeypointLayout, get_layout
from unihar.data.pose.base import PoseSequence, finalize_poses
from unihar.data.pose.openpose import _extent
from unihar.errors import InputError

__all__ = ["ArrayPoses", "poses_from_array"]


class ArrayPoses:
    """Loads ``(T, J, 3)`` keypoints from ``.npy`` or ``.npz`` (key ``keypoints``, or its only array)."""

    name = "array"
    needs_video = False

    def __init__(self, layout: str | list[str] | KeypointLayout | None = None) -> None:
        self.layout = get_layout(layout) if layout is not None else None

    def load(self, path: str | Path, frame_size: tuple[int, int] | None = None) -> PoseSequence:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"keypoint file not found: {str(path)!r}")
        stored_layout = None
        try:
            if path.suffix.lower() == ".npz":
                with np.load(path, allow_pickle=False) as archive:
                    names = list(archive.files)
                    if "keypoints" in names:
                        array = archive["keypoints"]
                    elif len([n for n in names if n != "layout"]) == 1:
                        array = archive[[n for n in names if n != "layout"][0]]
                    else:
                        raise InputError(
                            f"{str(path)!r} holds arrays {names}; expected one named 'keypoints' (T, J, 3)"
                        )
                    if "layout" in names:
                        value = archive["layout"]
                        stored_layout = str(value) if value.ndim == 0 else [str(v) for v in value.tolist()]
            elif path.suffix.lower() == ".npy":
                array = np.load(path, allow_pickle=False)
            else:
                raise InputError(f"expected a .npy or .npz keypoint file, got {str(path)!r}")
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(f"cannot read keypoints from {str(path)!r}: {exc}") from None

        return poses_from_array(array, self.layout or stored_layout, frame_size, repr(str(path)))

    __call__ = load


def poses_from_array(
    array: np.ndarray,
    layout: str | list[str] | KeypointLayout | None = None,
    frame_size: tuple[int, int] | None = None,
    source: str = "the keypoints",
) -> PoseSequence:
    """``(T, J, 3)`` (or ``(T, J, 2)``) pixel keypoints -> :class:`PoseSequence`, checked; shared by files
    and the server.

    ``layout`` defaults to the one implied by J, ``frame_size`` to the extent of the visible joints;
    ``source`` names the input in error messages.
    """
    array = np.asarray(array)
    if array.ndim != 3 or array.shape[-1] not in (2, 3) or not np.issubdtype(array.dtype, np.number):
        raise InputError(
            f"{source}: expected a numeric array of shape (T, J, 3) (x, y, confidence), got {array.dtype} {array.shape}"
        )
    array = array.astype(np.float32)
    if array.shape[-1] == 2:
        array = np.concatenate([array, np.ones(array.shape[:-1] + (1,), np.float32)], axis=-1)
    if not np.isfinite(array).all():
        raise InputError(f"{source}: keypoints contain NaN or infinite values; mark missing joints with confidence 0")
    if layout is not None:
        layout = get_layout(layout)
    elif array.shape[1] in LAYOUT_BY_NUM_JOINTS:
        layout = get_layout(LAYOUT_BY_NUM_JOINTS[array.shape[1]])
    else:
        raise InputError(
            f"{source}: cannot guess the layout of {array.shape[1]} joints; expected one of "
            f"{LAYOUT_BY_NUM_JOINTS} or an explicit layout"
        )
    if layout.num_joints != array.shape[1]:
        raise InputError(
            f"{source}: layout {layout.name!r} has {layout.num_joints} joints, the array has {array.shape[1]}"
        )
    detected = cast(np.ndarray, (array[..., 2] > 0).any(axis=1))  # (N,): array has 3 axes
    return finalize_poses(array, detected, layout, frame_size or _extent(array), source)
