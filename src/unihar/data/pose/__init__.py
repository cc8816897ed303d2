"""Pose backends: turn a video (or stored keypoints) into a :class:`PoseSequence`.

=================  ====================================================  =====================
name               reads                                                 layout
=================  ====================================================  =====================
``blazepose``      video frames (BlazePose on LiteRT, several people)    ``mediapipe33``
``mediapipe``      video frames (legacy mediapipe 0.10.21, one person)   ``mediapipe33``
``openpose-json``  a folder of OpenPose ``*_keypoints.json`` files       ``body25`` / ``coco18``
``array``          a ``.npy`` / ``.npz`` array ``(T, J, 3)``            given or guessed from J
=================  ====================================================  =====================

Backends with ``needs_video = True`` take frames (``estimate``) or a video path; the others ``load``
a path. Either way gaps are filled and counted (:func:`fill_missing`), and ``NoPersonError`` is raised
when nobody is found in any frame.
"""

from __future__ import annotations

from typing import Any

from unihar.data.pose.arrays import ArrayPoses
from unihar.data.pose.base import PoseSequence, fill_missing, finalize_poses
from unihar.data.pose.blazepose import BlazePose
from unihar.data.pose.mediapipe_backend import MediaPipePose
from unihar.data.pose.openpose import OpenPoseJSON
from unihar.data.pose.tracking import PoseTracker, main_track, select_main_actor
from unihar.errors import InputError

__all__ = [
    "POSE_BACKENDS",
    "ArrayPoses",
    "BlazePose",
    "MediaPipePose",
    "OpenPoseJSON",
    "PoseSequence",
    "PoseTracker",
    "fill_missing",
    "finalize_poses",
    "get_pose_backend",
    "main_track",
    "select_main_actor",
]

POSE_BACKENDS: dict[str, type[BlazePose | MediaPipePose | OpenPoseJSON | ArrayPoses]] = {
    "blazepose": BlazePose,
    "mediapipe": MediaPipePose,
    "openpose-json": OpenPoseJSON,
    "array": ArrayPoses,
}


def get_pose_backend(name: str = "blazepose", max_people: int | None = None, **kwargs: Any) -> Any:
    """A pose backend by name (see the table above); ``kwargs`` go to its constructor.

    ``max_people`` goes to the estimators (backends that read video); importers read what the file holds.
    Backends are used by duck typing (``needs_video`` says which kind: ``frame_estimator`` / ``estimate``,
    or ``load``), as are backend objects of a caller's own, hence ``Any``.
    """
    key = name.strip().lower().replace("_", "-")
    key = {"openpose": "openpose-json", "npy": "array", "npz": "array"}.get(key, key)
    if key not in POSE_BACKENDS:
        raise InputError(f"unknown pose backend {name!r}; expected one of {sorted(POSE_BACKENDS)}")
    backend = POSE_BACKENDS[key]
    if max_people is not None and backend.needs_video:
        kwargs["max_people"] = max_people
    return backend(**kwargs)
