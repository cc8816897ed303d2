"""``unihar stream`` (headless JSON lines on a real clip) and ``unihar export`` + ``predict --backend onnxruntime``."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from unihar.cli import main
from video_helpers import CLEAN_AND_JERK, small_model_dir


def run(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main([*map(str, args)])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capfd.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_model_dir(tmp_path_factory.mktemp("model"))


@pytest.mark.slow
def test_stream_a_real_file_headless_json(model_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    if not CLEAN_AND_JERK.is_file():
        pytest.skip("tests/data/videos/clean_and_jerk.mp4 is missing")
    code, out, err = run(capfd, "stream", CLEAN_AND_JERK, "--weights", model_dir, "--headless", "--json", "--as-fast-as-possible", "-k", "3")
    assert code == 0, err
    lines = [json.loads(line) for line in out.strip().splitlines()]
    *predictions, last = lines
    summary = last["summary"]
    assert set(summary) == {"frames", "dropped", "fps"} and summary["frames"] == 300 and summary["fps"] > 0
    assert predictions, "no prediction emitted"
    for p in predictions:
        assert set(p) == {"frame", "t", "topk"} and len(p["topk"]) == 3
        assert abs(p["t"] - p["frame"] / (30000 / 1001)) < 1e-3
        assert {"id", "label", "prob"} == set(p["topk"][0])
    frames = [p["frame"] for p in predictions]
    assert frames == sorted(frames)
    # 2-second windows of 2 clips at 29.97 fps: span 30 frames, one prediction per clip
    assert all((f + 1) % 30 == 0 for f in frames)


def test_stream_bad_source(model_dir: Path, capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capfd, "stream", tmp_path / "absent.mp4", "--weights", model_dir, "--headless")
    assert code == 2 and err.startswith("error: video not found") and "Traceback" not in err
    code, out, err = run(capfd, "stream", CLEAN_AND_JERK, "--weights", model_dir, "--headless", "--stride", "0")
    assert code == 2 and "--stride" in err


@pytest.mark.slow
def test_export_then_predict_with_onnxruntime(model_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import numpy as np

    onnx_path = tmp_path / "m.onnx"
    code, out, err = run(capfd, "export", "--weights", model_dir, "--out", onnx_path)
    assert code == 0, err and onnx_path.is_file()
    code, out, err = run(capfd, "export", "--weights", model_dir, "--out", onnx_path)
    assert code == 2 and "already exists" in err
    t = np.arange(60)[:, None]
    kpts = np.stack([100 + 10 * np.sin(t / 4 + np.arange(17)), 50 + 8 * np.arange(17)[None].repeat(60, 0), np.full((60, 17), 0.9)], -1)
    np.save(tmp_path / "poses.npy", kpts.astype(np.float32))
    results = {}
    for backend, weights in (("torch", model_dir), ("onnxruntime", onnx_path)):
        code, out, err = run(capfd, "predict", tmp_path / "poses.npy", "--weights", weights, "--backend", backend, "--pose-backend", "array", "--json")
        assert code == 0, err
        results[backend] = json.loads(out)
    torch_probs = [s["prob"] for w in results["torch"]["windows"] for s in w["topk"]]
    onnx_probs = [s["prob"] for w in results["onnxruntime"]["windows"] for s in w["topk"]]
    assert [s["id"] for s in results["torch"]["topk"]] == [s["id"] for s in results["onnxruntime"]["topk"]]
    assert max(abs(a - b) for a, b in zip(torch_probs, onnx_probs)) <= 1e-4
