"""HARPredictor: the published inference API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import randomize_, small_config
from unihar import HARPredictor, build_model
from unihar.errors import CheckpointError, InputError


@pytest.fixture
def checkpoint(tmp_path: Path) -> tuple[Path, dict, torch.nn.Module]:
    cfg = small_config()
    model = randomize_(build_model(cfg)).eval()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    return tmp_path, cfg, model


def test_topk_returns_ids_then_probs(checkpoint) -> None:
    folder, cfg, model = checkpoint
    predictor = HARPredictor(folder / "pytorch_model.bin", cfg, device="cpu")
    pose, img = torch.randn(3, 2, 6, 17, 3), torch.randn(3, 2, 2, 3, 32, 32)
    ids, probs = predictor.topk(pose, img, k=4)
    assert ids.shape == probs.shape == (3, 4)
    assert ids.dtype == torch.int64 and probs.dtype == torch.float32
    full = torch.softmax(model(pose, img), -1)
    torch.testing.assert_close(probs, full.gather(1, ids))
    assert torch.all(probs[:, :-1] >= probs[:, 1:])
    assert torch.equal(ids[:, 0], full.argmax(-1))


def test_threshold_zeroes_small_probabilities(checkpoint) -> None:
    folder, cfg, model = checkpoint
    predictor = HARPredictor(folder / "pytorch_model.bin", folder / "config.json")
    pose = torch.randn(2, 1, 6, 17, 3)
    probs = predictor.predict_proba(pose)
    filtered = predictor.threshold(pose, None, thr=0.15)
    assert filtered.shape == (2, 7)
    assert torch.equal(filtered, torch.where(probs > 0.15, probs, torch.zeros_like(probs)))
    assert (filtered == 0).any() and (filtered > 0).any()


def test_pose_only_path_and_numpy_input(checkpoint) -> None:
    folder, cfg, model = checkpoint
    predictor = HARPredictor(folder / "pytorch_model.bin", cfg, device="cpu")
    pose = np.random.default_rng(0).normal(size=(1, 2, 6, 17, 3))
    expected = torch.softmax(model(torch.from_numpy(pose).float()), -1)
    torch.testing.assert_close(predictor.predict_proba(pose), expected)


def test_images_for_a_pose_only_model_warn_and_are_ignored(tmp_path: Path) -> None:
    cfg = small_config(image_model={"enabled": False})
    model = randomize_(build_model(cfg)).eval()
    torch.save(model.state_dict(), tmp_path / "w.bin")
    predictor = HARPredictor(tmp_path / "w.bin", cfg)
    pose = torch.randn(1, 2, 6, 17, 3)
    with pytest.warns(UserWarning, match="pose-only"):
        probs = predictor.predict_proba(pose, torch.randn(1, 2, 2, 3, 32, 32))
    torch.testing.assert_close(probs, predictor.predict_proba(pose))


def test_device_selection(checkpoint) -> None:
    folder, cfg, _ = checkpoint
    predictor = HARPredictor(folder / "pytorch_model.bin", cfg)
    assert predictor.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(InputError, match="device"):
        HARPredictor(folder / "pytorch_model.bin", cfg, device="tpu7")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            HARPredictor(folder / "pytorch_model.bin", cfg, device="cuda")


def test_bad_arguments(checkpoint) -> None:
    folder, cfg, _ = checkpoint
    predictor = HARPredictor(folder / "pytorch_model.bin", cfg)
    pose = torch.randn(1, 1, 6, 17, 3)
    with pytest.raises(ValueError, match=r"k: expected an integer in \[1, 7\], got 8"):
        predictor.topk(pose, k=8)
    with pytest.raises(ValueError, match="thr"):
        predictor.threshold(pose, thr=1.5)
    with pytest.raises(ValueError, match=r"J=17.*\(1, 1, 6, 13, 3\)"):
        predictor.topk(torch.randn(1, 1, 6, 13, 3))
    with pytest.raises(ValueError, match="floating-point array"):
        predictor.topk(np.zeros((1, 1, 6, 17, 3), dtype=np.int32))


def test_checkpoint_that_does_not_match_the_config(checkpoint) -> None:
    folder, cfg, _ = checkpoint
    cfg = json.loads(json.dumps(cfg))
    cfg["pose_model"]["joints"] = 25
    with pytest.raises(
        CheckpointError, match=r"short_seq_model.joint_type_emb.weight: checkpoint \(17, 32\) vs model \(25, 32\)"
    ):
        HARPredictor(folder / "pytorch_model.bin", cfg)
