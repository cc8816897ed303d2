"""The onnxruntime backend wherever a model runs: windows without a sensor answered as PyTorch answers
them, and ``--backend onnxruntime`` on ``stream``, ``serve``, ``eval`` and batch ``predict``, each giving
what the PyTorch model gives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import randomize_, small_config
from unihar import build_model
from unihar.config import IMU_CHANNELS
from unihar.data.layouts import get_layout
from unihar.data.signals import SignalRecording
from unihar.errors import CheckpointError, InputError
from unihar.inference.engine import WindowEngine
from unihar.loading import from_pretrained
from unihar.models import UniHARFeatures
from video_helpers import run_cli, small_model_dir
from web.helpers import short_clip

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")

from unihar.inference.onnx_backend import OnnxModel, export_onnx  # noqa: E402

pytestmark = pytest.mark.slow  # each export traces the model with torch.export: tens of seconds on 2 cores

FPS = 10.0  # window 2.4 s = 24 frames = 3 clips of 8 frames; at 25 Hz a sensor clip is 20 samples
TOLERANCE = 1e-4


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=0, atol=TOLERANCE)


def _poses(frames: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(50, 200, size=(1, 17, 2)) + np.cumsum(rng.normal(0, 3, size=(frames, 17, 2)), axis=0)
    return np.concatenate([xy, rng.uniform(0.2, 1.0, size=(frames, 17, 1))], -1).astype(np.float32)


def _recording(seconds: float, rate: float = 50.0) -> SignalRecording:
    t = np.arange(int(round(seconds * rate))) / rate
    acc = np.stack([np.sin(2 * np.pi * 1.3 * t), np.cos(2 * np.pi * 0.7 * t), 1 + 0.1 * np.sin(5 * t)], 1)
    gyro = 100 * np.stack([np.sin(3 * t + k) for k in range(3)], 1)
    return SignalRecording(
        np.concatenate([acc, gyro], 1).astype(np.float32), rate, IMU_CHANNELS, source="test recording"
    )


@pytest.fixture(scope="module")
def fused(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A skeleton + wearable-sensor model with stand-ins for a missing modality: (model, its folder, its ONNX file)."""
    cfg = small_config(image_model={"enabled": False}, fusion_model={"missing_embeddings": True})
    cfg["imu_model"] = {
        "rate": 25.0,
        "hidden_dim": 16,
        "layers": 1,
        "heads": 2,
        "mean": [0.0, 0, 1, 0, 0, 0],
        "std": [0.5, 0.5, 0.5, 90, 90, 90],
    }
    cfg["preprocessing"] = {"layout": "coco17", "clips": 3, "clip_len": 6, "window_seconds": 2.4, "stride_seconds": 0.8}
    model = randomize_(build_model(cfg, labels=[f"a{i}" for i in range(7)])).eval()
    folder = tmp_path_factory.mktemp("fused")
    model.save_pretrained(folder / "model")
    return model, folder / "model", export_onnx(model, folder / "fused.onnx")


# ---------------------------------------------------------------------------- a missing sensor
def test_windows_without_sensor_tokens_are_answered_as_pytorch_answers_them(fused) -> None:
    """Two people, a recording worn by one that covers the first half of the video: the engine batches
    windows with and without sensor tokens; onnxruntime answers each as PyTorch does."""
    model, _, path = fused
    runtime = OnnxModel(path)
    frames = 48
    people = {0: _poses(frames, seed=1), 1: _poses(frames, seed=2)}

    def windows(runner) -> list:
        engine = WindowEngine(runner, FPS, batch_windows=4)
        engine.attach_signal(0, "imu", _recording(2.6))  # covers the first window only
        results = []
        for i in range(frames):
            results += engine.push(i, {track: kpts[i] for track, kpts in people.items()})
        return results + engine.finish()

    expected, got = windows(model), windows(runtime)
    assert len(got) == len(expected) >= 6
    assert {("skeleton", "imu"), ("skeleton",)} <= {w.modalities for w in got}
    for a, b in zip(got, expected):
        assert (a.track, a.start_frame, a.end_frame, a.modalities) == (
            b.track,
            b.start_frame,
            b.end_frame,
            b.modalities,
        )
        assert np.abs(a.probs - b.probs).max() <= TOLERANCE

    # The same through the model protocol: any subset of the inputs, padded clips left out.
    pose, imu = torch.randn(2, 3, 6, 17, 3), torch.randn(2, 3, 20, 6)
    mask = torch.tensor([[True, False, True], [True, True, True]])
    with torch.no_grad():
        for inputs in (
            {"pose": pose},
            {"imu": imu},
            {"pose": pose, "segment_mask": mask},
            {"imu": imu, "segment_mask": mask},
        ):
            _close(runtime(**inputs), model(**inputs))
        tokens = model.forward_features(pose, imu=imu).tokens
        for present in (["skeleton"], ["imu"]):
            features = UniHARFeatures({name: tokens[name] for name in present}, mask)
            _close(runtime.forward_head(features), model.forward_head(features))
    with pytest.raises(InputError, match=r"no features of any modality"):
        runtime.forward_head(UniHARFeatures({}))


def test_an_export_without_the_head_for_a_subset_says_why(fused, tmp_path: Path) -> None:
    """A head the PyTorch model does not have (no stand-in, no classifier of its own) is refused as
    PyTorch refuses it; a file from before the subset heads asks to be exported again."""
    _, _, path = fused
    proto = onnx.load(str(path))
    kept = [o for o in proto.graph.output if o.name != "head_logits_imu"]
    del proto.graph.output[:]
    proto.graph.output.extend(kept)
    onnx.save(proto, str(tmp_path / "no_imu_head.onnx"))
    runtime = OnnxModel(tmp_path / "no_imu_head.onnx")
    imu_only = UniHARFeatures({"imu": torch.randn(1, 3, 5, 16)})
    with pytest.raises(InputError, match=r"cannot answer without \['skeleton'\]"):
        runtime.forward_head(imu_only)

    version = next(entry for entry in proto.metadata_props if entry.key == "unihar.export_version")
    version.value = "2"
    onnx.save(proto, str(tmp_path / "v2.onnx"))
    old = OnnxModel(tmp_path / "v2.onnx")
    with pytest.raises(CheckpointError, match=r"older unihar.*without \['skeleton'\].*export it again"):
        old.forward_head(imu_only)
    tokens = torch.randn(1, 3, 6, 32), torch.randn(1, 3, 5, 16)
    assert old.forward_head(UniHARFeatures(dict(zip(["skeleton", "imu"], tokens)))).shape == (
        1,
        7,
    )  # every modality: still runs


def test_cli_predict_onnx_with_a_recording_that_covers_part_of_the_video(
    fused, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """`unihar predict --backend onnxruntime --imu FILE` used to die when the recording covered part of the video."""
    _, folder, path = fused
    np.save(tmp_path / "poses.npy", _poses(48))
    recording = _recording(2.6)
    np.savez(tmp_path / "imu.npz", samples=recording.samples, rate=recording.rate, channels=np.array(IMU_CHANNELS))
    common = [tmp_path / "poses.npy", "--pose-backend", "array", "--fps", FPS, "--imu", tmp_path / "imu.npz", "--json"]
    code, out, err = run_cli(capfd, "predict", *common, "--backend", "onnxruntime", "-w", path)
    assert code == 0, err
    got = json.loads(out)["windows"]
    code, out, err = run_cli(capfd, "predict", *common, "-w", folder)
    assert code == 0, err
    expected = json.loads(out)["windows"]
    assert [w["modalities"] for w in got] == [w["modalities"] for w in expected]
    assert {tuple(w["modalities"]) for w in got} == {("skeleton", "imu"), ("skeleton",)}
    _same_windows(got, expected)


def _same_windows(got: list[dict], expected: list[dict]) -> None:
    """The same windows with the same top-k, probabilities within the tolerance."""
    assert [(w["start_frame"], w["end_frame"]) for w in got] == [(w["start_frame"], w["end_frame"]) for w in expected]
    assert got
    for a, b in zip(got, expected):
        want = {s["label"]: s["prob"] for s in b["topk"]}
        assert {s["label"] for s in a["topk"]} == set(want)
        assert max(abs(s["prob"] - want[s["label"]]) for s in a["topk"]) <= TOLERANCE


# ---------------------------------------------------------------------------- every command
@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small pose model (coco17): (its folder, its ONNX file)."""
    folder = small_model_dir(tmp_path_factory.mktemp("small") / "model")
    return folder, export_onnx(from_pretrained(folder), folder.parent / "small.onnx")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return short_clip(tmp_path_factory.mktemp("clip"))


def _one_error_line(code: int, err: str, expected: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err


def test_stream_with_onnxruntime(small, clip: Path, capfd: pytest.CaptureFixture[str]) -> None:
    folder, path = small
    options = ["--headless", "--json", "--as-fast-as-possible", "--max-people", "1", "-k", "5"]
    code, out, err = run_cli(capfd, "stream", clip, *options, "--backend", "onnxruntime", "--weights", path)
    assert code == 0, err
    got = [json.loads(line) for line in out.strip().splitlines()][:-1]
    code, out, err = run_cli(capfd, "stream", clip, *options, "--weights", folder)
    assert code == 0, err
    expected = [json.loads(line) for line in out.strip().splitlines()][:-1]
    assert got and [(p["person"], p["frame"]) for p in got] == [(p["person"], p["frame"]) for p in expected]
    for a, b in zip(got, expected):
        want = {s["label"]: s["prob"] for s in b["topk"]}
        assert max(abs(s["prob"] - want[s["label"]]) for s in a["topk"]) <= TOLERANCE
    _one_error_line(
        *run_cli(capfd, "stream", clip, "--headless", "--weights", path)[::2], "run it with --backend onnxruntime"
    )
    _one_error_line(
        *run_cli(capfd, "stream", clip, "--headless", "--backend", "tensorrt")[::2], "--backend: expected one of"
    )


def test_eval_with_onnxruntime(small, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    folder, path = small
    data = tmp_path / "data"
    (data / "test").mkdir(parents=True)
    classes = ["squat", "bowling"]  # two of the small model's classes
    (data / "dataset.json").write_text(
        json.dumps({"joints": list(get_layout("coco17").joints), "classes": classes, "fps": 15})
    )
    for i in range(4):
        poses = _poses(40, seed=i) * np.array([1.0, 1.0, 0.0], np.float32) + np.array([0, 0, 0.9], np.float32)
        np.savez(data / "test" / f"s{i}.npz", keypoints=poses, label=np.int64(i % 2))
    spec = f"skeleton-npz:{data}"
    code, out, err = run_cli(capfd, "eval", "--data", spec, "--json", "--backend", "onnxruntime", "--weights", path)
    assert code == 0, err
    got = json.loads(out)
    code, out, err = run_cli(capfd, "eval", "--data", spec, "--json", "--weights", folder)
    assert code == 0, err
    expected = json.loads(out)
    assert got["n"] == expected["n"] == 4 and got["top1"] == expected["top1"]
    assert abs(got["ece"] - expected["ece"]) <= TOLERANCE and expected["ece"] > 0  # ECE moves with every probability
    _one_error_line(
        *run_cli(capfd, "eval", "--data", spec, "--json", "--weights", path)[::2], "run it with --backend onnxruntime"
    )


def test_serve_with_onnxruntime(small, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    """`unihar serve --backend onnxruntime` serves the ONNX model: its JSON answers are the PyTorch model's."""
    pytest.importorskip("fastapi")
    uvicorn = pytest.importorskip("uvicorn")
    from fastapi.testclient import TestClient

    folder, path = small
    apps: list = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: apps.append(app))
    code, _, err = run_cli(capfd, "serve", "--backend", "onnxruntime", "--weights", path, "--max-people", "1")
    assert code == 0 and len(apps) == 1, err
    code, _, err = run_cli(capfd, "serve", "--weights", folder, "--max-people", "1")
    assert code == 0 and len(apps) == 2, err
    keypoints = _poses(75).tolist()
    answers = []
    for app in apps:
        with TestClient(app) as client:
            response = client.post("/v1/predict?topk=5", json={"keypoints": keypoints, "fps": 25})
            assert response.status_code == 200, response.text
            answers.append(response.json())
    _same_windows(answers[0]["windows"], answers[1]["windows"])
    _one_error_line(*run_cli(capfd, "serve", "--weights", path)[::2], "run it with --backend onnxruntime")
    assert len(apps) == 2  # refused before a server was started


def test_batch_predict_with_onnxruntime(small, clip: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    folder, path = small
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(clip, videos / clip.name)
    options = [videos, "--max-people", "1", "--workers", "0"]
    code, _, err = run_cli(
        capfd, "predict", *options, "--out", tmp_path / "onnx.jsonl", "--backend", "onnxruntime", "-w", path
    )
    assert code == 0, err
    code, _, err = run_cli(capfd, "predict", *options, "--out", tmp_path / "torch.jsonl", "-w", folder)
    assert code == 0, err
    (got,), (expected,) = (
        [json.loads(line) for line in (tmp_path / name).read_text().splitlines()]
        for name in ("onnx.jsonl", "torch.jsonl")
    )
    assert "error" not in got, got
    _same_windows(got["windows"], expected["windows"])
    # An ONNX file without the backend is refused before the results file is made.
    _one_error_line(
        *run_cli(capfd, "predict", *options, "--out", tmp_path / "x.jsonl", "-w", path)[::2],
        "run it with --backend onnxruntime",
    )
    assert not (tmp_path / "x.jsonl").exists()
