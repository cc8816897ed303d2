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

import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unihar.data.layouts import KeypointLayout
from unihar.data.pose.tracking import main_track

__all__ = ["ActionScore", "WindowPrediction", "PersonPrediction", "VideoPrediction", "print_prediction", "scores_of"]


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
        pose: np.ndarray = self.keypoints[frame - self.start_frame]
        return pose

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
        probs = self.main.probs
        assert probs is not None  # the main person is a classified one: probs comes with topk
        return probs

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

    def to_json(self) -> str:
        """The line ``unihar predict --json`` prints (without its newline)."""
        return json.dumps(self.to_dict())

    def summary(self, width: int = 100) -> str:
        """The summary line and tables ``unihar predict`` prints, as plain text ``width`` columns wide."""
        from rich.console import Console

        buffer = io.StringIO()
        console = Console(file=buffer, width=width, color_system=None, force_terminal=False)
        print_prediction(self, console)
        return buffer.getvalue().rstrip("\n")

    def __str__(self) -> str:
        return self.summary()


def print_prediction(result: VideoPrediction, console: Any) -> None:
    """Print ``result`` on a rich ``console`` as ``unihar predict`` does: a summary line, the main
    person's top-k, their timeline when they have several windows, and everyone when several people."""
    from rich.markup import escape
    from rich.table import Table

    duration = result.frames / result.fps if result.fps else 0.0
    main = result.main
    summary = (
        f"{result.source}: {result.frames} frames, {result.fps:.2f} fps ({duration:.1f} s), "
        f"{len(result.people)} {'person' if len(result.people) == 1 else 'people'}; main person {main.id}: "
        f"{len(main.windows)} window{'s' if len(main.windows) != 1 else ''}"
    )
    if result.missing_frames:
        summary += f", not found in {result.missing_frames} of their frames (interpolated)"
    if result.corrupt_frames:
        summary += f"; {result.corrupt_frames} frames could not be decoded (damaged file: the previous frame stands in)"
    console.print(summary, soft_wrap=True, highlight=False, markup=False)
    table = Table(title=f"Top {len(result.topk)} actions (main person, whole video)")
    table.add_column("#", justify="right")
    table.add_column("action")
    table.add_column("probability", justify="right")
    table.add_column("", min_width=20)
    for rank, score in enumerate(result.topk, start=1):
        table.add_row(str(rank), escape(score.label), f"{score.prob:.3f}", "█" * int(round(score.prob * 20)))
    console.print(table)
    if len(result.windows) > 1:
        timeline = Table(title=f"Timeline of person {main.id} (top action per window)")
        timeline.add_column("from (s)", justify="right")
        timeline.add_column("to (s)", justify="right")
        timeline.add_column("action")
        timeline.add_column("probability", justify="right")
        for window in result.windows:
            best = window.topk[0]
            timeline.add_row(
                f"{window.start_frame / result.fps:.1f}",
                f"{window.end_frame / result.fps:.1f}",
                escape(best.label),
                f"{best.prob:.3f}",
            )
        console.print(timeline)
    if len(result.people) > 1:
        people = Table(title="People")
        for column in ("person", "from (s)", "to (s)", "top action", "probability"):
            people.add_column(column, justify="left" if column == "top action" else "right")
        for person in result.people:
            first, last = person.start_frame / result.fps, (person.end_frame + 1) / result.fps
            if person.topk is None:
                people.add_row(str(person.id), f"{first:.1f}", f"{last:.1f}", escape(f"- ({person.reason})"), "")
            else:
                best = person.topk[0]
                people.add_row(str(person.id), f"{first:.1f}", f"{last:.1f}", escape(best.label), f"{best.prob:.3f}")
        console.print(people)
