"""Keypoint layouts: the built-in tables, conversion by name, derived joints and left/right pairs."""

from __future__ import annotations

import numpy as np
import pytest

from unihar.data.layouts import (
    DATASET_LAYOUTS,
    FALLBACK_JOINTS,
    LAYOUTS,
    KeypointLayout,
    convert_keypoints,
    get_layout,
    mirror_joint_name,
    source_joints,
)
from unihar.errors import InputError


def _random_pose(layout: KeypointLayout, frames: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kpts = rng.uniform(0, 500, size=(frames, layout.num_joints, 3)).astype(np.float32)
    kpts[..., 2] = rng.uniform(0.1, 1.0, size=(frames, layout.num_joints))
    return kpts


def test_builtin_layout_sizes() -> None:
    assert {name: layout.num_joints for name, layout in LAYOUTS.items()} == {
        "coco17": 17,
        "body25": 25,
        "coco18": 18,
        "mediapipe33": 33,
        "penn13": 13,
    }


def test_known_joint_positions() -> None:
    # Spot-check the published orders (COCO, OpenPose output doc, MediaPipe PoseLandmark, Penn Action).
    assert LAYOUTS["coco17"].index("left_shoulder") == 5
    assert LAYOUTS["body25"].index("mid_hip") == 8
    assert LAYOUTS["body25"].index("right_heel") == 24
    assert LAYOUTS["coco18"].index("left_hip") == 11
    assert LAYOUTS["mediapipe33"].index("left_shoulder") == 11
    assert LAYOUTS["mediapipe33"].index("right_foot_index") == 32
    assert LAYOUTS["penn13"].index("head") == 0
    assert LAYOUTS["penn13"].index("right_ankle") == 12


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_flip_index_swaps_pairs_and_is_an_involution(name: str) -> None:
    layout = LAYOUTS[name]
    flip = np.array(layout.flip_index)
    assert sorted(flip.tolist()) == list(range(layout.num_joints))
    assert (flip[flip] == np.arange(layout.num_joints)).all()
    for left, right in layout.pairs:
        assert layout.joints[left].replace("left", "right") == layout.joints[right]
        assert flip[left] == right and flip[right] == left
    # Every joint whose name has a side is paired in the built-in layouts.
    sided = [j for j in layout.joints if "left" in j.split("_") or "right" in j.split("_")]
    assert len(sided) == 2 * len(layout.pairs)


def test_mediapipe_mouth_pair() -> None:
    layout = LAYOUTS["mediapipe33"]
    assert mirror_joint_name("mouth_left") == "mouth_right"
    assert layout.flip_index[layout.index("mouth_left")] == layout.index("mouth_right")


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_edges_reference_layout_joints(name: str) -> None:
    layout = LAYOUTS[name]
    assert layout.edges, "every built-in layout draws a skeleton"
    for a, b in layout.edge_index:
        assert 0 <= a < layout.num_joints and 0 <= b < layout.num_joints


@pytest.mark.parametrize(
    "src,via",
    [
        ("coco17", "body25"),
        ("coco17", "mediapipe33"),
        ("coco18", "body25"),
        ("penn13", "coco17"),
        ("penn13", "mediapipe33"),
        ("body25", "mediapipe33"),
        ("mediapipe33", "coco17"),
    ],
)
def test_round_trip_keeps_every_shared_joint(src: str, via: str) -> None:
    kpts = _random_pose(LAYOUTS[src])
    back = convert_keypoints(convert_keypoints(kpts, src, via), via, src)
    assert back.shape == kpts.shape
    shared = [LAYOUTS[src].index(j) for j in LAYOUTS[src].joints if j in LAYOUTS[via]]
    np.testing.assert_array_equal(back[:, shared], kpts[:, shared])
    if set(LAYOUTS[src].joints) <= set(LAYOUTS[via].joints):
        np.testing.assert_array_equal(back, kpts)  # a superset loses nothing


def test_body25_to_coco17_picks_by_name() -> None:
    kpts = _random_pose(LAYOUTS["body25"])
    coco = convert_keypoints(kpts, "body25", "coco17")
    assert coco.shape == (5, 17, 3) and coco.dtype == np.float32
    np.testing.assert_array_equal(coco[:, 5], kpts[:, 5])  # left_shoulder: 5 in both
    np.testing.assert_array_equal(coco[:, 6], kpts[:, 2])  # right_shoulder: 2 in BODY_25
    np.testing.assert_array_equal(coco[:, 16], kpts[:, 11])  # right_ankle: 11 in BODY_25


def test_missing_joints_get_confidence_zero() -> None:
    kpts = _random_pose(LAYOUTS["coco17"])
    body = convert_keypoints(kpts, "coco17", "body25")
    for toe in ("left_big_toe", "right_heel"):
        assert (body[:, LAYOUTS["body25"].index(toe)] == 0).all()


def test_derived_neck_mid_hip_and_head() -> None:
    coco = LAYOUTS["coco17"]
    kpts = _random_pose(coco, frames=3)
    body = convert_keypoints(kpts, "coco17", "body25")
    neck = body[:, LAYOUTS["body25"].index("neck")]
    expected = (kpts[:, coco.index("left_shoulder")] + kpts[:, coco.index("right_shoulder")]) / 2
    np.testing.assert_allclose(neck, expected, rtol=1e-6)
    mid_hip = body[:, LAYOUTS["body25"].index("mid_hip")]
    expected = (kpts[:, coco.index("left_hip")] + kpts[:, coco.index("right_hip")]) / 2
    np.testing.assert_allclose(mid_hip, expected, rtol=1e-6)

    # head = mean of the *visible* face points: hide the ears in frame 0.
    kpts[0, [coco.index("left_ear"), coco.index("right_ear")], 2] = 0.0
    penn = convert_keypoints(kpts, "coco17", "penn13")
    face = [coco.index(j) for j in ("nose", "left_eye", "right_eye")]
    np.testing.assert_allclose(penn[0, 0], kpts[0, face].mean(axis=0), rtol=1e-6)
    all_face = [coco.index(j) for j in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")]
    np.testing.assert_allclose(penn[1, 0], kpts[1, all_face].mean(axis=0), rtol=1e-6)


def test_derived_joint_needs_its_parts() -> None:
    kpts = _random_pose(LAYOUTS["coco17"], frames=1)
    kpts[0, LAYOUTS["coco17"].index("left_shoulder"), 2] = 0.0  # one shoulder unseen -> no neck
    kpts[0, :5, 2] = 0.0  # no face -> no head
    body = convert_keypoints(kpts, "coco17", "body25")
    assert (body[0, LAYOUTS["body25"].index("neck")] == 0).all()
    penn = convert_keypoints(kpts, "coco17", "penn13")
    assert (penn[0, 0] == 0).all()


def test_custom_layout_from_names() -> None:
    layout = get_layout(["left_wrist", "right_wrist", "neck", "tail"])
    assert layout.name == "custom" and layout.num_joints == 4
    assert layout.pairs == ((0, 1),)
    assert layout.flip_index == (1, 0, 2, 3)
    kpts = _random_pose(LAYOUTS["coco17"])
    out = convert_keypoints(kpts, "coco17", layout)
    np.testing.assert_array_equal(out[:, 0], kpts[:, LAYOUTS["coco17"].index("left_wrist")])
    assert (out[:, 3] == 0).all()  # "tail" exists nowhere
    assert get_layout(list(LAYOUTS["coco17"].joints)) is LAYOUTS["coco17"]


def test_aliases_and_errors() -> None:
    assert get_layout("BODY_25") is LAYOUTS["body25"]
    assert get_layout("mediapipe") is LAYOUTS["mediapipe33"]
    with pytest.raises(InputError, match="unknown keypoint layout 'halpe'"):
        get_layout("halpe")
    with pytest.raises(InputError, match="unique"):
        get_layout(["nose", "nose"])
    with pytest.raises(InputError, match=r"\(\.\.\., 17, C\).*got shape \(5, 25, 3\)"):
        convert_keypoints(np.zeros((5, 25, 3)), "coco17", "body25")
    with pytest.raises(InputError, match="no joint 'tail'"):
        LAYOUTS["coco17"].index("tail")


def test_leading_batch_dims_and_two_channels() -> None:
    kpts = np.random.default_rng(1).normal(size=(2, 4, 3, 17, 2)).astype(np.float32)
    out = convert_keypoints(kpts, "coco17", "coco18")
    assert out.shape == (2, 4, 3, 18, 2)
    neck = out[..., LAYOUTS["coco18"].index("neck"), :]
    np.testing.assert_allclose(neck, (kpts[..., 5, :] + kpts[..., 6, :]) / 2, rtol=1e-5, atol=1e-6)


def test_layout_by_num_joints() -> None:
    """The one table that guesses a layout from a joint count lives in the config, below the layouts:
    it must name every built-in layout by its size."""
    from unihar.config import LAYOUT_BY_NUM_JOINTS

    assert len(LAYOUT_BY_NUM_JOINTS) == len(LAYOUTS)  # every built-in layout has its own size
    assert LAYOUT_BY_NUM_JOINTS == {layout.num_joints: name for name, layout in LAYOUTS.items()}


# --------------------------------------------------------------------- skeleton-dataset layouts
def test_dataset_layouts_and_their_published_orders() -> None:
    assert {name: layout.num_joints for name, layout in DATASET_LAYOUTS.items()} == {
        "kinect_v1": 20,
        "utd_mhad": 20,
        "msr_action3d": 20,
        "sbu15": 15,
        "movenet13": 13,
    }
    # Kinect SDK v1: 1 hip_center, 3 shoulder_center, 8 left_hand, 20 right_foot (1-based)
    kinect = get_layout("kinect_v1")
    assert [kinect.joints[i - 1] for i in (1, 2, 3, 4, 8, 20)] == [
        "mid_hip",
        "spine",
        "neck",
        "head",
        "left_hand",
        "right_foot",
    ]
    assert get_layout("utd_mhad").joints[:4] == ("head", "neck", "spine", "mid_hip")
    msr = get_layout("msr_action3d")
    assert [msr.joints[i - 1] for i in (1, 3, 7, 13, 20)] == ["left_shoulder", "neck", "mid_hip", "right_hand", "head"]
    sbu = get_layout("sbu15")
    assert [sbu.joints[i - 1] for i in (3, 6, 12)] == ["spine", "left_hand", "left_foot"] and "left_wrist" not in sbu
    assert get_layout("movenet13").joints == ("nose",) + LAYOUTS["coco17"].joints[5:]
    # a joint count still names a pose source, not a dataset layout of the same size
    from unihar.config import LAYOUT_BY_NUM_JOINTS

    assert LAYOUT_BY_NUM_JOINTS[13] == "penn13" and 20 not in LAYOUT_BY_NUM_JOINTS
    assert get_layout(list(kinect.joints)) is kinect


@pytest.mark.parametrize("name", sorted(DATASET_LAYOUTS))
def test_dataset_layouts_flip_and_draw(name: str) -> None:
    layout = DATASET_LAYOUTS[name]
    flip = np.array(layout.flip_index)
    assert (flip[flip] == np.arange(layout.num_joints)).all()
    sided = [j for j in layout.joints if "left" in j.split("_") or "right" in j.split("_")]
    assert len(sided) == 2 * len(layout.pairs)
    assert len(layout.edges) >= layout.num_joints - 1  # a connected skeleton needs at least J - 1 bones
    joined = {a for a, _ in layout.edges} | {b for _, b in layout.edges}
    assert joined == set(layout.joints)


def test_mirror_names_of_the_new_joints() -> None:
    assert mirror_joint_name("left_hand") == "right_hand"
    assert mirror_joint_name("right_foot") == "left_foot"
    assert mirror_joint_name("spine") == "spine"
    kinect = get_layout("kinect_v1")
    assert kinect.flip_index[kinect.index("left_hand")] == kinect.index("right_hand")


def test_stand_ins_fill_wrists_and_ankles_from_hands_and_feet() -> None:
    sbu = get_layout("sbu15")
    kpts = _random_pose(sbu, frames=4)
    penn = convert_keypoints(kpts, sbu, "penn13")
    for target, stand_in in (("left_wrist", "left_hand"), ("right_ankle", "right_foot")):
        np.testing.assert_array_equal(penn[:, LAYOUTS["penn13"].index(target)], kpts[:, sbu.index(stand_in)])
    assert source_joints("left_wrist", sbu) == ("left_hand",)
    assert source_joints("left_wrist", LAYOUTS["coco17"]) == ("left_wrist",)  # a real wrist wins
    assert source_joints("neck", LAYOUTS["coco17"]) == ("left_shoulder", "right_shoulder")
    assert source_joints("left_heel", sbu) == ()
    # 3D joints convert the same way, confidence last
    kinect = get_layout("kinect_v1")
    xyz = np.random.default_rng(2).normal(size=(3, 20, 4)).astype(np.float32)
    out = convert_keypoints(xyz, kinect, "penn13")
    assert out.shape == (3, 13, 4)
    np.testing.assert_array_equal(out[:, 0], xyz[:, kinect.index("head")])
    assert set(FALLBACK_JOINTS) == {"left_wrist", "right_wrist", "left_ankle", "right_ankle"}
