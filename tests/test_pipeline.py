"""Video -> poses -> windows -> probabilities, and the annotated video, with small real models."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from unihar.data.preprocess import pose_window, window_ranges
from unihar.data.video import read_frames
from unihar.errors import InputError
from unihar.inference.pipeline import VideoPipeline
from unihar.inference.render import PersonOverlay, check_output_path, draw_frame, render_video
from unihar.inference.results import ActionScore
from unihar.loading import from_pretrained
from video_helpers import CLEAN_AND_JERK, TEST_AVI, clean_and_jerk_poses, small_model_dir


@pytest.fixture(scope="module")
def pose_model(tmp_path_factory: pytest.TempPathFactory):
    return from_pretrained(small_model_dir(tmp_path_factory.mktemp("model")))


def _synthetic_poses(tmp_path: Path, frames: int = 75) -> Path:
    rng = np.random.default_rng(0)
    base = rng.uniform(50, 250, size=(17, 2))
    t = np.arange(frames)[:, None, None]
    xy = base[None] + 20 * np.sin(t / 5.0 + base[None] / 50.0)
    kpts = np.concatenate([xy, np.full((frames, 17, 1), 0.9)], axis=-1).astype(np.float32)
    path = tmp_path / "poses.npy"
    np.save(path, kpts)
    return path


def test_windows_and_aggregate(tmp_path: Path, pose_model) -> None:
    pipeline = VideoPipeline(pose_model, pose_backend="array", device="cpu")
    result = pipeline(_synthetic_poses(tmp_path), topk=3, fps=25.0)
    preprocessing = pose_model.preprocessing
    ranges = window_ranges(75, 25.0, preprocessing)
    assert [(w.start_frame, w.end_frame) for w in result.windows] == ranges and len(ranges) == 2
    for window in result.windows:
        assert window.probs.sum() == pytest.approx(1.0, abs=1e-5)
        probs = [s.prob for s in window.topk]
        assert probs == sorted(probs, reverse=True) and len(probs) == 3
    np.testing.assert_allclose(result.probs, np.mean([w.probs for w in result.windows], axis=0), rtol=1e-6)
    assert result.topk[0].id == int(np.argmax(result.probs))
    assert result.topk[0].label == pose_model.labels[result.topk[0].id]

    # The window's probabilities are exactly the model on preprocess.pose_window of those frames.
    kpts = np.load(tmp_path / "poses.npy")
    s, e = ranges[1]
    with torch.no_grad():
        expected = torch.softmax(pose_model(torch.from_numpy(pose_window(kpts[s:e], preprocessing))[None]), -1)[
            0
        ].numpy()
    np.testing.assert_allclose(result.windows[1].probs, expected, rtol=1e-5, atol=1e-6)


def test_json_schema(tmp_path: Path, pose_model) -> None:
    import json

    result = VideoPipeline(pose_model, pose_backend="array", device="cpu")(_synthetic_poses(tmp_path), topk=2)
    data = json.loads(json.dumps(result.to_dict()))
    assert set(data) == {"source", "frames", "fps", "topk", "windows", "people"}
    assert data["people"] == [
        {"id": 0, "start_frame": 0, "end_frame": 74, "topk": data["topk"], "windows": data["windows"]}
    ]
    assert data["frames"] == 75 and data["fps"] == 30.0  # a pose file alone: 30 fps unless told
    assert all(set(item) == {"id", "label", "prob"} for item in data["topk"])
    assert isinstance(data["topk"][0]["id"], int) and isinstance(data["topk"][0]["prob"], float)
    assert all(set(w) == {"start_frame", "end_frame", "topk"} for w in data["windows"])


def test_model_layout_differs_from_backend_layout(tmp_path: Path) -> None:
    model = from_pretrained(small_model_dir(tmp_path / "penn", layout="penn13"))
    result = VideoPipeline(model, pose_backend="array", device="cpu")(_synthetic_poses(tmp_path), topk=1)
    assert len(result.windows) == 2 and result.people[0].layout.name == "coco17"
    # the model sees penn13 (head derived from the face joints): its windows differ from a coco17 model's


def test_bad_topk(tmp_path: Path, pose_model) -> None:
    pipeline = VideoPipeline(pose_model, pose_backend="array", device="cpu")
    with pytest.raises(InputError, match=r"topk: expected an integer in \[1, 5\]"):
        pipeline(_synthetic_poses(tmp_path), topk=6)


@pytest.mark.slow
def test_multimodal_model_reads_frames(tmp_path: Path) -> None:
    model = from_pretrained(small_model_dir(tmp_path / "mm", image=True))
    frames, _ = read_frames(TEST_AVI, max_frames=30)
    poses = np.stack([[[100 + t, 80 + j * 5, 0.9] for j in range(17)] for t in range(30)]).astype(np.float32)
    np.save(tmp_path / "p.npy", poses)
    pipeline = VideoPipeline(model, pose_backend="array", device="cpu")
    with pytest.raises(InputError, match="the video has 164 frames but the poses"):
        pipeline(TEST_AVI, poses=tmp_path / "p.npy")
    with pytest.raises(InputError, match="also reads RGB frames"):
        pipeline(tmp_path / "p.npy")
    # the same poses with the matching 30-frame video (an image folder)
    from PIL import Image

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:03d}.png")
    result = pipeline(folder, poses=tmp_path / "p.npy", fps=25.0, topk=2)
    assert result.frames == 30 and len(result.windows) == 1
    # the images matter: other frames give other probabilities
    folder2 = tmp_path / "frames2"
    folder2.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(255 - frame).save(folder2 / f"{i:03d}.png")
    other = pipeline(folder2, poses=tmp_path / "p.npy", fps=25.0, topk=2)
    assert not np.allclose(result.probs, other.probs)


@pytest.mark.slow
def test_real_clip_end_to_end_and_annotated_video(tmp_path: Path, pose_model) -> None:
    poses = clean_and_jerk_poses()
    pipeline = VideoPipeline(pose_model, device="cpu")
    result = pipeline.classify(poses, fps=30000 / 1001, topk=3, source=str(CLEAN_AND_JERK))
    assert result.frames == 300 and result.missing_frames == 0
    # 10 s of video, 2 s windows every 1 s -> 9 windows covering all 300 frames
    assert len(result.windows) == 9 and result.windows[-1].end_frame == 300

    out = render_video(CLEAN_AND_JERK, result, tmp_path / "annotated.mp4")
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == Fraction(30000, 1001)
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
    assert decoded.shape == (300, 256, 340, 3)
    original, _ = read_frames(CLEAN_AND_JERK)
    # The drawing changed the picture around the lifter and in the top-left panel, not everywhere.
    diff = np.abs(decoded.astype(int) - original.astype(int)).sum(-1)
    assert diff[:, 5:40, 5:100].mean() > 40  # the bars panel
    lw = result.people[0].keypoints[150, poses.layout.index("left_wrist"), :2].astype(int)
    assert diff[150, lw[1] - 3 : lw[1] + 4, lw[0] - 3 : lw[0] + 4].mean() > 40  # a joint marker
    assert np.median(diff[:, 150:, 250:]) < 15  # far from the lifter and the panel: just re-encoding

    with pytest.raises(InputError, match="already exists; pass --overwrite"):
        render_video(CLEAN_AND_JERK, result, out)
    render_video(CLEAN_AND_JERK, result, out, overwrite=True)


def test_render_odd_size_keeps_frame_count(tmp_path: Path, pose_model) -> None:
    from PIL import Image

    frames, _ = read_frames(TEST_AVI, max_frames=10)
    folder = tmp_path / "odd"
    folder.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame[:239, :319]).save(folder / f"{i}.png")  # 319x239
    kpts = np.stack([[[150 + t, 60 + 8 * j, 0.9] for j in range(17)] for t in range(10)]).astype(np.float32)
    np.save(tmp_path / "p.npy", kpts)
    pipeline = VideoPipeline(pose_model, pose_backend="array", device="cpu")
    result = pipeline(folder, poses=tmp_path / "p.npy", fps=12.0, topk=3)
    out = render_video(folder, result, tmp_path / "odd.avi", fps=12.0)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == 12 and (stream.width, stream.height) == (320, 240)
        assert sum(1 for _ in container.decode(stream)) == 10


def test_output_path_checks(tmp_path: Path) -> None:
    (tmp_path / "taken.mp4").write_bytes(b"mine")
    with pytest.raises(InputError, match="already exists"):
        check_output_path(tmp_path / "taken.mp4")
    assert check_output_path(tmp_path / "taken.mp4", overwrite=True).name == "taken.mp4"
    with pytest.raises(InputError, match="ending in"):
        check_output_path(tmp_path / "out.gif")
    with pytest.raises(InputError, match="does not exist"):
        check_output_path(tmp_path / "no" / "out.mp4")
    assert (tmp_path / "taken.mp4").read_bytes() == b"mine"


def test_draw_frame_leaves_frame_size() -> None:
    from unihar.data.layouts import LAYOUTS

    frame = np.zeros((120, 160, 3), np.uint8)
    kpts = np.zeros((17, 3), np.float32)
    kpts[5], kpts[7] = [40, 40, 1.0], [80, 90, 1.0]  # left shoulder -> left elbow
    out = draw_frame(frame, [PersonOverlay(3, kpts, ActionScore(0, "wave", 0.9))], LAYOUTS["coco17"])
    assert out.shape == frame.shape and out[65, 60].sum() > 0  # on the bone
    assert out[100:, 120:].sum() == 0  # nothing far away
    assert out[20:38, 40:70].sum() > 0  # the label "#3 wave 90%" above the person


def test_window_shown_at_each_frame(tmp_path: Path, pose_model) -> None:
    result = VideoPipeline(pose_model, pose_backend="array", device="cpu")(_synthetic_poses(tmp_path, 160), fps=25.0)
    centres = np.array([(w.start_frame + w.end_frame - 1) / 2 for w in result.windows])
    frames = np.arange(160)
    brute = np.array([int(np.argmin(np.abs(centres - f))) for f in frames])  # argmin: first of ties
    np.testing.assert_array_equal(result.main.window_index(frames), brute)
    assert (
        result.main.window_for_frame(0) is result.windows[0] and result.main.window_for_frame(159) is result.windows[-1]
    )


@pytest.mark.slow
def test_bundled_model_recognises_the_real_clean_and_jerk() -> None:
    from unihar.assets import default_model_dir

    folder = default_model_dir()
    if not (folder / "config.json").is_file():
        pytest.skip("the bundled default model is not in this checkout")
    pipeline = VideoPipeline(from_pretrained(folder), device="cpu")
    # BlazePose (mediapipe33) -> the model's layout (penn13, with a derived head) -> windows -> model
    result = pipeline.classify(clean_and_jerk_poses(), fps=30000 / 1001, topk=3, source=str(CLEAN_AND_JERK))
    assert result.topk[0].label == "clean_and_jerk", result.topk


class _ScriptedPeople:
    """A pose 'estimator' that reads the frame number painted into each frame and returns a script of
    people: A in every frame, B in frames 10-59, C in frames 30-33, D in frames 40-41 only."""

    name = "scripted"
    needs_video = True

    def __init__(self) -> None:
        from unihar.data.layouts import LAYOUTS

        self.layout = LAYOUTS["coco17"]
        rng = np.random.default_rng(5)
        self.shape = rng.uniform(-40, 40, size=(17, 2))

    def person(self, x: float, frame: int) -> np.ndarray:
        xy = self.shape + [x + 0.5 * frame, 120 + 5 * np.sin(frame / 4)]
        return np.concatenate([xy, np.full((17, 1), 0.9)], axis=1).astype(np.float32)

    def frame_estimator(self):
        import contextlib

        @contextlib.contextmanager
        def opened():
            def estimate(frame: np.ndarray) -> np.ndarray:
                i = int(frame[0, 0, 0]) * 256 + int(frame[0, 0, 1])
                people = [self.person(60, i)]
                if 10 <= i < 60:
                    people.append(self.person(260, i))
                if 30 <= i < 34:
                    people.append(self.person(460, i))
                if i in (40, 41):  # D: a false detection for two frames, never a person (away from where
                    people.append(self.person(360, i) * [1, 1.5, 1])  # C was heading: not C seen again)
                return np.stack(people)

            yield estimate

        return opened()


def _numbered_frames(n: int):
    for i in range(n):
        frame = np.zeros((240, 560, 3), np.uint8)
        frame[0, 0, :2] = (i // 256, i % 256)
        yield frame


def test_everyone_in_view_gets_a_track_and_the_longest_is_the_main_person(pose_model) -> None:
    from unihar.data.video import VideoInfo

    info = VideoInfo("scripted.mp4", 560, 240, 25.0, 80)
    result = VideoPipeline(pose_model, pose_backend=_ScriptedPeople(), device="cpu").predict_frames(
        _numbered_frames(80), info, topk=2
    )
    spans = {p.id: (p.start_frame, p.end_frame) for p in result.people}
    # a new track counts from its third detection (MIN_HITS): a one-frame false detection is no one
    assert sorted(spans.values()) == [(2, 79), (12, 59), (32, 33)]
    by_start = {p.start_frame: p for p in result.people}
    assert by_start[32].topk is None and "at least" in by_start[32].reason  # C: seen for 2 frames (0.08 s)
    assert by_start[12].topk is not None and by_start[12].windows[0].start_frame == 12
    assert result.main is by_start[2] and result.topk == by_start[2].topk
    data = result.to_dict()
    assert [set(p) for p in data["people"]] == [
        {"id", "start_frame", "end_frame", "topk", "windows"}
        if p.topk is not None
        else {"id", "start_frame", "end_frame", "reason"}
        for p in result.people
    ]
    # --max-people 1: one person through the whole video, today's single-person behaviour
    single = VideoPipeline(pose_model, pose_backend=_ScriptedPeople(), device="cpu", max_people=1)
    one = single.predict_frames(_numbered_frames(80), info, topk=2)
    assert [(p.id, p.start_frame, p.end_frame) for p in one.people] == [(0, 0, 79)]
