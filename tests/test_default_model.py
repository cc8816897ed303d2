"""The bundled default model: loads offline, is small, knows the everyday vocabulary, is calibrated, and
recognises real people in real video through the default pose backend."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from unihar.assets import default_model_dir

MODEL = default_model_dir()
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
VIDEOS = Path(__file__).resolve().parent / "data" / "videos"
PENN_CLASSES = [
    "baseball_pitch",
    "baseball_swing",
    "bench_press",
    "bowl",
    "clean_and_jerk",
    "golf_swing",
    "jump_rope",
    "jumping_jacks",
    "pullup",
    "pushup",
    "situp",
    "squat",
    "strum_guitar",
    "tennis_forehand",
    "tennis_serve",
]
# The names issue 9 asks for, spelled exactly.
EVERYDAY_CLASSES = [
    "walk",
    "run",
    "sit_down",
    "stand_up",
    "pick_up",
    "throw",
    "carry",
    "push",
    "pull",
    "wave",
    "clap",
    "catch",
    "kick",
    "punch",
    "bend",
    "fall",
    "phone_call",
    "hug",
    "shake_hands",
]


@pytest.fixture(scope="module")
def model():
    from unihar.loading import from_pretrained

    return from_pretrained(MODEL)


def test_bundled_model_is_small_pose_only_and_knows_the_everyday_vocabulary(model) -> None:
    assert (MODEL / "MODEL_CARD.md").is_file()
    size = (MODEL / "model.safetensors").stat().st_size
    assert 100_000 < size < 5_000_000
    missing = [name for name in EVERYDAY_CLASSES + PENN_CLASSES if name not in model.labels]
    assert missing == []
    assert len(set(model.labels)) == len(model.labels)
    assert all(name == name.lower() and " " not in name for name in model.labels)
    assert model.preprocessing.layout == "penn13" and model.preprocessing.normalization == "center_scale"
    assert list(model.modalities) == ["skeleton"]
    # calibrated at training time: the fitted temperature is stored in the config
    assert model.config.classifier.temperature != 1.0
    run = json.loads((MODEL / "training_args.json").read_text())
    assert run["command"].startswith("unihar train --config universal")


def test_labels_command_prints_the_bundled_vocabulary(model, capfd: pytest.CaptureFixture[str]) -> None:
    from video_helpers import run_cli

    code, out, err = run_cli(capfd, "labels", "--json")
    assert (code, err) == (0, "")
    assert json.loads(out) == list(model.labels)


# Issue 9's targets on standard test splits: (format, folder, test samples, top-1 at least, ECE at most).
# NW-UCLA's test is view 3, never seen in training, projected to 2D through its recording camera.
TEST_SPLIT_TARGETS = [
    ("penn-action", "penn-action-labels", 1068, 0.95, 0.05),
    ("nw-ucla", "nw-ucla", 464, 0.85, None),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "fmt, folder, n, min_top1, max_ece", TEST_SPLIT_TARGETS, ids=[t[0] for t in TEST_SPLIT_TARGETS]
)
def test_standard_test_split_top1_and_calibration(model, fmt, folder, n, min_top1, max_ece) -> None:
    from unihar.data.datasets import load_dataset
    from unihar.training.evaluation import evaluate

    if not (SHARED_DATA / folder).is_dir():
        pytest.skip(f"needs ../shared/data/{folder}")
    metrics = evaluate(model, load_dataset(f"{fmt}:{SHARED_DATA / folder}", "test"), batch_size=256).metrics()
    assert metrics["n"] == n
    assert metrics["top1"] >= min_top1
    if max_ece is not None:
        assert metrics["ece"] <= max_ece


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "ur-fall-movenet").is_dir(), reason="needs ../shared/data/ur-fall-movenet")
def test_ur_fall_test_split_falls_found_with_few_false_alarms(model) -> None:
    from unihar.data.datasets import load_dataset
    from unihar.training.evaluation import eval_view, window_logits

    data = eval_view(load_dataset(f"ur-fall:{SHARED_DATA / 'ur-fall-movenet'}", "test"), model.preprocessing.layout)
    fall = model.labels.index("fall")
    # an alarm: some window's calibrated p(fall) >= 0.5 (benchmarks/train_default_model.py)
    window_probs = [
        model.probabilities(torch.from_numpy(np.asarray(logits))).numpy() for logits in window_logits(model, data, 256)
    ]
    flagged = np.array([(probs[:, fall] >= 0.5).any() for probs in window_probs])
    is_fall = np.array([data.classes[i] == "fall" for i in data.labels])
    assert is_fall.sum() == 10 and (~is_fall).sum() == 13
    assert flagged[is_fall].mean() >= 0.9
    assert flagged[~is_fall].mean() <= 0.1


def _people(video: str, model) -> list:
    from unihar.inference.pipeline import VideoPipeline

    prediction = VideoPipeline(model)(str(VIDEOS / video), topk=3)
    assert np.isclose(prediction.probs.sum(), 1.0, atol=1e-5)
    return [p for p in prediction.people if p.topk is not None]


@pytest.mark.slow
def test_real_clips_through_the_default_pose_backend(model) -> None:
    lifter = _people("clean_and_jerk.mp4", model)
    assert max(lifter, key=lambda p: p.end_frame - p.start_frame).topk[0].label == "clean_and_jerk"

    (worker,) = _people("intel_worker_zone_walk.mp4", model)
    assert worker.topk[0].label == "walk"

    (faller,) = _people("gmdcsa24_s3_fall20_walk_then_fall_forward.mp4", model)
    assert "fall" in [w.topk[0].label for w in faller.windows]


@pytest.mark.slow
def test_two_real_people_each_get_their_own_action(model) -> None:
    people = _people("sports2d_demo_walk_jumping_jacks_2_people.mp4", model)
    assert len(people) >= 2
    assert len({p.id for p in people}) == len(people)
    walker = max(people, key=lambda p: p.topk[0].prob if p.topk[0].label == "walk" else 0.0)
    assert walker.topk[0].label == "walk"
    others = [p for p in people if p is not walker]
    assert any(p.topk[0].label != "walk" for p in others)
