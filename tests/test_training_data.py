"""Training samples: balanced sampling across datasets and classes, event-centred windows, random virtual
cameras for 3D skeletons, the calibration hold-out, the loss for negative labels and the LR schedule."""

import numpy as np
import pytest
import torch

from unihar.config import PreprocessConfig
from unihar.data.camera import KINECT_V1
from unihar.data.datasets import SkeletonDataset
from unihar.data.layouts import get_layout
from unihar.data.preprocess import window_ranges
from unihar.training.augment import AugmentConfig
from unihar.training.data import (
    BalancedSampler,
    SampleKey,
    WindowDataset,
    crop_for_training,
    hold_out,
    relabel,
    sampling_weights,
)
from unihar.training.trainer import _loss, _scheduler

PENN = get_layout("penn13")


def dataset_2d(labels, frames=40, fps=10.0, classes=("a", "b", "c"), name="toy/train", seed=0) -> SkeletonDataset:
    rng = np.random.default_rng(seed)
    sequences = []
    for _ in labels:
        xy = rng.uniform(0, 200, size=(frames, PENN.num_joints, 2))
        sequences.append(np.concatenate([xy, np.ones((frames, PENN.num_joints, 1))], axis=-1).astype(np.float32))
    return SkeletonDataset(sequences, np.asarray(labels), list(classes), PENN, fps=fps, name=name)


def standing_3d(frames: int = 30) -> np.ndarray:
    """A person facing the camera 3 m away (camera axes: x right, y down, z forward), ``(frames, 13, 4)``."""
    joints = {
        "head": (0, -0.75),
        "left_shoulder": (0.2, -0.5),
        "right_shoulder": (-0.2, -0.5),
        "left_elbow": (0.25, -0.2),
        "right_elbow": (-0.25, -0.2),
        "left_wrist": (0.25, 0.05),
        "right_wrist": (-0.25, 0.05),
        "left_hip": (0.12, 0.0),
        "right_hip": (-0.12, 0.0),
        "left_knee": (0.12, 0.45),
        "right_knee": (-0.12, 0.45),
        "left_ankle": (0.12, 0.9),
        "right_ankle": (-0.12, 0.9),
    }
    one = np.array([[*joints[j], 3.0, 1.0] for j in PENN.joints], dtype=np.float32)
    return np.repeat(one[None], frames, axis=0)


def test_sampling_weights_follow_the_documented_rule():
    big = dataset_2d([0] * 8 + [1] * 2)  # 10 sequences: classes a (8), b (2)
    small = dataset_2d([2])  # 1 sequence of class c
    weights = sampling_weights([big, small], dataset_balance=0.5, class_balance=0.5)
    p_big = np.sqrt(10) / (np.sqrt(10) + 1)
    p_a = np.sqrt(8) / (np.sqrt(8) + np.sqrt(2))  # = 2/3
    np.testing.assert_allclose(weights[0][:8], p_big * p_a / 8)
    np.testing.assert_allclose(weights[0][8:], p_big * (1 - p_a) / 2)
    np.testing.assert_allclose(weights[1], [1 - p_big])
    natural = np.concatenate(sampling_weights([big, small], 1.0, 1.0))
    np.testing.assert_allclose(natural, np.full(11, 1 / 11))
    uniform = sampling_weights([big, small], 0.0, 0.0)
    np.testing.assert_allclose([uniform[0][:8].sum(), uniform[0][8:].sum(), uniform[1].sum()], [0.25, 0.25, 0.5])
    # A weight scales a dataset's share before normalising: 3 x 1 against 1 x 10 ** 0 -> 3/4 of the draws.
    lifted = sampling_weights([big, small], 0.0, 0.5, dataset_weights=[1.0, 3.0])
    np.testing.assert_allclose([lifted[0].sum(), lifted[1].sum()], [0.25, 0.75])
    np.testing.assert_allclose(lifted[0] / lifted[0].sum(), weights[0] / weights[0].sum())  # classes unchanged within


def test_sampler_epochs_are_reproducible_and_differ():
    data = [dataset_2d([0] * 6 + [1] * 2), dataset_2d([2, 2])]
    sampler = BalancedSampler(data, epoch_size=50, seed=3)
    first = list(sampler)
    assert len(first) == 50 and all(isinstance(k, SampleKey) and k.epoch == 0 for k in first)
    assert first == list(BalancedSampler(data, epoch_size=50, seed=3))
    sampler.set_epoch(1)
    assert [k.index for k in sampler] != [k.index for k in first]
    with pytest.raises(ValueError, match="class_balance"):
        BalancedSampler(data, class_balance=1.5)
    with pytest.raises(ValueError, match=r"expected 2 numbers > 0 \(one per dataset\), got \[1.0, 0.0\]"):
        BalancedSampler(data, dataset_weights=[1.0, 0.0])
    weighted = BalancedSampler(data, epoch_size=4000, dataset_balance=0.0, seed=3, dataset_weights=[1.0, 4.0])
    assert abs(np.mean([k.source == 1 for k in weighted]) - 0.8) < 0.03


def test_crop_for_training_puts_an_event_in_the_middle_half():
    preprocessing = PreprocessConfig(layout="penn13", clips=1, clip_len=8, window_seconds=2.0)
    rng = np.random.default_rng(0)
    for _ in range(300):
        event = int(rng.integers(0, 120))
        start, end = crop_for_training(120, 30.0, preprocessing, rng, speed=(0.8, 1.2), min_crop=0.8, events=[event])
        span = end - start
        assert 0 <= start < end <= 120 and span <= 72
        inside = start + int(0.25 * span) - 1 <= event <= start + int(0.75 * span) + 1
        at_edge = start == 0 or end == 120  # an event near a sequence end cannot be centred
        assert inside or at_edge
        assert start <= event < end
    # no events: anywhere in the sequence; no frame rate: the whole sequence
    starts = {crop_for_training(120, 30.0, preprocessing, rng)[0] for _ in range(200)}
    assert min(starts) < 10 and max(starts) > 50
    assert crop_for_training(50, None, preprocessing, rng) == (0, 50)


def test_3d_sequences_are_seen_through_the_configured_virtual_camera():
    data = SkeletonDataset([standing_3d()], np.array([0]), ["stand"], PENN, fps=10.0, name="toy/train", dims=3)
    preprocessing = PreprocessConfig(layout="penn13", clips=1, clip_len=6, window_seconds=3.0, normalization="none")
    ls, rs = PENN.index("left_shoulder"), PENN.index("right_shoulder")

    def shoulder_width(yaw: float) -> float:
        cfg = AugmentConfig(
            camera_yaw=(yaw, yaw),
            camera_pitch=(0, 0),
            camera_roll=(0, 0),
            camera_distance=(3, 3),
            camera_focal=(KINECT_V1.focal, KINECT_V1.focal),
        )
        pose = WindowDataset(data, preprocessing, seed=1, camera_ranges=cfg.camera_ranges())[0][0].numpy()
        return float(abs(pose[0, 0, ls, 0] - pose[0, 0, rs, 0]))

    frontal = abs(np.diff(KINECT_V1.focal * standing_3d()[0, [ls, rs], 0] / 3.0))[0]
    assert shoulder_width(0.0) == pytest.approx(frontal, rel=1e-3)
    assert shoulder_width(90.0) < 0.02 * frontal  # in profile the shoulders overlap
    assert shoulder_width(60.0) == pytest.approx(frontal * np.cos(np.radians(60)), rel=0.05)
    # default ranges: every sample its own camera, the same one again for the same key
    ds = WindowDataset(data, preprocessing, seed=1)
    a, b = ds[SampleKey(0, 0, 0, 0)][0], ds[SampleKey(0, 1, 0, 0)][0]
    assert not torch.equal(a, b) and torch.equal(a, ds[SampleKey(0, 0, 0, 0)][0])


def test_window_dataset_is_reproducible_and_cuts_windows_like_inference():
    data = dataset_2d([0, 1, 2], frames=14, fps=10.0)
    preprocessing = PreprocessConfig(layout="penn13", clips=2, clip_len=4, window_seconds=1.0)
    ds = WindowDataset(data, preprocessing, speed=(0.7, 1.3), min_crop=0.8, seed=3)
    x0, y0 = ds[1]
    assert x0.shape == (2, 4, 13, 3) and y0 == 1
    assert torch.equal(WindowDataset(data, preprocessing, speed=(0.7, 1.3), min_crop=0.8, seed=3)[1][0], x0)
    ds.set_epoch(1)
    assert not torch.equal(ds[1][0], x0)
    assert window_ranges(14, 10.0, preprocessing) == [(0, 10), (4, 14)]  # the windows evaluation sees


def test_hold_out_is_stratified_deterministic_and_disjoint():
    data = dataset_2d([0] * 20 + [1] * 10 + [2] * 2)
    kept, held = hold_out(data, 0.1, seed=0)
    assert len(held) == 3 and sorted(held.labels.tolist()) == [0, 0, 1]  # 10 % of 20 and 10; none of 2
    assert len(kept) == 29 and not set(kept.names) & set(held.names)
    assert held.names == hold_out(data, 0.1, seed=0)[1].names != hold_out(data, 0.1, seed=1)[1].names
    assert hold_out(data, 0.0, seed=0) == (data, None)


def test_relabel_maps_merges_and_drops_classes():
    data = dataset_2d([0, 1, 2, 0], classes=("walk_slow", "walk_fast", "juggle"))
    out = relabel(data, {"walk_slow": "walk", "walk_fast": "walk"}, ["sit", "walk"])
    assert out.classes == ["sit", "walk"] and out.labels.tolist() == [1, 1, 1] and len(out.names) == 3
    with pytest.raises(ValueError, match="not in the vocabulary"):
        relabel(data, {"juggle": "juggling"}, ["walk"])


def test_negative_labels_push_down_the_classes_they_rule_out():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]], requires_grad=True)
    labels = torch.tensor([3, 1])  # 3 = the first negative label (K = 3), ruling out class 0
    ruled_out = [torch.tensor([0])]
    loss = _loss(logits, labels, ruled_out, smoothing=0.0)
    p0 = torch.softmax(logits[0], 0)[0]
    expected = (-torch.log(1 - p0) + torch.nn.functional.cross_entropy(logits[1:], labels[1:])) / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert logits.grad[0, 0] > 0 and logits.grad[0, 1] < 0  # descent lowers class 0, raises the others


def test_schedule_warms_up_linearly_then_decays_by_cosine():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=1.0)
    scheduler = _scheduler(optimizer, warmup=4, total=14, min_ratio=0.1)
    lrs = []
    for _ in range(14):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(lrs[:5], [0.2, 0.4, 0.6, 0.8, 1.0], atol=1e-6)
    assert all(a > b for a, b in zip(lrs[4:], lrs[5:]))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1, abs=1e-6)
    assert lrs[9] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 5 / 10)), abs=1e-6)


def test_only_the_dataset_with_a_body_worn_sensor_is_never_mirrored_in_a_mixture():
    """A mixture of a plain dataset and one with a wrist sensor (UTD-MHAD in the universal recipe): the
    sensor's side of the body is fixed there, so its windows are never mirrored; the other dataset's
    are (the left/right convention of Penn Action depends on it)."""
    from unihar.config import IMU_CHANNELS
    from unihar.data.signals import SignalRecording
    from unihar.training.augment import SkeletonAugment
    from unihar.training.modalities import augment_for

    plain = dataset_2d([0, 1], name="plain/train")
    worn = dataset_2d([0, 1], name="worn/train", seed=1)
    worn.signals = {"imu": [SignalRecording(np.zeros((200, 6), np.float32), 50.0, IMU_CHANNELS) for _ in range(2)]}
    always = AugmentConfig(
        flip_prob=1.0,
        swap_sides_prob=0.0,
        scale=(1, 1),
        aspect=0,
        rotation_deg=0,
        shift=0,
        joint_dropout=0,
        frame_dropout=0,
        noise_std=0,
        confidence_jitter=0,
    )
    assert augment_for(always, plain).flip_prob == 1.0
    assert augment_for(always, worn).flip_prob == 0.0 and augment_for(always, worn).swap_sides_prob == 0.0
    preprocessing = PreprocessConfig(layout="penn13", clips=1, clip_len=10, window_seconds=1.0, stride_seconds=1.0)
    augments = [SkeletonAugment(PENN, augment_for(always, d)) for d in (plain, worn)]
    mixed = WindowDataset([plain, worn], preprocessing, augments)
    unaugmented = WindowDataset([plain, worn], preprocessing, None)
    for index in range(len(mixed)):
        changed = not torch.equal(mixed[index][0], unaugmented[index][0])
        assert changed == (mixed.key(index).source == 0)
    with pytest.raises(ValueError, match="one per dataset"):
        WindowDataset([plain, worn], preprocessing, augments[:1])
