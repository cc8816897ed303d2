"""BlazePose on LiteRT (several people, real frames) and the pose tracker (synthetic keypoints)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from unihar.data.layouts import LAYOUTS
from unihar.data.pose import BlazePose, PoseTracker, get_pose_backend
from unihar.data.pose.blazepose_geometry import crop_matrix, rois_from_points, ssd_anchor_centers, weighted_nms
from unihar.data.pose.tracking import box_iou, keypoint_similarity, person_box
from unihar.data.video import open_video, read_frames
from unihar.errors import ConfigError, InputError, NoPersonError
from video_helpers import CLEAN_AND_JERK

REFERENCE = Path(__file__).resolve().parent / "data" / "blazepose_reference.npz"
MP = LAYOUTS["mediapipe33"]
TORSO = [MP.index(j) for j in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]


@pytest.fixture(scope="module")
def lifter_frames() -> np.ndarray:
    frames, _ = read_frames(CLEAN_AND_JERK)
    return frames  # (300, 256, 340, 3) uint8 RGB


@pytest.fixture(scope="module")
def blazepose() -> BlazePose:
    return BlazePose(num_threads=2)


def _one_frame(backend: BlazePose, frame: np.ndarray) -> np.ndarray:
    with backend.frame_estimator() as estimate:
        return estimate(frame)


def _torso_size(points: np.ndarray) -> float:
    shoulders = points[TORSO[:2], :2].mean(axis=0)
    hips = points[TORSO[2:], :2].mean(axis=0)
    return float(np.linalg.norm(shoulders - hips))


# ------------------------------------------------------------------ geometry facts
def test_anchor_grid_matches_the_detector_outputs() -> None:
    anchors = ssd_anchor_centers()
    assert anchors.shape == (2254, 2)  # 28*28*2 + 14*14*2 + 7*7*6
    np.testing.assert_allclose(anchors[0], [0.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(anchors[1], anchors[0])  # two anchors per cell on the stride-8 grid
    np.testing.assert_allclose(anchors[2], [1.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(anchors[-1], [6.5 / 7, 6.5 / 7])
    assert (anchors[-6:] == anchors[-1]).all()  # the three stride-32 layers share one 7x7 grid


def test_roi_rule_and_crop_matrix() -> None:
    # Upright body: hip centre (100, 200), body-circle point 80 px above -> side 2 * 80 * 1.25, no turn.
    roi = rois_from_points(np.array([[100.0, 200.0]]), np.array([[100.0, 120.0]]))[0]
    np.testing.assert_allclose(roi, [100, 200, 200, 0], atol=1e-5)
    matrix = crop_matrix(roi, 256)
    np.testing.assert_allclose(matrix @ [128, 128, 1], [100, 200], atol=1e-4)  # crop centre -> ROI centre
    np.testing.assert_allclose(matrix @ [0, 0, 1], [0, 100], atol=1e-4)  # crop corner -> ROI corner
    # Lying body, head to the right: the crop is turned so the head points up in it.
    lying = rois_from_points(np.array([[100.0, 200.0]]), np.array([[180.0, 200.0]]))[0]
    assert lying[3] == pytest.approx(np.pi / 2)
    np.testing.assert_allclose(crop_matrix(lying, 256) @ [128, 0, 1], [200, 200], atol=1e-4)  # crop top -> right


def test_weighted_nms_merges_overlaps_by_score() -> None:
    scores = np.array([0.6, 0.9, 0.3])
    boxes = np.array([[0.0, 0, 1, 1], [0.1, 0, 1.1, 1], [5, 5, 6, 6]])
    keypoints = np.array([[[1.0, 1.0]], [[2.0, 2.0]], [[9.0, 9.0]]])
    merged_scores, merged_boxes, merged_keypoints = weighted_nms(scores, boxes, keypoints)
    np.testing.assert_allclose(merged_scores, [0.9, 0.3])
    np.testing.assert_allclose(merged_keypoints[0, 0], (0.6 * 1 + 0.9 * 2) / 1.5 * np.ones(2))
    np.testing.assert_allclose(merged_boxes[1], boxes[2])


# ------------------------------------------------------------------ BlazePose on real frames
def test_one_lifter_agrees_with_mediapipe_reference(blazepose: BlazePose, lifter_frames: np.ndarray) -> None:
    reference = np.load(REFERENCE)
    for index, expected in zip(reference["frames"], reference["keypoints"]):
        people = _one_frame(blazepose, lifter_frames[index])
        assert people.shape == (1, 33, 3) and people.dtype == np.float32
        person = people[0]
        height, width = lifter_frames.shape[1:3]
        visible = expected[:, 2] > 0.5
        assert visible.sum() >= 20
        xy = person[visible, :2]
        assert (xy[:, 0] > 0).all() and (xy[:, 0] < width).all() and (xy[:, 1] > 0).all() and (xy[:, 1] < height).all()
        assert person[TORSO[:2], 1].max() < person[TORSO[2:], 1].min()  # shoulders above hips
        assert ((person[:, 2] >= 0) & (person[:, 2] <= 1)).all()
        distance = np.linalg.norm(person[visible, :2] - expected[visible, :2], axis=1) / _torso_size(expected)
        assert distance.mean() < 0.05, (index, distance.mean())
        assert (distance < 0.1).mean() >= 0.95, (index, distance)  # PCK@0.1 torso
        np.testing.assert_allclose(person[visible, 2], expected[visible, 2], atol=0.05)


def test_two_people_side_by_side(blazepose: BlazePose, lifter_frames: np.ndarray) -> None:
    frame = lifter_frames[0]
    pair = np.concatenate([frame, frame], axis=1)  # the lifter twice: 680x256
    people = _one_frame(blazepose, pair)
    assert people.shape == (2, 33, 3)
    hips_x = np.sort(people[:, TORSO[2:], 0].mean(axis=1))
    single = _one_frame(blazepose, frame)[0, TORSO[2:], 0].mean()
    np.testing.assert_allclose(hips_x, [single, single + frame.shape[1]], atol=0.05 * frame.shape[1])


def test_max_people_is_respected(lifter_frames: np.ndarray) -> None:
    pairs = np.concatenate([lifter_frames[:25], lifter_frames[:25]], axis=2)  # two lifters per frame
    counts = {1: [], 2: []}
    for max_people in counts:
        with BlazePose(max_people=max_people, detect_every=5, num_threads=2).frame_estimator() as estimate:
            counts[max_people] = [len(estimate(frame)) for frame in pairs]
    assert counts[1] == [1] * 25  # the detector still runs (every 5 frames) but nobody is added
    assert counts[2] == [2] * 25


def test_nobody_on_a_black_frame(blazepose: BlazePose) -> None:
    people = _one_frame(blazepose, np.zeros((256, 340, 3), np.uint8))
    assert people.shape == (0, 33, 3) and people.dtype == np.float32


def test_tracking_follows_the_lifter_without_duplicates(lifter_frames: np.ndarray) -> None:
    # The detector runs on every frame here: the tracked lifter must not be found a second time.
    backend = BlazePose(detect_every=1, num_threads=2)
    hips = []
    stderr_before = os.fstat(2)
    with backend.frame_estimator() as estimate:
        for frame in lifter_frames[:30]:
            people = estimate(frame)
            assert people.shape == (1, 33, 3)
            hips.append(people[0, TORSO[2:], :2].mean(axis=0))
            assert os.fstat(2).st_ino == stderr_before.st_ino  # stderr is never redirected
    steps = np.linalg.norm(np.diff(np.array(hips), axis=0), axis=1)
    assert steps.max() < 0.1 * _torso_size(people[0]) * 3


def test_estimate_follows_the_main_actor(tmp_path: Path) -> None:
    sequence = get_pose_backend("blazepose", num_threads=2)(open_video(CLEAN_AND_JERK, max_frames=20))
    assert sequence.layout is MP and sequence.keypoints.shape == (20, 33, 3)
    assert sequence.frame_size == (340, 256) and sequence.missing == 0 and sequence.detected.all()
    with pytest.raises(NoPersonError, match="nobody was detected in any of the 3 frames"):
        BlazePose(num_threads=2).estimate([np.zeros((64, 64, 3), np.uint8)] * 3, "wall")


def test_bad_input_is_one_clear_error(blazepose: BlazePose, tmp_path: Path) -> None:
    with blazepose.frame_estimator() as estimate:
        for bad in (np.zeros((64, 64, 3), np.float32), np.zeros((64, 64), np.uint8), np.zeros((64, 64, 4), np.uint8)):
            with pytest.raises(InputError, match=r"\(height, width, 3\) uint8"):
                estimate(bad)
    with pytest.raises(InputError, match="frame 1 of clip is 32x32, expected 64x64"):
        blazepose.estimate([np.zeros((64, 64, 3), np.uint8), np.zeros((32, 32, 3), np.uint8)], "clip")
    with pytest.raises(ConfigError, match="max_people must be an integer >= 1, got 0"):
        BlazePose(max_people=0)
    with pytest.raises(ConfigError, match="unknown BlazePose model 'huge'; expected one of \\['full', 'lite'\\]"):
        BlazePose(model="huge")
    with pytest.raises(ConfigError, match="model file not found: .*pose_detection.tflite"):
        BlazePose(model_dir=tmp_path)
    (tmp_path / "pose_detection.tflite").write_bytes(b"not a model")
    (tmp_path / "pose_landmark_full.tflite").write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="cannot load the BlazePose model .*pose_detection.tflite"):
        with BlazePose(model_dir=tmp_path).frame_estimator():
            pass


def test_lite_model_finds_the_lifter(lifter_frames: np.ndarray) -> None:
    people = _one_frame(BlazePose(model="lite", num_threads=2), lifter_frames[0])
    reference = np.load(REFERENCE)["keypoints"][0]
    assert people.shape == (1, 33, 3)
    distance = np.linalg.norm(people[0, :, :2] - reference[:, :2], axis=1) / _torso_size(reference)
    assert np.median(distance) < 0.15  # another network: close to the full model, not equal


# ------------------------------------------------------------------ tracker on synthetic keypoints
_SKELETON = np.array(  # 17 joints of a standing person about 100 px tall, centred on (0, 0)
    [
        [0, -45],
        [-4, -48],
        [4, -48],
        [-8, -46],
        [8, -46],
        [-15, -30],
        [15, -30],
        [-20, -10],
        [20, -10],
        [-22, 8],
        [22, 8],
        [-10, 5],
        [10, 5],
        [-11, 28],
        [11, 28],
        [-12, 50],
        [12, 50],
    ],
    dtype=np.float64,
)


def _pose(x: float, y: float, arms_up: bool = False, scale: float = 1.0) -> np.ndarray:
    points = _SKELETON.copy()
    if arms_up:  # elbows and wrists above the head
        points[7:11] = [[-20, -55], [20, -55], [-22, -75], [22, -75]]
    return np.column_stack([points * scale + [x, y], np.ones(17)])


def _frame(*people: np.ndarray) -> np.ndarray:
    return np.stack(people) if people else np.zeros((0, 17, 3))


def test_similarity_is_scale_free_and_falls_back_to_iou() -> None:
    a = _pose(100, 100)[None]
    assert keypoint_similarity(a, a)[0, 0] == pytest.approx(1.0)
    assert keypoint_similarity(a, _pose(103, 100)[None])[0, 0] == pytest.approx(
        keypoint_similarity(a * [10, 10, 1], _pose(103, 100)[None] * [10, 10, 1])[0, 0]
    )
    assert keypoint_similarity(a, _pose(300, 100)[None])[0, 0] < 1e-6
    sparse_a, sparse_b = a.copy(), _pose(101, 100)[None]
    sparse_a[..., 2:, 2] = 0  # two joints visible: too few for keypoints
    sparse_b[..., 2:, 2] = 0
    expected = box_iou(person_box(sparse_a[0])[None], person_box(sparse_b[0])[None])[0, 0]
    assert 0 < expected < 1
    assert keypoint_similarity(sparse_a, sparse_b)[0, 0] == pytest.approx(expected)


def test_tracker_keeps_id_through_a_short_occlusion_and_not_a_long_one() -> None:
    for gap, same in ((5, True), (11, False)):
        tracker = PoseTracker(max_age=10)
        first = [tracker.update(_frame(_pose(100 + 3 * t, 200)))[0] for t in range(10)]
        assert len(set(first)) == 1
        for _ in range(gap):
            assert tracker.update(_frame()).shape == (0,)
        again = tracker.update(_frame(_pose(100 + 3 * (10 + gap), 200)))[0]
        assert bool(again == first[0]) is same, (gap, again, first[0])


def test_tracker_keeps_crossing_people_apart() -> None:
    tracker = PoseTracker(max_age=5)
    rng = np.random.default_rng(0)
    ids_a, ids_b = [], []
    for t in range(41):  # A walks right, B walks left; they meet (same place) at t = 20
        a, b = _pose(100 + 5 * t, 200), _pose(300 - 5 * t, 200, arms_up=True)
        order = rng.permutation(2)
        ids = tracker.update(_frame(*[(a, b)[i] for i in order]))
        assert len(set(ids)) == 2  # one detection never goes to two tracks
        ids_a.append(ids[list(order).index(0)])
        ids_b.append(ids[list(order).index(1)])
    assert set(ids_a) == {ids_a[0]} and set(ids_b) == {ids_b[0]} and ids_a[0] != ids_b[0]


def test_tracker_people_entering_and_leaving() -> None:
    tracker = PoseTracker(max_age=3)
    a_ids, c_ids = set(), set()
    for t in range(30):
        people = [_pose(100 + t, 200)]
        if t < 12:
            people.append(_pose(400, 220 - t, scale=0.8))  # B leaves after frame 11
        if t >= 15:
            people.append(_pose(250, 150 + t, scale=1.2))  # C enters at frame 15
        ids = tracker.update(_frame(*people))
        assert len(set(ids)) == len(ids)
        a_ids.add(ids[0])
        if t >= 15:
            c_ids.add(ids[-1])
    assert a_ids == {0} and c_ids == {2}  # A first seen, B second, C third; nobody inherits B's id
    assert sorted(track.id for track in tracker.tracks) == [0, 2]  # B forgotten after max_age


def _lying(x: float, y: float) -> np.ndarray:
    """The standing skeleton turned a quarter turn: someone who fell, head to the right."""
    points = _SKELETON[:, ::-1] * [-1, 1]
    return np.column_stack([points + [x, y], np.ones(17)])


def test_tracker_keeps_a_person_who_fell_while_the_detector_lost_them() -> None:
    # A person walks right, is lost for 6 frames while falling, and is found lying just ahead: the
    # keypoints no longer match their standing pose, but place and size do.
    tracker = PoseTracker(max_age=15)
    ids = {int(tracker.update(_frame(_pose(100 + 4 * t, 200)))[0]) for t in range(10)}
    for _ in range(6):
        tracker.update(_frame())
    fallen = tracker.update(_frame(_lying(100 + 4 * 16 + 20, 230)))
    assert set(fallen) == ids
    # Someone else, as big but far from where anyone was heading, is a new person.
    stranger = tracker.update(_frame(_lying(164 + 20, 230), _pose(600, 200)))
    assert stranger[0] in ids and stranger[1] not in ids
    # ... and so is a much smaller figure where the person was heading.
    tracker = PoseTracker(max_age=15)
    first = {int(tracker.update(_frame(_pose(100 + 4 * t, 200)))[0]) for t in range(10)}
    for _ in range(6):
        tracker.update(_frame())
    assert tracker.update(_frame(_lying(184, 230) * [0.3, 0.3, 1] + [130, 160, 0]))[0] not in first


def test_tracker_more_tracks_than_people_and_bad_input() -> None:
    tracker = PoseTracker()
    first = tracker.update(_frame(_pose(100, 200), _pose(300, 200)))
    second = tracker.update(_frame(_pose(301, 200)))  # only the right one stays
    assert list(second) == [first[1]]
    unplaceable = _pose(100, 100)
    unplaceable[:, 2] = 0
    assert tracker.update(_frame(unplaceable))[0] == -1
    with pytest.raises(InputError, match=r"\(P, J, 3\)"):
        tracker.update(np.zeros((17, 3)))
    with pytest.raises(InputError, match="got 5 joints per person, the stream so far had 17"):
        tracker.update(np.ones((1, 5, 3)))
    with pytest.raises(ConfigError, match="metric must be 'oks' or 'iou'"):
        PoseTracker(metric="euclid")
