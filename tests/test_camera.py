"""Virtual cameras: pinhole projection, turning a skeleton about its centre, and 3D SkeletonDatasets."""

from __future__ import annotations

import numpy as np
import pytest

from unihar.data.camera import (
    KINECT_V1,
    Camera,
    CameraRanges,
    back_project,
    from_kinect,
    project,
    random_camera,
    skeleton_centre,
)
from unihar.data.datasets import SkeletonDataset
from unihar.data.layouts import get_layout
from unihar.errors import InputError

JOINTS = ("head", "left_shoulder", "right_shoulder", "left_hip", "right_hip", "left_ankle", "right_ankle")


def frontal_skeleton(frames: int = 3, depth: float = 3.0) -> np.ndarray:
    """A person facing the camera ``depth`` metres away (camera axes: x right, y down, z forward): their
    left side is on the image's right, so ``left_*`` has the larger x."""
    xy = {
        "head": (0.0, -0.75),
        "left_shoulder": (0.2, -0.5),
        "right_shoulder": (-0.2, -0.5),
        "left_hip": (0.15, 0.0),
        "right_hip": (-0.15, 0.0),
        "left_ankle": (0.15, 0.85),
        "right_ankle": (-0.15, 0.85),
    }
    one = np.array([[*xy[j], depth, 1.0] for j in JOINTS])
    seq = np.repeat(one[None], frames, axis=0)
    seq[:, :, 0] += np.linspace(0.0, 0.2, frames)[:, None]  # walking to the right
    return seq.astype(np.float32)


def test_projection_of_a_known_point():
    camera = Camera(focal=500.0, center=(320.0, 240.0))
    out = project(np.array([[0.5, -0.2, 2.0, 1.0], [0.0, 0.0, 4.0, 0.7]]), camera)
    np.testing.assert_allclose(out, [[445.0, 190.0, 1.0], [320.0, 240.0, 0.7]], rtol=1e-6)
    assert out.dtype == np.float32


def test_missing_and_behind_camera_joints_are_missing():
    points = np.array([[0.1, 0.1, 2.0, 1.0], [0.3, 0.2, 2.5, 0.0], [0.0, 0.0, -1.0, 1.0]])
    out = project(points, KINECT_V1)
    assert out[0, 2] == 1.0
    np.testing.assert_array_equal(out[1:], 0.0)


def test_recording_view_changes_nothing_but_projects():
    seq = frontal_skeleton()
    direct = project(seq, Camera(focal=600.0, center=(0.0, 0.0)))
    np.testing.assert_allclose(direct[..., 0], 600.0 * seq[..., 0] / seq[..., 2], rtol=1e-5)
    np.testing.assert_allclose(direct[..., 1], 600.0 * seq[..., 1] / seq[..., 2], rtol=1e-5)


def test_frontal_camera_round_trip():
    rng = np.random.default_rng(0)
    xyz = rng.uniform([-1.0, -1.0, 1.5], [1.0, 1.0, 4.0], size=(5, 20, 3))
    points = np.concatenate([xyz, np.ones((5, 20, 1))], axis=-1)
    camera = Camera(focal=285.0, center=(160.0, 120.0))
    uv = project(points, camera)[..., :2]
    np.testing.assert_allclose(back_project(uv, xyz[..., 2], camera.focal, camera.center), xyz, rtol=1e-5, atol=1e-5)


def test_yaw_90_turns_a_frontal_skeleton_sideways():
    seq = frontal_skeleton(frames=1)
    front = project(seq, Camera())
    side = project(seq, Camera(yaw=90.0))
    ls, rs = JOINTS.index("left_shoulder"), JOINTS.index("right_shoulder")
    assert front[0, ls, 0] - front[0, rs, 0] > 20  # shoulders 0.4 m apart across the image
    assert abs(side[0, ls, 0] - side[0, rs, 0]) < 0.5  # one behind the other
    # the skeleton turned about its own centre: its height in the image is unchanged, and positive yaw
    # brings the person's left side towards the camera
    head, ankle = JOINTS.index("head"), JOINTS.index("left_ankle")
    assert side[0, ankle, 1] - side[0, head, 1] == pytest.approx(front[0, ankle, 1] - front[0, head, 1], rel=0.15)
    rotated = (seq[0, :, :3] - skeleton_centre(seq)) @ Camera(yaw=90.0).rotation().T + skeleton_centre(seq)
    assert rotated[ls, 2] < rotated[rs, 2]


def test_pitch_looks_down_roll_turns_the_image_and_distance_moves_the_person():
    seq = frontal_skeleton(frames=1)
    centre = skeleton_centre(seq)
    head = JOINTS.index("head")
    above = (seq[0, :, :3] - centre) @ Camera(pitch=30.0).rotation().T + centre
    assert above[head, 2] < seq[0, head, 2]  # seen from above, the head is nearer the camera
    rolled = project(seq, Camera(roll=90.0, center=(0.0, 0.0)))
    upright = project(seq, Camera(center=(0.0, 0.0)))
    c = upright[0, :, :2].mean(axis=0)
    # a quarter turn clockwise on screen (y down): (dx, dy) -> (-dy, dx) about the centre
    expected = np.stack([-(upright[0, :, 1] - c[1]), upright[0, :, 0] - c[0]], axis=-1) + c
    np.testing.assert_allclose(rolled[0, :, :2], expected, atol=2.0)
    heights = [np.ptp(project(seq, Camera(distance=d))[0, [head, JOINTS.index("left_ankle")], 1]) for d in (3.0, 6.0)]
    assert heights[0] == pytest.approx(2 * heights[1], rel=0.05)  # twice as far, half as tall


def test_random_camera_is_reproducible_and_within_ranges():
    ranges = CameraRanges(
        yaw=(-30.0, 30.0), pitch=(0.0, 10.0), roll=(-1.0, 1.0), distance=(3.0, 4.0), focal=(500.0, 600.0)
    )
    a = random_camera(np.random.default_rng(7), ranges)
    b = random_camera(np.random.default_rng(7), ranges)
    assert a == b
    cams = [random_camera(np.random.default_rng(i), ranges) for i in range(50)]
    for name in ("yaw", "pitch", "roll", "distance", "focal"):
        values = [getattr(c, name) for c in cams]
        low, high = getattr(ranges, name)
        assert low <= min(values) and max(values) <= high and max(values) > min(values)
    default = random_camera(np.random.default_rng(0))
    assert -90.0 <= default.yaw <= 90.0 and default.distance is not None


def test_bad_cameras_and_shapes_are_refused():
    with pytest.raises(InputError, match="focal"):
        Camera(focal=0.0)
    with pytest.raises(InputError, match="distance"):
        Camera(distance=0.0)
    with pytest.raises(InputError, match="low <= high"):
        CameraRanges(yaw=(10.0, -10.0))
    with pytest.raises(InputError, match=r"\(\.\.\., J, 4\)"):
        project(np.zeros((4, 17, 3)), KINECT_V1)


def test_from_kinect_is_a_half_turn_about_the_optical_axis():
    kinect = np.array([[0.3, 0.5, 2.0]])  # 0.3 m to the sensor's left, 0.5 m up
    np.testing.assert_allclose(from_kinect(kinect), [[-0.3, -0.5, 2.0]])
    basis = from_kinect(np.eye(3))
    assert np.linalg.det(basis) == pytest.approx(1.0)  # a rotation: left stays left


def test_3d_skeleton_dataset_projects_and_converts():
    seq = frontal_skeleton(frames=4)
    data = SkeletonDataset([seq], np.array([0]), ["walk"], get_layout(list(JOINTS)), fps=15.0, name="toy", dims=3)
    assert data.recording_camera == KINECT_V1
    flat = data.projected()
    assert flat.dims == 2 and flat.sequences[0].shape == (4, len(JOINTS), 3) and flat.fps == 15.0
    np.testing.assert_allclose(flat.sequences[0], project(seq, KINECT_V1))
    side = data.view(0, Camera(yaw=90.0))
    assert side.shape == (4, len(JOINTS), 3)
    with pytest.warns(UserWarning, match="not in the data"):
        penn = data.to_layout("penn13")
    assert penn.dims == 3 and penn.sequences[0].shape == (4, 13, 4)
    np.testing.assert_array_equal(penn.sequences[0][:, get_layout("penn13").index("left_shoulder")], seq[:, 1])
    with pytest.raises(InputError, match=r"\(frames, 7, 4\).*in 3D"):
        SkeletonDataset([seq[..., :3]], np.array([0]), ["walk"], get_layout(list(JOINTS)), name="toy", dims=3)
    with pytest.raises(InputError, match="a camera can only view 3D"):
        flat.view(0, Camera())
    assert flat.projected() is flat
