"""Following one person when a pose source reports several.

Rule (documented in the README): people are linked frame to frame into tracks by the overlap (IoU) of
the boxes around their visible joints; the *main actor* is the track with the largest sum over frames
of its box size (square root of the box area), i.e. the person who is both big in the frame and there
for long. A bystander crossing the frame for a second, or a small figure in the background for the
whole clip, loses to the person the camera is on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

__all__ = ["person_box", "select_main_actor"]

MIN_IOU = 0.2  # below this two boxes in consecutive frames are not the same person
MAX_GAP = 15  # frames a track may go unseen and still be continued


def person_box(kpts: np.ndarray) -> np.ndarray | None:
    """``(x0, y0, x1, y1)`` around the visible joints (confidence > 0) of ``(J, 3)``; None if < 2 visible."""
    visible = kpts[:, 2] > 0
    if visible.sum() < 2:
        return None
    xy = kpts[visible, :2]
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class _Track:
    box: np.ndarray
    last_frame: int
    score: float = 0.0
    frames: dict[int, int] = field(default_factory=dict)  # frame -> index of the person in that frame


def select_main_actor(people: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Pick the main actor from per-frame detections.

    Args:
        people: one ``(P_i, J, 3)`` array per frame (``P_i`` may be 0).

    Returns:
        ``(N, J, 3)`` keypoints of the main actor (zeros where absent) and an ``(N,)`` bool "detected" mask.
    """
    num_joints = next((p.shape[1] for p in people if p.ndim == 3 and p.shape[0] > 0), 0)
    tracks: list[_Track] = []
    for frame, persons in enumerate(people):
        boxes = [person_box(p) for p in persons] if persons.ndim == 3 else []
        candidates = [(i, box) for i, box in enumerate(boxes) if box is not None]
        active = [t for t in tracks if frame - t.last_frame <= MAX_GAP]
        pairs = sorted(
            ((_iou(t.box, box), ti, i) for ti, t in enumerate(active) for i, box in candidates),
            reverse=True,
        )
        used_tracks: set[int] = set()
        used_people: set[int] = set()
        for iou, ti, i in pairs:  # greedy: best overlaps first
            if iou < MIN_IOU:
                break
            if ti in used_tracks or i in used_people:
                continue
            used_tracks.add(ti)
            used_people.add(i)
            _extend(active[ti], frame, i, boxes[i])
        for i, box in candidates:
            if i not in used_people:
                track = _Track(box=box, last_frame=frame)
                _extend(track, frame, i, box)
                tracks.append(track)

    keypoints = np.zeros((len(people), num_joints, 3), dtype=np.float32)
    detected = np.zeros(len(people), dtype=bool)
    if tracks:
        main = max(tracks, key=lambda t: t.score)
        for frame, i in main.frames.items():
            keypoints[frame] = people[frame][i, :, :3]
            detected[frame] = True
    return keypoints, detected


def _extend(track: _Track, frame: int, person: int, box: np.ndarray) -> None:
    track.box, track.last_frame = box, frame
    track.frames[frame] = person
    track.score += float(np.sqrt(max((box[2] - box[0]) * (box[3] - box[1]), 0.0)))
