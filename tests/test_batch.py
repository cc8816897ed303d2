"""Batch prediction (``unihar predict DIR --out results.jsonl``): one line per video, resumable, the same
numbers whichever way a video is predicted (one video, a folder, worker processes, Ray)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from unihar.data.layouts import LAYOUTS
from unihar.data.pose import POSE_BACKENDS
from unihar.errors import InputError
from unihar.inference.batch import BatchSettings, ResultsFile, find_videos, predict_videos
from video_helpers import CLEAN_AND_JERK, blank_video, run_cli, small_model_dir, write_video

TESTS = Path(__file__).resolve().parent

# ---------------------------------------------------------------------- synthetic videos and poses

_TEMPLATE = np.random.default_rng(7).uniform(-1.0, 1.0, (17, 2))


class SquarePose:
    """A pose estimator for synthetic videos: finds the bright square in each frame and puts a 17-joint
    figure around it. Real pixels in (decoding, frame order and errors are real), no network to run.
    Defined here at module level so spawned workers can unpickle it."""

    name = "square"
    needs_video = True
    layout = LAYOUTS["coco17"]

    def __init__(self, max_people: int = 1, delay: float = 0.0) -> None:
        self.delay = delay

    @contextlib.contextmanager
    def frame_estimator(self):
        def estimate(frame: np.ndarray) -> np.ndarray:
            if self.delay:
                time.sleep(self.delay)
            ys, xs = np.nonzero(frame.mean(axis=2) > 128)
            if len(xs) == 0:
                return np.zeros((0, 17, 3), np.float32)
            size = max(float(np.ptp(xs)), float(np.ptp(ys)), 1.0)
            joints = np.array([xs.mean(), ys.mean()]) + _TEMPLATE * size * (1 + ys.mean() / frame.shape[0])
            return np.concatenate([joints, np.full((17, 1), 0.9)], axis=1)[None].astype(np.float32)

        yield estimate


def square_video(path: Path, seed: int, frames: int = 30) -> Path:
    """A bright square wandering over a dark background (15 fps, 2 s)."""
    rng = np.random.default_rng(seed)
    positions = np.cumsum(rng.integers(-3, 4, (frames, 2)), axis=0) + 24
    video = np.full((frames, 64, 64, 3), 20, np.uint8)
    for frame, (x, y) in zip(video, np.clip(positions, 0, 48)):
        frame[y : y + 14, x : x + 12] = 230
    return write_video(path, video, rate=15)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_model_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture
def videos(tmp_path: Path) -> Path:
    """Three good videos (one in a sub-folder), one with nobody in it, one corrupt, and files to ignore."""
    folder = tmp_path / "videos"
    (folder / "sub").mkdir(parents=True)
    (folder / ".hidden").mkdir()
    for index, name in enumerate(["a.mp4", "b.avi", "sub/c.mkv"]):
        square_video(folder / name, seed=index)
    blank_video(folder / "sub" / "empty.mp4", frames=20)
    (folder / "sub" / "broken.mp4").write_bytes(b"not a video at all")
    (folder / "notes.txt").write_text("not a video")
    square_video(folder / ".hidden" / "skipped.mp4", seed=9)
    return folder


@pytest.fixture
def square_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(POSE_BACKENDS, "square", SquarePose)


def run(capfd: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    return run_cli(capfd, "predict", *args)


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_same_prediction(a: dict, b: dict, tolerance: float = 1e-5) -> None:
    """Same structure, same integers and labels, probabilities within ``tolerance``."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), (a.keys(), b)
        for key in a:
            assert_same_prediction(a[key], b[key], tolerance)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_prediction(x, y, tolerance)
    elif isinstance(a, float) and not isinstance(b, str):
        assert abs(a - b) <= tolerance, (a, b)
    else:
        assert a == b


# ---------------------------------------------------------------------- finding videos


def test_find_videos_recursive_glob_and_errors(videos: Path, tmp_path: Path) -> None:
    found = [p.relative_to(videos).as_posix() for p in find_videos([videos])]
    assert found == ["a.mp4", "b.avi", "sub/broken.mp4", "sub/c.mkv", "sub/empty.mp4"]  # no .txt, no hidden folder
    assert [p.relative_to(videos).as_posix() for p in find_videos([str(videos / "**" / "*.mp4")])] == [
        "a.mp4",
        "sub/broken.mp4",
        "sub/empty.mp4",
    ]
    same_file = ["./" + os.path.relpath(videos / "a.mp4"), str(videos / "*.mp4"), videos / "sub" / ".." / "a.mp4"]
    assert [p.name for p in find_videos([videos / "a.mp4", *same_file])] == ["a.mp4"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no videos in folder"):
        find_videos([tmp_path / "empty"])
    with pytest.raises(InputError, match="no videos match"):
        find_videos([str(videos / "*.webm")])
    with pytest.raises(InputError, match="does not exist"):
        find_videos([tmp_path / "missing.mp4"])


# ---------------------------------------------------------------------- the command line


def test_folder_gives_the_lines_of_the_single_video_command(
    videos: Path, tmp_path: Path, model_dir: Path, square_backend: None, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.jsonl"
    common = ["-w", model_dir, "--pose-backend", "square", "-k", "3"]
    code, stdout, err = run(capfd, videos, "--out", out, "--workers", "0", *common)
    assert code == 1, err  # two videos failed
    assert "5 videos: 3 predicted, 2 failed" in stdout and "Traceback" not in err
    lines = {line["source"]: line for line in read_lines(out)}
    assert sorted(lines) == sorted(str(p) for p in find_videos([videos]))
    for source, line in lines.items():
        code, single, err = run(capfd, source, "--json", *common)
        if "error" in line:
            assert code == 2 and set(line) == {"source", "error"}
            assert err.strip() == f"error: {line['error']}"  # the message the single-video command prints
        else:
            assert code == 0, err
            assert line == json.loads(single)
    assert "nobody was detected" in lines[str(videos / "sub" / "empty.mp4")]["error"]
    assert "cannot read video" in lines[str(videos / "sub" / "broken.mp4")]["error"]


def test_second_run_skips_answered_and_retries_failed(
    videos: Path, tmp_path: Path, model_dir: Path, square_backend: None, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.jsonl"
    common = ["--out", out, "--workers", "0", "-w", model_dir, "--pose-backend", "square"]
    assert run(capfd, videos, *common)[0] == 1
    first = out.read_bytes()
    square_video(videos / "sub" / "empty.mp4", seed=5)  # now someone is in it
    code, stdout, err = run(capfd, videos, *common)
    assert code == 1 and "1 predicted, 1 failed, 3 already in" in stdout, (stdout, err)
    assert out.read_bytes().startswith(first)  # appended, never rewritten
    added = read_lines(out)[len(first.splitlines()) :]
    assert [Path(line["source"]).name for line in added] == ["broken.mp4", "empty.mp4"]
    assert "topk" in added[1] and "error" in added[0]
    (videos / "sub" / "broken.mp4").unlink()
    code, stdout, _ = run(capfd, videos, *common)
    assert code == 0 and "0 predicted, 0 failed, 4 already in" in stdout


def test_bad_batch_arguments(
    videos: Path, tmp_path: Path, model_dir: Path, square_backend: None, capfd: pytest.CaptureFixture[str]
) -> None:
    def fails(pattern: str, *args: str) -> None:
        code, out, err = run(capfd, *args)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and pattern in lines[0], (
            code,
            out,
            err,
        )

    model = ["-w", model_dir, "--pose-backend", "square"]
    (tmp_path / "empty").mkdir()
    fails("no videos in folder", tmp_path / "empty", "--out", tmp_path / "r.jsonl", *model)
    fails("no videos match", str(tmp_path / "*.mp4"), "--out", tmp_path / "r.jsonl", *model)
    fails("is a folder; expected a file", videos, "--out", tmp_path / "empty", *model)
    not_ours = tmp_path / "notes.txt"
    not_ours.write_text("my notes\n")
    fails("line 1 is not a JSON object", videos, "--out", not_ours, *model)
    assert not_ours.read_text() == "my notes\n"  # left as it was
    not_ours.write_text("my notes, no newline")
    fails("its last line is not a JSON object", videos, "--out", not_ours, *model)
    assert not_ours.read_text() == "my notes, no newline"
    fails("--json prints one video", videos, "--out", tmp_path / "r.jsonl", "--json", *model)
    fails("--output is for one video", videos, "--out", tmp_path / "r.jsonl", "--output", tmp_path / "x.mp4", *model)
    fails("imports keypoint files", videos, "--out", tmp_path / "r.jsonl", "-w", model_dir, "--pose-backend", "array")
    fails("topk", videos, "--out", tmp_path / "r.jsonl", "-k", "99", *model)
    fails("add --out", videos / "a.mp4", videos / "b.avi", *model)
    fails("is a folder of videos", videos, *model)
    fails("looks like a glob pattern", str(videos / "*.mp4"), *model)
    fails("--workers and --ray are for batch mode", videos / "a.mp4", "--workers", "2", *model)
    assert not (tmp_path / "r.jsonl").exists() or (tmp_path / "r.jsonl").read_text() == ""


# ---------------------------------------------------------------------- the output file


def test_torn_last_line_is_removed_and_good_lines_kept(videos: Path, tmp_path: Path, model_dir: Path) -> None:
    out = tmp_path / "results.jsonl"
    settings = BatchSettings(weights=str(model_dir), pose_backend=SquarePose())
    sources = find_videos([videos / "a.mp4", videos / "b.avi", videos / "sub" / "c.mkv"])
    predict_videos(sources[:2], out, settings)
    good = out.read_bytes()
    out.write_bytes(good + b'{"source": "' + str(sources[2]).encode() + b'", "frames": 3')  # killed mid-line
    summary = predict_videos(sources, out, settings)
    assert summary.skipped == 2 and summary.done == 1 and summary.dropped_tail.startswith(b'{"source"')
    content = out.read_bytes()
    assert content.startswith(good) and content.endswith(b"\n")
    assert [line["source"] for line in read_lines(out)] == [str(s) for s in sources]
    # A last line that is whole but lost its newline is kept, not predicted again.
    out.write_bytes(content[:-1])
    summary = predict_videos(sources, out, settings)
    assert (
        summary.skipped == 3 and summary.finished == 0 and summary.dropped_tail == b"" and out.read_bytes() == content
    )


def test_results_file_is_locked_while_a_run_writes(tmp_path: Path) -> None:
    pytest.importorskip("fcntl")
    with ResultsFile(tmp_path / "r.jsonl") as results:
        results.write({"source": "x.mp4", "error": "boom"})
        with pytest.raises(InputError, match="being written by another"):
            ResultsFile(tmp_path / "r.jsonl").__enter__()
    with ResultsFile(tmp_path / "r.jsonl") as again:
        assert again.failed == {os.path.abspath("x.mp4"): "boom"} and not again.answered


@pytest.mark.slow
def test_killed_run_resumes_without_losing_or_repeating_lines(videos: Path, tmp_path: Path, model_dir: Path) -> None:
    for index in range(3, 9):
        square_video(videos / f"more_{index}.mp4", seed=index)
    sources = find_videos([videos])
    out = tmp_path / "results.jsonl"
    script = (
        "import sys; from test_batch import SquarePose; from unihar.inference.batch import BatchSettings, "
        "predict_videos; "
        f"predict_videos(sys.argv[2:], sys.argv[1], BatchSettings(weights={str(model_dir)!r}, "
        "pose_backend=SquarePose(delay=0.03)))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-c", script, str(out), *map(str, sources)], env=env)
    try:
        deadline = time.monotonic() + 120
        while (
            (not out.exists() or out.read_text().count("\n") < 2)
            and time.monotonic() < deadline
            and process.poll() is None
        ):
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    written = read_lines(out) if out.read_bytes().endswith(b"\n") else read_lines(out)[:-1]
    answered = {line["source"] for line in written if "error" not in line}
    assert 2 <= len(written) < len(sources), "the run should have been killed half-way"
    summary = predict_videos(sources, out, BatchSettings(weights=str(model_dir), pose_backend=SquarePose()))
    assert summary.skipped == len(answered) and summary.finished == len(sources) - len(answered)
    lines = read_lines(out)
    assert lines[: len(written)] == written
    successes = sorted(line["source"] for line in lines if "error" not in line)
    assert successes == sorted(str(s) for s in sources if s.name not in ("broken.mp4", "empty.mp4"))  # each once


# ---------------------------------------------------------------------- the same numbers on every path


@pytest.mark.slow
@pytest.mark.parametrize("image", [False, True], ids=["pose-only", "with-images"])
def test_worker_processes_give_the_same_lines(videos: Path, tmp_path: Path, image: bool) -> None:
    weights = small_model_dir(tmp_path / "model", image=image)
    sources = find_videos([videos])
    in_process, in_workers = tmp_path / "in_process.jsonl", tmp_path / "workers.jsonl"
    settings = BatchSettings(weights=str(weights), pose_backend=SquarePose(), topk=5)
    predict_videos(sources, in_process, settings, workers=0)
    summary = predict_videos(sources, in_workers, settings, workers=2)
    assert (summary.done, summary.failed) == (3, 2) and summary.worker_seconds > 0
    # Pose-only models: poses in the workers, the model here; with images, everything in the workers.
    assert (summary.model_seconds > 0) == (not image)
    by_source = {line["source"]: line for line in read_lines(in_process)}
    lines = read_lines(in_workers)
    assert sorted(line["source"] for line in lines) == sorted(by_source)
    for line in lines:
        assert_same_prediction(by_source[line["source"]], line)


@pytest.fixture(scope="module")
def real_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 4 s of the real clean-and-jerk clip (the whole clip takes too long for four paths)."""
    from unihar.data.video import open_video

    reader = open_video(CLEAN_AND_JERK)
    frames = np.stack([frame for _, frame in zip(range(120), reader)])
    return write_video(tmp_path_factory.mktemp("real") / "clean_and_jerk_4s.mp4", frames, rate=reader.info.exact_rate)


@pytest.mark.slow
def test_real_clip_same_probabilities_single_folder_workers_and_ray(
    real_clip: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    code, single, err = run(capfd, real_clip, "--json")
    assert code == 0, err
    expected = json.loads(single)
    assert expected["topk"][0]["label"] == "clean_and_jerk"
    paths = {"folder": ["--workers", "0"], "workers": ["--workers", "2"]}
    try:
        import ray.data  # noqa: F401
    except ImportError:
        pass  # the Ray path has its own test, which skips
    else:
        paths["ray"] = ["--ray", "local", "--workers", "2"]
    for name, options in paths.items():
        out = tmp_path / f"{name}.jsonl"
        code, stdout, err = run(capfd, real_clip.parent, "--out", out, *options)
        assert code == 0, (name, out.read_text() if out.exists() else err)
        [line] = read_lines(out)
        assert_same_prediction(expected, line)


@pytest.fixture(scope="module")
def ray_here():
    """One local Ray instance for the Ray tests of this module (batch runs use it instead of starting their own)."""
    pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'unihar[ray]')")
    import ray
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import this test module
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize("image", [False, True], ids=["pose-only", "with-images"])
def test_ray_gives_the_same_lines_and_resumes(videos: Path, tmp_path: Path, image: bool, ray_here) -> None:
    weights = small_model_dir(tmp_path / "model", image=image)
    sources = find_videos([videos / "a.mp4", videos / "b.avi", videos / "sub"])
    settings = BatchSettings(weights=str(weights), pose_backend=SquarePose(), topk=5)
    in_process = tmp_path / "in_process.jsonl"
    predict_videos(sources, in_process, settings, workers=0)  # the single-video pipeline, in this process
    reference = {line["source"]: line for line in read_lines(in_process)}
    out = tmp_path / "ray.jsonl"
    out.write_text(json.dumps(reference[str(sources[0])]) + "\n")  # a run that was stopped after one video
    summary = predict_videos(sources, out, settings, workers=2, ray_address="local")
    assert (summary.skipped, summary.done, summary.failed) == (1, 2, 2)
    lines = read_lines(out)
    assert sorted(line["source"] for line in lines) == sorted(reference)
    for line in lines:
        assert_same_prediction(reference[line["source"]], line)
