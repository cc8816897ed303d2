"""The bundled default model: loads offline, is small, and meets its targets on real data."""
import json
from pathlib import Path

import numpy as np
import pytest

from unihar.assets import default_model_dir

MODEL = default_model_dir()
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PENN = SHARED_DATA / "penn-action-labels"
CLIP = Path(__file__).resolve().parent / "data" / "videos" / "clean_and_jerk.mp4"
PENN_CLASSES = [
    "baseball_pitch", "baseball_swing", "bench_press", "bowl", "clean_and_jerk", "golf_swing", "jump_rope",
    "jumping_jacks", "pullup", "pushup", "situp", "squat", "strum_guitar", "tennis_forehand", "tennis_serve",
]


def test_bundled_model_loads_and_is_small():
    from unihar.data.preprocess import PreprocessConfig
    from unihar.loading import from_pretrained

    assert (MODEL / "MODEL_CARD.md").is_file()
    size = (MODEL / "model.safetensors").stat().st_size
    assert 100_000 < size < 5_000_000
    model = from_pretrained(MODEL)
    assert model.labels == PENN_CLASSES
    prep = PreprocessConfig.from_model_config(model.config)
    assert prep.layout == "penn13" and prep.normalization == "center_scale"
    assert not model.has_image_branch
    recipe = json.loads((MODEL / "training_args.json").read_text())
    assert recipe["command"].startswith("unihar train --data penn-action:")


@pytest.mark.slow
@pytest.mark.skipif(not PENN.is_dir(), reason="needs ../shared/data/penn-action-labels")
def test_bundled_model_penn_action_official_test_top1():
    from unihar.data.datasets import load_dataset
    from unihar.data.preprocess import PreprocessConfig
    from unihar.loading import from_pretrained
    from unihar.training.evaluation import evaluate

    model = from_pretrained(MODEL)
    result = evaluate(model, load_dataset(f"penn-action:{PENN}", "test"), PreprocessConfig.from_model_config(model.config),
                      batch_size=256)
    metrics = result.metrics()
    assert metrics["n"] == 1068
    assert metrics["top1"] >= 0.95


@pytest.mark.slow
def test_bundled_model_on_mediapipe_poses_of_real_video():
    pytest.importorskip("mediapipe")
    if not CLIP.is_file():
        pytest.skip("tests/data/videos/clean_and_jerk.mp4 is missing")
    from unihar.inference.pipeline import VideoPipeline

    prediction = VideoPipeline.from_pretrained(str(MODEL), pose_backend="mediapipe")(str(CLIP), topk=3)
    assert prediction.topk[0].label == "clean_and_jerk"
    assert np.isclose(prediction.probs.sum(), 1.0, atol=1e-5)
