"""Faults of real files and of the machinery around them: a worker process that dies mid-video, the same
unexpected error on every video, a damaged stretch in a video, an absurd frame rate, a variable frame rate,
and the file extensions that folder searches take as videos."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from test_batch import SquarePose, read_lines, square_video
from unihar.data.pose import POSE_BACKENDS
from unihar.data.video import VIDEO_EXTENSIONS, open_video
from unihar.errors import UniHARError, VideoError
from unihar.inference.batch import BatchSettings, PoseClassifier, estimate_poses, find_videos, predict_videos
from video_helpers import run_cli, small_model_dir, write_video


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_model_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture
def square_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(POSE_BACKENDS, "square", SquarePose)


def assert_one_error_line(code: int, err: str, *patterns: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    for pattern in patterns:
        assert pattern in lines[0], lines[0]
    return lines[0]


def textured_clip(path: Path, frames: int = 60, rate: int = 15, keyframe_every: int | None = None) -> Path:
    """A bright square moving over a noisy background: frames big enough (a few kB each) that a few kB of
    garbage damages only some of them. ``keyframe_every=1``: every frame decodes on its own."""
    rng = np.random.default_rng(3)
    video = rng.integers(0, 60, (frames, 64, 64, 3)).astype(np.uint8)
    for index, frame in enumerate(video):
        frame[10:30, index % 40 : index % 40 + 20] = 230
    if keyframe_every is None:
        return write_video(path, video, rate=rate)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate, options={"g": str(keyframe_every)})
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for frame in video:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def damage(path: Path, at: float, size: int, out: Path) -> Path:
    """A copy of ``path`` with ``size`` bytes of garbage from ``at`` (a fraction of the file's length)."""
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    data[start : start + size] = np.random.default_rng(5).integers(0, 256, size, dtype=np.uint8).tobytes()
    out.write_bytes(bytes(data))
    return out


# ---------------------------------------------------------------------- a worker process that dies


class DyingPose(SquarePose):
    """SquarePose that kills its own process (SIGKILL, as the kernel's out-of-memory killer does) on a
    green frame: a crash no Python code can catch. Module level, so spawned workers can unpickle it."""

    name = "dying"

    @contextlib.contextmanager
    def frame_estimator(self):
        with super().frame_estimator() as estimate:

            def estimate_or_die(frame: np.ndarray) -> np.ndarray:
                if frame[..., 1].mean() > 200 and frame[..., 0].mean() < 80:
                    os.kill(os.getpid(), signal.SIGKILL)
                return estimate(frame)

            yield estimate_or_die


@pytest.mark.slow
def test_worker_killed_mid_video_gets_an_error_line_and_the_others_go_on(tmp_path: Path, model_dir: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    write_video(folder / "a_killer.mp4", np.tile(np.array([0, 255, 0], np.uint8), (20, 64, 64, 1)), rate=15)
    for index in range(5):
        square_video(folder / f"b{index}.mp4", seed=index)
    sources = find_videos([folder])
    assert sources[0].name == "a_killer.mp4"  # sent first: the videos queued behind it must go to the others
    out = tmp_path / "results.jsonl"
    settings = BatchSettings(weights=str(model_dir), pose_backend=DyingPose())
    summary = predict_videos(sources, out, settings, workers=2)
    assert (summary.done, summary.failed) == (5, 1)
    lines = {line["source"]: line for line in read_lines(out)}
    assert sorted(lines) == sorted(str(s) for s in sources)  # every video answered, once
    error = lines[str(folder / "a_killer.mp4")]["error"]
    assert "worker process died" in error and "SIGKILL" in error, error
    assert all("topk" in lines[str(s)] for s in sources[1:])


# ---------------------------------------------------------------------- the same unexpected error everywhere


def test_same_unexpected_error_on_many_videos_stops_the_run(
    tmp_path: Path,
    model_dir: Path,
    square_backend: None,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    for index in range(8):
        square_video(folder / f"clip{index}.mp4", seed=index)
    out = tmp_path / "results.jsonl"
    command = ["predict", folder, "--out", out, "--workers", "0", "-w", model_dir, "--pose-backend", "square"]

    def lost_share(source, **options):  # a network share gone: every read fails, naming its file
        raise OSError(5, "Input/output error", str(source))

    monkeypatch.setattr("unihar.inference.pipeline.open_video", lost_share)
    code, _, err = run_cli(capfd, *command)
    assert_one_error_line(
        code,
        err,
        "stopped: 5 videos failed with the same unexpected error",
        "unexpected OSError: [Errno 5] Input/output error: 'VIDEO'",
        str(out),
    )
    lines = read_lines(out)
    assert len(lines) == 5 and all(line["error"].startswith("unexpected OSError") for line in lines)
    # Fixed: the same command goes on from there (the failed ones again, and the rest).
    monkeypatch.undo()
    monkeypatch.setitem(POSE_BACKENDS, "square", SquarePose)
    code, stdout, err = run_cli(capfd, *command)
    assert code == 0 and "8 predicted, 0 failed" in stdout, (stdout, err)


def test_input_errors_never_stop_the_run(tmp_path: Path, model_dir: Path) -> None:
    """A corrupt file is an answer about that file, however many there are."""
    folder = tmp_path / "videos"
    folder.mkdir()
    for index in range(7):
        (folder / f"broken{index}.mp4").write_bytes(b"not a video at all")
    summary = predict_videos(
        find_videos([folder]), tmp_path / "r.jsonl", BatchSettings(weights=str(model_dir), pose_backend=SquarePose())
    )
    assert summary.failed == 7
    assert all("cannot read video" in line["error"] for line in read_lines(tmp_path / "r.jsonl"))


def test_max_repeated_errors_is_checked(tmp_path: Path) -> None:
    with pytest.raises(UniHARError, match="max_repeated_errors: expected an integer >= 1 or None, got 0"):
        predict_videos([], tmp_path / "r.jsonl", max_repeated_errors=0)


# ---------------------------------------------------------------------- a damaged stretch in a video


def test_corrupt_frames_in_the_middle_are_skipped_counted_and_keep_their_place(tmp_path: Path) -> None:
    clean_path = textured_clip(tmp_path / "clean.mp4", frames=40, keyframe_every=1)
    clean = list(open_video(clean_path))
    reader = open_video(damage(clean_path, 0.5, 2000, tmp_path / "damaged.mp4"))
    frames = list(reader)
    assert reader.corrupt_frames >= 1
    assert len(frames) == len(clean) == reader.info.num_frames
    differ = [i for i, (a, b) in enumerate(zip(frames, clean)) if not np.array_equal(a, b)]
    assert differ and max(differ) - min(differ) < 8, differ  # one damaged stretch, in the middle
    # Each frame that could not be decoded is its predecessor again, so every frame after the stretch is
    # at its own place: frame numbers (and times) are those of the file.
    for index in differ:
        np.testing.assert_array_equal(frames[index], frames[index - 1])
    for index in range(max(differ) + 1, len(clean)):
        np.testing.assert_array_equal(frames[index], clean[index])


def test_predict_goes_through_a_corrupt_stretch_and_says_so(
    tmp_path: Path, model_dir: Path, square_backend: None, capfd: pytest.CaptureFixture[str]
) -> None:
    damaged = damage(textured_clip(tmp_path / "clip.mp4"), 0.5, 2000, tmp_path / "damaged.mp4")  # B-frames, threads
    code, out, err = run_cli(capfd, "predict", damaged, "--json", "-w", model_dir, "--pose-backend", "square")
    assert code == 0, err
    result = json.loads(out)
    assert result["frames"] == 60 and result["corrupt_frames"] >= 1
    code, out, err = run_cli(capfd, "predict", damaged, "-w", model_dir, "--pose-backend", "square")
    assert code == 0 and f"{result['corrupt_frames']} frames could not be decoded" in out, (out, err)
    # Batch mode with workers: the poses come from a worker, the line from the classifier here.
    settings = BatchSettings(weights=str(model_dir), pose_backend=SquarePose())
    line = PoseClassifier(settings, settings.model())(estimate_poses(damaged, SquarePose())).line
    assert line["corrupt_frames"] == result["corrupt_frames"] and line["frames"] == 60
    # An undamaged video's JSON has no such key.
    code, out, err = run_cli(
        capfd, "predict", tmp_path / "clip.mp4", "--json", "-w", model_dir, "--pose-backend", "square"
    )
    assert code == 0 and "corrupt_frames" not in json.loads(out), err


def test_video_corrupt_from_the_start_or_mostly_is_refused(tmp_path: Path) -> None:
    clip = textured_clip(tmp_path / "clip.mp4", frames=40, keyframe_every=1)
    start = clip.read_bytes().index(b"mdat") + 4  # the first frame's data
    data = bytearray(clip.read_bytes())
    data[start : start + 3000] = bytes(3000)
    (tmp_path / "bad_start.mp4").write_bytes(bytes(data))
    with pytest.raises(VideoError, match="bad_start.mp4' is corrupt"):
        list(open_video(tmp_path / "bad_start.mp4"))
    mostly = damage(clip, 0.2, int(0.7 * clip.stat().st_size), tmp_path / "mostly.mp4")
    with pytest.raises(VideoError, match=r"is corrupt: \d+ of its 40 frames could not be decoded"):
        list(open_video(mostly))


# ---------------------------------------------------------------------- frame rates


def clip_with_timestamps(path: Path, stamps: list[int], time_base: Fraction, rate: Fraction | int) -> Path:
    """A clip whose frames carry the presentation times ``stamps`` (in ``time_base``), its header stating ``rate``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.codec_context.time_base = time_base
        for index, stamp in enumerate(stamps):
            image = np.full((64, 64, 3), 20, np.uint8)
            image[20:44, index % 40 : index % 40 + 24] = 230
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = stamp, time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize("rate", [Fraction(1, 1000), 1_000_000], ids=["one-frame-per-1000s", "a-million-fps"])
def test_absurd_frame_rate_is_a_clear_error(
    tmp_path: Path, rate: Fraction | int, model_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = write_video(tmp_path / "absurd.mp4", np.full((20, 64, 64, 3), 120, np.uint8), rate=rate)
    with pytest.raises(
        VideoError, match="cannot tell the frame rate of .*absurd.mp4'.*expected 1 to 240 frames per second"
    ):
        open_video(path)
    assert_one_error_line(*run_cli(capfd, "predict", path, "-w", model_dir)[::2], "cannot tell the frame rate")


def test_absurd_header_rate_is_measured_from_the_timestamps(tmp_path: Path) -> None:
    """A header claiming 1000 fps over frames 1/15 s apart (mkv, 1 ms time base): the timestamps rule."""
    path = clip_with_timestamps(
        tmp_path / "clip.mkv", [round(i * 1000 / 15) for i in range(30)], Fraction(1, 1000), 1000
    )
    with av.open(str(path)) as container:
        assert float(container.streams.video[0].average_rate) > 240  # what the header says
    info = open_video(path).info
    assert info.fps == pytest.approx(15.0, abs=0.01) and info.num_frames == 30


def test_variable_frame_rate_video_with_imported_poses(
    tmp_path: Path, model_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    stamps = np.cumsum([0] + [50 if i % 3 else 100 for i in range(44)]).tolist()  # 45 frames, 50 or 100 ms apart
    video = clip_with_timestamps(tmp_path / "vfr.mkv", stamps, Fraction(1, 1000), 30)
    assert open_video(video).info.num_frames != 45  # the header has no count: duration x rate, wrong here

    def poses(frames: int) -> Path:
        t = np.arange(frames)[:, None]
        keypoints = np.stack(
            [
                20 + 5 * np.sin(t / 4 + np.arange(17)),
                10 + 2 * np.arange(17)[None].repeat(frames, 0),
                np.full((frames, 17), 0.9),
            ],
            axis=-1,
        ).astype(np.float32)
        np.save(tmp_path / f"poses{frames}.npy", keypoints)
        return tmp_path / f"poses{frames}.npy"

    common = ["-w", model_dir, "--pose-backend", "array"]
    code, out, err = run_cli(capfd, "predict", video, "--poses", poses(45), "--json", *common)
    assert code == 0, err
    assert json.loads(out)["frames"] == 45
    code, _, err = run_cli(capfd, "predict", video, "--poses", poses(40), *common)
    assert_one_error_line(code, err, "the video has 45 frames but the poses in", "have 40")
    reader = open_video(video)
    assert reader.info.frames_estimated and reader.count_frames() == 45 == sum(1 for _ in reader)


# ---------------------------------------------------------------------- which files are videos


def test_folder_searches_take_the_same_files_as_videos(tmp_path: Path) -> None:
    """``unihar predict DIR --out`` and the ``video-folder`` datasets find the same videos in a folder."""
    from unihar.data.datasets import videos as video_datasets

    folder = tmp_path / "walk"
    folder.mkdir()
    for extension in VIDEO_EXTENSIONS:
        (folder / f"clip{extension}").write_bytes(b"x")
    (folder / "LOUD.MP4").write_bytes(b"x")
    for other in ("._clip.mp4", ".hidden.mkv", "notes.txt", "clip.mp4.part"):
        (folder / other).write_bytes(b"x")
    by_batch = sorted(p.name for p in find_videos([folder]))
    by_dataset = sorted(p.name for p in video_datasets._videos_in(folder))
    assert by_batch == by_dataset == sorted(["LOUD.MP4", *(f"clip{extension}" for extension in VIDEO_EXTENSIONS)])
