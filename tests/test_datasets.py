"""Dataset loaders, each on files the test writes in the dataset's exact format (and on the real
Penn Action annotations when ../shared/data is present)."""

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from unihar.cache import save_npz_atomic
from unihar.data.datasets import load_dataset, parse_data_spec
from unihar.errors import InputError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PENN_REAL = SHARED_DATA / "penn-action-labels"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UNIHAR_CACHE", str(tmp_path / "cache"))


def write_penn_mat(path: Path, action: str, frames: int, train: int, seed: int = 0) -> dict:
    """One Penn Action label file, with the keys and dtypes of the real ones."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    x = rng.uniform(10, 470, size=(frames, 13))
    y = rng.uniform(10, 350, size=(frames, 13))
    vis = (rng.random((frames, 13)) > 0.25).astype(np.uint8)
    x[0, 12] = y[0, 12] = 2 / 3  # an unannotated joint, parked at the corner as in the real files
    vis[0, 12] = 0
    savemat(
        path,
        {
            "action": np.array([action]),
            "pose": np.array(["front"]),
            "x": x,
            "y": y,
            "visibility": vis,
            "train": np.array([[train]], dtype=np.int16),
            "bbox": np.zeros((frames, 4)),
            "dimensions": np.array([[360, 480, frames]], dtype=np.uint16),
            "nframes": np.array([[frames]], dtype=np.uint16),
        },
    )
    return {"x": x, "y": y, "visibility": vis}


def test_penn_action_loader_on_written_mat_files(tmp_path):
    labels = tmp_path / "penn" / "labels"
    labels.mkdir(parents=True)
    first = write_penn_mat(labels / "0001.mat", "squat", 20, 1, seed=1)
    write_penn_mat(labels / "0002.mat", "pushup", 31, -1, seed=2)
    write_penn_mat(labels / "0003.mat", "bowl", 18, 1, seed=3)
    train = load_dataset(f"penn-action:{tmp_path / 'penn'}", "train")
    test = load_dataset(f"penn-action:{labels}", "test")  # the labels folder itself works too
    assert train.names == ["0001", "0003"] and test.names == ["0002"]
    assert [train.classes[i] for i in train.labels] == ["squat", "bowl"]
    assert train.layout.name == "penn13" and train.fps == 30.0
    seq = train.sequences[0]
    assert seq.shape == (20, 13, 3) and seq.dtype == np.float32
    np.testing.assert_allclose(seq[..., 0], first["x"], rtol=1e-6)
    np.testing.assert_allclose(seq[..., 1], first["y"], rtol=1e-6)
    expected_conf = np.where(first["visibility"] > 0, 1.0, 0.5)
    expected_conf[0, 12] = 0.0  # the corner point is missing, not occluded
    np.testing.assert_array_equal(seq[..., 2], expected_conf)
    assert len(list((tmp_path / "cache" / "penn-action").glob("*.npz"))) == 1  # parsed once, cached
    again = load_dataset(f"penn-action:{tmp_path / 'penn'}", "train")
    np.testing.assert_array_equal(again.sequences[1], train.sequences[1])
    with pytest.raises(InputError, match="split must be one of"):
        load_dataset(f"penn-action:{labels}", "val")
    with pytest.raises(InputError, match=r"labels/\*\.mat"):
        load_dataset(f"penn-action:{tmp_path}", "train")


def test_parallel_runs_filling_one_cache_entry_never_read_a_half_written_file(tmp_path):
    """Two training jobs started together both parse Penn Action and write the same cache entry; each
    writes its own temporary file, so neither renames the other's away (the crash this replaced)."""
    labels = tmp_path / "penn" / "labels"
    labels.mkdir(parents=True)
    for i, action in enumerate(("squat", "bowl", "pushup", "situp")):
        write_penn_mat(labels / f"000{i + 1}.mat", action, 25, 1, seed=i)
    with ThreadPoolExecutor(8) as pool:  # a fresh cache: all eight parse and write
        loaded = list(pool.map(lambda _: load_dataset(f"penn-action:{labels}", "train"), range(8)))
    assert all(d.names == loaded[0].names for d in loaded)
    entries = sorted(p.name for p in (tmp_path / "cache" / "penn-action").iterdir())
    assert len(entries) == 1 and entries[0].endswith(".npz") and ".tmp" not in entries[0]


def test_a_failed_cache_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "entry.npz"

    class Unconvertible:
        def __array__(self, *args, **kwargs):
            raise ValueError("cannot be an array")

    with pytest.raises(ValueError, match="cannot be an array"):
        save_npz_atomic(target, good=np.arange(3), bad=Unconvertible())
    assert list(tmp_path.iterdir()) == []
    save_npz_atomic(target, a=np.arange(3))
    with np.load(target) as data:
        np.testing.assert_array_equal(data["a"], np.arange(3))


@pytest.mark.slow
@pytest.mark.skipif(not PENN_REAL.is_dir(), reason="needs ../shared/data/penn-action-labels")
def test_penn_action_real_official_splits():
    train = load_dataset(f"penn-action:{PENN_REAL}", "train")
    test = load_dataset(f"penn-action:{PENN_REAL}", "test")
    assert (len(train), len(test)) == (1258, 1068)
    assert len(train.classes) == 15 and train.class_counts().min() > 0 and test.class_counts().min() > 0
    assert not set(train.names) & set(test.names)


def write_mpose(root: Path, k: int, n_train: int = 6, n_test: int = 3, string_labels: bool = False) -> Path:
    rng = np.random.default_rng(k)
    folder = root / ("openpose" if k == 25 else "posenet") / "1"
    folder.mkdir(parents=True)
    for split, n in (("train", n_train), ("test", n_test)):
        X = rng.uniform(0, 400, size=(n, 30, k, 3))
        X[..., 2] = rng.uniform(0, 1, size=(n, 30, k))
        y = rng.integers(0, 20, size=n)
        if string_labels:
            from unihar.data.datasets.mpose import MPOSE_CLASSES

            y = np.array([MPOSE_CLASSES[i] for i in y])
        np.save(folder / f"X_{split}.npy", X)
        np.save(folder / f"y_{split}.npy", y)
    return folder


def test_mpose_loader_openpose_and_posenet(tmp_path):
    folder = write_mpose(tmp_path / "a", 25)
    train = load_dataset(f"mpose:{folder}", "train")
    assert len(train) == 6 and train.layout.name == "body25" and train.fps is None
    assert train.sequences[0].shape == (30, 25, 3) and len(train.classes) == 20
    np.testing.assert_array_equal(train.labels, np.load(folder / "y_train.npy"))
    # the extractor folder above the split folders picks split 1
    assert len(load_dataset(f"mpose:{folder.parent}", "test")) == 3
    posenet = write_mpose(tmp_path / "b", 17, string_labels=True)
    test = load_dataset(f"mpose:{posenet}", "test")
    assert test.layout.name == "coco17"
    names = np.load(posenet / "y_test.npy")
    assert [test.classes[i] for i in test.labels] == list(names)


def test_mpose_rejects_wrong_shapes(tmp_path):
    folder = write_mpose(tmp_path, 17)
    np.save(folder / "X_train.npy", np.zeros((6, 30, 12, 3)))
    with pytest.raises(InputError, match="K = 25"):
        load_dataset(f"mpose:{folder}", "train")
    np.save(folder / "y_test.npy", np.zeros(2, dtype=int))
    with pytest.raises(InputError, match="3 sequences but .* 2 labels"):
        load_dataset(f"mpose:{folder}", "test")


def write_skeleton_npz(root: Path, joints: list[str], classes: list[str], n: int = 4, fps=None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    meta = {"joints": joints, "classes": classes}
    if fps:
        meta["fps"] = fps
    (root / "dataset.json").write_text(json.dumps(meta))
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (root / split).mkdir()
        for i in range(n):
            kpts = rng.uniform(0, 100, size=(12 + i, len(joints), 3)).astype(np.float32)
            kpts[..., 2] = 1.0
            np.savez(root / split / f"clip_{i:03d}.npz", keypoints=kpts, label=np.int64(i % len(classes)))


def test_skeleton_npz_loader_and_mapping_by_joint_name(tmp_path):
    joints = ["left_shoulder", "right_shoulder", "nose", "tail", "left_hip", "right_hip"]
    write_skeleton_npz(tmp_path / "mine", joints, ["a", "b"], fps=25)
    data = load_dataset(f"skeleton-npz:{tmp_path / 'mine'}", "train")
    assert len(data) == 4 and data.classes == ["a", "b"] and data.fps == 25
    assert list(data.labels) == [0, 1, 0, 1] and data.layout.joints == tuple(joints)
    raw = np.load(tmp_path / "mine" / "train" / "clip_002.npz")["keypoints"]
    with pytest.warns(UserWarning, match=r"dropped: \['tail'\]"):
        penn = data.to_layout("penn13")
    seq = penn.sequences[2]
    assert seq.shape == (14, 13, 3)
    np.testing.assert_allclose(seq[:, 1], raw[:, 0])  # left_shoulder found by name
    np.testing.assert_allclose(seq[:, 0], raw[:, 2])  # head derived from the nose
    assert np.all(seq[:, 3:7, 2] == 0)  # elbows / wrists absent: confidence 0


def test_skeleton_npz_errors(tmp_path):
    write_skeleton_npz(tmp_path / "d", ["nose", "neck"], ["x"])
    np.savez(tmp_path / "d" / "train" / "bad.npz", keypoints=np.zeros((5, 3, 3)), label=np.int64(0))
    with pytest.raises(InputError, match=r"\(frames, 2, 3\)"):
        load_dataset(f"skeleton-npz:{tmp_path / 'd'}", "train")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "dataset.json").write_text('{"joints": "nose"}')
    with pytest.raises(InputError, match="'joints' as a non-empty list"):
        load_dataset(f"skeleton-npz:{tmp_path / 'e'}", "train")
    with pytest.raises(InputError, match="no .npz files"):
        load_dataset(f"skeleton-npz:{tmp_path / 'd'}", "val")


def test_data_spec_parsing():
    assert parse_data_spec("mpose:/a/b") == ("mpose", Path("/a/b"))
    with pytest.raises(InputError, match="FORMAT:PATH"):
        parse_data_spec("/just/a/path")
    with pytest.raises(InputError, match="unknown data format 'kinetics'"):
        parse_data_spec("kinetics:/x")
    with pytest.raises(InputError, match="path not found"):
        load_dataset("mpose:/no/such/folder")


@pytest.mark.parametrize(
    ("fmt", "name"), [("utd-mhad", "a1_s1_tX_skeleton.mat"), ("msr-action3d", "a01_s01_eX_skeleton.txt")]
)
def test_a_file_name_the_glob_takes_but_the_format_does_not_is_named(tmp_path: Path, fmt: str, name: str) -> None:
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(InputError, match=f"unexpected file name {name}"):
        load_dataset(f"{fmt}:{tmp_path}", split="train")
