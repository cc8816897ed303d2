"""StreamingPredictor: exact against offline windows, each clip computed once; run_live drops, never queues."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from conftest import randomize_, small_config
from unihar import build_model
from unihar.data.preprocess import PreprocessConfig, image_window, pose_window
from unihar.errors import InputError
from unihar.inference.streaming import StreamingPredictor, run_live

FPS = 10.0  # window 2.4 s = 24 frames = 3 clips of span 8, each resampled to T = 6


def _model(image: bool, mode: str = "concat"):
    cfg = small_config(image_model={"enabled": image}, fusion_model={"mode": mode})
    cfg["preprocessing"] = {"layout": "coco17", "clips": 3, "clip_len": 6, "window_seconds": 2.4, "stride_seconds": 0.8, "image_size": 32}
    return randomize_(build_model(cfg, labels=[f"a{i}" for i in range(7)])).eval()


def _stream(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.uniform(50, 200, size=(1, 17, 2))
    xy = base + np.cumsum(rng.normal(0, 3, size=(n, 17, 2)), axis=0)
    conf = rng.uniform(0.2, 1.0, size=(n, 17, 1))
    frames = rng.integers(0, 256, size=(n, 40, 52, 3), dtype=np.uint8)
    return np.concatenate([xy, conf], -1).astype(np.float32), frames


def _live_inputs(n: int) -> tuple[np.ndarray, list[np.ndarray], dict[int, np.ndarray]]:
    """Keypoints, frames as distinct objects, and a fake estimator's table (frame id -> keypoints)."""
    kpts, frames = _stream(n)
    frames = [frame.copy() for frame in frames]
    return kpts, frames, {id(frame): kpts[i] for i, frame in enumerate(frames)}


def _offline_probs(model, kpts: np.ndarray, frames: np.ndarray | None) -> np.ndarray:
    prep = PreprocessConfig.from_model_config(model.config)
    pose = torch.from_numpy(pose_window(kpts, prep))[None]
    images = image_window(frames, prep)[None] if frames is not None else None
    with torch.no_grad():
        return torch.softmax(model(pose, images), -1)[0].numpy()


@pytest.mark.parametrize("image,mode,stride", [(False, "concat", None), (True, "concat", None), (True, "xattn", 4), (False, "concat", 3)])
def test_exact_mode_equals_offline_prediction(image: bool, mode: str, stride: int | None) -> None:
    model = _model(image, mode)
    kpts, frames = _stream(60)
    streaming = StreamingPredictor(model, fps=FPS, stride=stride, topk=3)
    assert (streaming.span, streaming.window) == (8, 24)
    compared = 0
    for i in range(60):
        out = streaming.push(kpts[i], frames[i] if image else None)
        step = stride or 8
        due = i + 1 >= 8 and (i + 1 - 8) % step == 0
        assert (out is not None) == due, i
        if out is None:
            continue
        assert out.frame == i and out.t == pytest.approx(i / FPS)
        if i + 1 >= 24:  # a full window: identical to the offline computation on those frames
            expected = _offline_probs(model, kpts[i + 1 - 24 : i + 1], frames[i + 1 - 24 : i + 1] if image else None)
            np.testing.assert_allclose(out.probs, expected, atol=1e-5)
            assert out.clips == 3
            assert [k for k, _, _ in out.topk] == list(np.argsort(-expected)[:3])
            compared += 1
        else:
            assert out.clips == (i + 1) // 8
    assert compared >= 4


def test_each_clip_and_frame_is_computed_once() -> None:
    model = _model(True)
    kpts, frames = _stream(80)
    streaming = StreamingPredictor(model, fps=FPS)
    emitted = sum(streaming.push(kpts[i], frames[i]) is not None for i in range(80))
    assert emitted == 10  # one per clip of 8 frames
    assert streaming.clips_computed == 10  # naive recomputation would encode 3 clips per window
    assert streaming.frames_encoded == 10 * 6  # T = 6 sampled frames per clip, never twice


def test_cost_controls_change_the_work_not_the_interface() -> None:
    model = _model(True)
    kpts, frames = _stream(24)
    exact = StreamingPredictor(model, fps=FPS)
    cheap = StreamingPredictor(model, fps=FPS, image_stride=2, image_size=24)
    for i in range(24):
        a, b = exact.push(kpts[i], frames[i]), cheap.push(kpts[i], frames[i])
    assert cheap.frames_encoded == exact.frames_encoded // 2
    assert a.probs.shape == b.probs.shape and abs(b.probs.sum() - 1) < 1e-5
    assert not np.allclose(a.probs, b.probs)  # an approximation, measured in benchmarks/streaming.py


def test_missing_detections_carry_the_last_pose() -> None:
    model = _model(False)
    kpts, _ = _stream(24)
    gappy, full = StreamingPredictor(model, fps=FPS), StreamingPredictor(model, fps=FPS)
    assert gappy.push(None) is None  # before the first detection nothing is emitted
    filled = kpts.copy()
    for i in range(24):
        if i in (5, 6, 13):
            filled[i] = filled[i - 1]
            out_gappy = gappy.push(None)
        else:
            out_gappy = gappy.push(kpts[i])
        out_full = full.push(filled[i])
    np.testing.assert_allclose(out_gappy.probs, out_full.probs, atol=1e-6)
    assert gappy.missing == 4


def test_bad_stream_inputs() -> None:
    model = _model(True)
    streaming = StreamingPredictor(model, fps=FPS)
    with pytest.raises(InputError, match=r"expected shape \(17, 3\)"):
        streaming.push(np.zeros((13, 3)), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="needs one"):
        streaming.push(np.zeros((17, 3)), None)
    with pytest.raises(InputError, match="fps"):
        StreamingPredictor(model, fps=0)
    with pytest.raises(InputError, match="topk"):
        StreamingPredictor(model, fps=FPS, topk=99)


def test_run_live_drops_frames_when_the_pose_stage_is_slow() -> None:
    model = _model(False)
    kpts, frames, lookup = _live_inputs(40)

    def slow_pose(frame: np.ndarray) -> np.ndarray:
        time.sleep(0.02)  # slower than the 100 fps source below
        return lookup[id(frame)]

    predictions = []
    summary = run_live(iter(frames), StreamingPredictor(model, fps=FPS), slow_pose, "coco17", predictions.append, pace_fps=100.0)
    assert summary.frames == 40
    assert 0 < summary.dropped < 40
    # dropped frames keep their place on the timeline: one prediction per clip of 8 frames, all 40 frames
    assert [p.frame for p in predictions] == [7, 15, 23, 31, 39]


def test_run_live_keeps_up_with_a_fast_enough_pose_stage() -> None:
    model = _model(False)
    kpts, frames, lookup = _live_inputs(24)
    offline = StreamingPredictor(model, fps=FPS)
    expected = [p for p in (offline.push(k) for k in kpts) if p is not None]
    predictions = []
    summary = run_live(iter(frames), StreamingPredictor(model, fps=FPS), lambda f: lookup[id(f)], "coco17", predictions.append, pace_fps=20.0)
    assert summary.dropped == 0 and summary.frames == 24
    assert [p.frame for p in predictions] == [p.frame for p in expected]
    for got, want in zip(predictions, expected):
        np.testing.assert_allclose(got.probs, want.probs, atol=1e-6)


def test_run_live_multimodal_prefetches_images_in_its_own_thread() -> None:
    model = _model(True)
    kpts, frames, lookup = _live_inputs(24)
    reference = StreamingPredictor(model, fps=FPS)
    expected = [p for p in (reference.push(k, f) for k, f in zip(kpts, frames)) if p is not None]
    live = StreamingPredictor(model, fps=FPS)
    predictions = []
    summary = run_live(iter(frames), live, lambda f: lookup[id(f)], "coco17", predictions.append, pace_fps=20.0)
    assert summary.dropped == 0
    assert [p.frame for p in predictions] == [p.frame for p in expected]
    for got, want in zip(predictions, expected):
        np.testing.assert_allclose(got.probs, want.probs, atol=1e-5)
    assert live.frames_encoded >= 3 * 6  # every sampled frame encoded (prefetched or on demand)
    assert all(live.needs_image(i) == ((i % 8) in {int(o) for o in live.image_offsets}) for i in range(24))
