"""Pose backends: MediaPipe on real clips, OpenPose JSON written here, arrays, gap filling, main actor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from unihar.data.layouts import LAYOUTS
from unihar.data.pose import (
    ArrayPoses,
    MediaPipePose,
    OpenPoseJSON,
    fill_missing,
    get_pose_backend,
    select_main_actor,
)
from unihar.errors import InputError, NoPersonError
from video_helpers import CLEAN_AND_JERK, blank_video, needs_mediapipe


# ------------------------------------------------------------------ gap filling
def test_fill_missing_interpolates_and_carries() -> None:
    kpts = np.zeros((6, 2, 3), np.float32)
    kpts[1] = [[10, 20, 1.0], [0, 0, 0.5]]
    kpts[4] = [[40, 50, 0.4], [30, 30, 0.5]]
    detected = np.array([False, True, False, False, True, False])
    out = fill_missing(kpts, detected)
    np.testing.assert_allclose(out[0], kpts[1])  # carried back
    np.testing.assert_allclose(out[5], kpts[4])  # carried forward
    np.testing.assert_allclose(out[2, 0], [20, 30, 0.8])  # a third of the way
    np.testing.assert_allclose(out[3, 0], [30, 40, 0.6])
    np.testing.assert_array_equal(out[detected], kpts[detected])
    with pytest.raises(NoPersonError):
        fill_missing(kpts, np.zeros(6, bool))


# ------------------------------------------------------------------ main actor
def _person(cx: float, cy: float, size: float, joints: int = 17) -> np.ndarray:
    rng = np.random.default_rng(int(cx * 7 + cy))
    pts = np.stack([cx + rng.uniform(-size / 2, size / 2, joints), cy + rng.uniform(-size, size, joints)], axis=1)
    pts[0] = [cx - size / 2, cy - size]
    pts[1] = [cx + size / 2, cy + size]  # fix the box
    return np.concatenate([pts, np.ones((joints, 1))], axis=1).astype(np.float32)


def test_main_actor_is_large_and_persistent() -> None:
    frames = []
    for t in range(40):
        people = [_person(300 + 2 * t, 200, 80)]  # the actor, walking right, every frame but 10..12
        if 10 <= t <= 12:
            people = []
        people.append(_person(50, 50, 15))  # a small figure in the background, whole clip
        if 20 <= t < 24:
            people.insert(0, _person(500, 200, 120))  # a big passer-by for 4 frames
        frames.append(np.stack(people) if people else np.zeros((0, 17, 3), np.float32))
    keypoints, detected = select_main_actor(frames)
    assert detected.sum() == 37 and not detected[10:13].any()
    # every detected frame holds the actor, whatever their index in the list
    for t in np.flatnonzero(detected):
        assert keypoints[t, :, 0].min() == pytest.approx(300 + 2 * t - 40)


def test_main_actor_with_nobody() -> None:
    keypoints, detected = select_main_actor([np.zeros((0, 17, 3), np.float32)] * 3)
    assert not detected.any()


# ------------------------------------------------------------------ OpenPose JSON
def _write_openpose(folder: Path, frames: list[list[np.ndarray]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, people in enumerate(frames):
        data = {
            "version": 1.3,
            "people": [
                {"person_id": [-1], "pose_keypoints_2d": p.reshape(-1).tolist(), "face_keypoints_2d": []}
                for p in people
            ],
        }
        (folder / f"clip_{i:012d}_keypoints.json").write_text(json.dumps(data))
    return folder


def test_openpose_body25_with_two_people_and_a_gap(tmp_path: Path) -> None:
    actor = [_person(200 + t, 150, 60, joints=25) for t in range(12)]
    frames = [[actor[t], _person(30, 30, 10, joints=25)] for t in range(12)]
    frames[5] = []  # nobody in frame 5
    frames[6] = [_person(30, 30, 10, joints=25)]  # only the small one in frame 6
    (tmp_path / "json" / "README.txt").parent.mkdir()
    (tmp_path / "json" / "README.txt").write_text("ignored")
    sequence = get_pose_backend("openpose-json")(_write_openpose(tmp_path / "json", frames))
    assert sequence.layout is LAYOUTS["body25"]
    assert sequence.keypoints.shape == (12, 25, 3) and sequence.num_frames == 12
    assert sequence.missing == 2 and list(np.flatnonzero(~sequence.detected)) == [5, 6]
    np.testing.assert_allclose(sequence.keypoints[4], actor[4])
    np.testing.assert_allclose(sequence.keypoints[5, :, :2], (2 * actor[4][:, :2] + actor[7][:, :2]) / 3, rtol=1e-5)
    # convert to the model's layout by joint name
    coco = sequence.to_layout("coco17")
    np.testing.assert_allclose(coco.keypoints[:, 5], sequence.keypoints[:, LAYOUTS["body25"].index("left_shoulder")])


def test_openpose_coco18_and_natural_order(tmp_path: Path) -> None:
    folder = tmp_path / "json"
    folder.mkdir()
    for i in (0, 1, 2, 10):
        person = _person(100 + i, 100, 40, joints=18)
        data = {"people": [{"pose_keypoints_2d": person.reshape(-1).tolist()}]}
        (folder / f"v_{i}_keypoints.json").write_text(json.dumps(data))  # unpadded: v_10 sorts after v_2
    sequence = OpenPoseJSON().load(folder)
    assert sequence.layout is LAYOUTS["coco18"]
    assert [round(float(sequence.keypoints[t, 0, 0]) + 20) for t in range(4)] == [100, 101, 102, 110]


def test_openpose_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="expected a folder"):
        OpenPoseJSON().load(tmp_path / "missing")
    with pytest.raises(InputError, match="no '\\*_keypoints.json' files"):
        OpenPoseJSON().load(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a_keypoints.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read OpenPose file"):
        OpenPoseJSON().load(bad)
    odd = _write_openpose(tmp_path / "odd", [[np.ones((17, 3), np.float32)]])
    with pytest.raises(InputError, match="17 joints per person; expected 25 .* or 18"):
        OpenPoseJSON().load(odd)
    mixed = _write_openpose(tmp_path / "mixed", [[np.ones((25, 3), np.float32)], [np.ones((18, 3), np.float32)]])
    with pytest.raises(InputError, match="has 18 joints, expected 25"):
        OpenPoseJSON().load(mixed)
    empty = _write_openpose(tmp_path / "empty", [[], []])
    with pytest.raises(InputError, match="nobody appears"):
        OpenPoseJSON().load(empty)


# ------------------------------------------------------------------ arrays
def test_array_npy_npz_and_layout_guess(tmp_path: Path) -> None:
    kpts = np.stack([_person(100 + t, 90, 30) for t in range(8)])
    kpts[3, :, 2] = 0  # nobody in frame 3
    np.save(tmp_path / "poses.npy", kpts)
    seq = ArrayPoses().load(tmp_path / "poses.npy")
    assert seq.layout is LAYOUTS["coco17"] and seq.missing == 1
    np.testing.assert_allclose(seq.keypoints[3], (kpts[2] + kpts[4]) / 2 * [1, 1, 0] + [0, 0, 1], rtol=1e-5)

    penn = kpts[:, :13]
    np.savez(tmp_path / "named.npz", keypoints=penn[..., :2], layout=np.array(LAYOUTS["penn13"].joints))
    seq = get_pose_backend("array")(tmp_path / "named.npz")
    assert seq.layout is LAYOUTS["penn13"] and (seq.keypoints[..., 2] == 1).all()  # (T, J, 2): confidence 1


def test_array_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        ArrayPoses().load(tmp_path / "none.npy")
    np.save(tmp_path / "flat.npy", np.zeros((10, 51)))
    with pytest.raises(InputError, match=r"\(T, J, 3\).*\(10, 51\)"):
        ArrayPoses().load(tmp_path / "flat.npy")
    np.save(tmp_path / "odd.npy", np.ones((4, 19, 3)))
    with pytest.raises(InputError, match="cannot guess the layout of 19 joints"):
        ArrayPoses().load(tmp_path / "odd.npy")
    assert ArrayPoses(layout=[f"j{i}" for i in range(19)]).load(tmp_path / "odd.npy").layout.num_joints == 19
    nan = np.ones((4, 17, 3))
    nan[1, 2, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(InputError, match="NaN"):
        ArrayPoses().load(tmp_path / "nan.npy")
    np.save(tmp_path / "nobody.npy", np.zeros((4, 17, 3)))
    with pytest.raises(NoPersonError, match="nobody was detected in any of the 4 frames"):
        ArrayPoses().load(tmp_path / "nobody.npy")
    (tmp_path / "x.txt").write_text("1 2 3")
    with pytest.raises(InputError, match=".npy or .npz"):
        ArrayPoses().load(tmp_path / "x.txt")
    np.savez(tmp_path / "two.npz", a=np.ones((2, 17, 3)), b=np.ones((2, 17, 3)))
    with pytest.raises(InputError, match="'keypoints'"):
        ArrayPoses().load(tmp_path / "two.npz")


def test_backend_registry() -> None:
    assert get_pose_backend().name == "blazepose"  # the default estimates several people, on any Python
    assert isinstance(get_pose_backend("mediapipe"), MediaPipePose)
    assert isinstance(get_pose_backend("OpenPose_JSON"), OpenPoseJSON)
    assert isinstance(get_pose_backend("array", max_people=3), ArrayPoses)  # importers read what the file holds
    with pytest.raises(InputError, match="unknown pose backend 'yolo'"):
        get_pose_backend("yolo")


# ------------------------------------------------------------------ the legacy MediaPipe backend on real video
@needs_mediapipe
def test_mediapipe_on_real_clip_in_pixels() -> None:
    from unihar.data.video import open_video

    with MediaPipePose().frame_estimator() as estimate:
        people = [estimate(frame) for frame in open_video(CLEAN_AND_JERK, max_frames=20)]
    assert all(p.shape == (1, 33, 3) for p in people)
    kp, layout = np.concatenate(people), LAYOUTS["mediapipe33"]
    assert ((kp[..., 2] >= 0) & (kp[..., 2] <= 1)).all()
    # Pixel coordinates of an upright lifter near the middle of a 340x256 frame.
    hips_x = kp[:, [layout.index("left_hip"), layout.index("right_hip")], 0].mean()
    assert 100 < hips_x < 240
    nose_y = kp[:, layout.index("nose"), 1]
    hip_y = kp[:, layout.index("left_hip"), 1]
    ankle_y = kp[:, layout.index("left_ankle"), 1]
    assert (nose_y < hip_y).all() and (hip_y < ankle_y).all()
    assert (kp[:, layout.index("left_shoulder"), 2] > 0.5).all()


@needs_mediapipe
def test_mediapipe_nobody_in_view(tmp_path: Path) -> None:
    from unihar.data.pose.extract import estimate_main_person

    with pytest.raises(NoPersonError, match="nobody was detected in any of the 12 frames"):
        estimate_main_person(MediaPipePose(), blank_video(tmp_path / "wall.mp4"))
