"""The everyday-action skeleton datasets: each loader on tiny files written here in that dataset's exact
on-disk format (shapes, labels, splits, missing joints, frame rate, bad input), and on the real data in
../shared/data when it is present."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from unihar.data.datasets import VARIANTS, load_dataset, parse_data_spec
from unihar.data.layouts import get_layout
from unihar.errors import InputError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UNIHAR_CACHE", str(tmp_path / "cache"))


def kinect_frames(frames: int, seed: int = 0) -> np.ndarray:
    """Kinect-space joints (x left, y up, z forward), ``(frames, 20, 3)``, 2-3 m from the sensor."""
    rng = np.random.default_rng(seed)
    xyz = rng.uniform([-0.5, -0.9, 2.0], [0.5, 0.7, 3.0], size=(frames, 20, 3))
    return np.round(xyz, 6)


# ----------------------------------------------------------------------------------------- NW-UCLA
def write_nw_ucla(root: Path, name: str, label: int, frames: int, seed: int = 0, zero: tuple = ()) -> np.ndarray:
    xyz = kinect_frames(frames, seed)
    if zero:
        xyz[zero] = 0.0  # the tracker's (0, 0, 0)
    folder = root / "all_sqe"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps({"file_name": name, "label": label, "skeletons": xyz.tolist()}))
    return xyz


def test_nw_ucla_cross_view(tmp_path):
    first = write_nw_ucla(tmp_path, "a01_s01_e00_v01", 1, 6, seed=1, zero=(2, 5))
    write_nw_ucla(tmp_path, "a11_s02_e01_v02", 9, 1, seed=2)  # a11 is label 9; a single frame is kept
    write_nw_ucla(tmp_path, "a12_s01_e00_v03", 10, 4, seed=3)
    train = load_dataset(f"nw-ucla:{tmp_path}", "train")
    test = load_dataset(f"nw-ucla:{tmp_path / 'all_sqe'}", "test")
    assert train.names == ["a01_s01_e00_v01", "a11_s02_e01_v02"] and test.names == ["a12_s01_e00_v03"]
    assert [train.classes[i] for i in train.labels] == ["pick_up_with_one_hand", "throw"]
    assert test.classes[test.labels[0]] == "carry"
    assert train.dims == 3 and train.fps == 15.0 and train.layout.name == "kinect_v1"
    seq = train.sequences[0]
    assert seq.shape == (6, 20, 4) and seq.dtype == np.float32
    # Kinect (x left, y up) -> camera axes (x right, y down): x and y change sign, z stays
    np.testing.assert_allclose(seq[0, :, :3], first[0] * [-1, -1, 1], rtol=1e-6)
    assert seq[2, 5, 3] == 0.0 and (seq[2, 5, :3] == 0).all() and seq[..., 3].sum() == 6 * 20 - 1
    assert train.sequences[1].shape == (1, 20, 4)
    # other cross-view setups: test on view 1
    assert load_dataset(f"nw-ucla@1:{tmp_path}", "test").names == ["a01_s01_e00_v01"]


def test_nw_ucla_bad_input(tmp_path):
    write_nw_ucla(tmp_path, "a01_s01_e00_v01", 1, 3)
    with pytest.raises(InputError, match=r"no test files \(view 3"):
        load_dataset(f"nw-ucla:{tmp_path}", "test")
    fifteen = {"label": 5, "skeletons": kinect_frames(3)[:, :15].tolist()}
    (tmp_path / "all_sqe" / "a05_s01_e00_v03.json").write_text(json.dumps(fifteen))
    with pytest.raises(InputError, match=r"a05_s01_e00_v03\.json.*\(3, 15, 3\), expected \(frames, 20, 3\)"):
        load_dataset(f"nw-ucla:{tmp_path}", "test")
    write_nw_ucla(tmp_path, "a05_s01_e00_v03", 4, 3)  # a05 is sit_down, label 5
    with pytest.raises(InputError, match="label 4 does not match its action a05"):
        load_dataset(f"nw-ucla:{tmp_path}", "test")
    with pytest.raises(InputError, match="split must be one of"):
        load_dataset(f"nw-ucla:{tmp_path}", "val")
    with pytest.raises(InputError, match="unknown test view"):
        load_dataset(f"nw-ucla@4:{tmp_path}", "test")


# ---------------------------------------------------------------------------------------- UT-Kinect
def write_ut_recording(folder: Path, recording: str, ids: list[int], seed: int = 0) -> np.ndarray:
    xyz = kinect_frames(len(ids), seed).reshape(len(ids), 60)
    lines = [f"{i}   " + "  ".join(f"{v:.6f}" for v in row) for i, row in zip(ids, xyz)]
    (folder / f"joints_{recording}.txt").write_text("\n".join(lines) + "\n")
    return xyz.reshape(-1, 20, 3)


def write_ut_kinect(root: Path) -> dict:
    folder = root / "joints"
    folder.mkdir(parents=True)
    # subject 2 trains, subject 1 tests in split 1; IDs even, irregular, one repeated (104), 150 absent
    ids = [100, 102, 104, 104, 110, 112, 120, 130, 140, 152, 160]
    s02 = write_ut_recording(folder, "s02_e01", ids, seed=1)
    write_ut_recording(folder, "s01_e01", [10, 14, 18, 22, 26, 30], seed=2)
    labels = "s02_e01\nwalk: 100 140\nsitDown: 150 160\ncarry:  NaN NaN\ns01_e01\nwaveHands: 10 30\n"
    (folder / "actionLabel_modified.txt").write_text(labels)
    (folder / "actionLabel.txt").write_text(labels.replace("walk: 100 140", "walk: 100 104"))  # the wrong one
    return {"ids": ids, "s02": s02}


def test_ut_kinect_segments_resampled_by_frame_id(tmp_path):
    written = write_ut_kinect(tmp_path)
    train = load_dataset(f"ut-kinect:{tmp_path}", "train")
    test = load_dataset(f"ut-kinect:{tmp_path / 'joints'}", "test")
    assert train.names == ["s02_e01_walk", "s02_e01_sit_down"] and test.names == ["s01_e01_wave_hands"]
    assert [train.classes[i] for i in train.labels] == ["walk", "sit_down"]
    assert train.fps == 15.0 and train.dims == 3 and train.layout.name == "kinect_v1"
    walk = train.sequences[0]
    # IDs 100..140 at 60 IDs/s, resampled every 4 IDs (15 fps): 11 frames, from the corrected label file
    assert walk.shape == (11, 20, 4)
    s02 = written["s02"] * [-1, -1, 1]
    np.testing.assert_allclose(walk[0, :, :3], s02[0], rtol=1e-5)  # ID 100
    np.testing.assert_allclose(walk[1, :, :3], s02[2], rtol=1e-5)  # ID 104: the first of its two rows
    np.testing.assert_allclose(walk[2, :, :3], (s02[2] + 2 * s02[4]) / 3, rtol=1e-5)  # ID 108: 2/3 of 104 -> 110
    np.testing.assert_allclose(walk[-1, :, :3], s02[8], rtol=1e-5)  # ID 140
    # start ID 150 is not in the file: the nearest existing ID (152) starts the segment
    sit = train.sequences[1]
    assert sit.shape == (3, 20, 4)  # 152, 156, 160
    np.testing.assert_allclose(sit[0, :, :3], s02[9], rtol=1e-5)
    assert (walk[..., 3] == 1).all()


def test_ut_kinect_bad_input(tmp_path):
    write_ut_kinect(tmp_path)
    with pytest.raises(InputError, match=r"no test segments \(subjects \[3, 5, 8, 9, 10\], split 7\)"):
        load_dataset(f"ut-kinect@7:{tmp_path}", "test")
    rows = (tmp_path / "joints" / "joints_s01_e01.txt").read_text().splitlines()
    (tmp_path / "joints" / "joints_s01_e01.txt").write_text("\n".join(" ".join(r.split()[:58]) for r in rows))
    with pytest.raises(InputError, match=r"joints_s01_e01\.txt has 58 numbers per line, expected 61"):
        load_dataset(f"ut-kinect:{tmp_path}", "test")
    (tmp_path / "joints" / "actionLabel_modified.txt").write_text("s01_e01\njuggle: 10 30\n")
    with pytest.raises(InputError, match="line 2"):
        load_dataset(f"ut-kinect:{tmp_path}", "test")
    (tmp_path / "joints" / "actionLabel_modified.txt").unlink()
    with pytest.raises(InputError, match="actionLabel_modified.txt"):
        load_dataset(f"ut-kinect:{tmp_path}", "train")


# -------------------------------------------------------------------------------------- MSR Action3D
def write_msr(folder: Path, name: str, frames: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["  ".join(f"{v:.7e}" for v in row) for row in frames.reshape(-1, 4)]
    (folder / f"{name}_skeleton.txt").write_text("\n".join(lines) + "\n")


def msr_frames(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frames = np.stack(
        [
            rng.integers(60, 260, (count, 20)),
            rng.integers(30, 230, (count, 20)),
            rng.integers(500, 800, (count, 20)),
            np.round(rng.uniform(0, 1, (count, 20)), 6),
        ],
        axis=-1,
    ).astype(np.float64)
    return frames


def test_msr_action3d_back_projection_and_missing(tmp_path):
    folder = tmp_path / "skeleton-2d"
    first = msr_frames(3, seed=1)
    first[0, 0] = [160 + 28.5, 120.0, 500.0, 1.0]  # 2 m away, 0.2 m to the depth image's right
    first[1] = 0.0  # an all-zero frame
    first[2, 10, 1] = 2147480000.0  # the overflow sentinel
    write_msr(folder, "a16_s01_e01", first)
    write_msr(folder, "a03_s02_e02", msr_frames(2, seed=2))
    write_msr(folder, "a05_s03_e01", msr_frames(4, seed=3))
    train = load_dataset(f"msr-action3d:{tmp_path}", "train")
    test = load_dataset(f"msr-action3d:{folder}", "test")
    assert train.names == ["a05_s03_e01", "a16_s01_e01"] and test.names == ["a03_s02_e02"]
    assert [train.classes[i] for i in train.labels] == ["forward_punch", "jogging"] and len(train.classes) == 20
    assert train.fps == 15.0 and train.dims == 3 and train.layout.name == "msr_action3d"
    seq = train.sequences[1]
    assert seq.shape == (3, 20, 4)
    # back-projected with f = 285, centre (160, 120), 4 mm depth units; x un-mirrored
    np.testing.assert_allclose(seq[0, 0], [-0.2, 0.0, 2.0, 1.0], atol=1e-6)
    np.testing.assert_array_equal(seq[1], 0.0)
    assert seq[2, 10, 3] == 0.0 and seq[2, 9, 3] == pytest.approx(first[2, 9, 3])
    # the recording camera shows the depth image, flipped left-right
    flat = train.projected().sequences[1]
    np.testing.assert_allclose(flat[0, 0, :2], [320 - first[0, 0, 0], first[0, 0, 1]], atol=1e-3)
    as3 = load_dataset(f"msr-action3d@as3:{tmp_path}", "train")
    assert as3.names == ["a16_s01_e01"] and len(as3.classes) == 8 and as3.classes[as3.labels[0]] == "jogging"


def test_msr_action3d_bad_input(tmp_path):
    write_msr(tmp_path, "a01_s01_e01", msr_frames(2))
    with pytest.raises(InputError, match=r"no test files \(even subjects\)"):
        load_dataset(f"msr-action3d:{tmp_path}", "test")
    write_msr(tmp_path, "a01_s02_e01", msr_frames(2)[:, :19])
    with pytest.raises(InputError, match=r"a01_s02_e01_skeleton\.txt has 38 joint lines, not a multiple of 20"):
        load_dataset(f"msr-action3d:{tmp_path}", "test")
    (tmp_path / "a01_s02_e01_skeleton.txt").write_text("1 2 3\n" * 20)
    with pytest.raises(InputError, match="3 numbers per line, expected 4"):
        load_dataset(f"msr-action3d:{tmp_path}", "test")
    with pytest.raises(InputError, match="unknown action subset"):
        load_dataset(f"msr-action3d@as4:{tmp_path}", "train")


# ----------------------------------------------------------------------------------------- mall CCTV
MALL_MAP = {"sitting": 0, "walking_slow": 1, "walking_fast": 2, "standing": 3, "standing_phone_talking": 4}


def write_mall_track(root: Path, video: int, track: int, label: int, frames: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xy = np.round(rng.uniform(0, 426, size=(frames, 18, 2)), 4)
    xy[0, 14:] = -1.0  # eyes and ears missing
    folder = root / f"{video}_carosello" / str(track)
    folder.mkdir(parents=True)
    (folder / "X.txt").write_text("\n".join(",".join(str(v) for v in row) for row in xy.reshape(frames, 36)) + "\n")
    (folder / "Y.txt").write_text(f"{label}\n" * frames)
    return xy


def test_mall_cctv_split_by_video(tmp_path):
    (tmp_path / "class_map.json").write_text(json.dumps(MALL_MAP))
    first = write_mall_track(tmp_path, 3, 7, 1, 5, seed=1)
    write_mall_track(tmp_path, 3, 12, 4, 3, seed=2)
    write_mall_track(tmp_path, 1, 2, 0, 4, seed=3)
    write_mall_track(tmp_path, 10, 5, 3, 2, seed=4)
    train = load_dataset(f"mall-cctv:{tmp_path}", "train")
    test = load_dataset(f"mall-cctv:{tmp_path}", "test")
    assert train.names == ["3_carosello/7", "3_carosello/12"]
    assert test.names == ["1_carosello/2", "10_carosello/5"]
    assert train.classes == list(MALL_MAP)
    assert [train.classes[i] for i in train.labels] == ["walking_slow", "standing_phone_talking"]
    assert train.fps == 30.0 and train.dims == 2 and train.layout.name == "coco18"
    seq = train.sequences[0]
    assert seq.shape == (5, 18, 3)
    np.testing.assert_allclose(seq[1, :, :2], first[1], rtol=1e-6)
    assert (seq[0, 14:] == 0).all() and (seq[0, :14, 2] == 1).all()
    assert load_dataset(f"mall-cctv@3:{tmp_path}", "test").names == train.names


def test_mall_cctv_bad_input(tmp_path):
    (tmp_path / "class_map.json").write_text(json.dumps(MALL_MAP))
    write_mall_track(tmp_path, 3, 1, 1, 3)
    with pytest.raises(InputError, match=r"test videos \[1, 10\] have no <video>_carosello folder"):
        load_dataset(f"mall-cctv:{tmp_path}", "test")
    write_mall_track(tmp_path, 1, 1, 0, 3)
    (tmp_path / "1_carosello" / "1" / "Y.txt").write_text("0\n1\n0\n")
    with pytest.raises(InputError, match=r"1_carosello/1/Y\.txt must hold one class ID"):
        load_dataset(f"mall-cctv@1:{tmp_path}", "test")
    (tmp_path / "1_carosello" / "1" / "Y.txt").write_text("0\n0\n0\n")
    (tmp_path / "1_carosello" / "1" / "X.txt").write_text("1.0," * 33 + "1.0\n")
    with pytest.raises(InputError, match=r"1_carosello/1/X\.txt has 34 numbers per line, expected 36"):
        load_dataset(f"mall-cctv@1:{tmp_path}", "test")
    (tmp_path / "class_map.json").unlink()
    with pytest.raises(InputError, match="class_map.json"):
        load_dataset(f"mall-cctv:{tmp_path}", "train")


# --------------------------------------------------------------------------------------------- SBU
def sbu_person(frames: int, x: float, seed: int) -> np.ndarray:
    """One standing person in SBU's normalised units around image column ``x``, ``(frames, 15, 3)``."""
    rng = np.random.default_rng(seed)
    layout = get_layout("sbu15")
    height = {
        "head": 0.30,
        "neck": 0.38,
        "spine": 0.50,
        "left_shoulder": 0.40,
        "right_shoulder": 0.40,
        "left_elbow": 0.52,
        "right_elbow": 0.52,
        "left_hand": 0.62,
        "right_hand": 0.62,
        "left_hip": 0.62,
        "right_hip": 0.62,
        "left_knee": 0.80,
        "right_knee": 0.80,
        "left_foot": 0.98,
        "right_foot": 0.98,
    }
    base = np.array([[x + rng.uniform(-0.03, 0.03), height[j], 2.0] for j in layout.joints])
    return np.repeat(base[None], frames, axis=0) + rng.normal(0, 0.002, (frames, 15, 3))


def write_sbu(root: Path, set_name: str, action: int, sequence: int, a: np.ndarray, b: np.ndarray) -> None:
    folder = root / set_name / f"{action:02d}" / f"{sequence:03d}"
    folder.mkdir(parents=True)
    rows = [[55 + t, *a[t].ravel(), *b[t].ravel()] for t in range(len(a))]
    (folder / "skeleton_pos.txt").write_text("\n".join(",".join(f"{v:.5f}" for v in r) for r in rows) + "\n")
    (root / set_name / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")


def test_sbu_folds_and_actor(tmp_path):
    layout = get_layout("sbu15")
    frames = 12
    # approaching: B walks towards A
    a, b = sbu_person(frames, 0.3, 1), sbu_person(frames, 0.8, 2)
    b[..., 0] -= np.linspace(0, 0.25, frames)[:, None]
    write_sbu(tmp_path, "s01s02", 1, 1, a, b)
    # kicking: A's right foot reaches B's torso
    a, b = sbu_person(frames, 0.4, 3), sbu_person(frames, 0.6, 4)
    a[6:, layout.index("right_foot")] = b[6:, layout.index("spine")] + [0.01, 0.0, 0.0]
    write_sbu(tmp_path, "s01s02", 3, 1, a, b)
    # hugging: both act
    write_sbu(tmp_path, "s02s03", 6, 1, sbu_person(frames, 0.45, 5), sbu_person(frames, 0.55, 6))
    test = load_dataset(f"sbu:{tmp_path}", "test")  # fold 1 holds s01s02
    train = load_dataset(f"sbu:{tmp_path}", "train")
    assert test.names == ["s01s02/01/001/B", "s01s02/03/001/A"]
    assert [test.classes[i] for i in test.labels] == ["approaching", "kicking"]
    assert train.names == ["s02s03/06/001/A", "s02s03/06/001/B"] and (train.labels == 5).all()
    assert (
        test.fps == 15.0
        and test.dims == 3
        and test.layout.name == "sbu15"
        and test.sequences[0].shape == (frames, 15, 4)
    )
    # normalised (x, y, z) -> metres: x = 2.56 x - 1.28, y = 1.92 y - 0.96, z = 1.28 z
    raw_b = np.loadtxt(tmp_path / "s01s02" / "01" / "001" / "skeleton_pos.txt", delimiter=",")[:, 46:].reshape(
        frames, 15, 3
    )
    np.testing.assert_allclose(
        test.sequences[0][..., :3], raw_b * [2.56, 1.92, 1.28] - [1.28, 0.96, 0.0], rtol=1e-5, atol=1e-6
    )
    # the other folds: s02s03 is in fold 2
    assert load_dataset(f"sbu@2:{tmp_path}", "test").names == train.names
    # no wrists in SBU: the model's wrist comes from the hand
    with pytest.warns(UserWarning):
        penn = test.to_layout("penn13")
    np.testing.assert_array_equal(
        penn.sequences[0][:, get_layout("penn13").index("left_wrist")], test.sequences[0][:, layout.index("left_hand")]
    )


def test_sbu_bad_input(tmp_path):
    write_sbu(tmp_path, "s02s03", 6, 1, sbu_person(5, 0.4, 1), sbu_person(5, 0.6, 2))
    with pytest.raises(InputError, match=r"no test sequences for test fold 1"):
        load_dataset(f"sbu:{tmp_path}", "test")
    write_sbu(tmp_path, "s01s02", 2, 1, sbu_person(5, 0.4, 1)[:, :14], sbu_person(5, 0.6, 2))
    with pytest.raises(InputError, match=r"s01s02/02/001/skeleton_pos\.txt has 88 numbers per line, expected 91"):
        load_dataset(f"sbu:{tmp_path}", "test")
    write_sbu(tmp_path, "s09s08", 1, 1, sbu_person(5, 0.4, 1), sbu_person(5, 0.6, 2))
    with pytest.raises(InputError, match="s09s08 is not in the official folds"):
        load_dataset(f"sbu@2:{tmp_path}", "test")
    with pytest.raises(InputError, match="unknown test fold"):
        load_dataset(f"sbu@6:{tmp_path}", "test")


# ------------------------------------------------------------------------------------------ UR Fall
def write_ur_sequence(root: Path, kind: str, number: int, frames: np.ndarray) -> None:
    folder = root / kind / str(number)
    folder.mkdir(parents=True)
    for j, xy in enumerate(frames, start=1):
        centred = xy.copy()
        centred[:, 0] += 0.5 - xy[7:9, 0].mean()
        np.save(folder / f"{j}.npy", np.concatenate([xy, centred], axis=1).reshape(52).astype(np.float64))


def falling(count: int, drop_at: int) -> np.ndarray:
    """Normalised (x, y) of a person standing, then lying from frame ``drop_at`` on, ``(count, 13, 2)``."""
    stand = np.array([[0.5, 0.25]] + [[0.45 + 0.1 * (k % 2), 0.3 + 0.04 * k] for k in range(12)])
    lie = np.array([[0.3, 0.85]] + [[0.35 + 0.03 * k, 0.82 + 0.02 * (k % 2)] for k in range(12)])
    t = np.clip((np.arange(count) - drop_at) / 3.0, 0.0, 1.0)[:, None, None]
    return (1 - t) * stand + t * lie


def test_ur_fall_frames_pixels_split_and_fall_moment(tmp_path):
    seq = falling(14, drop_at=8)
    seq[5, 11] = 0.0  # a keypoint MoveNet scored below 0.2
    write_ur_sequence(tmp_path, "fall", 3, seq)  # 3 % 3 == 0: test
    write_ur_sequence(tmp_path, "fall", 1, falling(12, drop_at=5))
    write_ur_sequence(tmp_path, "not_fall", 3, falling(10, drop_at=100))
    write_ur_sequence(tmp_path, "not_fall", 2, falling(11, drop_at=100))
    test = load_dataset(f"ur-fall:{tmp_path}", "test")
    train = load_dataset(f"ur-fall:{tmp_path}", "train")
    assert test.names == ["fall-03", "adl-03"] and train.names == ["fall-01", "adl-02"]
    assert test.classes == ["fall", "not_fall"] and test.labels.tolist() == [0, 1]
    assert test.fps == 30.0 and test.dims == 2 and test.layout.name == "movenet13"
    fall = test.sequences[0]
    assert fall.shape == (13, 13, 3)  # 1.npy dropped; 10.npy .. 14.npy sorted after 9.npy
    np.testing.assert_allclose(fall[:, :, :2], seq[1:] * [640, 480], rtol=1e-5)
    assert (fall[4, 11] == 0).all() and fall[4, 10, 2] == 1.0
    # the torso drops during file frames 8-11 -> sequence frames 7-10; the fastest drop is in there
    assert 7 <= test.events[0][0] <= 10 and test.events[1] == []
    assert 4 <= train.events[0][0] <= 7
    assert load_dataset(f"ur-fall@1:{tmp_path}", "test").names == ["fall-01"]


def test_ur_fall_bad_input(tmp_path):
    write_ur_sequence(tmp_path, "fall", 1, falling(5, 2))
    with pytest.raises(InputError, match="not_fall"):
        load_dataset(f"ur-fall:{tmp_path}", "train")
    write_ur_sequence(tmp_path, "not_fall", 1, falling(5, 100))
    with pytest.raises(InputError, match=r"no test sequences"):
        load_dataset(f"ur-fall:{tmp_path}", "test")
    np.save(tmp_path / "fall" / "1" / "3.npy", np.zeros(39))
    with pytest.raises(InputError, match=r"fall/1/3\.npy has 39 values, expected 52"):
        load_dataset(f"ur-fall:{tmp_path}", "train")
    np.save(tmp_path / "fall" / "1" / "3.npy", np.zeros(52))
    (tmp_path / "fall" / "1" / "4.npy").unlink()
    with pytest.raises(InputError, match="without gaps"):
        load_dataset(f"ur-fall:{tmp_path}", "train")


# ----------------------------------------------------------------------------------------- UTD-MHAD
def write_utd(root: Path, action: int, subject: int, trial: int, frames: int, seed: int = 0) -> np.ndarray:
    from scipy.io import savemat

    folder = root / "Skeleton"
    folder.mkdir(parents=True, exist_ok=True)
    xyz = kinect_frames(frames, seed)
    savemat(folder / f"a{action}_s{subject}_t{trial}_skeleton.mat", {"d_skel": np.transpose(xyz, (1, 2, 0))})
    return xyz


def test_utd_mhad_cross_subject(tmp_path):
    first = write_utd(tmp_path, 27, 1, 2, 5, seed=1)
    write_utd(tmp_path, 3, 5, 1, 4, seed=2)
    write_utd(tmp_path, 22, 7, 4, 6, seed=3)
    train = load_dataset(f"utd-mhad:{tmp_path}", "train")
    test = load_dataset(f"utd-mhad:{tmp_path / 'Skeleton'}", "test")
    assert train.names == ["a3_s5_t1", "a27_s1_t2"] and test.names == ["a22_s7_t4"]
    assert [train.classes[i] for i in train.labels] == ["wave", "squat"] and len(train.classes) == 27
    assert test.classes[test.labels[0]] == "jog"
    assert train.fps == 30.0 and train.dims == 3 and train.layout.name == "utd_mhad"
    np.testing.assert_allclose(train.sequences[1][..., :3], first * [-1, -1, 1], rtol=1e-6)
    assert load_dataset(f"utd-mhad@1:{tmp_path}", "test").names == ["a27_s1_t2"]
    # with the even subjects present, the standard split tests on them
    write_utd(tmp_path, 3, 2, 1, 4, seed=4)
    assert load_dataset(f"utd-mhad:{tmp_path}", "test").names == ["a3_s2_t1"]
    assert len(load_dataset(f"utd-mhad:{tmp_path}", "train")) == 3


def test_utd_mhad_bad_input(tmp_path):
    write_utd(tmp_path, 1, 1, 1, 3)
    with pytest.raises(InputError, match=r"no test files \(test subjects \[7\]"):
        load_dataset(f"utd-mhad:{tmp_path}", "test")
    from scipy.io import savemat

    savemat(tmp_path / "Skeleton" / "a2_s7_t1_skeleton.mat", {"d_skel": np.zeros((25, 3, 4))})
    with pytest.raises(
        InputError, match=r"a2_s7_t1_skeleton\.mat: 'd_skel' has shape \(25, 3, 4\), expected \(20, 3, frames\)"
    ):
        load_dataset(f"utd-mhad:{tmp_path}", "test")
    savemat(tmp_path / "Skeleton" / "a2_s7_t1_skeleton.mat", {"skeleton": np.zeros((20, 3, 4))})
    with pytest.raises(InputError, match="has no 'd_skel'"):
        load_dataset(f"utd-mhad:{tmp_path}", "test")


# ------------------------------------------------------------------------------------ data specs
def test_variant_specs():
    assert parse_data_spec("sbu@3:/a/b") == ("sbu@3", Path("/a/b"))
    assert set(VARIANTS) == {"nw-ucla", "ut-kinect", "msr-action3d", "mall-cctv", "sbu", "ur-fall", "utd-mhad"}
    with pytest.raises(InputError, match="takes no variant"):
        parse_data_spec("penn-action@2:/a")
    with pytest.raises(InputError, match="empty variant"):
        parse_data_spec("sbu@:/a")
    with pytest.raises(InputError, match="unknown data format 'sbv'"):
        parse_data_spec("sbv@1:/a")


# ----------------------------------------------------------------------------- the real data
REAL = {
    "nw-ucla": ("nw-ucla", (1020, 464)),
    "ut-kinect": ("ut-kinect", (100, 99)),
    "msr-action3d": ("msr-action3d", (292, 275)),
    "mall-cctv": ("mall-cctv-openpose", (945, 234)),
    "ur-fall": ("ur-fall-movenet", (47, 23)),
    "utd-mhad": ("utd-mhad-train", (323, 108)),
}


@pytest.mark.parametrize("fmt", sorted(REAL))
def test_real_data_documented_counts(shared_data, fmt):
    folder, counts = REAL[fmt]
    if not (shared_data / folder).is_dir():
        pytest.skip(f"../shared/data/{folder} is not present")
    train = load_dataset(f"{fmt}:{shared_data / folder}", "train")
    test = load_dataset(f"{fmt}:{shared_data / folder}", "test")
    assert (len(train), len(test)) == counts
    assert not set(train.names) & set(test.names)
    assert train.class_counts().min() > 0
    for data in (train, test):
        assert all(np.isfinite(s).all() for s in data.sequences)


def test_real_data_totals_and_pitfalls(shared_data):
    if not (shared_data / "sbu-interaction").is_dir():
        pytest.skip("../shared/data/sbu-interaction is not present")
    sbu = [load_dataset(f"sbu@{k}:{shared_data / 'sbu-interaction'}", "test") for k in range(1, 6)]
    sequences = {name.rsplit("/", 1)[0] for data in sbu for name in data.names}
    assert len(sequences) == 282 and sum(len(d) for d in sbu) == 360  # both people of 78 mutual sequences
    ut = load_dataset(f"ut-kinect:{shared_data / 'ut-kinect'}", "train")
    ut_test = load_dataset(f"ut-kinect:{shared_data / 'ut-kinect'}", "test")
    assert len(ut) + len(ut_test) == 199 and "s10_e02_carry" not in ut.names + ut_test.names
    fall = [load_dataset(f"ur-fall:{shared_data / 'ur-fall-movenet'}", s) for s in ("train", "test")]
    assert sum(int((d.labels == 0).sum()) for d in fall) == 30 and sum(len(d) for d in fall) == 70
    assert all(len(e) == 1 for d in fall for e, y in zip(d.events, d.labels) if y == 0)
    msr = load_dataset(f"msr-action3d:{shared_data / 'msr-action3d'}", "train")
    msr_test = load_dataset(f"msr-action3d:{shared_data / 'msr-action3d'}", "test")
    assert len(msr) + len(msr_test) == 567
    assert max(float(np.abs(s[..., :3]).max()) for s in msr.sequences) < 10  # no overflow sentinel left
    mall = [load_dataset(f"mall-cctv:{shared_data / 'mall-cctv-openpose'}", s) for s in ("train", "test")]
    assert sum(len(d) for d in mall) == 1179 and mall[0].class_counts().min() > 0  # every class in train


@pytest.mark.parametrize(
    "fmt,folder", [("utd-mhad", "utd-mhad-train"), ("msr-action3d", "msr-action3d"), ("ut-kinect", "ut-kinect")]
)
def test_real_3d_data_seen_frontally_is_upright_and_not_mirrored(shared_data, fmt, folder):
    """Subjects face the camera: through the recording camera the head is above the knees and the
    person's left shoulder is on the image's right, as a pose estimator reports a real person."""
    if not (shared_data / folder).is_dir():
        pytest.skip(f"../shared/data/{folder} is not present")
    data = load_dataset(f"{fmt}:{shared_data / folder}", "test").projected()
    layout = data.layout
    head, knee = layout.index("head"), layout.index("left_knee")
    left, right = layout.index("left_shoulder"), layout.index("right_shoulder")
    upright, unmirrored = [], []
    for seq in data.sequences:
        seen = (seq[:, [head, knee, left, right], 2] > 0).all(axis=1)
        if seen.any():
            upright.append(np.median(seq[seen, knee, 1] - seq[seen, head, 1]) > 0)
            unmirrored.append(np.median(seq[seen, left, 0] - seq[seen, right, 0]) > 0)
    assert np.mean(upright) == 1.0 and np.mean(unmirrored) > 0.95
