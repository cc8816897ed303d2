"""The windowing engine and the threaded runner: windows equal the model on those frames, each clip is
encoded once, the timeline is the source's, files drop nothing, live sources drop without queueing."""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import pytest
import torch

from conftest import randomize_, small_config
from unihar import build_model
from unihar.data.preprocess import PreprocessConfig, WindowGeometry, image_window, pose_window, window_ranges
from unihar.errors import InputError
from unihar.inference.engine import WindowEngine, run_sequences
from unihar.inference.streaming import StreamingPredictor, run_source

FPS = 10.0  # window 2.4 s = 24 frames = 3 clips of span 8, each resampled to T = 6; stride 0.8 s = 8 frames


def _model(image: bool, mode: str = "concat", **preprocessing):
    cfg = small_config(image_model={"enabled": image}, fusion_model={"mode": mode})
    cfg["preprocessing"] = {
        "layout": "coco17",
        "clips": 3,
        "clip_len": 6,
        "window_seconds": 2.4,
        "stride_seconds": 0.8,
        "image_size": 32,
        **preprocessing,
    }
    return randomize_(build_model(cfg, labels=[f"a{i}" for i in range(7)])).eval()


def _stream(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.uniform(50, 200, size=(1, 17, 2))
    xy = base + np.cumsum(rng.normal(0, 3, size=(n, 17, 2)), axis=0)
    conf = rng.uniform(0.2, 1.0, size=(n, 17, 1))
    frames = rng.integers(0, 256, size=(n, 40, 52, 3), dtype=np.uint8)
    return np.concatenate([xy, conf], -1).astype(np.float32), frames


def _direct_probs(model, kpts: np.ndarray, frames: np.ndarray | None) -> np.ndarray:
    """The model called on one whole window, without the engine."""
    pose = torch.from_numpy(pose_window(kpts, model.preprocessing))[None]
    images = image_window(frames, model.preprocessing)[None] if frames is not None else None
    with torch.no_grad():
        return model.probabilities(model(pose, images))[0].numpy()


@pytest.mark.parametrize(
    "image,mode,stride", [(False, "concat", None), (True, "concat", None), (True, "xattn", 4), (False, "concat", 3)]
)
def test_windows_equal_the_model_on_those_frames(image: bool, mode: str, stride: int | None) -> None:
    model = _model(image, mode)
    kpts, frames = _stream(60)
    streaming = StreamingPredictor(model, fps=FPS, stride=stride, topk=3)
    assert (streaming.geometry.span, streaming.geometry.window) == (8, 24)
    step = stride or 8
    compared = 0
    for i in range(60):
        out = streaming.push(kpts[i], frames[i] if image else None)
        n = i + 1
        due = (n >= 24 and (n - 24) % step == 0) or (n < 24 and n % 8 == 0)  # full windows, or warm-up clips
        assert (out is not None) == due, i
        if out is None:
            continue
        assert out.frame == i and out.t == pytest.approx(i / FPS) and out.start_frame == max(0, n - 24)
        if n >= 24:
            expected = _direct_probs(model, kpts[n - 24 : n], frames[n - 24 : n] if image else None)
            np.testing.assert_allclose(out.probs, expected, atol=1e-5)
            assert out.clips == 3 and [s.id for s in out.topk] == list(np.argsort(-expected, kind="stable")[:3])
            compared += 1
        else:
            assert out.clips == n // 8
    assert compared >= 4


def test_each_clip_and_frame_is_encoded_once() -> None:
    model = _model(True)
    kpts, frames = _stream(80)
    streaming = StreamingPredictor(model, fps=FPS)
    emitted = sum(streaming.push(kpts[i], frames[i]) is not None for i in range(80))
    assert emitted == 10  # one per clip of 8 frames (2 warm-up windows, then full ones)
    assert streaming.engine.clips_encoded == 10  # recomputing every window would encode 3 clips each
    assert streaming.engine.frames_encoded == 10 * 6  # T = 6 sampled frames per clip, never twice


def test_cost_controls_change_the_work_not_the_interface() -> None:
    model = _model(True)
    kpts, frames = _stream(24)
    exact = StreamingPredictor(model, fps=FPS)
    cheap = StreamingPredictor(model, fps=FPS, image_stride=2, image_size=24)
    for i in range(24):
        a, b = exact.push(kpts[i], frames[i]), cheap.push(kpts[i], frames[i])
    assert cheap.engine.frames_encoded == exact.engine.frames_encoded // 2
    assert a.probs.shape == b.probs.shape and abs(b.probs.sum() - 1) < 1e-5
    assert not np.allclose(a.probs, b.probs)  # an approximation, measured in benchmarks/streaming.py


def test_frames_without_a_person_are_interpolated_and_keep_their_numbers() -> None:
    model = _model(False)
    kpts, _ = _stream(40)
    gappy = StreamingPredictor(model, fps=FPS)
    full = StreamingPredictor(model, fps=FPS)
    filled = kpts.copy()
    for a, b in ((4, 7), (12, 14)):  # frames 5, 6 and 13 are missed: a straight line between the neighbours
        for k in range(a + 1, b):
            filled[k] = kpts[a] + (kpts[b] - kpts[a]) * (k - a) / (b - a)
    got, want = [], []
    for i in range(40):
        got.append(gappy.push(None if i in (5, 6, 13) else kpts[i]))
        want.append(full.push(filled[i]))
    got_by_frame = {p.frame: p for p in got if p is not None}
    want_by_frame = {p.frame: p for p in want if p is not None}
    assert sorted(got_by_frame) == sorted(want_by_frame)  # a window across a gap comes when the gap is closed
    for frame, prediction in want_by_frame.items():
        np.testing.assert_allclose(got_by_frame[frame].probs, prediction.probs, atol=1e-6)


def test_leading_empty_frames_stay_on_the_timeline() -> None:
    """Nobody in view for 10 frames: the person's windows are numbered from the source's frame 0."""
    model = _model(False)
    kpts, _ = _stream(40)
    late = StreamingPredictor(model, fps=FPS)
    outs = [late.push(None) for _ in range(10)] + [late.push(k) for k in kpts]
    first = next(p for p in outs if p is not None)
    assert first.frame == 10 + 8 - 1 and first.start_frame == 10  # one clip after the first detection
    reference = StreamingPredictor(model, fps=FPS)
    ref = [p for p in (reference.push(k) for k in kpts) if p is not None]
    late_outs = [p for p in outs if p is not None]
    assert [p.frame for p in late_outs] == [p.frame + 10 for p in ref]
    for a, b in zip(late_outs, ref):
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-6)


def test_stream_and_offline_windows_have_the_same_length_at_any_rate() -> None:
    """15 fps, 2 s windows of 4 clips: one geometry (4 clips of 8 frames = 32) for both."""
    preprocessing = PreprocessConfig(window_seconds=2.0, clips=4, clip_len=6, stride_seconds=1.0)
    geometry = WindowGeometry.at(preprocessing, 15.0)
    assert (geometry.span, geometry.window) == (8, 32)
    assert {e - s for s, e in window_ranges(100, 15.0, preprocessing)} == {32}


def test_offline_windows_of_a_sequence_match_window_ranges_including_the_tail() -> None:
    model = _model(False)
    kpts, _ = _stream(61)
    (windows,) = run_sequences(model, [kpts], FPS)
    assert [(w.start_frame, w.end_frame) for w in windows] == window_ranges(61, FPS, model.preprocessing)
    for window in windows:
        expected = _direct_probs(model, kpts[window.start_frame : window.end_frame], None)
        np.testing.assert_allclose(window.probs, expected, atol=1e-5)
    (short,) = run_sequences(model, [kpts[:9]], FPS)  # shorter than a window: one window over all of it
    assert [(w.start_frame, w.end_frame) for w in short] == [(0, 9)]
    (whole,) = run_sequences(model, [kpts], None)  # no frame rate: the whole sequence is one window
    assert [(w.start_frame, w.end_frame) for w in whole] == [(0, 61)]


def test_several_tracks_have_their_own_windows_and_short_ones_a_reason() -> None:
    model = _model(False)
    a, _ = _stream(40, seed=1)
    b, _ = _stream(40, seed=2)
    engine = WindowEngine(model, FPS, batch_windows=4, min_seconds=1.0)
    results = []
    for i in range(40):
        people = {7: a[i]}
        if 5 <= i < 35:
            people[3] = b[i]
        if i == 20:
            people[9] = b[i]  # seen once: too brief
        results += engine.push(i, people)
    results += engine.finish()
    by_track = {}
    for r in results:
        by_track.setdefault(r.track, []).append((r.start_frame, r.end_frame))
    assert by_track[7][0] == (0, 24) and by_track[7][-1] == (16, 40)
    assert by_track[3][0] == (5, 29) and by_track[3][-1] == (11, 35)  # numbered from its own first frame
    assert 9 not in by_track and "at least 10 frames" in engine.ended[9].reason
    for r in results:  # each track's windows are the model on that track's frames
        source = a if r.track == 7 else b
        np.testing.assert_allclose(r.probs, _direct_probs(model, source[r.start_frame : r.end_frame], None), atol=1e-5)


def test_bad_inputs() -> None:
    model = _model(True)
    streaming = StreamingPredictor(model, fps=FPS)
    with pytest.raises(InputError, match=r"expected shape \(17, 3\)"):
        streaming.push(np.zeros((13, 3)), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="needs one"):
        StreamingPredictor(model, fps=FPS).push(np.zeros((17, 3)), None)
    with pytest.raises(InputError, match="fps"):
        StreamingPredictor(model, fps=0)
    with pytest.raises(InputError, match="topk"):
        StreamingPredictor(model, fps=FPS, topk=99)
    engine = WindowEngine(_model(False), FPS)
    engine.push(3, {})
    with pytest.raises(InputError, match="in order"):
        engine.push(2, {})


# ---------------------------------------------------------------------- the threaded runner


class _FakePose:
    """A pose estimator over known keypoints; counts where it was opened and closed."""

    def __init__(self, lookup: dict[int, np.ndarray], gate: threading.Event | None = None, fail_at: int | None = None):
        self.lookup, self.gate, self.fail_at = lookup, gate, fail_at
        self.closed_in: str | None = None
        self.calls = 0

    @contextlib.contextmanager
    def open(self):
        try:
            yield self.estimate
        finally:
            self.closed_in = threading.current_thread().name

    def estimate(self, frame: np.ndarray) -> np.ndarray:
        if getattr(self, "started", None) is not None:
            self.started.set()
        if self.gate is not None:
            self.gate.wait(10)
        self.calls += 1
        if self.fail_at is not None and self.calls > self.fail_at:
            raise RuntimeError("pose estimator crashed")
        return self.lookup[id(frame)][None]


def _one_person(people: np.ndarray, frame: int | None = None):
    return ({0: people[0]} if len(people) else {}), []


def _frames_and_lookup(n: int):
    kpts, frames = _stream(n)
    frames = [frame.copy() for frame in frames]
    return kpts, frames, {id(frame): kpts[i] for i, frame in enumerate(frames)}


def test_a_file_is_read_with_back_pressure_and_gives_the_offline_windows() -> None:
    model = _model(False)
    kpts, frames, lookup = _frames_and_lookup(50)
    gate = threading.Event()
    pose = _FakePose(lookup, gate)
    windows = []
    timer = threading.Timer(0.3, gate.set)  # the pose stage stalls at first: a file must still lose nothing
    timer.start()
    summary = run_source(iter(frames), pose.open, _one_person, WindowEngine(model, FPS), windows.extend, live=False)
    assert summary.frames == 50 and summary.dropped == 0 and pose.calls == 50
    (offline,) = run_sequences(model, [kpts], FPS)
    assert [(w.start_frame, w.end_frame) for w in windows] == [(w.start_frame, w.end_frame) for w in offline]
    for got, want in zip(windows, offline):
        np.testing.assert_allclose(got.probs, want.probs, atol=1e-5)


def test_a_live_source_drops_the_oldest_frames_and_keeps_the_timeline() -> None:
    model = _model(False)
    kpts, frames, lookup = _frames_and_lookup(40)
    decoded, taken = threading.Event(), threading.Event()

    def source():
        yield frames[0]
        taken.wait(10)  # the pose stage holds frame 0 ...
        yield from frames[1:]
        decoded.set()  # ... and finishes it only once every other frame was delivered

    pose = _FakePose(lookup, decoded)
    pose.started = taken
    windows = []
    summary = run_source(
        source(),
        pose.open,
        _one_person,
        WindowEngine(model, FPS, warmup=True),
        windows.extend,
        live=True,
        max_pending=3,
    )
    # frame 0 was taken by the pose stage, frames 1..39 queued 3 deep: 36 dropped, the last 3 kept
    assert summary.frames == 40 and summary.dropped == 36 and pose.calls == 4
    assert [w.last_frame for w in windows] == [7, 15, 23, 31, 39]  # dropped frames keep their place


@pytest.mark.parametrize("where", ["consumer", "pose"])
def test_an_error_in_any_stage_stops_all_of_them_and_closes_the_estimator_in_its_thread(where: str) -> None:
    model = _model(False)
    kpts, frames, lookup = _frames_and_lookup(200)
    pose = _FakePose(lookup, fail_at=30 if where == "pose" else None)

    def on_windows(_):
        if where == "consumer":
            raise KeyError("consumer failed")

    with pytest.raises(KeyError if where == "consumer" else RuntimeError):
        run_source(iter(frames), pose.open, _one_person, WindowEngine(model, FPS, warmup=True), on_windows, live=False)
    assert pose.closed_in == "unihar-pose"  # closed by the thread that used it, before run_source returned
    assert not any(t.name.startswith("unihar-") and t.is_alive() for t in threading.enumerate())
