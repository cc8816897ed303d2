"""What a prediction is: per window, per person and per video, and the JSON ``unihar predict --json`` prints.

    {"source", "frames", "fps",
     "topk": [...], "windows": [...],                       # the main person
     "people": [{"id", "start_frame", "end_frame", "topk", "windows"}, ...]}

The main person is the classified person with the largest size x duration (the sum over the frames
they were detected in of their box size): the one rule of :func:`unihar.data.pose.tracking.main_track`,
which also picks whose poses training data and pose extraction keep.

``start_frame`` / ``end_frame`` of a window are source frame numbers, the end exclusive; a person's
``start_frame`` / ``end_frame`` are their first and last frame, inclusive. A person seen too briefly
to classify has no ``topk`` / ``windows`` but a ``reason``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unihar.data.layouts import KeypointLayout
from unihar.data.pose.tracking import main_track

__all__ = ["ActionScore", "WindowPrediction", "PersonPrediction", "VideoPrediction", "scores_of"]


@dataclass(frozen=True)
class ActionScore:
    id: int
    label: str
    prob: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "prob": self.prob}


def scores_of(probs: np.ndarray, labels: list[str], k: int) -> list[ActionScore]:
    """The ``k`` most probable classes, most probable first (stable on ties)."""
    order = np.argsort(-probs, kind="stable")[:k]
    return [ActionScore(int(i), labels[int(i)], float(probs[int(i)])) for i in order]


@dataclass
class WindowPrediction:
    """Probabilities for the source frames ``[start_frame, end_frame)``."""

    start_frame: int
    end_frame: int
    probs: np.ndarray = field(repr=False)  # (K,)
    topk: list[ActionScore]
    # What the window was classified from, for models with a sensor branch (None otherwise): fewer than
    # the model's modalities where the sensor recording did not cover the window.
    modalities: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "topk": [s.to_dict() for s in self.topk],
        }
        if self.modalities is not None:
            data["modalities"] = list(self.modalities)
        return data


@dataclass
class PersonPrediction:
    """One tracked person: their poses over their frames and what they did.

    ``keypoints`` ``(end_frame - start_frame + 1, J, 3)`` in the pose backend's ``layout`` (frames where
    they were not found are interpolated; ``detected`` says which were found). ``probs`` / ``topk`` are
    the mean over the person's windows; None (with a ``reason``) when seen too briefly.
    """

    id: int
    start_frame: int
    end_frame: int
    keypoints: np.ndarray = field(repr=False)
    detected: np.ndarray = field(repr=False)
    layout: KeypointLayout
    windows: list[WindowPrediction] = field(default_factory=list)
    probs: np.ndarray | None = field(default=None, repr=False)
    topk: list[ActionScore] | None = None
    reason: str | None = None

    @property
    def num_frames(self) -> int:
        return self.end_frame - self.start_frame + 1

    def window_index(self, frames: np.ndarray) -> np.ndarray:
        """For each source frame, the index of this person's window whose centre is nearest (ties: the earlier)."""
        centres = np.array([(w.start_frame + w.end_frame - 1) / 2 for w in self.windows])
        frames = np.asarray(frames, dtype=np.float64)
        right = np.clip(np.searchsorted(centres, frames), 0, len(centres) - 1)
        left = np.clip(right - 1, 0, len(centres) - 1)
        return np.where(np.abs(centres[left] - frames) <= np.abs(centres[right] - frames), left, right)

    def window_for_frame(self, frame: int) -> WindowPrediction | None:
        """The window shown at ``frame`` (the nearest by centre), or None if the person has none."""
        return self.windows[int(self.window_index(np.array([frame]))[0])] if self.windows else None

    def pose_at(self, frame: int) -> np.ndarray | None:
        """``(J, 3)`` keypoints at source frame ``frame``, or None outside the person's frames."""
        if not self.start_frame <= frame <= self.end_frame:
            return None
        return self.keypoints[frame - self.start_frame]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "start_frame": self.start_frame, "end_frame": self.end_frame}
        if self.topk is None:
            data["reason"] = self.reason
        else:
            data["topk"] = [s.to_dict() for s in self.topk]
            data["windows"] = [w.to_dict() for w in self.windows]
        return data


@dataclass
class VideoPrediction:
    """Everything ``unihar predict`` reports about one video (or one pose sequence)."""

    source: str
    frames: int
    fps: float
    people: list[PersonPrediction]
    labels: list[str] = field(repr=False)
    frame_size: tuple[int, int] = (0, 0)
    corrupt_frames: int = 0  # frames that could not be decoded; the previous one stood in for each

    @property
    def main(self) -> PersonPrediction:
        """The main person: the classified person with the largest size x duration (:func:`main_track`)."""
        classified = {p.id: p for p in self.people if p.topk is not None}
        return classified[main_track({i: p.keypoints[p.detected] for i, p in classified.items()})]

    @property
    def topk(self) -> list[ActionScore]:
        return self.main.topk or []

    @property
    def windows(self) -> list[WindowPrediction]:
        return self.main.windows

    @property
    def probs(self) -> np.ndarray:
        return self.main.probs

    @property
    def missing_frames(self) -> int:
        """Frames of the main person's track where they were not found (filled in)."""
        return int((~self.main.detected).sum())

    def to_dict(self) -> dict[str, Any]:
        """What ``--json`` prints; ``corrupt_frames`` only for a video with undecodable frames (a warning)."""
        data = {
            "source": self.source,
            "frames": self.frames,
            "fps": self.fps,
            "topk": [s.to_dict() for s in self.topk],
            "windows": [w.to_dict() for w in self.windows],
            "people": [p.to_dict() for p in self.people],
        }
        if self.corrupt_frames:
            data["corrupt_frames"] = self.corrupt_frames
        return data
