"""ONNX export and an onnxruntime backend that stands in for the PyTorch model.

``export_onnx`` writes one self-contained ``.onnx`` file: the graph with dynamic batch and clip
count, and the model's config and labels in the file's metadata, so :class:`OnnxModel` needs nothing
else to run the same video pipeline. Optional dynamic int8 quantization (weights stored as int8,
activations quantized on the fly) shrinks the file and speeds up the linear layers on CPUs.
"""
from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from unihar.config import ModelConfig, PreprocessConfig
from unihar.errors import CheckpointError, ConfigError, InputError, UniHARError
from unihar.models import UniHAR

_CONFIG_KEY = "unihar.config"
_LABELS_KEY = "unihar.labels"
OPSET = 18


def _require(module: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as err:
        raise ConfigError(f"ONNX export / inference needs {module}: pip install 'unihar[onnx]' ({err})") from None


def export_onnx(
    model: UniHAR,
    path: str | Path,
    *,
    with_images: bool | None = None,
    quantize: bool = False,
    overwrite: bool = False,
) -> Path:
    """Export ``model`` to ``path``: inputs ``pose`` (B, L, T, J, 3) [+ ``images`` (B, L, T, 3, S, S)],
    output ``logits`` (B, K); B and L are dynamic, T and S are the model's clip length and image size.

    ``with_images`` defaults to the model's own branches (multimodal models export both inputs).
    """
    onnx = _require("onnx")
    _require("onnxscript")
    path = Path(path)
    if path.exists() and not overwrite:
        raise UniHARError(f"{path} already exists; pass overwrite=True (or --overwrite) to replace it")
    with_images = model.has_image_branch if with_images is None else with_images
    if with_images and not model.has_image_branch:
        raise ConfigError("this model is pose-only (image_model.enabled is false): it cannot be exported with images")
    prep = model.prep
    joints = model.config.pose_model.joints
    # Example inputs with 2 windows x 2 clips so neither axis is specialised to 1.
    pose = torch.zeros(2, 2, prep.clip_len, joints, 3)
    batch, clips = torch.export.Dim("batch", min=1), torch.export.Dim("clips", min=1)
    args: tuple[Tensor, ...] = (pose,)
    shapes: dict[str, Any] = {"pose": {0: batch, 1: clips}}
    names = ["pose"]
    if with_images:
        args += (torch.zeros(2, 2, prep.clip_len, 3, prep.image_size, prep.image_size),)
        shapes["images"] = {0: batch, 1: clips}
        names.append("images")

    class _Graph(torch.nn.Module):  # fixes the call signature to exactly the exported inputs
        def __init__(self, inner: UniHAR) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, pose: Tensor, images: Tensor | None = None) -> Tensor:
            return self.inner(pose, images)

    model = model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            _Graph(model), args, dynamo=True, input_names=names, output_names=["logits"],
            dynamic_shapes=shapes, opset_version=OPSET, external_data=False, verbose=False,
        )
    proto = program.model_proto
    meta = {_CONFIG_KEY: json.dumps(model.config.to_dict()), _LABELS_KEY: json.dumps(model.labels)}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    path.parent.mkdir(parents=True, exist_ok=True)
    if not quantize:
        onnx.save(proto, str(path))
        return path
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        float_path = Path(tmp) / "float.onnx"
        onnx.save(proto, str(float_path))
        quantize_dynamic(str(float_path), str(path), weight_type=QuantType.QInt8)
    return path


class OnnxModel:
    """An exported model run by onnxruntime, usable wherever the pipeline expects a :class:`UniHAR`."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        ort = _require("onnxruntime")
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"ONNX model not found: {path}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for invalid files
            raise CheckpointError(f"cannot load ONNX model {path}: {str(err).splitlines()[0]}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if _CONFIG_KEY not in meta:
            raise CheckpointError(f"{path} was not exported by unihar (no {_CONFIG_KEY} metadata)")
        self.config = ModelConfig.from_dict(json.loads(meta[_CONFIG_KEY]))
        labels = json.loads(meta.get(_LABELS_KEY, "null"))
        self.labels: list[str] = labels or [f"class_{i}" for i in range(self.config.num_classes)]
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.clip_len = int(self.session.get_inputs()[0].shape[2])

    @property
    def has_image_branch(self) -> bool:
        return "images" in self.input_names

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def prep(self) -> PreprocessConfig:
        return self.config.preprocessing

    def probabilities(self, logits: Tensor) -> Tensor:
        return torch.softmax(logits.float() / self.config.classifier.temperature, dim=-1)

    # The pipeline moves models between devices and modes; onnxruntime has neither here.
    def eval(self) -> "OnnxModel":
        return self

    def to(self, device: Any) -> "OnnxModel":
        if torch.device(device).type != "cpu":
            raise ConfigError(f"the onnxruntime backend runs on the CPU here, got device {device}")
        return self

    def __call__(self, pose: Tensor, images: Tensor | None = None, segment_mask: Tensor | None = None) -> Tensor:
        if segment_mask is not None and not bool(segment_mask.all()):
            raise ConfigError("the ONNX graph has no clip padding mask: give only valid clips")
        UniHAR.check_inputs(self, pose, images if self.has_image_branch else None)  # same checks, same messages
        if pose.shape[2] != self.clip_len:
            raise InputError(f"pose: this ONNX graph takes clips of exactly T={self.clip_len} frames, got shape {tuple(pose.shape)}")
        feed = {"pose": pose.detach().cpu().float().numpy()}
        if self.has_image_branch:
            if images is None:
                raise ConfigError("this ONNX graph was exported with images: give images too")
            feed["images"] = images.detach().cpu().float().numpy()
        (logits,) = self.session.run(["logits"], feed)
        return torch.from_numpy(np.asarray(logits))
