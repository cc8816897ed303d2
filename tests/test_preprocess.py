"""The shared preprocessing path (contract 3): temporal sampling, windows, normalisation, images."""

import numpy as np
import pytest
import torch

from conftest import small_config
from unihar.config import ModelConfig
from unihar.data.preprocess import (
    PreprocessConfig,
    frame_indices,
    image_window,
    normalize_pose,
    pose_window,
    read_confidence,
    window_ranges,
)
from unihar.errors import ConfigError, InputError


def test_frame_indices_uniform_and_symmetric():
    np.testing.assert_array_equal(frame_indices(10, 5), [1, 3, 5, 7, 9])
    np.testing.assert_array_equal(frame_indices(3, 6), [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(frame_indices(7, 7), np.arange(7))
    idx = frame_indices(1000, 30)
    assert idx.min() >= 0 and idx.max() <= 999 and np.all(np.diff(idx) > 0)
    with pytest.raises(InputError, match="at least 1 frame"):
        frame_indices(0, 4)


def test_window_ranges_cover_video_and_keep_tail():
    preprocessing = PreprocessConfig(window_seconds=2.0, stride_seconds=1.0)
    ranges = window_ranges(95, 10.0, preprocessing)
    assert ranges[0] == (0, 20)
    assert all(e - s == 20 for s, e in ranges)
    assert ranges[-1] == (75, 95)  # aligned to the end: the tail is never dropped
    assert [s for s, _ in ranges[:-1]] == list(range(0, 71, 10))
    assert window_ranges(15, 10.0, preprocessing) == [(0, 15)]  # shorter than a window: one window over all of it
    with pytest.raises(InputError, match="fps"):
        window_ranges(10, 0.0, preprocessing)


def test_normalize_pose_removes_position_and_scale():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, size=(2, 8, 13, 3)).astype(np.float32)
    base[..., 2] = 1.0
    moved = base.copy()
    moved[..., :2] = base[..., :2] * 3.5 + np.array([100.0, -40.0], dtype=np.float32)
    a, b = normalize_pose(base, "center_scale"), normalize_pose(moved, "center_scale")
    np.testing.assert_allclose(a, b, atol=1e-5)
    # body size is ~1 and centred on 0
    assert abs(np.median(np.ptp(a[0, :, :, :2], axis=1).max(axis=-1)) - 1.0) < 1e-5
    np.testing.assert_array_equal(normalize_pose(moved, "none"), moved)


def test_normalize_pose_missing_joints_and_empty_clip():
    kpts = np.zeros((2, 5, 4, 3), dtype=np.float32)
    kpts[0, :, :, :2] = [[0, 0], [10, 0], [0, 20], [10, 20]]
    kpts[0, :, :3, 2] = 0.9  # joint 3 missing
    kpts[0, :, 3, :2] = 999.0
    out = normalize_pose(kpts, "center_scale")
    assert np.all(out[0, :, 3, :2] == 0)  # missing joint -> 0, and it did not stretch the box
    np.testing.assert_allclose(out[0, 0, 1, :2], [0.25, -0.5])  # box (0..10, 0..20): centre (5, 10), size 20
    np.testing.assert_allclose(out[0, :, :3, 2], 0.9)
    np.testing.assert_array_equal(out[1], 0)  # nobody in view: zeros, no NaN
    assert np.isfinite(out).all()


def test_pose_window_shape_and_checks():
    preprocessing = PreprocessConfig(layout="penn13", clips=2, clip_len=5)
    kpts = np.random.default_rng(1).uniform(0, 300, size=(37, 13, 3)).astype(np.float32)
    w = pose_window(kpts, preprocessing)
    assert w.shape == (2, 5, 13, 3) and w.dtype == np.float32
    with pytest.raises(InputError, match="13 joints"):
        pose_window(kpts[:, :12], preprocessing)
    with pytest.raises(InputError, match=r"got \(13, 3\)"):
        pose_window(kpts[0], preprocessing)


def test_config_roundtrip_and_defaults_from_model_config():
    preprocessing = PreprocessConfig(layout="penn13", clips=1, clip_len=20, window_seconds=3.0, min_confidence=0.3)
    assert PreprocessConfig.from_dict(preprocessing.to_dict()) == preprocessing
    assert (
        PreprocessConfig.from_model_config(
            {**small_config(pose_model={"max_seq_len": 20}), "preprocessing": preprocessing.to_dict()}
        )
        == preprocessing
    )
    # The published config has no preprocessing section: it is derived from pose_model.
    published = small_config(pose_model={"joints": 25, "max_seq_len": 16})
    derived = PreprocessConfig.from_model_config(published)
    assert derived.layout == "body25" and derived.clip_len == 16
    assert ModelConfig.from_dict(published).to_dict()["preprocessing"] == derived.to_dict()
    with pytest.raises(ConfigError, match="normalization"):
        PreprocessConfig(normalization="zscore")
    with pytest.raises(ConfigError, match="unknown keys"):
        PreprocessConfig.from_dict({"clip": 3})
    with pytest.raises(ConfigError, match="matches no known layout"):
        PreprocessConfig.from_model_config(small_config(pose_model={"joints": 7}))
    with pytest.raises(ConfigError, match="clip_len .20. exceeds pose_model.max_seq_len .12."):
        ModelConfig.from_dict({**small_config(), "preprocessing": {"clip_len": 20}})


def test_confidence_rule():
    kpts = np.array([[[1.0, 2.0, 0.0], [3.0, 4.0, 0.2], [5.0, 6.0, 0.5], [7.0, 8.0, 0.9]]], np.float32)
    raw = read_confidence(kpts, PreprocessConfig())
    assert raw[0, :, 2].tolist() == pytest.approx([0.0, 0.2, 0.5, 0.9])
    thresholded = read_confidence(kpts, PreprocessConfig(min_confidence=0.3))
    assert thresholded[0, :, 2].tolist() == pytest.approx([0.0, 0.0, 0.5, 0.9])
    binary = read_confidence(kpts, PreprocessConfig(min_confidence=0.3, binarize_confidence=True))
    assert binary[0, :, 2].tolist() == [0.0, 0.0, 1.0, 1.0]
    # A joint below the threshold is missing for the normalisation too: x = y = 0 after it.
    window = pose_window(
        np.repeat(kpts[:, [0, 1, 2, 3] * 4][:, :13], 5, axis=0),
        PreprocessConfig(layout="penn13", clips=1, clip_len=5, min_confidence=0.3),
    )
    assert np.all(window[..., 1, :2] == 0) and np.any(window[..., 2, :2] != 0)


def test_image_window_resize_crop_and_normalise():
    preprocessing = PreprocessConfig(clips=2, clip_len=3, image_size=32)
    frames = np.full((10, 48, 64, 3), 255, dtype=np.uint8)
    frames[:, :, :8] = 0  # a black band on the left: removed by the centre crop
    x = image_window(frames, preprocessing)
    assert isinstance(x, torch.Tensor) and x.shape == (2, 3, 3, 32, 32) and x.dtype == torch.float32
    white = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(x[0, 0, :, 16, 16], white)
    with pytest.raises(InputError, match="uint8"):
        image_window(frames.astype(np.float32), preprocessing)
    with pytest.raises(InputError, match="height, width, 3"):
        image_window(frames[..., 0], preprocessing)
