"""Importing OpenPose output: a folder of ``*_keypoints.json`` files, one per frame.

OpenPose writes ``{"version": ..., "people": [{"pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, ...]}, ...]}``
per frame (``--write_json``). The layout is read from the number of values: 25 joints = BODY_25,
18 = COCO-18. Frames are ordered by file name (numerically: ``..._2_keypoints`` before ``..._10_``).
When a frame has several people, the main actor is chosen by :func:`~unihar.data.pose.tracking.select_main_actor`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from unihar.data.layouts import LAYOUTS, KeypointLayout, get_layout
from unihar.data.pose.base import PoseSequence, finalize_poses
from unihar.data.pose.tracking import select_main_actor
from unihar.data.video import natural_sort_key
from unihar.errors import InputError

__all__ = ["OpenPoseJSON", "OPENPOSE_LAYOUTS"]

# joints -> layout, for OpenPose's two body models
OPENPOSE_LAYOUTS: dict[int, KeypointLayout] = {25: LAYOUTS["body25"], 18: LAYOUTS["coco18"]}


class OpenPoseJSON:
    """Reads an OpenPose ``--write_json`` folder into a :class:`PoseSequence` (BODY_25 or COCO-18)."""

    name = "openpose-json"
    needs_video = False

    def __init__(self, layout: str | list[str] | KeypointLayout | None = None) -> None:
        self.layout = get_layout(layout) if layout is not None else None

    def load(self, folder: str | Path, frame_size: tuple[int, int] | None = None) -> PoseSequence:
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"expected a folder of OpenPose '*_keypoints.json' files, got {str(folder)!r}")
        files = sorted(folder.glob("*_keypoints.json"), key=natural_sort_key)
        if not files:
            raise InputError(f"no '*_keypoints.json' files in {str(folder)!r} (expected OpenPose --write_json output)")
        layout = self.layout
        people_per_frame: list[np.ndarray] = []
        for path in files:
            try:
                data = json.loads(path.read_text())
                people = data["people"]
                # "pose_keypoints" is the key of OpenPose releases before 1.2
                flat = [
                    np.asarray(p.get("pose_keypoints_2d", p.get("pose_keypoints")), dtype=np.float32) for p in people
                ]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise InputError(
                    f"cannot read OpenPose file {str(path)!r}: expected "
                    f"{{'people': [{{'pose_keypoints_2d': [...]}}]}} ({exc})"
                ) from None
            for values in flat:
                if values.ndim != 1 or values.size % 3:
                    raise InputError(
                        f"{str(path)!r}: pose_keypoints_2d must hold x, y, c triples, got {values.size} values"
                    )
                joints = values.size // 3
                if layout is None:
                    if joints not in OPENPOSE_LAYOUTS:
                        raise InputError(
                            f"{str(path)!r}: {joints} joints per person; expected 25 (BODY_25) or 18 (COCO-18), "
                            "or pass the layout explicitly"
                        )
                    layout = OPENPOSE_LAYOUTS[joints]
                if joints != layout.num_joints:
                    raise InputError(
                        f"{str(path)!r}: a person has {joints} joints, expected {layout.num_joints} ({layout.name}) "
                        "like the earlier frames"
                    )
            people_per_frame.append(
                np.stack([v.reshape(-1, 3) for v in flat]) if flat else np.zeros((0, 0, 3), np.float32)
            )
        if layout is None:
            raise InputError(f"nobody appears in any of the {len(files)} OpenPose files in {str(folder)!r}")
        people_per_frame = [p if p.size else np.zeros((0, layout.num_joints, 3), np.float32) for p in people_per_frame]
        keypoints, detected = select_main_actor(people_per_frame)
        if frame_size is None:
            frame_size = _extent(keypoints)
        return finalize_poses(keypoints, detected, layout, frame_size, str(folder))

    __call__ = load


def _extent(keypoints: np.ndarray) -> tuple[int, int]:
    """A frame size that holds every visible joint, for sources that do not record the image size."""
    visible = keypoints[..., 2] > 0
    if not visible.any():
        return (0, 0)
    xy = keypoints[visible][:, :2]
    return (int(np.ceil(xy[:, 0].max())) + 1, int(np.ceil(xy[:, 1].max())) + 1)
