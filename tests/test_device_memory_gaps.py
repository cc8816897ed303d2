"""Correct on every device and through every fault: one device rule, bounded memory on long sources,
gaps that never invent joints, and one "main person" rule for training data and prediction."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch

import unihar.inference.pipeline as pipeline_module
from unihar.data.layouts import LAYOUTS
from unihar.data.pose import PoseSequence, fill_missing, select_main_actor
from unihar.data.preprocess import pose_window
from unihar.data.video import VideoInfo
from unihar.inference.engine import WindowEngine, run_sequences
from unihar.inference.pipeline import VideoPipeline, max_gap_frames
from unihar.inference.predictor import HARPredictor
from unihar.inference.streaming import StreamingPredictor
from unihar.loading import from_pretrained
from video_helpers import CLEAN_AND_JERK, small_model_dir

FPS = 10.0  # the small models' window: 2 s = 20 frames, 2 clips of 10; max_gap_frames(10) = 10


@pytest.fixture(scope="module")
def pose_model(tmp_path_factory: pytest.TempPathFactory):
    return from_pretrained(small_model_dir(tmp_path_factory.mktemp("pose"))).eval()


@pytest.fixture(scope="module")
def image_model(tmp_path_factory: pytest.TempPathFactory):
    return from_pretrained(small_model_dir(tmp_path_factory.mktemp("rgb"), image=True)).eval()


def _walk(n: int, seed: int = 0) -> np.ndarray:
    """``(n, 17, 3)`` coco17 keypoints of one person moving about, every joint seen."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(60, 200, size=(1, 17, 2)) + np.cumsum(rng.normal(0, 2, size=(n, 17, 2)), axis=0)
    conf = rng.uniform(0.3, 1.0, size=(n, 17, 1))
    return np.concatenate([xy, conf], axis=-1).astype(np.float32)


def _frames(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 24, 32, 3), dtype=np.uint8)


# ------------------------------------------------------------------ one device rule
def test_the_engine_runs_where_the_model_is_not_on_the_default_device(pose_model, monkeypatch) -> None:
    """CUDA "available" (the default device would be CUDA) but the model sits on the CPU: the engine
    must send its inputs to the CPU and give the same numbers as without CUDA."""
    kpts = _walk(45)
    expected = run_sequences(pose_model, [kpts], FPS)[0]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert WindowEngine(pose_model, FPS).device == torch.device("cpu")
    got = run_sequences(pose_model, [kpts], FPS)[0]
    assert [(w.start_frame, w.end_frame) for w in got] == [(w.start_frame, w.end_frame) for w in expected]
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a.probs, b.probs)


def test_a_model_already_placed_stays_there_and_everything_follows_it(tmp_path: Path) -> None:
    """A model on another device than the CPU (``meta`` stands in for a GPU here) is not moved back by
    the pipeline, the push API or HARPredictor, and their engines send inputs to that device."""
    model = from_pretrained(small_model_dir(tmp_path / "m")).to("meta")
    pipeline = VideoPipeline(model, pose_backend="array")
    assert pipeline.device.type == "meta" and next(model.parameters()).device.type == "meta"
    assert pipeline.engine(FPS).device.type == "meta"
    assert StreamingPredictor(model, fps=FPS).engine.device.type == "meta"
    assert HARPredictor.from_model(model).device.type == "meta"
    assert WindowEngine(model, FPS).device.type == "meta"


def test_the_pipeline_decides_the_default_once_in_device_py(tmp_path: Path, monkeypatch) -> None:
    """Nothing asked: a CPU model goes to ``default_device()`` (CUDA when available), and the engine
    follows the model there; an explicit device still wins over the default."""
    import unihar.inference.device as device_module

    monkeypatch.setattr(device_module, "default_device", lambda index=None: torch.device("meta"))
    model = from_pretrained(small_model_dir(tmp_path / "m"))
    pipeline = VideoPipeline(model, pose_backend="array")
    assert next(model.parameters()).device.type == "meta" and pipeline.engine(FPS).device.type == "meta"
    explicit = from_pretrained(tmp_path / "m")
    assert VideoPipeline(explicit, pose_backend="array", device="cpu").engine(FPS).device.type == "cpu"
    assert next(explicit.parameters()).device.type == "cpu"


@pytest.mark.cuda
@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_predict_on_cuda_by_default_equals_cpu() -> None:
    """The real clip through the bundled model: without a device the pipeline runs on CUDA, and its
    windows match the CPU's."""
    on_gpu = VideoPipeline.from_pretrained()
    assert on_gpu.device.type == "cuda"
    gpu = on_gpu(CLEAN_AND_JERK, topk=3)
    cpu = VideoPipeline.from_pretrained(device="cpu")(CLEAN_AND_JERK, topk=3)
    assert [(w.start_frame, w.end_frame) for w in gpu.windows] == [(w.start_frame, w.end_frame) for w in cpu.windows]
    for a, b in zip(gpu.windows, cpu.windows):
        np.testing.assert_allclose(a.probs, b.probs, atol=2e-3)
    assert gpu.topk[0].id == cpu.topk[0].id
    stream = StreamingPredictor(from_pretrained(), fps=gpu.fps)
    assert stream.engine.device.type == "cuda"


# ------------------------------------------------------------------ bounded memory
class _Measured(WindowEngine):
    """The engine, recording the largest its frame buffer and caches ever were."""

    peaks: dict[str, int] = {}

    def push(self, frame, people, image=None):
        results = super().push(frame, people, image)
        sizes = {"images": len(self.images), "features": len(self.features.frames), "clips": len(self.features.clips)}
        for name, size in sizes.items():
            _Measured.peaks[name] = max(_Measured.peaks.get(name, 0), size)
        return results


def _bound(engine: WindowEngine) -> int:
    """What the engine may hold of frames: one window plus the gap a person may be unseen (the
    pipeline's), whatever the source's length."""
    return engine.geometry.window + max_gap_frames(FPS) + 1


def test_streaming_memory_is_bounded_however_long_the_stream(image_model) -> None:
    n = 120  # frames; the bound below is 31 at 10 fps
    kpts, frames = _walk(n), _frames(n)
    streaming = StreamingPredictor(image_model, fps=FPS)
    bound = _bound(streaming.engine)
    assert n > 3 * bound
    peaks = {"images": 0, "features": 0, "clips": 0}
    for i in range(n):
        streaming.push(None if 50 <= i < 55 else kpts[i], frames[i])  # a short occlusion, interpolated
        engine = streaming.engine
        for name, size in (
            ("images", len(engine.images)),
            ("features", len(engine.features.frames)),
            ("clips", len(engine.features.clips)),
        ):
            peaks[name] = max(peaks[name], size)
    assert peaks["images"] <= bound and peaks["features"] <= bound, peaks
    assert peaks["clips"] <= bound // engine.geometry.span + engine.preprocessing.clips, peaks
    assert len(engine.tracks[0].poses) <= engine.geometry.window


def test_offline_classify_with_images_keeps_memory_bounded(image_model, monkeypatch) -> None:
    n = 120
    kpts, frames = _walk(n), _frames(n)
    _Measured.peaks = {}
    monkeypatch.setattr(pipeline_module, "WindowEngine", _Measured)
    pipeline = VideoPipeline(image_model, pose_backend="array", device="cpu")
    poses = PoseSequence(kpts, LAYOUTS["coco17"], (32, 24))
    result = pipeline.classify(poses, FPS, topk=2, frames=iter(frames))
    bound = image_model.preprocessing.window_seconds * FPS + max_gap_frames(FPS) + 1
    assert n > 3 * bound
    assert _Measured.peaks["images"] <= bound and _Measured.peaks["features"] <= bound, _Measured.peaks
    assert result.windows[-1].end_frame == n and len(result.windows) == 11  # every stride, then the end


def test_a_gap_longer_than_max_gap_starts_a_new_stretch_with_frames(image_model, pose_model) -> None:
    """Imported poses with the person missing for 4 s (max_gap: 1 s) and a model that reads frames: no
    window is drawn across the gap (its frames are not kept), the stretch before is classified up to
    its last detection, and the one after starts afresh at its first detection. A pose-only model
    needs no frames and still interpolates across."""
    n = 120
    kpts, frames = _walk(n), _frames(n)
    detected = np.ones(n, bool)
    detected[45:85] = False
    poses = PoseSequence(
        fill_missing(kpts * detected[:, None, None], detected),
        LAYOUTS["coco17"],
        (32, 24),
        int((~detected).sum()),
        detected,
    )
    result = VideoPipeline(image_model, pose_backend="array", device="cpu").classify(
        poses, FPS, topk=2, frames=iter(frames)
    )
    spans = [(w.start_frame, w.end_frame) for w in result.windows]
    assert all(end <= 45 or start >= 85 for start, end in spans), spans
    assert (25, 45) in spans and spans[-1] == (100, 120) and min(s for s, _ in spans if s >= 85) == 85
    person = result.people[0]
    assert (person.start_frame, person.end_frame) == (0, n - 1) and result.missing_frames == 40
    pose_only = VideoPipeline(pose_model, pose_backend="array", device="cpu").classify(poses, FPS, topk=2)
    assert (40, 60) in [(w.start_frame, w.end_frame) for w in pose_only.windows]

    # The same stream pushed live: the person returns with warm-up windows, and nothing is kept for the gap.
    streaming = StreamingPredictor(image_model, fps=FPS)
    out = [streaming.push(kpts[i] if detected[i] else None, frames[i]) for i in range(n)]
    after = [p for p in out if p is not None and p.start_frame >= 85]
    assert after[0].start_frame == 85 and after[0].clips == 1
    assert all(p.frame < 45 or p.start_frame >= 85 for p in out if p is not None)


# ------------------------------------------------------------------ gaps: no phantom joints
def test_fill_missing_interpolates_a_joint_only_between_its_own_detections() -> None:
    kpts = np.zeros((7, 3, 3), np.float32)
    kpts[1] = [[10, 20, 1.0], [40, 40, 0.8], [0, 0, 0.0]]  # joint 2 missing at the start of the gap
    kpts[5] = [[50, 60, 0.6], [0, 0, 0.0], [80, 90, 0.9]]  # joint 1 missing at its end
    detected = np.array([False, True, False, False, False, True, False])
    out = fill_missing(kpts, detected)
    np.testing.assert_allclose(out[3, 0], [30, 40, 0.8])  # seen at both ends: halfway
    np.testing.assert_array_equal(out[2:5, 1:], 0.0)  # missing at one end: missing throughout, not drawn to (0, 0)
    np.testing.assert_array_equal(out[0], kpts[1])
    np.testing.assert_array_equal(out[6], kpts[5])


def test_the_engine_never_sees_a_joint_sliding_to_the_origin(pose_model) -> None:
    """A joint missing when the person reappears stays missing in the gap, and the window equals the
    model on the poses filled that way."""
    kpts = _walk(40)
    kpts[11, 9] = [0.0, 0.0, 0.0]  # the left wrist is not found when the person comes back
    engine = WindowEngine(pose_model, FPS, batch_windows=1, min_seconds=0.0)
    got = []
    for i in range(20):
        got += engine.push(i, {} if 8 <= i < 11 else {0: kpts[i]})
    track = engine.tracks[0]
    gap = np.stack([track.pose_at(i) for i in range(8, 11)])
    np.testing.assert_array_equal(gap[:, 9], 0.0)
    np.testing.assert_allclose(gap[1, 3], (kpts[7, 3] + kpts[11, 3]) / 2, rtol=1e-6)  # seen at both ends
    filled = kpts[:20].copy()
    filled[8:11] = 0.0
    detected = np.ones(20, bool)
    detected[8:11] = False
    filled = fill_missing(filled, detected)
    window = next(w for w in got if w.end_frame == 20)
    with torch.no_grad():
        expected = pose_model.probabilities(
            pose_model(torch.from_numpy(pose_window(filled, pose_model.preprocessing))[None])
        )[0].numpy()
    np.testing.assert_allclose(window.probs, expected, atol=1e-5)


# ------------------------------------------------------------------ one main-person rule
class _BigAndSmall:
    """A pose 'estimator' reading the frame number painted in each frame: a small figure in every one
    of 80 frames (the longest track), and a big person in frames 20-59 (the largest size x duration)."""

    name = "scripted"
    needs_video = True
    layout = LAYOUTS["coco17"]

    def __init__(self) -> None:
        self.shape = np.random.default_rng(3).uniform(-1, 1, size=(17, 2))

    def person(self, x: float, size: float, frame: int) -> np.ndarray:
        xy = self.shape * size + [x + 0.3 * frame, 200]
        return np.concatenate([xy, np.full((17, 1), 0.9)], axis=1).astype(np.float32)

    def people(self, frame: int) -> np.ndarray:
        found = [self.person(60, 12, frame)]
        if 20 <= frame < 60:
            found.append(self.person(350, 120, frame))
        return np.stack(found)

    def frame_estimator(self):
        @contextlib.contextmanager
        def opened():
            yield lambda frame: self.people(int(frame[0, 0, 0]))

        return opened()


def test_prediction_and_pose_extraction_pick_the_same_main_person(pose_model) -> None:
    script = _BigAndSmall()
    frames = [np.full((8, 8, 3), i, np.uint8) for i in range(80)]
    result = VideoPipeline(pose_model, pose_backend=script, device="cpu").predict_frames(
        frames, VideoInfo("scripted.mp4", 640, 400, FPS, 80), topk=2
    )
    assert len(result.people) == 2 and all(p.topk is not None for p in result.people)
    longest = max(result.people, key=lambda p: p.num_frames)
    assert result.main is not longest  # the small figure is there longest; the big person is the main one
    keypoints, detected = select_main_actor([script.people(i) for i in range(80)], metric="oks")
    main = result.main
    assert detected[main.start_frame : main.end_frame + 1].all() and detected.sum() == 40
    np.testing.assert_array_equal(keypoints[main.start_frame : main.end_frame + 1], main.keypoints)
