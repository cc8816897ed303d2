"""ONNX export and an onnxruntime backend that implements the model protocol.

``export_onnx`` writes one self-contained ``.onnx`` file. Its graph is the whole window, the
contract third-party users rely on:

* ``pose`` (B, L, T, J, 3) [+ ``images`` (B, L, T', 3, H, W)] [+ ``imu`` (B, L, S, C)] -> ``logits``
  (B, K), with B, L, T (1..max_seq_len), T', H and W dynamic, and the model's config and labels in
  the file's metadata;

and, in the same graph, the parts the windowing engine runs on their own, so that each clip is
encoded once and reused by every window that contains it. For each modality ``m`` (``skeleton``,
``rgb``, ``imu``):

* ``m_units`` -> ``m_tokens``: its encoder (``skeleton_units`` (N, T, J, 3) -> (N, T, D) per-frame
  tokens; ``rgb_units`` (N, 3, H, W) frames -> (N, Di) features; ``imu_units`` (N, S, C) -> (N, S', D));
* and the head: ``m_window_tokens`` (B, L, T, D) of every modality -> ``head_logits`` (B, K); and a
  head for each smaller set of modalities the PyTorch model answers from (``skeleton_window_tokens_skeleton``
  -> ``head_logits_skeleton``), so that a window without one of them (a sensor recording that does
  not cover it, a person who wears no sensor) is answered as PyTorch answers it.

A caller of the window graph feeds only ``pose`` [+ ``images``]: the part inputs have default
values (ONNX initializers that are also graph inputs; every dynamic axis 1), so onnxruntime asks for
nothing more. It does run every node of a graph whatever outputs are asked for (measured: asking for
one output of two independent branches costs both), so :class:`OnnxModel` runs each part in a
session of its own, cut from the file's graph, and never pays for the others.

``quantize=True`` stores the weights of the linear layers as int8 (dynamic quantization: activations
are quantized on the fly; convolutions stay float, onnxruntime's int8 convolution being slower than
its float one on the CPU). A smaller file, close but not exact, and not faster on the CPU
(benchmarks/model_speed.py has the numbers, and the probability change on a trained model).
"""

from __future__ import annotations

import itertools
import json
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from unihar.config import ModelConfig, PreprocessConfig
from unihar.errors import CheckpointError, ConfigError, InputError, UniHARError
from unihar.models import UniHAR, UniHARFeatures
from unihar.models.imu import ImuModality
from unihar.models.modalities import MODALITIES, Modality, modalities_of
from unihar.models.network import CPU_CHUNK_FRAMES, CPU_CHUNK_TOKENS, check_model_inputs

__all__ = ["EXPORT_VERSION", "OPSET", "OnnxModel", "export_onnx"]

_CONFIG_KEY = "unihar.config"
_LABELS_KEY = "unihar.labels"
_VERSION_KEY = "unihar.export_version"
# Version 2: the graph also exposes each modality's encoder and the head (see above).
# Version 3: and a head for each set of modalities the model answers from without the others.
EXPORT_VERSION = 3
_PARTS_VERSION = 2  # the oldest export OnnxModel runs (its windows need every modality)
OPSET = 18


def _require(module: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as err:
        raise ConfigError(f"ONNX export / inference needs {module}: pip install 'unihar[onnx]' ({err})") from None


def _unit_example(modality: Modality, prefix: str) -> tuple[Tensor, dict[int, Any], bool]:
    """An example batch of units of a modality's input, its dynamic axes (named after ``prefix``), and
    whether a clip holds several units (frames) rather than being one. Example sizes are at least 2
    and differ from each other, so that no dynamic axis is specialised while tracing."""
    Dim = torch.export.Dim
    if modality.name == "skeleton":
        cfg = modality.config.pose_model
        assert cfg.joints is not None and cfg.max_seq_len is not None  # required while pose_model is on
        frames = Dim(f"{prefix}_frames", max=cfg.max_seq_len) if cfg.max_seq_len >= 2 else Dim.STATIC
        return torch.zeros(5, min(3, cfg.max_seq_len), cfg.joints, 3), {0: Dim(f"{prefix}_n"), 1: frames}, False
    if modality.name == "rgb":
        return (
            torch.zeros(5, 3, 32, 34),
            {0: Dim(f"{prefix}_n"), 2: Dim(f"{prefix}_height"), 3: Dim(f"{prefix}_width")},
            True,
        )
    if modality.name == "imu":
        imu = cast(ImuModality, modality)  # the class registered under "imu"
        return torch.zeros(5, imu.samples, len(imu.imu_config.channels)), {0: Dim(f"{prefix}_n")}, False
    raise ConfigError(f"the {modality.name!r} modality cannot be exported to ONNX yet (known: skeleton, rgb, imu)")


def _graph_inputs(
    model: UniHAR, modality: Modality, window: tuple[Any, Any]
) -> tuple[list[tuple[str, Tensor, dict[int, Any]]], Tensor, bool]:
    """A modality's window input and units as (name, example, dynamic axes), and an example of its
    window tokens with whether their steps are dynamic. ``window`` is the shared (batch, clips)."""
    Dim = torch.export.Dim
    unit, unit_axes, per_frame = _unit_example(modality, f"{modality.name}_units")
    # A window is (B, L[, frames per clip], the axes of a unit after the first).
    lead = (2, 3, 2) if per_frame else (2, 3)
    window_axes = {
        0: window[0],
        1: window[1],
        **({2: Dim(f"{modality.input_name}_frames_per_clip")} if per_frame else {}),
    }
    _, axes, _ = _unit_example(modality, modality.input_name)
    window_axes.update({axis + len(lead) - 1: dim for axis, dim in axes.items() if axis})
    # Window tokens are (B, L, steps, D): steps are frames (dynamic), or a fixed count (a sensor's steps).
    encoded = model.encode(modality.name, unit[:1])  # (1, steps, D), or (1, D) for a frame
    dynamic_steps = per_frame or 1 in unit_axes and unit_axes[1] is not Dim.STATIC
    tokens = torch.zeros(4, 2, 2 if per_frame else encoded.shape[1], encoded.shape[-1])
    entries = [
        (modality.input_name, torch.zeros(lead + tuple(unit.shape[1:])), window_axes),
        (f"{modality.name}_units", unit, unit_axes),
    ]
    return entries, tokens, bool(dynamic_steps)


def _head_suffix(present: list[str] | tuple[str, ...], modalities: list[str]) -> str:
    """What names the head over the modalities ``present`` and its inputs: nothing for the head over
    all of them, else ``_skeleton`` (``head_logits_skeleton`` reads ``skeleton_window_tokens_skeleton``)."""
    present = [m for m in modalities if m in present]
    return "" if present == list(modalities) else "".join(f"_{m}" for m in present)


def _answered_subsets(model: UniHAR, tokens: dict[str, Tensor]) -> list[tuple[str, ...]]:
    """The smaller sets of modalities the PyTorch head answers from (found by asking it): each gets a
    head of its own in the graph; a set it refuses (no stand-in, no classifier of its own) gets none."""
    names = list(tokens)
    answered = []
    for size in range(len(names) - 1, 0, -1):
        for subset in itertools.combinations(names, size):
            try:
                model.forward_head(UniHARFeatures({name: tokens[name] for name in subset}))
            except InputError:
                continue
            answered.append(subset)
    return answered


def _token_inputs(
    heads: list[tuple[str, ...]], examples: dict[str, tuple[Tensor, bool]]
) -> list[tuple[str, Tensor, dict[int, Any]]]:
    """The window tokens each head reads, as (name, example, dynamic axes). Every head has inputs and
    dimensions of its own: heads sharing one would let the exporter read a head's batch size off
    another's input, which a session cut for one head does not feed."""
    Dim = torch.export.Dim
    names = list(examples)
    entries = []
    for subset in heads:
        suffix = _head_suffix(subset, names)
        batch, clips = Dim(f"head_batch{suffix}"), Dim(f"head_clips{suffix}")
        for name in subset:
            example, dynamic_steps = examples[name]
            steps = Dim(f"{name}_token_steps{suffix}") if dynamic_steps else Dim.STATIC
            # A tensor of its own: the exporter gives one tensor passed twice the same dimensions.
            entries.append((f"{name}_window_tokens{suffix}", example.clone(), {0: batch, 1: clips, 2: steps}))
    return entries


class _ExportGraph(nn.Module):
    """The whole window and each part side by side, as one graph with independent inputs.

    Arguments, in order: the window input of each modality, the units of each, then the window tokens
    of each head's modalities, head by head. Outputs: the window's logits, each modality's tokens, each head's logits.
    """

    def __init__(self, model: UniHAR, modalities: list[str], heads: list[tuple[str, ...]]) -> None:
        super().__init__()
        self.model = model
        self.names = modalities
        self.heads = heads
        self.inputs = [MODALITIES[name].input_name for name in modalities]

    def forward(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        n = len(self.names)
        windows, units, tokens = dict(zip(self.inputs, tensors[:n])), tensors[n : 2 * n], iter(tensors[2 * n :])
        logits = self.model(windows.pop("pose", None), windows.pop("images", None), **windows)
        encoded = [self.model.encode(name, x) for name, x in zip(self.names, units)]
        heads = [
            self.model.forward_head(UniHARFeatures({name: next(tokens) for name in subset})) for subset in self.heads
        ]
        return (logits, *encoded, *heads)


def export_onnx(
    model: UniHAR,
    path: str | Path,
    *,
    with_images: bool | None = None,
    quantize: bool = False,
    overwrite: bool = False,
) -> Path:
    """Export ``model`` to ``path`` (the graph described in the module docstring).

    ``with_images`` defaults to the model's own branches (multimodal models export their image
    input); ``False`` leaves the image branch of a multimodal model out (its pose path only).
    """
    onnx = _require("onnx")
    _require("onnxscript")
    path = Path(path)
    if path.exists() and not overwrite:
        raise UniHARError(f"{path} already exists; pass overwrite=True (or --overwrite) to replace it")
    with_images = model.has_image_branch if with_images is None else with_images
    if with_images and not model.has_image_branch:
        raise ConfigError("this model is pose-only (image_model.enabled is false): it cannot be exported with images")
    model = model.eval()
    config = model.config
    if not with_images and model.has_image_branch:
        config = ModelConfig.from_dict(
            {**config.to_dict(), "image_model": {**config.image_model.to_dict(), "enabled": False}}
        )
    modalities = [m for m in modalities_of(model.config) if m.name in config.modalities]

    Dim = torch.export.Dim
    names = [m.name for m in modalities]
    with torch.no_grad():
        per_modality = [_graph_inputs(model, m, (Dim("batch"), Dim("clips"))) for m in modalities]
        examples = {name: (tokens, dynamic) for name, (_, tokens, dynamic) in zip(names, per_modality)}
        heads = [tuple(names), *_answered_subsets(model, {name: tokens for name, (tokens, _) in examples.items()})]
    # Windows, then units, then the tokens of each head.
    inputs = [entries[kind] for kind in range(2) for entries, _, _ in per_modality] + _token_inputs(heads, examples)
    outputs = [
        "logits",
        *(f"{name}_tokens" for name in names),
        *(f"head_logits{_head_suffix(h, names)}" for h in heads),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            _ExportGraph(model, names, heads),
            tuple(example for _, example, _ in inputs),
            dynamo=True,
            input_names=[name for name, _, _ in inputs],
            output_names=outputs,
            dynamic_shapes=(tuple(axes for _, _, axes in inputs),),
            opset_version=OPSET,
            external_data=False,
            verbose=False,
        )
    assert program is not None  # dynamo=True always returns the program
    proto = program.model_proto
    if quantize:
        proto = _quantized(onnx, proto)
    # The part inputs default to their smallest value (dynamic axes 1): feeding only the window inputs runs
    # the window graph.
    window_inputs = {m.input_name for m in modalities}
    for value in proto.graph.input:
        if value.name not in window_inputs:
            shape = [d.dim_value if d.HasField("dim_value") else 1 for d in value.type.tensor_type.shape.dim]
            proto.graph.initializer.append(onnx.numpy_helper.from_array(np.zeros(shape, np.float32), value.name))
    meta = {
        _CONFIG_KEY: json.dumps(config.to_dict()),
        _LABELS_KEY: json.dumps(model.labels),
        _VERSION_KEY: str(EXPORT_VERSION),
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    return path


def _quantized(onnx: Any, proto: Any) -> Any:
    """``proto`` with dynamic int8 weights (onnxruntime's quantizer works on files).

    The quantizer rewrites each Gemm as MatMul + Add, transposing its weight in place: a weight that two
    Gemms share (the classifier of the window graph and of the head graph) would be transposed twice by
    onnxruntime 1.23 (the last release for CPython 3.10), so each Gemm gets its own copy first. The MatMuls
    it creates carry no inferred type; they compute in float.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _unshare_gemm_weights(onnx, proto)
    with tempfile.TemporaryDirectory() as tmp:
        float_path, int8_path = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(proto, str(float_path))
        quantize_dynamic(
            str(float_path),
            str(int8_path),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm"],
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        return onnx.load(str(int8_path))


def _unshare_gemm_weights(onnx: Any, proto: Any) -> None:
    """Give every Gemm whose weight another Gemm already uses a copy of its own, and drop the recorded
    shapes of Gemm weights (the quantizer transposes them and infers the shapes again); in place."""
    initializers = {tensor.name: tensor for tensor in proto.graph.initializer}
    seen: set[str] = set()
    for node in proto.graph.node:
        if node.op_type != "Gemm" or node.input[1] not in initializers:
            continue
        name = node.input[1]
        if name in seen:
            copy = onnx.TensorProto()
            copy.CopyFrom(initializers[name])
            copy.name = f"{name}.{node.name}"
            proto.graph.initializer.append(copy)
            node.input[1] = copy.name
        seen.add(name)
    kept = [info for info in proto.graph.value_info if info.name not in seen]
    del proto.graph.value_info[:]
    proto.graph.value_info.extend(kept)


def _numpy(x: Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().cpu().float().numpy())


def _three_channels(x: Tensor) -> Tensor:
    """(x, y) -> (x, y, 0) and (x, y, c, ...) -> (x, y, c): the graph takes exactly 3 channels, as
    the PyTorch model reads them."""
    if x.shape[-1] == 2:
        return torch.cat([x, torch.zeros_like(x[..., :1])], dim=-1)
    return x[..., :3]


def _by_valid_clips(segment_mask: Tensor | None, run: Callable[[tuple[Tensor, Tensor] | None], Tensor]) -> Tensor:
    """``run(select)`` for each group of windows that share a pattern of valid clips, put back in order.

    ``select`` indexes (B, L, ...) inputs down to the group's windows and valid clips (None: all of
    them). Leaving a window's padded clips out gives what masking them gives, so the graph needs no mask.
    """
    if segment_mask is None or bool(segment_mask.all()):
        return run(None)
    patterns, group = torch.unique(segment_mask.cpu(), dim=0, return_inverse=True)
    out: Tensor | None = None
    for index, pattern in enumerate(patterns):
        rows = torch.nonzero(group == index).flatten()
        part = run((rows[:, None], torch.nonzero(pattern).flatten()[None, :]))
        if out is None:
            out = part.new_empty((len(group), *part.shape[1:]))
        out[rows] = part
    assert out is not None  # some clip is invalid here, so there is at least one pattern
    return out


def _select(x: Tensor, select: tuple[Tensor, Tensor] | None) -> np.ndarray:
    return _numpy(x if select is None else x[select])


class OnnxModel:
    """An exported model run by onnxruntime: a :class:`~unihar.models.HARModel` like the PyTorch one.

    onnxruntime runs every node of a graph whatever outputs are asked for, and with the image branch
    the nodes of the parts not wanted cost time on every run even on placeholder inputs
    (benchmarks/model_speed.py). So each part (the window, each encoder, the head) gets its own session
    over only its nodes (``onnx.utils.Extractor``), made the first time it is run.
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        onnx = _require("onnx")
        self._ort = _require("onnxruntime")
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"ONNX model not found: {path}")
        try:
            self._proto = onnx.load(str(path))
            onnx.checker.check_model(self._proto)
        except Exception as err:  # onnx raises protobuf / checker errors of its own
            raise CheckpointError(f"cannot load ONNX model {path}: {str(err).splitlines()[0]}") from None
        meta = {entry.key: entry.value for entry in self._proto.metadata_props}
        if _CONFIG_KEY not in meta:
            raise CheckpointError(f"{path} was not exported by unihar (no {_CONFIG_KEY} metadata)")
        self.path = path
        self.threads = threads
        self.config = ModelConfig.from_dict(json.loads(meta[_CONFIG_KEY]))
        labels = json.loads(meta.get(_LABELS_KEY, "null"))
        self.labels: list[str] = labels or [f"class_{i}" for i in range(self.config.num_classes)]
        self._outputs = {o.name for o in self._proto.graph.output}
        self._version = int(meta.get(_VERSION_KEY, 1))
        if self._version < _PARTS_VERSION or not {f"{m}_tokens" for m in self.modalities} <= self._outputs:
            raise CheckpointError(
                f"{path} was exported by an older unihar (no separate encoders and head in its graph): "
                "export it again with `unihar export`"
            )
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def modalities(self) -> list[str]:
        """The modalities the graph reads, in order."""
        return self.config.modalities

    @property
    def has_image_branch(self) -> bool:
        return "rgb" in self.modalities

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def preprocessing(self) -> PreprocessConfig:
        return self.config.preprocessing

    def probabilities(self, logits: Tensor) -> Tensor:
        """Calibrated class probabilities: ``softmax(logits / temperature)``, in float32."""
        return torch.softmax(logits.float() / self.config.classifier.temperature, dim=-1)

    # The pipeline moves models between devices and modes; onnxruntime has neither here.
    def eval(self) -> OnnxModel:
        return self

    def to(self, device: Any) -> OnnxModel:
        if torch.device(device).type != "cpu":
            raise ConfigError(f"the onnxruntime backend runs on the CPU here, got device {device}")
        return self

    # ------------------------------------------------------------------ running the graph
    def _session(self, inputs: list[str], output: str) -> Any:
        """A session over the nodes that compute ``output`` from ``inputs`` only (made once)."""
        with self._lock:
            if output not in self._sessions:
                from onnx.utils import Extractor

                part = Extractor(self._proto).extract_model(inputs, [output])
                # The exported file gives part inputs defaults (for callers of the window graph); here they
                # are required.
                kept = [tensor for tensor in part.graph.initializer if tensor.name not in inputs]
                del part.graph.initializer[:]
                part.graph.initializer.extend(kept)
                options = self._ort.SessionOptions()
                # As many threads as PyTorch is given, so the caps of batch workers and actors hold for both backends.
                options.intra_op_num_threads = self.threads or torch.get_num_threads()
                # onnxruntime's threads spin after each run by default, taking the cores the other stages
                # of the pipeline (decoding, pose estimation) share with it: they wait instead.
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                self._sessions[output] = self._ort.InferenceSession(
                    part.SerializeToString(), options, providers=["CPUExecutionProvider"]
                )
            return self._sessions[output]

    def _run(self, output: str, feed: dict[str, np.ndarray]) -> Tensor:
        (result,) = self._session(list(feed), output).run([output], feed)
        return torch.from_numpy(np.asarray(result))

    def encode(self, modality: str, units: Tensor) -> Tensor:
        """One modality's units (skeleton clips (N, T, J, C), rgb frames (N, 3, H, W), imu clips
        (N, S, C)) -> their tokens, as :meth:`UniHAR.encode`."""
        if modality not in self.modalities:
            raise InputError(f"this model has no {modality!r} modality; it reads {self.modalities}")
        if not isinstance(units, Tensor) or not units.is_floating_point() or units.dim() < 2:
            raise InputError(f"{modality} units: expected a float tensor (N, ...), got {type(units).__name__}")
        if modality == "skeleton":
            j, tm = self.config.pose_model.joints, self.config.pose_model.max_seq_len
            assert j is not None and tm is not None  # required while pose_model is on
            if units.dim() != 4 or units.shape[2] != j or not 1 <= units.shape[1] <= tm or units.shape[3] < 2:
                raise InputError(
                    f"clips: expected shape (N, T, J, C) with J={j}, 1 <= T <= {tm}, C >= 2, got {tuple(units.shape)}"
                )
            units = _three_channels(units)
        # A few units at a time, as the PyTorch model does on the CPU: their activations stay in cache.
        per_run = {
            "skeleton": CPU_CHUNK_TOKENS // max(1, units.shape[1] * units.shape[2]),
            "rgb": CPU_CHUNK_FRAMES,
        }.get(modality)
        parts = torch.split(units, max(1, per_run)) if per_run is not None else [units]
        return torch.cat([self._run(f"{modality}_tokens", {f"{modality}_units": _numpy(part)}) for part in parts])

    def encode_clips(self, clips: Tensor) -> Tensor:
        """Pose clips (N, T, J, C) -> per-frame tokens (N, T, D)."""
        return self.encode("skeleton", clips)

    def encode_frames(self, frames: Tensor) -> Tensor:
        """RGB frames (N, 3, H, W), normalised -> per-frame image features (N, Di)."""
        if not self.has_image_branch:
            raise InputError(f"{self.path} holds a pose-only graph: it has no image encoder")
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise InputError(f"frames: expected shape (N, 3, H, W), got {tuple(frames.shape)}")
        return self.encode("rgb", frames)

    def forward_head(self, features: UniHARFeatures) -> Tensor:
        """Encoded clips of B windows -> logits (B, K), from the modalities present, as
        :meth:`UniHAR.forward_head` answers (a window without sensor tokens: the head for the others)."""
        present = [m for m in self.modalities if m in features.tokens]
        absent = [m for m in self.modalities if m not in features.tokens]
        if not present:
            raise InputError(f"no features of any modality this model reads ({self.modalities})")
        suffix = _head_suffix(present, self.modalities)
        output = f"head_logits{suffix}"
        if output not in self._outputs:
            if self._version < EXPORT_VERSION:
                raise CheckpointError(
                    f"{self.path} was exported by an older unihar, whose graph cannot answer without {absent}: "
                    "export it again with `unihar export`"
                )
            raise InputError(
                f"this model cannot answer without {absent}: it has no stand-in for a missing modality "
                f"(fusion_model.missing_embeddings) and {present} alone has no classifier"
            )

        def run(select: tuple[Tensor, Tensor] | None) -> Tensor:
            return self._run(
                output, {f"{m}_window_tokens{suffix}": _select(features.tokens[m], select) for m in present}
            )

        return _by_valid_clips(features.segment_mask, run)

    def _window_tokens(self, modality: str, x: Tensor) -> Tensor:
        """A window input (B, L, ...) -> its tokens (B, L, T, D) through the modality's encoder."""
        lead = 3 if modality == "rgb" else 2  # the image encoder's units are frames, the others' are clips
        tokens = self.encode(modality, x.flatten(0, lead - 1))
        return tokens.reshape(*x.shape[:lead], *tokens.shape[1:])

    def __call__(
        self,
        pose: Tensor | None = None,
        images: Tensor | None = None,
        segment_mask: Tensor | None = None,
        **signals: Tensor,
    ) -> Tensor:
        """Whole windows: pose (B, L, T, J, C) [+ images (B, L, T', 3, H, W)] [+ imu (B, L, S, C)] -> logits (B, K)."""
        check_model_inputs(self.config, pose, images, segment_mask, **signals)  # same checks, same messages
        given = {"pose": pose, "images": images, **signals}
        inputs = [MODALITIES[m].input_name for m in self.modalities]
        if any(given.get(key) is None for key in inputs):
            # A modality left out is missing, as in PyTorch: the encoders of the others, then their head.
            tokens = {
                m: self._window_tokens(m, x)
                for m, key in zip(self.modalities, inputs)
                if (x := given.get(key)) is not None
            }
            return self.forward_head(UniHARFeatures(tokens, segment_mask))
        # Every input is given here (the filter only narrows the type).
        window = {key: _three_channels(x) if key == "pose" else x for key in inputs if (x := given[key]) is not None}

        def run(select: tuple[Tensor, Tensor] | None) -> Tensor:
            return self._run("logits", {key: _select(value, select) for key, value in window.items()})

        return _by_valid_clips(segment_mask, run)
