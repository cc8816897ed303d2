"""``unihar predict``: table, JSON, annotated video, and one ``error:`` line + exit 2 for every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from video_helpers import CLEAN_AND_JERK, TEST_AVI, blank_video, run_cli, small_model_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_model_dir(tmp_path_factory.mktemp("model"))


def run(capfd: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    return run_cli(capfd, "predict", *args)


def assert_one_error_line(code: int, out: str, err: str, pattern: str) -> None:
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert pattern in lines[0], lines[0]
    assert "Traceback" not in err and out == ""


def _poses(tmp_path: Path, frames: int = 90) -> Path:
    t = np.arange(frames)[:, None]
    kpts = np.stack(
        [
            100 + 10 * np.sin(t / 4 + np.arange(17)),
            50 + 8 * np.arange(17)[None].repeat(frames, 0),
            np.full((frames, 17), 0.9),
        ],
        axis=-1,
    ).astype(np.float32)
    np.save(tmp_path / "poses.npy", kpts)
    return tmp_path / "poses.npy"


def test_table_from_keypoints(tmp_path: Path, model_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capfd, _poses(tmp_path), "--weights", model_dir, "--pose-backend", "array", "--topk", "3")
    assert code == 0, err
    assert "Top 3 actions" in out and "90 frames, 30.00 fps" in out and "Timeline" in out
    assert sum(label in out for label in ("clean and jerk", "arm wrestling", "jumping jacks", "squat", "bowling")) >= 3


def test_json_from_keypoints(tmp_path: Path, model_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capfd, _poses(tmp_path), "-w", model_dir, "--pose-backend", "array", "--json", "--fps", "15", "-k", "2"
    )
    assert code == 0, err
    data = json.loads(out)  # exactly one JSON object on stdout
    assert data["frames"] == 90 and data["fps"] == 15.0 and len(data["topk"]) == 2
    assert [(w["start_frame"], w["end_frame"]) for w in data["windows"]][:2] == [(0, 30), (15, 45)]
    # the numbers are the pipeline's on the same keypoints, not just well-formed
    from unihar.inference.pipeline import VideoPipeline
    from unihar.loading import from_pretrained

    expected = VideoPipeline(from_pretrained(model_dir), pose_backend="array")(tmp_path / "poses.npy", fps=15.0, topk=2)
    assert [t["label"] for t in data["topk"]] == [s.label for s in expected.topk]
    np.testing.assert_allclose([t["prob"] for t in data["topk"]], [s.prob for s in expected.topk], rtol=1e-6)


@pytest.mark.slow
def test_real_video_json_and_output(tmp_path: Path, model_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    out_video = tmp_path / "annotated.mp4"
    # --max-people 1: one person through the whole video (the close-up's face and hand as one track)
    code, out, err = run(
        capfd, TEST_AVI, "-w", model_dir, "--json", "--output", out_video, "--device", "cpu", "--max-people", "1"
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["source"] == str(TEST_AVI) and data["frames"] == 164 and data["fps"] == 25.0
    assert len(data["windows"]) == 6 and data["windows"][-1]["end_frame"] == 164
    with av.open(str(out_video)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == 25
        assert sum(1 for _ in container.decode(stream)) == 164


@pytest.mark.parametrize(
    "make,pattern",
    [
        (lambda d: d / "missing.mp4", "video not found"),
        (
            lambda d: (d / "noise.mp4").write_bytes(np.random.default_rng(1).bytes(40_000)) and d / "noise.mp4",
            "cannot read video",
        ),
        (
            lambda d: (d / "cut.avi").write_bytes(TEST_AVI.read_bytes()[:12_000]) and d / "cut.avi",
            "no decodable frames",
        ),
        (lambda d: (d / "empty.mkv").write_bytes(b"") or d / "empty.mkv", "cannot read video"),
        (lambda d: blank_video(d / "wall.mp4"), "nobody was detected in any of the 12 frames"),
    ],
    ids=["missing", "corrupt", "zero-frames", "empty-file", "nobody"],
)
def test_bad_videos(tmp_path: Path, model_dir: Path, capfd: pytest.CaptureFixture[str], make, pattern: str) -> None:
    video = make(tmp_path)
    assert_one_error_line(*run(capfd, video, "--weights", model_dir), pattern)


def test_existing_output_is_not_overwritten(tmp_path: Path, model_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    taken = tmp_path / "mine.mp4"
    taken.write_bytes(b"precious")
    assert_one_error_line(*run(capfd, CLEAN_AND_JERK, "-w", model_dir, "--output", taken), "pass --overwrite")
    assert taken.read_bytes() == b"precious"


def test_other_bad_arguments(tmp_path: Path, model_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert_one_error_line(
        *run(capfd, CLEAN_AND_JERK, "-w", model_dir, "--pose-backend", "yolo"), "unknown pose backend"
    )
    assert_one_error_line(*run(capfd, CLEAN_AND_JERK, "-w", model_dir, "--topk", "0"), "topk")
    assert_one_error_line(*run(capfd, CLEAN_AND_JERK, "-w", tmp_path / "nowhere"), "no such model folder")
    assert_one_error_line(*run(capfd, tmp_path / "x.npy", "-w", model_dir, "--pose-backend", "array"), "not found")
    assert_one_error_line(*run(capfd, CLEAN_AND_JERK, "-w", model_dir, "--backend", "tensorrt"), "--backend")
    (tmp_path / "m.onnx").write_bytes(b"not really")
    assert_one_error_line(*run(capfd, CLEAN_AND_JERK, "-w", tmp_path / "m.onnx"), "run it with --backend onnxruntime")
    assert_one_error_line(
        *run(capfd, CLEAN_AND_JERK, "-w", model_dir, "--max-people", "0"), "max_people must be an integer >= 1, got 0"
    )


def test_missing_default_model(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import unihar.assets

    monkeypatch.setattr(unihar.assets, "default_model_dir", lambda: tmp_path / "default_model")
    assert_one_error_line(*run(capfd, CLEAN_AND_JERK), "pass --weights")


def test_openpose_json_with_its_video(tmp_path: Path, model_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from unihar.data.layouts import LAYOUTS

    folder = tmp_path / "test_json"
    folder.mkdir()
    body25 = LAYOUTS["body25"]
    for i in range(164):  # one file per frame of test.avi, as OpenPose --write_json names them
        kpts = np.zeros((25, 3), np.float32)
        for j, name in enumerate(body25.joints):
            side = -1 if "left" in name else 1 if "right" in name else 0
            kpts[j] = [160 + side * 30 + (i % 20), 40 + 7 * j, 0.8]
        person = {"pose_keypoints_2d": kpts.reshape(-1).tolist()}
        (folder / f"test_{i:012d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": [person]}))
    out_video = tmp_path / "drawn.avi"
    code, out, err = run(
        capfd,
        TEST_AVI,
        "-w",
        model_dir,
        "--pose-backend",
        "openpose-json",
        "--poses",
        folder,
        "--json",
        "-o",
        out_video,
    )
    assert code == 0, err
    assert json.loads(out)["frames"] == 164
    with av.open(str(out_video)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 164
