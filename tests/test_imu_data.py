"""Sensor data on disk: UTD-MHAD's inertial files next to its skeletons, and the sensor-npz format
(files written here in the exact formats; the real UTD-MHAD copy is read when ../shared is there)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from unihar.config import IMU_CHANNELS
from unihar.data.datasets import load_dataset
from unihar.data.datasets.utd_mhad import UTD_MHAD_CLASSES
from unihar.errors import InputError
from video_helpers import run_cli


def _write_utd(
    root: Path, name: str, frames: int, samples: int, seed: int = 0, inertial: np.ndarray | None = None
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    (root / "Skeleton").mkdir(parents=True, exist_ok=True)
    (root / "Inertial").mkdir(parents=True, exist_ok=True)
    xyz = rng.normal(0, 0.3, size=(20, 3, frames)) + np.array([0, 0, 2.5])[None, :, None]
    savemat(root / "Skeleton" / f"{name}_skeleton.mat", {"d_skel": xyz})
    values = rng.normal(0, 1, size=(samples, 6)) if inertial is None else inertial
    savemat(root / "Inertial" / f"{name}_inertial.mat", {"d_iner": values})
    return values


def test_utd_mhad_reads_the_inertial_sensor_aligned_by_relative_position(tmp_path: Path) -> None:
    first = _write_utd(tmp_path, "a1_s1_t1", frames=45, samples=150, seed=1)  # 1.5 s of skeleton, 3 s of sensor
    _write_utd(tmp_path, "a27_s3_t2", frames=60, samples=100, seed=2)
    _write_utd(tmp_path, "a22_s7_t1", frames=30, samples=80, seed=3)
    train = load_dataset(f"utd-mhad:{tmp_path}", "train")
    assert train.names == ["a1_s1_t1", "a27_s3_t2"]
    recordings = train.signals["imu"]
    assert [r.channels for r in recordings] == [IMU_CHANNELS] * 2
    # each recording spans its skeleton sequence exactly: 150 samples over 45 frames at 30 fps = 100 Hz
    assert recordings[0].start == 0.0 and recordings[0].duration == pytest.approx(45 / 30)
    assert recordings[0].rate == pytest.approx(100.0) and recordings[1].rate == pytest.approx(50.0)
    np.testing.assert_allclose(recordings[0].samples, first, rtol=1e-6)
    test = load_dataset(f"utd-mhad:{tmp_path / 'Skeleton'}", "test")  # the Skeleton folder itself also finds Inertial/
    assert test.names == ["a22_s7_t1"] and test.signals["imu"][0].duration == pytest.approx(1.0)


def test_utd_mhad_without_inertial_folder_has_no_signals(tmp_path: Path) -> None:
    _write_utd(tmp_path, "a1_s1_t1", 30, 50)
    _write_utd(tmp_path, "a2_s7_t1", 30, 50)
    for f in (tmp_path / "Inertial").iterdir():
        f.unlink()
    (tmp_path / "Inertial").rmdir()
    assert load_dataset(f"utd-mhad:{tmp_path}", "train").signals is None


@pytest.mark.parametrize(
    "case,pattern",
    [
        ("missing", r"a1_s1_t1_inertial.mat is missing"),
        ("channels", r"'d_iner' has shape \(50, 5\), expected \(samples, 6\)"),
        ("key", "has no 'd_iner' array"),
    ],
)
def test_utd_mhad_bad_inertial_files(tmp_path: Path, case: str, pattern: str) -> None:
    _write_utd(tmp_path, "a1_s1_t1", 30, 50, inertial=np.zeros((50, 5)) if case == "channels" else None)
    _write_utd(tmp_path, "a2_s7_t1", 30, 50)
    inertial = tmp_path / "Inertial" / "a1_s1_t1_inertial.mat"
    if case == "missing":
        inertial.unlink()
    if case == "key":
        savemat(inertial, {"something": np.zeros((50, 6))})
    with pytest.raises(InputError, match=pattern):
        load_dataset(f"utd-mhad:{tmp_path}", "train")


# ---------------------------------------------------------------------------- sensor-npz
JOINTS = ["nose", "left_shoulder", "right_shoulder", "left_hip", "right_hip"]


def _write_sensor_npz(
    root: Path, meta_changes: dict | None = None, frames: int = 60, samples: int = 100, **overrides
) -> Path:
    meta = {
        "joints": JOINTS,
        "classes": ["wave", "clap"],
        "fps": 30,
        "signals": {"imu": {"rate": 50, "channels": list(IMU_CHANNELS)}},
    }
    meta.update(meta_changes or {})
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps(meta))
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (root / split).mkdir(exist_ok=True)
        for i in range(2):
            arrays = {
                "keypoints": rng.uniform(0, 1, size=(frames, len(JOINTS), 3)).astype(np.float32),
                "label": np.int64(i),
                "imu": rng.normal(size=(samples, 6)),
            }
            arrays.update(overrides)
            np.savez(root / split / f"clip{i}.npz", **arrays)
    return root


def test_sensor_npz_loads_keypoints_and_recordings(tmp_path: Path) -> None:
    root = _write_sensor_npz(tmp_path / "data", imu_start=np.float64(0.1))
    data = load_dataset(f"sensor-npz:{root}", "train")
    assert data.fps == 30 and len(data) == 2 and data.layout.joints == tuple(JOINTS)
    recording = data.signals["imu"][0]
    assert recording.rate == 50 and recording.start == pytest.approx(0.1) and recording.duration == pytest.approx(2.0)
    # units converted, relative alignment stretches the recording over the keypoints
    root = _write_sensor_npz(
        tmp_path / "si",
        {
            "signals": {
                "imu": {
                    "rate": 50,
                    "channels": list(IMU_CHANNELS),
                    "align": "relative",
                    "units": ["m/s^2"] * 3 + ["rad/s"] * 3,
                }
            }
        },
        samples=150,
    )
    data = load_dataset(f"sensor-npz:{root}", "test")
    stretched = data.signals["imu"][0]
    assert stretched.duration == pytest.approx(2.0) and stretched.rate == pytest.approx(75.0)
    raw = np.load(root / "test" / "clip0.npz")["imu"]
    np.testing.assert_allclose(stretched.samples[:, 0], raw[:, 0] / 9.80665, rtol=1e-5)
    np.testing.assert_allclose(stretched.samples[:, 3], np.rad2deg(raw[:, 3]), rtol=1e-5)


@pytest.mark.parametrize(
    "case,pattern",
    [
        ("channel count", r"clip0.npz: 'imu' must be \(samples, 6\) numbers"),
        ("no signals", "needs 'signals'"),
        ("no fps", "needs 'fps'"),
        ("bad rate", r"signals.imu.rate must be a positive number"),
        ("unknown sensor", "unknown sensor 'depth'"),
        ("short recording", r"covers 25% of the keypoints"),
        ("missing array", r"lacks the arrays \['imu'\]"),
        ("units", r"signals.imu.units must list one unit per channel"),
    ],
)
def test_sensor_npz_bad_input_is_one_clear_error(tmp_path: Path, case: str, pattern: str) -> None:
    meta: dict = {}
    overrides: dict = {}
    samples = 100
    if case == "channel count":
        overrides["imu"] = np.zeros((100, 5))
    if case == "no signals":
        meta["signals"] = None
    if case == "no fps":
        meta["fps"] = None
    if case == "bad rate":
        meta["signals"] = {"imu": {"rate": -50, "channels": list(IMU_CHANNELS)}}
    if case == "unknown sensor":
        meta["signals"] = {"depth": {"rate": 30, "channels": ["d"]}}
    if case == "short recording":
        samples = 25
    if case == "units":
        meta["signals"] = {"imu": {"rate": 50, "channels": list(IMU_CHANNELS), "units": ["g"]}}
    root = _write_sensor_npz(tmp_path / "data", meta, samples=samples, **overrides)
    if case == "missing array":
        arrays = dict(np.load(root / "train" / "clip0.npz"))
        del arrays["imu"]
        np.savez(root / "train" / "clip0.npz", **arrays)
    with pytest.raises(InputError, match=pattern):
        load_dataset(f"sensor-npz:{root}", "train")


# ---------------------------------------------------------------------------- the real copy
def test_real_utd_mhad_has_both_modalities(shared_data: Path) -> None:
    root = shared_data / "utd-mhad-train"
    train = load_dataset(f"utd-mhad:{root}", "train")
    test = load_dataset(f"utd-mhad:{root}", "test")
    assert len(train) + len(test) == 431 and len(train.classes) == len(UTD_MHAD_CLASSES) == 27
    for data in (train, test):
        recordings = data.signals["imu"]
        assert len(recordings) == len(data)
        durations = np.array([len(s) / data.fps for s in data.sequences])
        np.testing.assert_allclose([r.duration for r in recordings], durations, rtol=1e-9)
        # 50 Hz recordings last 1.5-2x the skeleton's nominal duration: 63-102 Hz on the skeleton's timeline
        rates = np.array([r.rate for r in recordings])
        assert 60 < rates.min() and rates.max() < 105
        # the wrist / thigh accelerometer feels gravity: |acc| ~ 1 g at rest
        norms = np.concatenate([np.linalg.norm(r.samples[:, :3], axis=1) for r in recordings])
        assert 0.9 < np.median(norms) < 1.1


# ---------------------------------------------------------------------------- unihar train / eval --modalities
def _tiny_utd(root: Path) -> Path:
    """Two actions x subjects 1, 3 (train) and 7 (test), 3 trials each: skeleton + inertial, in UTD-MHAD's format."""
    rng = np.random.default_rng(0)
    for action in (1, 2):
        for subject in (1, 3, 7):
            for trial in (1, 2, 3):
                t = np.arange(40) / 30
                xyz = (
                    rng.normal(0, 0.02, size=(20, 3, 40))
                    + np.linspace(-0.4, 0.4, 20)[:, None, None]
                    + np.array([0, 0, 2.5])[None, :, None]
                )
                xyz[10, 0] += (0.3 if action == 1 else -0.3) * np.sin(
                    3 * t
                )  # the right wrist swipes one way or the other
                savemat_dir = root / "Skeleton"
                savemat_dir.mkdir(parents=True, exist_ok=True)
                savemat(savemat_dir / f"a{action}_s{subject}_t{trial}_skeleton.mat", {"d_skel": xyz})
                s = np.arange(110) / 50
                inertial = rng.normal(0, 0.05, size=(110, 6)) + [0, 0, 1, 0, 0, 0]
                inertial[:, 3] += (150 if action == 1 else -150) * np.sin(3 * s)
                (root / "Inertial").mkdir(exist_ok=True)
                savemat(root / "Inertial" / f"a{action}_s{subject}_t{trial}_inertial.mat", {"d_iner": inertial})
    return root


def test_train_and_eval_with_modalities(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    data = f"utd-mhad:{_tiny_utd(tmp_path / 'utd')}"
    for modalities in ("skeleton,imu", "imu"):
        out = tmp_path / modalities.replace(",", "+")
        code, _, err = run_cli(
            capfd, "train", "--data", data, "--modalities", modalities, "--epochs", 2, "--out", out, "--no-progress"
        )
        assert code == 0, err
        config = json.loads((out / "config.json").read_text())
        assert config["imu_model"]["channels"] == list(IMU_CHANNELS)
        assert config["imu_model"]["mean"][2] == pytest.approx(1.0, abs=0.05)  # statistics of the training recordings
        assert config["pose_model"].get("enabled", True) is ("skeleton" in modalities)
        args = json.loads((out / "training_args.json").read_text())
        assert args["chosen_from_data"]["modalities"] == modalities.split(",")
        code, stdout, err = run_cli(capfd, "eval", "--data", data, "--weights", out, "--json")
        assert code == 0, err
        assert json.loads(stdout)["n"] == 6
    fused = json.loads((tmp_path / "skeleton+imu" / "config.json").read_text())["fusion_model"]
    assert fused["missing_embeddings"] is True and fused["modality_dropout"] > 0
    assert fused["answer"] == "product"  # skeleton + sensor: the product of each modality's own classifier
    # the run config can ask for the learned head's answer instead
    run_config = tmp_path / "head.json"
    run_config.write_text(json.dumps({"model": {"fusion_model": {"answer": "head"}}}))
    out = tmp_path / "head"
    code, _, err = run_cli(
        capfd,
        "train",
        "--data",
        data,
        "--modalities",
        "skeleton,imu",
        "--config",
        run_config,
        "--epochs",
        1,
        "--out",
        out,
        "--no-progress",
    )
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["fusion_model"]["answer"] == "head"


@pytest.mark.parametrize(
    "case,pattern",
    [
        ("unknown", "--modalities: expected distinct names"),
        ("no recordings", "the model reads ['imu'] but the data has no such recordings"),
    ],
)
def test_train_modalities_bad_input(tmp_path: Path, capfd: pytest.CaptureFixture[str], case: str, pattern: str) -> None:
    root = _tiny_utd(tmp_path / "utd")
    if case == "no recordings":
        for f in (root / "Inertial").iterdir():
            f.unlink()
        (root / "Inertial").rmdir()
    modalities = "skeleton,gps" if case == "unknown" else "imu"
    code, out, err = run_cli(
        capfd,
        "train",
        "--data",
        f"utd-mhad:{root}",
        "--modalities",
        modalities,
        "--epochs",
        1,
        "--out",
        tmp_path / "out",
        "--no-progress",
    )
    assert code == 2, (out, err)
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and pattern in lines[0], err
