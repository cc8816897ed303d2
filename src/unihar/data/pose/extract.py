"""Running a pose estimator over a whole video, for code that wants every frame's poses at once
(dataset pose caches, benchmarks, tests). Inference does not use this: it streams frames through
:func:`unihar.inference.streaming.run_source`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from unihar.data.pose.base import PoseSequence, finalize_poses
from unihar.data.pose.tracking import select_main_actor
from unihar.data.video import VideoReader, open_video
from unihar.errors import InputError

__all__ = ["estimate_people", "estimate_main_person"]


def estimate_people(backend: Any, frames: Iterable[np.ndarray]) -> tuple[list[np.ndarray], tuple[int, int]]:
    """Every frame's people ``(P_i, J, 3)`` from a video backend (``needs_video``), and the frame size."""
    if not getattr(backend, "needs_video", False):
        raise InputError(
            f"the {backend.name!r} pose backend imports keypoint files; it cannot estimate poses from frames"
        )
    people: list[np.ndarray] = []
    size: tuple[int, int] | None = None
    with backend.frame_estimator() as estimate:
        for index, frame in enumerate(frames):
            frame = np.asarray(frame)
            if size is None:
                size = (frame.shape[1], frame.shape[0])
            elif (frame.shape[1], frame.shape[0]) != size:
                raise InputError(f"frame {index} is {frame.shape[1]}x{frame.shape[0]}, expected {size[0]}x{size[1]}")
            people.append(np.asarray(estimate(frame), dtype=np.float32))
    return people, size or (0, 0)


def estimate_main_person(backend: Any, source: str | Path | VideoReader) -> PoseSequence:
    """The main person's poses over a whole video (the person who is big in the frame and there for long,
    see :func:`~unihar.data.pose.tracking.select_main_actor`), gaps filled."""
    reader = source if isinstance(source, VideoReader) else open_video(source)
    people, size = estimate_people(backend, reader)
    keypoints, detected = select_main_actor(people, metric="oks")
    return finalize_poses(keypoints, detected, backend.layout, size, str(reader.info.source))
