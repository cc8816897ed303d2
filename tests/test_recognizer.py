"""``unihar.Recognizer``: what a script gets is what the commands print (JSON, table, stream lines, export)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import unihar
from unihar.errors import InputError, UniHARError, VideoError
from unihar.inference.results import VideoPrediction
from unihar.inference.streaming import StreamPrediction
from unihar.recognizer import Recognizer, StreamEnd
from video_helpers import CLEAN_AND_JERK, run_cli, small_model_dir, write_video

REPO_ROOT = Path(__file__).resolve().parents[1]
README_MARKER = "<!-- readme-recognizer-example -->"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_model_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 2.5 s of the real clip: enough for a few windows of the small model."""
    from unihar.data.video import read_frames

    frames, _ = read_frames(CLEAN_AND_JERK, max_frames=75)
    return write_video(tmp_path_factory.mktemp("clip") / "short.mp4", frames, rate=30)


def _poses(folder: Path, frames: int = 90) -> Path:
    t = np.arange(frames)[:, None]
    kpts = np.stack([100 + 10 * np.sin(t / 4 + np.arange(17)), 50 + 8 * np.arange(17)[None].repeat(frames, 0)], axis=-1)
    kpts = np.concatenate([kpts, np.full((frames, 17, 1), 0.9)], axis=-1).astype(np.float32)
    np.save(folder / "poses.npy", kpts)
    return folder / "poses.npy"


def test_exported_from_the_package(model_dir: Path) -> None:
    assert unihar.Recognizer is Recognizer and "Recognizer" in unihar.__all__
    rec = unihar.Recognizer(model_dir, device="cpu")
    assert rec.backend == "torch" and rec.labels == rec.model.labels and len(rec.labels) == 5
    assert rec.config.preprocessing.clip_len == 8 and rec.topk == 5
    assert "5 classes" in repr(rec)


def test_predict_poses_equals_cli_json_and_table(
    tmp_path: Path, model_dir: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)  # rich's width: 80 on a captured stdout
    poses = _poses(tmp_path)
    rec = Recognizer(model_dir, device="cpu", pose_backend="array", topk=2)
    result = rec.predict(poses, fps=15)
    assert isinstance(result, VideoPrediction)

    code, out, err = run_cli(
        capfd, "predict", poses, "-w", model_dir, "--pose-backend", "array", "--fps", "15", "-k", "2", "--json"
    )
    assert code == 0, err
    assert json.loads(out) == result.to_dict() and out == result.to_json() + "\n"

    code, out, err = run_cli(
        capfd, "predict", poses, "-w", model_dir, "--pose-backend", "array", "--fps", "15", "-k", "2"
    )
    assert code == 0, err
    assert out.rstrip("\n") == result.summary(width=80) and "Top 2 actions" in str(result)

    # The same keypoints as an array: the same numbers, named as asked.
    from_array = rec.predict(np.load(poses), fps=15, name="mine")
    assert from_array.source == "mine"
    assert {**from_array.to_dict(), "source": result.source} == result.to_dict()
    assert rec.predict(poses, fps=15, topk=4).topk[3].label in rec.labels  # a call may ask for another k


@pytest.mark.slow
def test_bundled_model_predict_equals_cli_json(capfd: pytest.CaptureFixture[str]) -> None:
    """The contract: ``Recognizer().predict(video).to_dict()`` is what ``unihar predict VIDEO --json`` prints."""
    result = Recognizer().predict(CLEAN_AND_JERK)
    code, out, err = run_cli(capfd, "predict", CLEAN_AND_JERK, "--json")
    assert code == 0, err
    assert json.loads(out) == result.to_dict()
    assert result.people[0].topk[0].label == "clean_and_jerk"


@pytest.mark.slow
def test_stream_yields_the_stream_commands_lines(
    model_dir: Path, short_clip: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    rec = Recognizer(model_dir, device="cpu")
    events = list(rec.stream(short_clip, realtime=False, topk=3))
    *predictions, end = events
    assert predictions and all(isinstance(e, StreamPrediction) for e in predictions)
    assert isinstance(end, StreamEnd) and end.summary.frames == 75 and end.summary.dropped == 0

    code, out, err = run_cli(
        capfd, "stream", short_clip, "-w", model_dir, "--device", "cpu", "--headless", "--json",
        "--as-fast-as-possible", "-k", "3",
    )  # fmt: skip
    assert code == 0, err
    *lines, last = [json.loads(line) for line in out.strip().splitlines()]
    assert lines == [e.to_dict() for e in predictions]
    assert set(last) == {"summary"} and {**last["summary"], "fps": 0} == {**end.to_dict()["summary"], "fps": 0}


def test_leaving_a_stream_early_stops_it_and_closes_the_source(model_dir: Path, short_clip: Path) -> None:
    rec = Recognizer(model_dir, device="cpu")
    stream = rec.stream(short_clip, realtime=False, stride=4)
    for event in stream:
        assert isinstance(event, StreamPrediction)
        break
    assert not [t for t in threading.enumerate() if t.name.startswith("unihar-")]
    with pytest.raises(InputError, match="only once"):
        list(stream)


@pytest.mark.slow
def test_export_then_load_the_onnx_file(tmp_path: Path, model_dir: Path, short_clip: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    rec = Recognizer(model_dir, device="cpu")
    path = rec.export(tmp_path / "m.onnx")
    assert path == tmp_path / "m.onnx" and path.is_file()
    with pytest.raises(InputError, match="already exists"):
        rec.export(path)

    onnx = Recognizer(path)  # an .onnx file runs on onnxruntime without saying so
    assert onnx.backend == "onnxruntime" and onnx.labels == rec.labels
    assert onnx.predict(short_clip).topk[0].label == rec.predict(short_clip).topk[0].label
    with pytest.raises(InputError, match="already an ONNX file"):
        onnx.export(tmp_path / "again.onnx")


def test_bad_inputs_raise_the_packages_errors(tmp_path: Path, model_dir: Path) -> None:
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"")
    with pytest.raises(InputError, match="is an ONNX file"):
        Recognizer(onnx_file, backend="torch")
    with pytest.raises(InputError, match="backend"):
        Recognizer(model_dir, backend="tensorflow")
    with pytest.raises(UniHARError):
        Recognizer(tmp_path / "no-such-model")
    with pytest.raises(InputError, match="topk"):
        Recognizer(model_dir, device="cpu", topk=6)  # the model has 5 classes

    rec = Recognizer(model_dir, device="cpu")
    with pytest.raises(VideoError, match="not found"):
        rec.predict(tmp_path / "absent.mp4")
    with pytest.raises(VideoError, match="video not found"):
        rec.stream(tmp_path / "absent.mp4")
    with pytest.raises(InputError, match="stride"):
        rec.stream(0, stride=0)
    with pytest.raises(InputError, match="already exists"):
        rec.export(onnx_file)
    with pytest.raises(InputError, match=r"\.onnx"):
        rec.export(tmp_path / "model.bin")
    with pytest.raises(InputError, match="estimator"):
        Recognizer(model_dir, device="cpu", pose_backend="array").stream(0)


def _readme_example() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    return text[text.index(README_MARKER) :].split("```python", 1)[1].split("```", 1)[0]


@pytest.mark.slow
def test_readme_recognizer_example_runs_as_written() -> None:
    """The README's first example, run from the repository root as a user would."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    result = subprocess.run(
        [sys.executable, "-c", _readme_example()], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("tests/data/videos/clean_and_jerk.mp4: 300 frames")
    assert "Top 5 actions (main person, whole video)" in result.stdout
    assert lines[-1] == "clean_and_jerk"
