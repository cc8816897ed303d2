"""Who is who across frames: stable ids for per-frame pose detections, and the main actor.

:class:`PoseTracker` gives each person found in a frame the id of the track they continue. Tracks are
matched to detections by one optimal assignment per frame (``scipy.optimize.linear_sum_assignment``)
on a keypoint similarity: an OKS-like score (joint distances relative to the person's size, each track
moved ahead by its own velocity first), or the IoU of the boxes around the visible joints when the two
share too few visible joints. A pair below ``min_similarity`` is never matched, so a detection goes to
at most one track and a stranger does not inherit an id. Tracks and detections left over get a second
chance on place and size alone (:meth:`PoseTracker._rejoin`): someone whose pose changed while the
landmark model lost them (a fall) keeps their id. A track may go unseen for ``max_age`` frames
(an occlusion, a missed detection) and still keep its id; after that it is forgotten and whoever
appears there gets a new id.

Main person (documented in the README), the one rule for training data, pose extraction and
prediction (:func:`main_track`): the track with the largest sum over the frames it was detected in of
its box size (square root of the area of the box around its visible joints), i.e. size x duration, the
person who is both big in the frame and there for long; ties go to the lowest id. A bystander crossing
the frame for a second, or a small figure in the background for the whole clip, loses to the person
the camera is on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from unihar.errors import ConfigError, InputError

__all__ = [
    "PoseTracker",
    "Tracker",
    "box_iou",
    "keypoint_similarity",
    "main_track",
    "multi_person_tracker",
    "person_box",
    "presence",
    "select_main_actor",
    "single_person_tracker",
]

# track(people (P, J, 3), source frame number) -> ({track id: (J, 3)}, [ids of tracks that ended])
Tracker = Callable[[np.ndarray, int], "tuple[dict[int, np.ndarray], list[int]]"]

MIN_SIMILARITY = 0.2  # below this keypoint similarity (or box IoU) a detection does not continue a track
MAX_GAP = 15  # frames a track may go unseen and still be continued
KAPPA = 0.1  # joint distance (in units of the person's size) at which a joint's similarity is exp(-1/2)
MIN_SHARED_JOINTS = 4  # fewer joints visible in both poses -> compare boxes instead
VELOCITY_MEMORY = 0.5  # weight of the old velocity when a track is seen again
REJOIN_DISTANCE = 0.75  # a track the keypoints lost continues with a person this near (x its box diagonal) ...
REJOIN_SIZE = 2.0  # ... whose box diagonal is within this factor of its own
MIN_HITS = 3  # detections that make a new track a person (see multi_person_tracker)


def person_box(kpts: np.ndarray, min_confidence: float = 0.0) -> np.ndarray | None:
    """``(x0, y0, x1, y1)`` around the visible joints (confidence > ``min_confidence``) of ``(J, 3)``;
    None if fewer than 2 are visible."""
    visible = kpts[:, 2] > min_confidence
    if visible.sum() < 2:
        return None
    xy = kpts[visible, :2]
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)])


def _boxes(people: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """``(P, 4)`` boxes around each person's visible joints (NaN rows for people with none)."""
    xy = people[..., :2]
    low = np.where(visible[..., None], xy, np.inf).min(axis=1)
    high = np.where(visible[..., None], xy, -np.inf).max(axis=1)
    boxes = np.concatenate([low, high], axis=1)
    boxes[~visible.any(axis=1)] = np.nan
    return boxes


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(A, B)`` IoU between boxes ``(A, 4)`` and ``(B, 4)`` as (x0, y0, x1, y1); 0 for empty unions."""
    width = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    height = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = width * height
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    iou: np.ndarray = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return iou


def keypoint_similarity(
    a: np.ndarray,
    b: np.ndarray,
    min_confidence: float = 0.0,
    kappa: float | np.ndarray = KAPPA,
    min_shared_joints: int = MIN_SHARED_JOINTS,
) -> np.ndarray:
    """``(A, B)`` similarity in [0, 1] between poses ``(A, J, 3)`` and ``(B, J, 3)``.

    OKS-like: ``sum_j w_j exp(-d_j^2 / (2 (kappa s)^2)) / sum_j w_j`` over the joints visible in both
    (confidence > ``min_confidence``), with ``w_j`` the smaller of the two confidences and ``s`` the
    square root of the mean of the two box areas, so it does not depend on the image size. Pairs
    sharing fewer than ``min_shared_joints`` visible joints get the IoU of their boxes instead.
    ``kappa`` may be ``(A,)``, one tolerance per row (the tracker widens it for tracks unseen longer).
    """
    visible_a, visible_b = a[..., 2] > min_confidence, b[..., 2] > min_confidence
    boxes_a, boxes_b = _boxes(a, visible_a), _boxes(b, visible_b)
    area_a = np.nan_to_num((boxes_a[:, 2] - boxes_a[:, 0]) * (boxes_a[:, 3] - boxes_a[:, 1]))
    area_b = np.nan_to_num((boxes_b[:, 2] - boxes_b[:, 0]) * (boxes_b[:, 3] - boxes_b[:, 1]))
    scale_sq = np.maximum((area_a[:, None] + area_b[None, :]) / 2, 1e-6)  # (A, B)
    kappa = np.broadcast_to(np.asarray(kappa, dtype=np.float64), (a.shape[0],))[:, None]
    shared = visible_a[:, None, :] & visible_b[None, :, :]  # (A, B, J)
    weights = np.where(shared, np.minimum(a[:, None, :, 2], b[None, :, :, 2]), 0.0)
    dist_sq = ((a[:, None, :, :2] - b[None, :, :, :2]) ** 2).sum(axis=-1)
    closeness = np.exp(-dist_sq / (2 * scale_sq[..., None] * kappa[..., None] ** 2))
    total = weights.sum(axis=-1)
    oks = (weights * closeness).sum(axis=-1) / np.where(total > 0, total, 1.0)
    iou = box_iou(np.nan_to_num(boxes_a), np.nan_to_num(boxes_b))
    return np.where(shared.sum(axis=-1) >= min_shared_joints, oks, iou)


@dataclass
class Track:
    """One person followed over frames."""

    id: int
    keypoints: np.ndarray  # (J, C) as last seen
    last_frame: int
    velocity: np.ndarray  # (2,) pixels per frame, of the box centre
    hits: int = 1


class PoseTracker:
    """Stable ids for the people of a pose stream; call :meth:`update` for each frame, in order.

    Args:
        max_age: frames a track may go unseen and still keep its id (occlusions, missed detections).
        min_similarity: a detection continues a track only if their similarity reaches this.
        metric: ``"oks"`` (keypoint similarity, box IoU for pairs with few shared joints) or ``"iou"``
            (boxes only: for sources whose joints are not comparable frame to frame).
        min_confidence: joints with a confidence above this count as visible.
    """

    def __init__(
        self,
        max_age: int = MAX_GAP,
        min_similarity: float = MIN_SIMILARITY,
        metric: str = "oks",
        min_confidence: float = 0.0,
    ) -> None:
        if metric not in ("oks", "iou"):
            raise ConfigError(f"PoseTracker metric must be 'oks' or 'iou', got {metric!r}")
        if max_age < 0:
            raise ConfigError(f"PoseTracker max_age must be >= 0 frames, got {max_age}")
        if not 0.0 < min_similarity <= 1.0:
            raise ConfigError(f"PoseTracker min_similarity must be in (0, 1], got {min_similarity}")
        self.max_age = max_age
        self.min_similarity = min_similarity
        self.metric = metric
        self.min_confidence = min_confidence
        self.tracks: list[Track] = []
        self.frame = -1
        self._next_id = 0

    def reset(self) -> None:
        """Forget every track (a new stream); ids start again from 0."""
        self.tracks, self.frame, self._next_id = [], -1, 0

    def update(self, people: np.ndarray, frame: int | None = None) -> np.ndarray:
        """Ids ``(P,)`` int64 for this frame's people ``(P, J, C)`` (C >= 3: x, y, confidence, ...).

        ``frame``: the source's frame number (default: the one after the last). Ages and velocities are
        counted in source frames, so a live source that skips frames does not make people look faster
        or keep a track alive longer. People with fewer than 2 visible joints cannot be placed and get id -1.
        """
        if frame is not None and (
            isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or frame <= self.frame
        ):
            raise InputError(f"PoseTracker.update: frame numbers must increase, got {frame!r} after {self.frame}")
        people = np.asarray(people, dtype=np.float64)
        if people.ndim != 3 or people.shape[-1] < 3:
            raise InputError(f"PoseTracker.update expects people as (P, J, 3) arrays, got shape {people.shape}")
        if self.tracks and people.shape[0] and people.shape[1] != self.tracks[0].keypoints.shape[0]:
            raise InputError(
                f"PoseTracker.update got {people.shape[1]} joints per person, the stream so far had "
                f"{self.tracks[0].keypoints.shape[0]}"
            )
        self.frame = self.frame + 1 if frame is None else int(frame)
        self.tracks = [t for t in self.tracks if self.frame - t.last_frame - 1 <= self.max_age]
        ids = np.full(people.shape[0], -1, dtype=np.int64)
        placeable = np.flatnonzero((people[..., 2] > self.min_confidence).sum(axis=1) >= 2)
        matched = set()
        if self.tracks and placeable.size:
            similarity = self._similarity(people[placeable])
            rows, cols = linear_sum_assignment(similarity, maximize=True)
            continued = set()
            for row, col in zip(rows, cols):
                if similarity[row, col] >= self.min_similarity:
                    self._continue(self.tracks[row], people[placeable[col]])
                    ids[placeable[col]] = self.tracks[row].id
                    matched.add(int(placeable[col]))
                    continued.add(int(row))
            lost = [row for row in range(len(self.tracks)) if row not in continued]
            unmatched = [int(i) for i in placeable if int(i) not in matched]
            for row, rejoined in self._rejoin(lost, people, unmatched):
                self._continue(self.tracks[row], people[rejoined])
                ids[rejoined] = self.tracks[row].id
                matched.add(rejoined)
        for index in placeable:
            if int(index) not in matched:
                track = Track(self._next_id, people[index].copy(), self.frame, np.zeros(2))
                self._next_id += 1
                self.tracks.append(track)
                ids[index] = track.id
        return ids

    def _rejoin(self, rows: list[int], people: np.ndarray, indices: list[int]) -> list[tuple[int, int]]:
        """Second chance for tracks the keypoints did not continue: ``(track row, person index)`` pairs.

        A person whose pose changed a lot between two sightings (fell, turned, was lost by the landmark
        model for a few frames) shares few joint positions with their last pose, but is still found near
        where their track was heading and about as big: the box centre within ``REJOIN_DISTANCE`` of the
        track's box diagonal, the diagonals within a factor ``REJOIN_SIZE``. The diagonal, not the area,
        because it changes little when someone lies down. Pairs are chosen by one assignment on the
        centre distance, as for the keypoints.
        """
        if not rows or not indices:
            return []
        visible = people[indices, :, 2] > self.min_confidence
        boxes = _boxes(people[indices], visible)  # (D, 4)
        olds = np.stack([self.tracks[row].keypoints for row in rows])
        old_boxes = _boxes(olds, olds[..., 2] > self.min_confidence)  # (T, 4)
        gaps = np.array([self.frame - self.tracks[row].last_frame for row in rows], dtype=np.float64)
        velocity = np.stack([self.tracks[row].velocity for row in rows])
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        old_centre = (old_boxes[:, :2] + old_boxes[:, 2:]) / 2 + gaps[:, None] * velocity
        diagonal = np.hypot(*(boxes[:, 2:] - boxes[:, :2]).T)
        old_diagonal = np.hypot(*(old_boxes[:, 2:] - old_boxes[:, :2]).T)
        distance = np.linalg.norm(old_centre[:, None] - centre[None], axis=-1) / np.maximum(old_diagonal[:, None], 1e-6)
        ratio = np.maximum(diagonal[None], 1e-6) / np.maximum(old_diagonal[:, None], 1e-6)
        allowed = (distance <= REJOIN_DISTANCE) & (ratio <= REJOIN_SIZE) & (ratio >= 1 / REJOIN_SIZE)
        allowed &= np.isfinite(distance)
        if not allowed.any():
            return []
        cost = np.where(allowed, distance, 1e6)
        pairs = []
        for t, d in zip(*linear_sum_assignment(cost)):
            if allowed[t, d]:
                pairs.append((rows[int(t)], indices[int(d)]))
        return pairs

    def _similarity(self, people: np.ndarray) -> np.ndarray:
        """``(tracks, people)`` similarity, each track first moved ahead by its velocity."""
        gaps = np.array([self.frame - t.last_frame for t in self.tracks], dtype=np.float64)
        predicted = np.stack([t.keypoints for t in self.tracks]).copy()
        predicted[..., :2] += gaps[:, None, None] * np.stack([t.velocity for t in self.tracks])[:, None, :]
        if self.metric == "iou":
            return keypoint_similarity(predicted, people, self.min_confidence, min_shared_joints=people.shape[1] + 1)
        # The longer a track went unseen, the less its predicted position is worth: widen the tolerance.
        return keypoint_similarity(predicted, people, self.min_confidence, kappa=KAPPA * np.sqrt(gaps))

    def _continue(self, track: Track, person: np.ndarray) -> None:
        visible = person[:, 2] > self.min_confidence
        old_visible = track.keypoints[:, 2] > self.min_confidence
        both = visible & old_visible
        if both.sum() >= 1:  # the centre of the joints seen in both frames: robust to joints appearing
            step = (person[both, :2].mean(axis=0) - track.keypoints[both, :2].mean(axis=0)) / (
                self.frame - track.last_frame
            )
            track.velocity = VELOCITY_MEMORY * track.velocity + (1 - VELOCITY_MEMORY) * step
        track.keypoints = person.copy()
        track.last_frame = self.frame
        track.hits += 1


def presence(keypoints: np.ndarray) -> float:
    """Size x duration of one person: over their frames ``(N, J, C)`` (C >= 3), the sum of the square
    root of the area of the box around the visible joints (confidence > 0); frames with fewer than 2
    visible joints add nothing."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 3 or keypoints.shape[-1] < 3:
        raise InputError(f"presence: expected keypoints (frames, joints, 3), got shape {keypoints.shape}")
    visible = keypoints[..., 2] > 0
    xy = keypoints[..., :2]
    low = np.where(visible[..., None], xy, np.inf).min(axis=1)
    high = np.where(visible[..., None], xy, -np.inf).max(axis=1)
    placed = visible.sum(axis=1) >= 2
    area = np.prod(high[placed] - low[placed], axis=-1)
    return float(np.sqrt(np.clip(area, 0.0, None)).sum())


def main_track(tracks: Mapping[int, np.ndarray]) -> int:
    """The main person's id among ``tracks`` (id -> ``(N_i, J, 3)`` keypoints of the frames they were
    detected in): the largest :func:`presence` (size x duration), ties to the lowest id."""
    if not tracks:
        raise InputError("main_track: expected at least one track, got none")
    weights = {int(i): presence(k) for i, k in tracks.items()}
    return max(weights, key=lambda i: (weights[i], -i))


def select_main_actor(
    people: Sequence[np.ndarray], metric: str = "iou", max_age: int = MAX_GAP
) -> tuple[np.ndarray, np.ndarray]:
    """Pick the main actor from per-frame detections (see the module docstring for the rule).

    Args:
        people: one ``(P_i, J, 3)`` array per frame (``P_i`` may be 0).
        metric: how frames are linked, see :class:`PoseTracker` (``"iou"``: boxes, the OpenPose importer's
            rule; ``"oks"``: keypoints, for estimators whose joints are consistent frame to frame).
        max_age: frames a person may go unseen and still be the same person.

    Returns:
        ``(N, J, 3)`` keypoints of the main actor (zeros where absent) and an ``(N,)`` bool "detected" mask.
    """
    num_joints = next((p.shape[1] for p in people if p.ndim == 3 and p.shape[0] > 0), 0)
    tracker = PoseTracker(max_age=max_age, metric=metric)
    where: dict[int, dict[int, int]] = {}  # track id -> {frame: index of the person in that frame}
    for frame, persons in enumerate(people):
        if persons.ndim != 3 or persons.shape[0] == 0:
            tracker.update(np.zeros((0, max(num_joints, 1), 3)))
            continue
        for index, track_id in enumerate(tracker.update(persons[..., :3])):
            if track_id >= 0 and person_box(persons[index]) is not None:
                where.setdefault(int(track_id), {})[frame] = index
    keypoints = np.zeros((len(people), num_joints, 3), dtype=np.float32)
    detected = np.zeros(len(people), dtype=bool)
    if where:
        main = main_track({t: np.stack([people[f][i, :, :3] for f, i in seen.items()]) for t, seen in where.items()})
        for frame, index in where[main].items():
            keypoints[frame] = people[frame][index, :, :3]
            detected[frame] = True
    return keypoints, detected


# ---------------------------------------------------------------------------- trackers for live frames
def single_person_tracker() -> Tracker:
    """``--max-people 1``: one person for the whole video (id 0), the largest one found in each frame."""

    def track(people: np.ndarray, number: int | None = None) -> tuple[dict[int, np.ndarray], list[int]]:
        if len(people) == 0:
            return {}, []
        visible = people[..., 2] > 0
        extent = [np.ptp(p[v, :2], axis=0).prod() if v.sum() >= 2 else 0.0 for p, v in zip(people, visible)]
        return {0: people[int(np.argmax(extent))]}, []

    return track


def multi_person_tracker(max_age: int, min_hits: int = MIN_HITS) -> Tracker:
    """Persistent ids (:class:`PoseTracker`), and which tracks ended (unseen for more than ``max_age`` frames).

    As in SORT, a new track is tentative until it was found in ``min_hits`` frames out of its first
    ``min_hits + 2``: a spurious detection for a frame or two never becomes a person. A confirmed track
    starts at the frame it was confirmed. ``number`` is the source's frame number: ages count source
    frames, while confirmation counts the frames looked at (a frame a live source dropped is no miss).
    """
    tracker = PoseTracker(max_age=max_age)
    frame, looked = [-1], [-1]
    born: dict[int, int] = {}  # track id -> the frame looked at (count) it was first seen in
    confirmed: set[int] = set()

    def track(people: np.ndarray, number: int | None = None) -> tuple[dict[int, np.ndarray], list[int]]:
        frame[0] = frame[0] + 1 if number is None else number
        looked[0] += 1
        ids = tracker.update(people, frame[0])
        hits = {t.id: t.hits for t in tracker.tracks}
        for track_id in hits:
            born.setdefault(track_id, looked[0])
            if hits[track_id] >= min_hits and looked[0] - born[track_id] <= min_hits + 1:
                confirmed.add(track_id)
        ended = sorted(i for i in confirmed if i not in hits)
        confirmed.difference_update(ended)
        for track_id in [i for i in born if i not in hits]:
            del born[track_id]
        return {int(i): people[k] for k, i in enumerate(ids) if i in confirmed}, ended

    return track
