"""ONNX export and the onnxruntime backend: the window graph third parties call, and the parts
(encoders, head) the windowing engine calls, agree with PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import randomize_, small_config
from unihar import build_model
from unihar.errors import CheckpointError, InputError, UniHARError
from unihar.inference.engine import WindowEngine
from unihar.models import HARModel, UniHARFeatures

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")

from unihar.inference.onnx_backend import OnnxModel, export_onnx  # noqa: E402

pytestmark = pytest.mark.slow  # each export traces the model with torch.export: tens of seconds on 2 cores


def _model(image: bool):
    cfg = small_config(image_model={"enabled": image})
    cfg["preprocessing"] = {"layout": "coco17", "clips": 2, "clip_len": 8, "image_size": 48, "window_seconds": 2.0}
    return randomize_(build_model(cfg, labels=[f"a{i}" for i in range(7)])).eval()


@pytest.fixture(scope="module", params=[False, True], ids=["pose-only", "multimodal"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    model = _model(request.param)
    return model, export_onnx(model, tmp_path_factory.mktemp("onnx") / "m.onnx")


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-4) -> None:
    torch.testing.assert_close(a, b, rtol=0, atol=atol)


def test_window_graph_with_dynamic_shapes_and_metadata(exported) -> None:
    model, path = exported
    runtime = OnnxModel(path)
    assert isinstance(runtime, HARModel)
    assert runtime.labels == model.labels and runtime.config == model.config
    assert runtime.has_image_branch == model.has_image_branch and runtime.modalities == model.modalities
    # Batch, clip count and clip length (up to max_seq_len = 12) are all free, down to 1.
    with torch.no_grad():
        for batch, clips, frames in [(1, 1, 1), (3, 2, 8), (2, 5, 12)]:
            pose = torch.randn(batch, clips, frames, 17, 3)
            images = torch.randn(batch, clips, 3, 3, 48, 40) if model.has_image_branch else None
            _close(runtime(pose, images).softmax(-1), model(pose, images).softmax(-1))
        pose = torch.randn(3, 2, 8, 17, 3)
        images = torch.randn(3, 2, 2, 3, 48, 48) if model.has_image_branch else None
        mask = torch.tensor([[True, False], [True, True], [False, True]])  # padded clips are left out
        _close(runtime(pose, images, mask), model(pose, images, mask))
        xy = pose[..., :2]  # a missing confidence is 0, as in PyTorch
        _close(runtime(xy, images), model(xy, images))
    with pytest.raises(InputError, match=r"J=17"):
        runtime(torch.randn(1, 2, 8, 13, 3), images[:1] if images is not None else None)
    with pytest.raises(InputError, match=r"T <= 12"):
        runtime(torch.randn(1, 2, 13, 17, 3), images[:1] if images is not None else None)
    with pytest.raises(UniHARError, match="already exists"):
        export_onnx(model, path)


def test_third_party_view_of_the_file(exported) -> None:
    """Plain onnxruntime, no unihar: the inputs to feed are the window's, and its metadata says the rest."""
    model, path = exported
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    window_inputs = ["pose", "images"] if model.has_image_branch else ["pose"]
    assert [i.name for i in session.get_inputs()] == window_inputs
    assert [o.name for o in session.get_outputs()][0] == "logits"
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["unihar.labels"]) == model.labels
    assert json.loads(meta["unihar.config"]) == model.config.to_dict()
    pose = torch.randn(2, 3, 8, 17, 3)
    feed = {"pose": pose.numpy()}
    images = None
    if model.has_image_branch:
        images = torch.randn(2, 3, 4, 3, 48, 48)
        feed["images"] = images.numpy()
    (logits,) = session.run(["logits"], feed)
    with torch.no_grad():
        _close(torch.from_numpy(logits), model(pose, images))


def test_parts_match_the_pytorch_encoders_and_head(exported) -> None:
    model, path = exported
    runtime = OnnxModel(path)
    with torch.no_grad():
        for clips in (torch.randn(6, 8, 17, 3), torch.randn(1, 1, 17, 3), torch.randn(3, 5, 17, 2)):
            _close(runtime.encode_clips(clips), model.encode_clips(clips))
        tokens = {"skeleton": torch.randn(3, 4, 6, 32)}
        if model.has_image_branch:
            frames = torch.randn(5, 3, 48, 48)
            _close(runtime.encode_frames(frames), model.encode_frames(frames))
            _close(runtime.encode("rgb", frames[:1, :, :20, :30]), model.encode("rgb", frames[:1, :, :20, :30]))
            tokens["rgb"] = torch.randn(3, 4, 2, 16)
        mask = torch.tensor([[True, True, False, False], [True, True, True, True], [True, False, True, False]])
        for segment_mask in (None, mask):
            features = UniHARFeatures(tokens, segment_mask)
            _close(runtime.forward_head(features), model.forward_head(features))
    with pytest.raises(InputError, match=r"clips: expected shape \(N, T, J, C\) with J=17"):
        runtime.encode_clips(torch.randn(2, 8, 25, 3))
    if model.has_image_branch:  # without images, PyTorch's answer (classifier_pose); never from images alone
        pose_only = UniHARFeatures({"skeleton": tokens["skeleton"]}, mask)
        _close(runtime.forward_head(pose_only), model.forward_head(pose_only))
        for runner in (runtime, model):
            with pytest.raises(InputError, match=r"cannot answer without \['skeleton'\]"):
                runner.forward_head(UniHARFeatures({"rgb": tokens["rgb"]}))
    else:
        with pytest.raises(InputError, match="no image encoder"):
            runtime.encode_frames(torch.randn(1, 3, 48, 48))


def test_engine_gives_the_same_windows_with_either_backend(exported) -> None:
    """What `unihar predict --backend onnxruntime` runs: the windowing engine over the parts."""
    model, path = exported
    rng = np.random.default_rng(0)
    frames = 75
    poses = rng.normal(100, 20, (frames, 2, 17, 3)).astype(np.float32)  # two people
    poses[..., 2] = rng.uniform(0.3, 1.0, poses.shape[:3])
    images = rng.integers(0, 255, (frames, 60, 80, 3), dtype=np.uint8) if model.has_image_branch else [None] * frames

    def windows(runner) -> list:
        engine = WindowEngine(runner, fps=15.0, batch_windows=4)
        results = []
        for i in range(frames):
            results += engine.push(i, {0: poses[i, 0], 1: poses[i, 1]}, images[i])
        return results + engine.finish()

    expected, got = windows(model), windows(OnnxModel(path))
    assert len(got) == len(expected) >= 6
    for a, b in zip(got, expected):
        assert (a.track, a.start_frame, a.end_frame, a.clips) == (b.track, b.start_frame, b.end_frame, b.clips)
        assert np.abs(a.probs - b.probs).max() <= 1e-4


def test_pose_only_export_of_a_multimodal_model(tmp_path: Path) -> None:
    """`unihar export --pose-only`: the pose path of a multimodal model, answering as it does without images."""
    model = _model(True)
    runtime = OnnxModel(export_onnx(model, tmp_path / "pose.onnx", with_images=False))
    assert runtime.modalities == ["skeleton"] and not runtime.has_image_branch
    assert not runtime.config.image_model.enabled and runtime.config.pose_model == model.config.pose_model
    pose = torch.randn(2, 3, 8, 17, 3)
    with torch.no_grad():
        _close(runtime(pose), model(pose))  # classifier_pose, as PyTorch without images
        tokens = model.encode_clips(pose.flatten(0, 1)).unflatten(0, (2, 3))
        _close(
            runtime.forward_head(UniHARFeatures({"skeleton": tokens})),
            model.forward_head(UniHARFeatures({"skeleton": tokens})),
        )


@pytest.mark.parametrize("answer", ["head", "product"])
def test_a_sensor_modality_exports_too(tmp_path: Path, answer: str) -> None:
    """Every modality gets its part in the graph: here the skeleton and a wearable inertial sensor."""
    cfg = small_config(image_model={"enabled": False}, fusion_model={"missing_embeddings": True, "answer": answer})
    cfg["imu_model"] = {"rate": 25.0, "hidden_dim": 16, "layers": 1, "heads": 2}
    cfg["preprocessing"] = {"layout": "coco17", "clips": 3, "clip_len": 6, "window_seconds": 2.4, "stride_seconds": 0.8}
    model = randomize_(build_model(cfg)).eval()
    runtime = OnnxModel(export_onnx(model, tmp_path / "imu.onnx"))
    assert runtime.modalities == ["skeleton", "imu"]
    pose, imu = torch.randn(2, 3, 6, 17, 3), torch.randn(2, 3, 20, 6)  # 0.8 s clips at 25 Hz: 20 samples
    with torch.no_grad():
        _close(runtime(pose, imu=imu), model(pose, imu=imu))
        _close(runtime.encode("imu", imu[0]), model.encode("imu", imu[0]))
        features = model.forward_features(pose, imu=imu)
        _close(runtime.forward_head(features), model.forward_head(features))


def test_int8_export_is_smaller_and_close(tmp_path: Path) -> None:
    torch.manual_seed(0)  # int8 error depends on the weights: a random model drawn anew each run made this flaky
    model = _model(False)
    quantized = OnnxModel(export_onnx(model, tmp_path / "q.onnx", quantize=True))
    float_size = export_onnx(model, tmp_path / "f.onnx").stat().st_size
    assert (tmp_path / "q.onnx").stat().st_size < float_size
    # int8 weights: close, not exact (the benchmark measures the change on the trained bundled model)
    pose = torch.randn(4, 2, 8, 17, 3)
    with torch.no_grad():
        assert (quantized(pose).softmax(-1) - model(pose).softmax(-1)).abs().max() < 0.05
        clips = pose.flatten(0, 1)
        tokens = quantized.encode_clips(clips)
        assert tokens.shape == (8, 8, 32)
        assert (
            torch.nn.functional.cosine_similarity(tokens.flatten(1), model.encode_clips(clips).flatten(1)).min() > 0.99
        )
    assert "DynamicQuantizeLinear" in {node.op_type for node in onnx.load(str(tmp_path / "q.onnx")).graph.node}


def test_gemms_that_share_a_weight_quantize_with_their_own_copies(tmp_path: Path) -> None:
    """The window graph and the head graph share the classifier weight; onnxruntime 1.23's quantizer
    transposes a Gemm weight in place, so shared weights are copied first (and still give the same answer)."""
    from onnx import TensorProto, helper, numpy_helper

    from unihar.inference.onnx_backend import _quantized

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((5, 4)).astype(np.float32), "w")
    bias = numpy_helper.from_array(np.zeros(5, np.float32), "b")
    nodes = [
        helper.make_node("Gemm", ["x", "w", "b"], ["y1"], name="first", transB=1),
        helper.make_node("Gemm", ["x", "w", "b"], ["y2"], name="second", transB=1),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", 5]) for name in ("y1", "y2")]
    graph = helper.make_graph(
        nodes,
        "shared",
        [x],
        outputs,
        initializer=[weight, bias],
        value_info=[helper.make_tensor_value_info("w", TensorProto.FLOAT, [5, 4])],
    )
    # IR version 8: what every supported onnxruntime reads (onnx 1.20+ writes versions onnxruntime 1.23 refuses)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    quantized = _quantized(onnx, proto)
    session = ort.InferenceSession(quantized.SerializeToString(), providers=["CPUExecutionProvider"])
    inputs = rng.standard_normal((3, 4)).astype(np.float32)
    first, second = session.run(None, {"x": inputs})
    expected = inputs @ numpy_helper.to_array(weight).T
    np.testing.assert_allclose(first, expected, atol=0.1)
    np.testing.assert_allclose(second, expected, atol=0.1)


def test_missing_foreign_and_old_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        OnnxModel(tmp_path / "absent.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="cannot load ONNX model"):
        OnnxModel(tmp_path / "junk.onnx")
    # A window-only graph, as unihar wrote them before the parts were exported: refused with what to do.
    from onnx import TensorProto, helper

    pose = helper.make_tensor_value_info("pose", TensorProto.FLOAT, ["batch", "clips", 8, 17, 3])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 7])
    shape = helper.make_node("Constant", [], ["shape"], value=helper.make_tensor("s", TensorProto.INT64, [2], [0, -1]))
    graph = helper.make_graph(
        [shape, helper.make_node("Reshape", ["pose", "shape"], ["logits"])], "old", [pose], [logits]
    )
    old = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    entry = old.metadata_props.add()
    entry.key, entry.value = "unihar.config", json.dumps(_model(False).config.to_dict())
    onnx.save(old, str(tmp_path / "old.onnx"))
    with pytest.raises(CheckpointError, match="older unihar.*export it again"):
        OnnxModel(tmp_path / "old.onnx")
