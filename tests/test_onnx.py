"""ONNX export and the onnxruntime backend agree with PyTorch."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import randomize_, small_config
from unihar import build_model
from unihar.errors import InputError, UniHARError

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from unihar.inference.onnx_backend import OnnxModel, export_onnx  # noqa: E402


def _model(image: bool):
    cfg = small_config(image_model={"enabled": image})
    cfg["preprocessing"] = {"layout": "coco17", "clips": 2, "clip_len": 8, "image_size": 48}
    return randomize_(build_model(cfg, labels=[f"a{i}" for i in range(7)])).eval()


@pytest.mark.slow
@pytest.mark.parametrize("image", [False, True])
def test_onnxruntime_matches_pytorch_with_dynamic_batch_and_clips(tmp_path: Path, image: bool) -> None:
    model = _model(image)
    path = export_onnx(model, tmp_path / "m.onnx")
    runtime = OnnxModel(path)
    assert runtime.labels == model.labels and runtime.config == model.config
    assert runtime.has_image_branch == image
    for batch, clips in [(1, 1), (3, 2), (2, 5)]:
        pose = torch.randn(batch, clips, 8, 17, 3)
        images = torch.randn(batch, clips, 8, 3, 48, 48) if image else None
        with torch.no_grad():
            expected = model(pose, images).softmax(-1)
        got = runtime(pose, images).softmax(-1)
        assert (got - expected).abs().max() <= 1e-4
    with pytest.raises(InputError, match=r"J=17"):
        runtime(torch.randn(1, 2, 8, 13, 3), None)
    with pytest.raises(InputError, match=r"exactly T=8"):
        runtime(torch.randn(1, 2, 6, 17, 3), torch.randn(1, 2, 6, 3, 48, 48) if image else None)
    with pytest.raises(UniHARError, match="already exists"):
        export_onnx(model, path)


@pytest.mark.slow
def test_int8_quantized_export_stays_close(tmp_path: Path) -> None:
    model = _model(False)
    path = export_onnx(model, tmp_path / "q.onnx", quantize=True)
    float_path = export_onnx(model, tmp_path / "f.onnx")
    assert path.stat().st_size < float_path.stat().st_size
    pose = torch.randn(4, 2, 8, 17, 3)
    with torch.no_grad():
        expected = model(pose).softmax(-1)
    got = OnnxModel(path)(pose).softmax(-1)
    assert (got - expected).abs().max() < 0.05  # int8 weights: close, not exact


def test_missing_or_foreign_onnx_file(tmp_path: Path) -> None:
    from unihar.errors import CheckpointError

    with pytest.raises(CheckpointError, match="not found"):
        OnnxModel(tmp_path / "absent.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="cannot load ONNX model"):
        OnnxModel(tmp_path / "junk.onnx")
