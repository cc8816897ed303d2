"""Skeleton augmentation: off is the identity, flip mirrors x and swaps left/right, dropout hides joints."""

import numpy as np
import pytest

from unihar.data.layouts import get_layout
from unihar.errors import ConfigError
from unihar.training.augment import AugmentConfig, SkeletonAugment

PENN = get_layout("penn13")


def window(seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.3, size=(2, 6, 13, 3)).astype(np.float32)
    w[..., 2] = 1.0
    return w


def test_off_is_identity():
    w = window()
    out = SkeletonAugment(PENN, AugmentConfig.off())(w, np.random.default_rng(0))
    np.testing.assert_array_equal(out, w)
    assert out is not w


def test_flip_mirrors_x_and_swaps_pairs():
    cfg = AugmentConfig.off()
    cfg.flip_prob = 1.0
    w = window()
    out = SkeletonAugment(PENN, cfg)(w, np.random.default_rng(0))
    ls, rs = PENN.index("left_shoulder"), PENN.index("right_shoulder")
    np.testing.assert_allclose(out[..., ls, 0], -w[..., rs, 0])
    np.testing.assert_allclose(out[..., ls, 1], w[..., rs, 1])
    np.testing.assert_allclose(out[..., 0, 0], -w[..., 0, 0])  # head has no partner


def test_rotation_scale_keep_distances_ratio_and_dropout_hides_joints():
    cfg = AugmentConfig.off()
    cfg.rotation_deg, cfg.scale = 30.0, (2.0, 2.0)
    w = window(1)
    out = SkeletonAugment(PENN, cfg)(w, np.random.default_rng(5))
    d_in = np.linalg.norm(w[0, 0, 1, :2] - w[0, 0, 2, :2])
    d_out = np.linalg.norm(out[0, 0, 1, :2] - out[0, 0, 2, :2])
    assert d_out == pytest.approx(2 * d_in, rel=1e-4)
    cfg = AugmentConfig.off()
    cfg.joint_dropout = 0.5
    out = SkeletonAugment(PENN, cfg)(w, np.random.default_rng(0))
    hidden = out[..., 2] == 0
    assert 0.3 < hidden.mean() < 0.7
    assert np.all(out[hidden][:, :2] == 0)


def test_full_augment_is_deterministic_per_generator_and_config_checks():
    aug = SkeletonAugment(PENN)
    a = aug(window(), np.random.default_rng(7))
    b = aug(window(), np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(a).all() and (a[..., 2] <= 1).all()
    assert AugmentConfig.from_dict(AugmentConfig().to_dict()) == AugmentConfig()
    with pytest.raises(ConfigError, match="unknown keys"):
        AugmentConfig.from_dict({"mixup": 0.2})


def test_swap_sides_renames_pairs_without_mirroring():
    cfg = AugmentConfig.off()
    cfg.swap_sides_prob = 1.0
    w = window(2)
    out = SkeletonAugment(PENN, cfg)(w, np.random.default_rng(0))
    lw, rw = PENN.index("left_wrist"), PENN.index("right_wrist")
    np.testing.assert_array_equal(out[..., lw, :], w[..., rw, :])
    np.testing.assert_array_equal(out[..., rw, :], w[..., lw, :])
    np.testing.assert_array_equal(out[..., 0, :], w[..., 0, :])


def test_confidence_stays_zero_or_one_for_models_that_read_it_so():
    """A model with ``binarize_confidence`` sees exactly 0 / 1 at inference: no jitter in training either."""
    w = window(3)
    jittered = SkeletonAugment(PENN, AugmentConfig())(w, np.random.default_rng(0))
    assert ((jittered[..., 2] > 0) & (jittered[..., 2] < 1)).any()
    binary = SkeletonAugment(PENN, AugmentConfig(), binary_confidence=True)(w, np.random.default_rng(0))
    assert set(np.unique(binary[..., 2]).tolist()) <= {0.0, 1.0} and (binary[..., 2] == 0).any()


def test_camera_ranges_come_from_the_augment_config():
    cfg = AugmentConfig.from_dict({"camera_yaw": [-30, 30], "camera_distance": [3, 4]})
    ranges = cfg.camera_ranges()
    assert ranges.yaw == (-30, 30) and ranges.distance == (3, 4) and ranges.pitch == AugmentConfig().camera_pitch
    with pytest.raises(Exception, match="camera_yaw|yaw"):
        AugmentConfig.from_dict({"camera_yaw": [30, -30]})
