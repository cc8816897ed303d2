"""``unihar stream`` (headless JSON lines on a real clip, equal to ``unihar predict``) and ``unihar export`` +
``predict --backend onnxruntime``."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from unihar.assets import default_model_dir
from unihar.data.video import read_frames
from video_helpers import CLEAN_AND_JERK, small_model_dir, write_video
from video_helpers import run_cli as run


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_model_dir(tmp_path_factory.mktemp("model"))


@pytest.mark.slow
def test_stream_of_a_file_equals_predict_and_keeps_leading_empty_frames(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The contract of issue 11: a file streamed as fast as possible drops nothing and gives, for every
    window both produce, predict's probabilities; frame numbers are the source's, empty frames included."""
    frames, _ = read_frames(CLEAN_AND_JERK, max_frames=150)
    black = np.zeros((60, *frames.shape[1:]), np.uint8)  # 2 s with nobody in view, then the lifter
    video = write_video(tmp_path / "late.mp4", np.concatenate([black, frames]), rate=Fraction(30000, 1001))
    every = str(
        len(json.loads((default_model_dir() / "class_label.json").read_text()))
    )  # all classes: same keys both ways
    code, out, err = run(capfd, "stream", video, "--headless", "--json", "--as-fast-as-possible", "-k", every)
    assert code == 0, err
    *lines, last = [json.loads(line) for line in out.strip().splitlines()]
    assert last["summary"]["frames"] == 210 and last["summary"]["dropped"] == 0
    assert all(set(line) == {"frame", "t", "person", "topk"} and len(line["topk"]) == int(every) for line in lines)
    assert all(abs(line["t"] - line["frame"] / (30000 / 1001)) < 1e-3 for line in lines)
    code, out, err = run(capfd, "predict", video, "--json", "-k", every)
    assert code == 0, err
    predicted = json.loads(out)
    streamed = {(line["person"], line["frame"]): {s["label"]: s["prob"] for s in line["topk"]} for line in lines}
    compared = 0
    for person in predicted["people"]:
        for window in person.get("windows", []):
            assert window["start_frame"] >= 60  # the person's windows start where they appear, not at 0
            got = streamed[(person["id"], window["end_frame"] - 1)]  # a stream line names its window's last frame
            want = {s["label"]: s["prob"] for s in window["topk"]}
            assert max(abs(got[label] - want[label]) for label in want) <= 1e-4
            compared += 1
    assert compared >= 3 and predicted["topk"][0]["label"] == "clean_and_jerk"


def test_stream_bad_source(model_dir: Path, capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capfd, "stream", tmp_path / "absent.mp4", "--weights", model_dir, "--headless")
    assert code == 2 and err.startswith("error: video not found") and "Traceback" not in err
    code, out, err = run(capfd, "stream", CLEAN_AND_JERK, "--weights", model_dir, "--headless", "--stride", "0")
    assert code == 2 and "--stride" in err


def _poses(folder: Path) -> Path:
    t = np.arange(60)[:, None]
    kpts = np.stack(
        [100 + 10 * np.sin(t / 4 + np.arange(17)), 50 + 8 * np.arange(17)[None].repeat(60, 0), np.full((60, 17), 0.9)],
        -1,
    )
    np.save(folder / "poses.npy", kpts.astype(np.float32))
    return folder / "poses.npy"


def _window_probs(
    capfd: pytest.CaptureFixture[str], poses: Path, backend: str, *weights: str | Path
) -> tuple[list, list]:
    """(ids, probabilities) of every window's top-k, from ``unihar predict --json``."""
    code, out, err = run(capfd, "predict", poses, *weights, "--backend", backend, "--pose-backend", "array", "--json")
    assert code == 0, err
    windows = json.loads(out)["windows"]
    assert windows
    return [s["id"] for w in windows for s in w["topk"]], [s["prob"] for w in windows for s in w["topk"]]


@pytest.mark.slow
def test_export_then_predict_with_onnxruntime(
    model_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    onnx_path, int8_path = tmp_path / "m.onnx", tmp_path / "m-int8.onnx"
    code, out, err = run(capfd, "export", "--weights", model_dir, "--out", onnx_path)
    assert code == 0, err
    assert onnx_path.is_file() and f"wrote {onnx_path}" in out
    code, out, err = run(capfd, "export", "--weights", model_dir, "--out", onnx_path)
    assert code == 2 and "already exists" in err
    code, out, err = run(capfd, "export", "--weights", model_dir, "--out", int8_path, "--quantize")
    assert code == 0, err
    assert int8_path.is_file() and "int8 weights" in out and int8_path.stat().st_size < onnx_path.stat().st_size

    poses = _poses(tmp_path)
    torch_ids, torch_probs = _window_probs(capfd, poses, "torch", "--weights", model_dir)
    onnx_ids, onnx_probs = _window_probs(capfd, poses, "onnxruntime", "--weights", onnx_path)
    assert onnx_ids == torch_ids
    assert max(abs(a - b) for a, b in zip(torch_probs, onnx_probs)) <= 1e-4
    int8_ids, int8_probs = _window_probs(capfd, poses, "onnxruntime", "--weights", int8_path)
    assert len(int8_probs) == len(torch_probs) and max(abs(a - b) for a, b in zip(torch_probs, int8_probs)) < 0.05


@pytest.mark.slow
def test_predict_with_onnxruntime_exports_the_bundled_model_once(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    monkeypatch.setenv("UNIHAR_CACHE", str(tmp_path / "cache"))
    poses = _poses(tmp_path)
    torch_ids, torch_probs = _window_probs(capfd, poses, "torch")
    onnx_ids, onnx_probs = _window_probs(capfd, poses, "onnxruntime")
    assert onnx_ids == torch_ids
    assert max(abs(a - b) for a, b in zip(torch_probs, onnx_probs)) <= 1e-4
    (cached,) = (tmp_path / "cache" / "onnx").glob("*.onnx")
    stamp = cached.stat().st_mtime_ns
    assert _window_probs(capfd, poses, "onnxruntime") == (onnx_ids, onnx_probs)
    assert cached.stat().st_mtime_ns == stamp  # the second run reused the export
