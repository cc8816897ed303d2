"""Evaluation: metrics checked by hand (top-k, ECE, negatives, closed set), labels matched through the
taxonomy, temperature fitting, 3D data seen frontally, and image models through the windowing engine."""

import numpy as np
import pytest
import torch

from unihar.config import default_config
from unihar.data.camera import KINECT_V1, project
from unihar.data.datasets import SkeletonDataset
from unihar.data.layouts import get_layout
from unihar.data.preprocess import image_window, pose_window, window_ranges
from unihar.data.video import read_frames
from unihar.errors import InputError
from unihar.models import build_model
from unihar.training.calibration import fit_temperature, sequence_nll
from unihar.training.evaluation import (
    EvalResult,
    align_labels,
    eval_view,
    evaluate,
    expected_calibration_error,
    window_logits,
)

PENN = get_layout("penn13")


def test_topk_mean_class_accuracy_and_ece_by_hand():
    probs = np.array(
        [
            [0.50, 0.20, 0.10, 0.08, 0.06, 0.04, 0.02],  # label 0: top-1 right (conf 0.5)
            [0.50, 0.20, 0.10, 0.08, 0.06, 0.04, 0.02],  # label 1: 2nd
            [0.02, 0.04, 0.06, 0.08, 0.10, 0.20, 0.50],  # label 0: last (7th) -> not in the top 5
            [0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.70],  # label 6: right (conf 0.7)
        ]
    )
    result = EvalResult(probs, np.array([0, 1, 0, 6]), [f"c{i}" for i in range(7)])
    assert result.topk(1) == 0.5 and result.topk(2) == 0.75 and result.topk(5) == 0.75 and result.topk(7) == 1.0
    assert result.metrics()["mean_class_acc"] == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    # bins of width 1/15: 0.5 lies in (7/15, 8/15]: 3 samples, accuracy 1/3, mean confidence 0.5; 0.7 in
    # (10/15, 11/15]: one sample, right.
    assert result.ece() == pytest.approx(3 / 4 * abs(1 / 3 - 0.5) + 1 / 4 * abs(1 - 0.7))
    assert expected_calibration_error(np.array([[1.0, 0.0]]), np.array([0])) == 0.0
    assert result.confusion.shape == (7, 7) and result.confusion[0, 6] == 1


def test_negative_labels_are_scored_apart():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.1, 0.9]])
    # classes: fall, sit; label 2 = not_fall (rules out fall)
    result = EvalResult(probs, np.array([0, 2, 2, 1]), ["fall", "sit", "not_fall"], excluded={2: [0]})
    metrics = result.metrics()
    assert metrics["n"] == 2 and metrics["top1"] == 1.0 and metrics["negatives"] == 2
    assert metrics["negative_false_alarm"] == 0.5
    assert result.per_class_accuracy.tolist() == [1.0, 1.0, 0.5]
    assert result.confusion.tolist() == [[1, 0], [0, 1], [1, 1]]


def nw_ucla_like(labels, classes, name="nw-ucla/test", frames=12) -> SkeletonDataset:
    rng = np.random.default_rng(0)
    seqs = [
        np.concatenate([rng.uniform(0, 100, (frames, 13, 2)), np.ones((frames, 13, 1))], -1).astype(np.float32)
        for _ in labels
    ]
    return SkeletonDataset(seqs, np.asarray(labels), list(classes), PENN, fps=15.0, name=name)


def test_labels_are_matched_through_the_taxonomy():
    data = nw_ucla_like([0, 1, 3], ["pick_up_with_one_hand", "pick_up_with_two_hands", "drop_trash", "walk_around"])
    relabelled, excluded = align_labels(data, ["walk", "pick_up", "sit_down"])
    assert relabelled.labels.tolist() == [1, 1, 0] and excluded == {}
    with pytest.raises(InputError, match=r"does not know the classes \['drop_trash'\]"):
        align_labels(nw_ucla_like([2], data.classes), ["walk", "pick_up"])
    fall = nw_ucla_like([0, 1], ["fall", "not_fall"], name="ur-fall/test")
    relabelled, excluded = align_labels(fall, ["walk", "fall"])
    assert relabelled.classes == ["walk", "fall", "not_fall"] and relabelled.labels.tolist() == [1, 2]
    assert excluded == {2: [1]}


def test_closed_set_predicts_only_the_datasets_classes():
    cfg = default_config(num_classes=3, joints=13, image=False)
    cfg["pose_model"].update(hidden_dim=16, heads=2, layers=1, max_seq_len=8)
    cfg["preprocessing"] = {"layout": "penn13", "clips": 1, "clip_len": 8, "window_seconds": 1.0}
    torch.manual_seed(0)
    model = build_model(cfg, labels=["walk", "pick_up", "sit_down"]).eval()
    with torch.no_grad():
        model.classifier_pose.bias.copy_(torch.tensor([0.0, 0.0, 5.0]))  # sit_down wins everywhere
    data = nw_ucla_like([3, 0], ["pick_up_with_one_hand", "pick_up_with_two_hands", "drop_trash", "walk_around"])
    open_set = evaluate(model, data)
    assert open_set.predictions.tolist() == [2, 2] and open_set.metrics()["top1"] == 0.0
    closed = evaluate(model, data, closed_set=True)
    assert closed.probs[:, 2].max() == 0.0 and np.allclose(closed.probs.sum(1), 1.0)
    assert set(closed.predictions.tolist()) <= {0, 1}


def test_fit_temperature_recovers_the_temperature_that_made_the_labels():
    rng = np.random.default_rng(0)
    logits = [rng.normal(0, 3, size=(int(rng.integers(1, 4)), 5)) for _ in range(3000)]
    labels = []
    for seq in logits:  # each window-averaged distribution at T = 2 draws the label
        p = np.exp(seq / 2.0) / np.exp(seq / 2.0).sum(1, keepdims=True)
        labels.append(rng.choice(5, p=p.mean(0)))
    t = fit_temperature(logits, np.asarray(labels))
    assert t == pytest.approx(2.0, rel=0.1)
    assert sequence_nll(logits, np.asarray(labels), t) <= sequence_nll(logits, np.asarray(labels), 1.0)
    assert fit_temperature(logits[:5], np.asarray(labels[:5])) == 1.0  # too few sequences to say


def test_3d_data_is_evaluated_through_the_recording_camera():
    seq = np.zeros((5, 13, 4), np.float32)
    seq[..., 0] = np.linspace(-0.3, 0.3, 13)
    seq[..., 1] = np.linspace(-0.8, 0.9, 13)
    seq[..., 2] = 3.0
    seq[..., 3] = 1.0
    data = SkeletonDataset([seq], np.array([0]), ["x"], PENN, fps=15.0, name="nw-ucla/test", dims=3)
    view = eval_view(data, "penn13")
    assert view.dims == 2
    np.testing.assert_allclose(view.sequences[0], project(seq, KINECT_V1), atol=1e-5)


def test_image_models_are_evaluated_through_the_engine_like_a_direct_forward(tmp_path):
    from video_helpers import write_video

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(23, 48, 64, 3), dtype=np.uint8)
    video = write_video(tmp_path / "clip.mp4", frames, rate=10)
    decoded, _ = read_frames(video)  # what the codec gives back (lossy), not what was written
    cfg = default_config(num_classes=4, joints=13, image=True)
    cfg["pose_model"].update(hidden_dim=16, heads=2, layers=1, max_seq_len=4)
    cfg["long_term_model"].update(heads=2, layers=1)
    cfg["image_model"].update(feature_dim=8)
    cfg["fusion_model"].update(output_dim=8)
    cfg["preprocessing"] = {
        "layout": "penn13",
        "clips": 2,
        "clip_len": 4,
        "window_seconds": 1.2,
        "stride_seconds": 0.5,
        "image_size": 32,
    }
    torch.manual_seed(0)
    model = build_model(cfg, labels=list("abcd")).eval()
    poses = np.concatenate([rng.uniform(0, 60, (23, 13, 2)), np.ones((23, 13, 1))], -1).astype(np.float32)
    data = SkeletonDataset(
        [poses], np.array([1]), list("abcd"), PENN, fps=10.0, name="video-folder/test", videos=[(str(video), 23)]
    )
    got = window_logits(model, data)[0]
    spans = window_ranges(23, 10.0, model.preprocessing)
    assert len(got) == len(spans) == 4
    images = decoded
    with torch.no_grad():
        expected = torch.cat(
            [
                model(
                    torch.from_numpy(pose_window(poses[s:e], model.preprocessing))[None],
                    images=image_window(images[s:e], model.preprocessing)[None],
                )
                for s, e in spans
            ]
        )
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-4)
    result = evaluate(model, data)
    assert result.probs.shape == (1, 4) and np.isclose(result.probs.sum(), 1.0)
