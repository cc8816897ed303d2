"""Uni-HAR: a factorized space-time pose transformer, optionally fused with a ResNet over RGB frames
and with other modalities (a wearable inertial sensor: :mod:`unihar.models.imu`).

The module names and the forward pass follow the published checkpoint layout (see the project's
``docs/checkpoint-format.md``) to the letter, so a published ``pytorch_model.bin`` loads with strict
key matching and gives the same numbers. Each input kind is a modality plug-in
(:mod:`unihar.models.modalities`): the skeleton and the image branch are defined here, and build
their modules under the published names. Read top to bottom:

1. :class:`PoseFormerFactorized` encodes one clip of T frames x J joints into a (T, J, D) token grid:
   per-joint embedding + joint-type embedding + temporal position embedding, then N x (attention
   across frames for each joint, attention across joints for each frame).
2. :class:`UniHAR` runs it on the L clips of a window, optionally a long-term transformer over the L
   clip embeddings, and averages over the valid clips -> the pose feature.
3. :class:`ImageEncoder` (torchvision ResNet trunk + linear) turns each RGB frame into a feature,
   averaged over time and clips -> the image feature.
4. :class:`SkeletonModality` and :class:`RgbModality` wrap them as modalities; :class:`UniHAR` builds
   the modalities its config names and, when there are several, a fusion head
   (:class:`~unihar.models.fusion.ConcatFusion` or :class:`~unihar.models.fusion.CrossAttentionFusion`);
   without images the pose feature goes through ``classifier_pose``.

``forward_features`` returns the tokens of every modality (per-frame pose tokens, per-frame image
features, per-step sensor tokens: what a streaming predictor caches); ``forward_head`` turns them into logits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from unihar import hub
from unihar.config import BACKBONES, ModelConfig, PreprocessConfig
from unihar.errors import CheckpointError, InputError
from unihar.models import checkpoint
from unihar.models.base import UniHARFeatures
from unihar.models.fusion import ENCODER_FF_DIM, ConcatFusion, CrossAttentionFusion, masked_mean
from unihar.models.imu import ImuModality  # noqa: F401  (registers the "imu" modality)
from unihar.models.modalities import (
    MODALITIES,
    Modality,
    check_finite,
    check_float_tensor,
    describe,
    modalities_of,
    register_modality,
)

# Inference on the CPU takes a tuned path (see :func:`cpu_inference`):
# * linear layers go through oneDNN, whose float32 GEMM uses AVX-512 wherever the CPU has it, while
#   PyTorch's default (MKL's sgemm) takes its slower AVX2 code on AMD CPUs (benchmarks/model_speed.py
#   has the numbers); the MLP's GELU is fused into its first GEMM;
# * clips are encoded a few at a time, so a layer's activations stay in cache between its ops;
# * frames go through the ResNet in channels-last layout, 32 at a time (bounded activations).
# Same float32 arithmetic in another order: the outputs agree with the plain path to ~1e-6.
# (The type: ignores below: torch.backends.mkldnn.is_available and torch.jit.is_tracing are unannotated,
# and torch.jit's __all__ leaves is_tracing out.)
_ONEDNN_LINEAR: Callable[..., Tensor] | None = (
    getattr(torch.ops.mkldnn, "_linear_pointwise", None) if torch.backends.mkldnn.is_available() else None
)
CPU_CHUNK_TOKENS = (
    4096  # pose tokens (clips x frames x joints) per chunk: 2 MB per layer input, 8 MB of MLP activations
)
CPU_CHUNK_FRAMES = 32  # frames per ResNet call (one published clip: 30)


def cpu_inference(x: Tensor, module: nn.Module) -> bool:
    """Whether ``module`` runs the CPU inference path on ``x``: float32 on the CPU, eval mode, no
    autograd, no autocast, and not being traced, compiled or exported (those see the plain modules)."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and not module.training
        and not torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
        and not (torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export())
    )


def _onednn_linear(x: Tensor, weight: Tensor, bias: Tensor | None, gelu: bool = False) -> Tensor:
    """``x @ weight.T + bias`` [then the exact GELU] computed by oneDNN."""
    assert _ONEDNN_LINEAR is not None  # only called on the fast path, which needs it
    return _ONEDNN_LINEAR(x, weight, bias, "gelu" if gelu else "none", [], "none" if gelu else "")


class AttentionBlock(nn.Module):
    """Pre-LayerNorm transformer block over a token grid (N, T, J, D), attending along one axis.

    Used both as the temporal block (across frames, for each joint) and the spatial block (across
    joints, for each frame): the factorization is only in how tokens are grouped. The grid keeps its
    layout: the attention reads Q, K, V as strided views grouped either way, so no token is copied.
    """

    def __init__(self, dim: int, heads: int, mlp_dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(mlp_dropout), nn.Linear(4 * dim, dim))

    def forward(self, tokens: Tensor, across_frames: bool) -> Tensor:
        fast = _ONEDNN_LINEAR is not None and cpu_inference(tokens, self)
        x = tokens + self._attention(self.ln1(tokens), across_frames, fast)
        if not fast:
            mlp: Tensor = self.mlp(self.ln2(x))
            return x + mlp
        # Linear -> GELU -> Dropout (inactive in eval) -> Linear
        fc1, fc2 = cast(nn.Linear, self.mlp[0]), cast(nn.Linear, self.mlp[3])
        return x + _onednn_linear(_onednn_linear(self.ln2(x), fc1.weight, fc1.bias, gelu=True), fc2.weight, fc2.bias)

    def _attention(self, h: Tensor, across_frames: bool, fast: bool) -> Tensor:
        """``self.attn`` (its weights; attention dropout is 0) over the sequences of one axis of the grid."""
        n, t, j, d = h.shape
        heads = self.attn.num_heads
        linear = _onednn_linear if fast else F.linear
        w, b = self.attn.in_proj_weight, self.attn.in_proj_bias  # rows: query, key, value
        q, k, v = (linear(h, w[i * d : (i + 1) * d], b[i * d : (i + 1) * d]) for i in range(3))  # each (N, T, J, D)
        if across_frames:  # (N, J*heads, T, dh): one sequence per joint and head
            q, k, v = (x.view(n, t, j * heads, d // heads).transpose(1, 2) for x in (q, k, v))
        else:  # (N*T, heads, J, dh): one sequence per frame and head
            q, k, v = (x.view(n * t, j, heads, d // heads).transpose(1, 2) for x in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, t, j, d)
        return linear(out, self.attn.out_proj.weight, self.attn.out_proj.bias)


class SinusoidalPositionEmbedding(nn.Module):
    """Fixed sin/cos table over time, shape (Tm, 1, D) so it broadcasts over joints."""

    pe: Tensor  # a buffer

    def __init__(self, max_len: int, dim: int) -> None:
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        inv_freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
        pe = torch.zeros(max_len, 1, dim)
        pe[:, 0, 0::2] = torch.sin(position * inv_freq)
        pe[:, 0, 1::2] = torch.cos(position * inv_freq)
        self.register_buffer("pe", pe)

    def forward(self, num_frames: int) -> Tensor:
        return self.pe[:num_frames]  # (T, 1, D)


class PoseFormerFactorized(nn.Module):
    """Encodes clips (N, T, J, C) into token grids (N, T, J, D) with factorized attention.

    Joint attention over all T*J tokens costs O(T^2 J^2) per layer; attending across frames per joint,
    then across joints per frame, costs O(T^2 J + J^2 T).
    """

    def __init__(
        self,
        joints: int,
        hidden_dim: int,
        layers: int,
        heads: int,
        max_seq_len: int,
        mlp_dropout: float = 0.0,
        use_sinusoidal_pe: bool = False,
        enable_temporal_attention: bool = True,
        aux_head_dim: int = 6,
    ) -> None:
        super().__init__()
        self.joints = joints
        self.max_seq_len = max_seq_len
        self.enable_temporal_attention = enable_temporal_attention
        if use_sinusoidal_pe:
            self.temporal_pe = SinusoidalPositionEmbedding(max_seq_len, hidden_dim)
        else:
            self.temporal_pe_param = nn.Parameter(torch.zeros(1, max_seq_len, 1, hidden_dim))
            nn.init.trunc_normal_(self.temporal_pe_param, std=0.02)
        self.embed = nn.Linear(3, hidden_dim)  # (x, y, tanh(confidence)) of one joint -> D
        self.joint_type_emb = nn.Embedding(joints, hidden_dim)
        # nn.Embedding's N(0, 1) start is ~10x the coordinate embedding and leaves training at chance for
        # the first epochs; small like the other embeddings, it learns from the first steps.
        nn.init.trunc_normal_(self.joint_type_emb.weight, std=0.02)
        # blocks[i] = (temporal block, spatial block); the temporal one is kept (and loaded) even when
        # temporal attention is switched off, as in the published layout.
        self.blocks = nn.ModuleList(
            nn.ModuleList(
                [AttentionBlock(hidden_dim, heads, mlp_dropout), AttentionBlock(hidden_dim, heads, mlp_dropout)]
            )
            for _ in range(layers)
        )
        # Auxiliary head of the published pose encoder; not used in the forward pass.
        self.head = nn.Linear(hidden_dim, aux_head_dim)

    @staticmethod
    def prepare_input(x: Tensor) -> Tensor:
        """(x, y[, confidence, ...]) -> (x, y, tanh(confidence)); a missing confidence is 0."""
        if x.shape[-1] == 2:
            x = torch.cat([x, torch.zeros_like(x[..., :1])], dim=-1)
        x = x[..., :3]
        return torch.cat([x[..., :2], torch.tanh(x[..., 2:3])], dim=-1)

    def position_embedding(self, num_frames: int) -> Tensor:
        if hasattr(self, "temporal_pe"):
            table: Tensor = self.temporal_pe(num_frames)  # (T, 1, D)
            return table
        return self.temporal_pe_param[:, :num_frames]  # (1, T, 1, D)

    def forward(self, x: Tensor) -> Tensor:
        n, t, j, _ = x.shape
        per_chunk = max(1, CPU_CHUNK_TOKENS // (t * j))
        if n > per_chunk and cpu_inference(x, self):  # clips are independent: a few at a time stay in cache
            return torch.cat([self.encode(part) for part in torch.split(x, per_chunk)])
        return self.encode(x)

    def encode(self, x: Tensor) -> Tensor:
        """The token grid (N, T, J, D) of clips (N, T, J, C), all at once."""
        t = x.shape[1]
        tokens: Tensor = self.embed(self.prepare_input(x)) + self.joint_type_emb.weight + self.position_embedding(t)
        for block in self.blocks:
            temporal, spatial = cast(nn.ModuleList, block)
            if self.enable_temporal_attention:
                tokens = temporal(tokens, across_frames=True)
            tokens = spatial(tokens, across_frames=False)
        return tokens


class LongTermEncoder(nn.Module):
    """Post-norm transformer encoder over the L clip embeddings of a window (no position encoding)."""

    def __init__(self, dim: int, heads: int, layers: int, dropout: float) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(dim, heads, ENCODER_FF_DIM, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, clips: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        encoded: Tensor = self.encoder(clips, src_key_padding_mask=padding_mask)
        return encoded


class ImageEncoder(nn.Module):
    """torchvision ResNet trunk (children without the final fc) + a linear projection to ``feature_dim``."""

    def __init__(self, feature_dim: int, backbone: str = "resnet18", pretrained: bool = False) -> None:
        super().__init__()
        # weights=None builds the architecture only; ImageNet weights are fetched only when asked for.
        weights = "DEFAULT" if pretrained else None
        resnet = getattr(torchvision.models, backbone)(weights=weights)
        # Channels-last convolution weights: what oneDNN (CPU) and cuDNN (tensor cores) run fastest.
        # Only the strides change; loading a checkpoint copies into them and keeps them.
        self.backbone = nn.Sequential(*list(resnet.children())[:-1]).to(memory_format=torch.channels_last)
        self.fc = nn.Linear(BACKBONES[backbone], feature_dim)

    def forward(self, frames: Tensor) -> Tensor:
        """(N, 3, H, W), ImageNet-normalised -> (N, feature_dim)."""
        if cpu_inference(frames, self):  # channels-last, in batches of bounded size
            frames = frames.contiguous(memory_format=torch.channels_last)
            return torch.cat([self.encode(part) for part in torch.split(frames, CPU_CHUNK_FRAMES)])
        return self.encode(frames)

    def encode(self, frames: Tensor) -> Tensor:
        """The features of frames (N, 3, H, W), all at once."""
        features: Tensor = self.fc(torch.flatten(self.backbone(frames), 1))
        return features


@register_modality
class SkeletonModality(Modality):
    """The pose sequence: clips ``(T, J, C)`` -> per-frame tokens (the joint tokens' mean), pooled over
    clips by the optional long-term encoder. Its own classifier is the published ``classifier_pose``."""

    name = "skeleton"
    input_name = "pose"
    fusion_key = "pose"
    section = "pose_model"
    classifier = "classifier_pose"

    @property
    def feature_dim(self) -> int:
        hidden_dim = self.config.pose_model.hidden_dim
        assert hidden_dim is not None  # required while pose_model is on (checked by the config)
        return hidden_dim

    def build(self, pretrained_backbone: bool = False) -> dict[str, nn.Module | None]:
        pose, lt = self.config.pose_model, self.config.long_term_model
        # The sizes are required while pose_model is on, long_term_model's while it is enabled (checked by the config).
        assert pose.joints is not None and pose.hidden_dim is not None and pose.layers is not None
        assert pose.heads is not None and pose.max_seq_len is not None
        short_seq_model = PoseFormerFactorized(
            joints=pose.joints,
            hidden_dim=pose.hidden_dim,
            layers=pose.layers,
            heads=pose.heads,
            max_seq_len=pose.max_seq_len,
            mlp_dropout=self.config.regularization.short_term_dropout,
            use_sinusoidal_pe=pose.use_sinusoidal_pe,
            enable_temporal_attention=pose.enable_temporal_attention,
            aux_head_dim=pose.aux_head_dim,
        )
        long_term = None
        if lt.enabled:
            assert lt.heads is not None and lt.layers is not None and lt.dropout is not None
            long_term = LongTermEncoder(pose.hidden_dim, lt.heads, lt.layers, lt.dropout)
        return {
            "short_seq_model": short_seq_model,
            "long_term": long_term,
            "classifier_pose": nn.Linear(pose.hidden_dim, self.config.num_classes),
        }

    def check(self, x: Any, batch: int | None, clips: int | None) -> tuple[int, int]:
        j, tm = self.config.pose_model.joints, self.config.pose_model.max_seq_len
        expected = f"(B, L, T, J, C) with J={j}, 1 <= T <= {tm}, C >= 2"
        check_float_tensor("pose", x)
        if x.dim() != 5:
            raise InputError(f"pose: expected a 5-D tensor {expected}, got shape {tuple(x.shape)}")
        b, l, t, jj, c = x.shape
        if jj != j or not 1 <= t <= tm or c < 2 or b < 1 or l < 1:
            raise InputError(f"pose: expected shape {expected}, got {tuple(x.shape)}")
        if batch is not None and (b, l) != (batch, clips):
            raise InputError(
                f"pose: expected shape {expected} with B={batch}, L={clips} (matching the other inputs), "
                f"got {tuple(x.shape)}"
            )
        check_finite("pose", x)
        return b, l

    def encode(self, model: UniHAR, units: Tensor) -> Tensor:
        encoder = model.short_seq_model
        assert encoder is not None  # built by this modality
        grid: Tensor = encoder(units)
        return grid.mean(dim=2)

    def pool(self, model: UniHAR, tokens: Tensor, mask: Tensor | None) -> Tensor:
        clips = tokens.mean(dim=2)
        if model.long_term is not None:
            clips = model.long_term(clips, None if mask is None else ~mask)
        return masked_mean(clips, mask)


@register_modality
class RgbModality(Modality):
    """RGB frames: each frame -> one feature (the unit the engine caches is a frame); the window's
    feature is their mean. Cross-attention sees it as one token, as published."""

    name = "rgb"
    input_name = "images"
    fusion_key = "img"
    section = "image_model"

    @property
    def feature_dim(self) -> int:
        feature_dim = self.config.image_model.feature_dim
        assert feature_dim is not None  # required while image_model is enabled (checked by the config)
        return feature_dim

    def build(self, pretrained_backbone: bool = False) -> dict[str, nn.Module | None]:
        return {
            "image_encoder": ImageEncoder(
                self.feature_dim, self.config.image_model.backbone, pretrained=pretrained_backbone
            )
        }

    def check(self, x: Any, batch: int | None, clips: int | None) -> tuple[int, int]:
        check_float_tensor("images", x)
        expected = "(B, L, T', 3, H, W)" + ("" if batch is None else f" with B={batch}, L={clips}")
        if x.dim() != 6:
            raise InputError(f"images: expected a 6-D tensor {expected}, got shape {tuple(x.shape)}")
        if (batch is not None and tuple(x.shape[:2]) != (batch, clips)) or x.shape[3] != 3 or min(x.shape) < 1:
            raise InputError(
                f"images: expected shape {expected} (matching the pose batch and clip count), got {tuple(x.shape)}"
            )
        check_finite("images", x)
        return int(x.shape[0]), int(x.shape[1])

    def encode(self, model: UniHAR, units: Tensor) -> Tensor:
        encoder = model.image_encoder
        assert encoder is not None  # built by this modality
        features: Tensor = encoder(units)
        return features

    def encode_window(self, model: UniHAR, x: Tensor) -> Tensor:
        b, l, t = x.shape[:3]
        return self.encode(model, x.reshape(b * l * t, *x.shape[3:])).reshape(b, l, t, -1)

    def fusion_tokens(self, model: UniHAR, tokens: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        return self.pool(model, tokens, mask).unsqueeze(1), None


# Inputs a model without their branch ignores instead of refusing: images given to a pose-only model
# (the published API's behaviour; HARPredictor warns).
IGNORED_WHEN_ABSENT = ("rgb",)
# Attributes of the published layout that exist (as None) on models without that part.
_PUBLISHED_PARTS = ("short_seq_model", "long_term", "classifier_pose", "image_encoder", "fusion")


class UniHAR(nn.Module):
    """The full Uni-HAR network, sized from a validated config: one encoder per modality, and a fusion
    head when there are several (see :mod:`unihar.models.modalities`)."""

    # The parts of the published layout (``_PUBLISHED_PARTS``): None where the config has no such branch.
    # Other modalities' modules (``imu_encoder``...) are set by their ``build``.
    short_seq_model: PoseFormerFactorized | None
    long_term: LongTermEncoder | None
    classifier_pose: nn.Linear | None
    image_encoder: ImageEncoder | None
    fusion: ConcatFusion | CrossAttentionFusion | None

    def __init__(
        self,
        config: ModelConfig | Mapping[str, Any],
        labels: list[str] | None = None,
        pretrained_backbone: bool = False,
    ) -> None:
        super().__init__()
        self.config = cfg = ModelConfig.from_dict(config)
        num_classes = cfg.classifier.num_classes
        if labels is not None and len(labels) != num_classes:
            raise InputError(f"got {len(labels)} labels for a model with classifier.num_classes={num_classes}")
        # Every model has names for its classes: the checkpoint's, or class_0.. when it has none.
        self.labels: list[str] = list(labels) if labels is not None else [f"class_{i}" for i in range(num_classes)]
        for name in _PUBLISHED_PARTS:
            setattr(self, name, None)
        self._modalities = {modality.name: modality for modality in modalities_of(cfg)}
        for modality in self._modalities.values():
            for attribute, module in modality.build(pretrained_backbone).items():
                setattr(self, attribute, module)
        if len(self._modalities) > 1:
            self.fusion = self._build_fusion()

    def _build_fusion(self) -> ConcatFusion | CrossAttentionFusion:
        fusion = self.config.fusion_model
        dims = {m.fusion_key: m.feature_dim for m in self._modalities.values()}
        missing = bool(fusion.missing_embeddings)
        if fusion.mode == "concat":
            assert fusion.output_dim is not None  # required with several modalities (checked by the config)
            return ConcatFusion(dims, fusion.output_dim, self.num_classes, missing)
        first = next(iter(self._modalities.values()))
        return CrossAttentionFusion(first.feature_dim, dims, self.num_classes, missing)

    # ------------------------------------------------------------------ properties
    @property
    def modalities(self) -> list[str]:
        """The modalities this model reads, in order (``["skeleton"]``, ``["skeleton", "rgb"]``,
        ``["skeleton", "imu"]``...)."""
        return list(self._modalities)

    @property
    def num_classes(self) -> int:
        return self.config.classifier.num_classes

    @property
    def has_image_branch(self) -> bool:
        return "rgb" in self._modalities

    @property
    def preprocessing(self) -> PreprocessConfig:
        """How this model's input is made (layout, clips, window length, image size...): the model's
        half of the input contract, stored in its ``config.json`` (like timm's ``pretrained_cfg``)."""
        return self.config.preprocessing

    @property
    def temperature(self) -> float:
        """Softmax temperature fitted on held-out data (1.0 when the model was not calibrated)."""
        return self.config.classifier.temperature

    # ------------------------------------------------------------------ input checks
    def check_inputs(self, pose: Any = None, images: Any = None, segment_mask: Any = None, **signals: Any) -> None:
        """Raise :class:`InputError` naming the expected and the given shape, before any compute.

        Reads only ``self.config`` (:func:`check_model_inputs`), so other backends (ONNX) reuse it.
        """
        check_model_inputs(self.config, pose, images, segment_mask, **signals)

    # ------------------------------------------------------------------ encoders (per clip: what streaming caches)
    def _modality(self, name: str) -> Modality:
        if name not in self._modalities:
            raise InputError(f"this model has no {name!r} modality; it reads {self.modalities}")
        return self._modalities[name]

    def encode(self, modality: str, units: Tensor) -> Tensor:
        """One modality's units of input (clips; frames for ``rgb``) -> their tokens ``(N, T, D)``
        (``(N, D)`` for frames)."""
        return self._modality(modality).encode(self, units)

    def encode_clips(self, clips: Tensor) -> Tensor:
        """Pose clips (N, T, J, C) -> per-frame tokens (N, T, D) (the token grid averaged over joints).

        The mean of a clip's frame tokens over T is its clip embedding. Clips are independent, so a
        streaming predictor can encode each clip once and reuse it in every window that contains it.
        """
        return self.encode("skeleton", clips)

    def encode_frames(self, frames: Tensor) -> Tensor:
        """RGB frames (N, 3, H, W), ImageNet-normalised -> per-frame image features (N, Di)."""
        if "rgb" not in self._modalities:
            raise InputError("this model is pose-only (image_model.enabled is false): it has no image encoder")
        return self.encode("rgb", frames)

    def forward_features(
        self,
        pose: Tensor | None = None,
        images: Tensor | None = None,
        segment_mask: Tensor | None = None,
        **signals: Tensor,
    ) -> UniHARFeatures:
        """Window inputs (pose (B, L, T, J, C), images (B, L, T', 3, H, W), imu (B, L, S, C), ...) ->
        the tokens of every modality given (what a streaming predictor caches per clip)."""
        tokens = {m.name: m.encode_window(self, x) for m, x in _model_inputs(self.config, pose, images, signals)}
        return UniHARFeatures(tokens, segment_mask)

    # ------------------------------------------------------------------ the head
    def forward_head(self, features: UniHARFeatures) -> Tensor:
        """Features -> logits (B, K): the model's answer from the modalities present.

        ``fusion_model.answer == "product"``: the product of the present modalities' own classifiers
        (log-probabilities summed). Otherwise the learned fusion head (:meth:`fusion_head`).
        """
        if self.config.fusion_model.answer == "product" and len(self._modalities) > 1:
            own = self.auxiliary_logits(features)
            if not own:
                raise InputError(f"no features of any modality this model reads ({self.modalities})")
            return torch.stack([logits.float().log_softmax(dim=-1) for logits in own.values()]).sum(dim=0)
        return self.fusion_head(features)

    def fusion_head(self, features: UniHARFeatures) -> Tensor:
        """Features -> the learned head's logits (B, K), from the modalities present.

        With every modality present, or stand-ins for the missing ones (``fusion_model.missing_embeddings``),
        the fusion head answers; otherwise a lone modality answers through its own classifier (the
        published rule: a pose + image model given no images uses ``classifier_pose``).
        """
        present = [m for m in self._modalities.values() if m.name in features.tokens]
        absent = [m.name for m in self._modalities.values() if m.name not in features.tokens]
        if not present:
            raise InputError(f"no features of any modality this model reads ({self.modalities})")
        mask = features.segment_mask
        if self.fusion is not None and (not absent or self.fusion.has_missing_embeddings):
            return self._fuse(present, features.tokens, mask)
        lone = present[0]
        if not (lone.classifier and len(present) == 1):
            raise InputError(
                f"this model cannot answer without {absent}: it has no stand-in for a missing modality "
                f"(fusion_model.missing_embeddings) and {[m.name for m in present]} alone has no classifier"
            )
        return self._own_logits(lone, features)

    def _fuse(self, present: list[Modality], tokens: dict[str, Tensor], mask: Tensor | None) -> Tensor:
        fusion = self.fusion
        assert fusion is not None  # called only on a model with a fusion head
        available = self._modality_dropout(present, next(iter(tokens.values())))
        logits: Tensor
        if isinstance(fusion, ConcatFusion):
            logits = fusion({m.fusion_key: m.pool(self, tokens[m.name], mask) for m in present}, available)
            return logits
        sequences: dict[str, Tensor] = {}
        masks: dict[str, Tensor | None] = {}
        for m in present:
            sequences[m.fusion_key], masks[m.fusion_key] = m.fusion_tokens(self, tokens[m.name], mask)
        logits = fusion(sequences, masks, available)
        return logits

    def _modality_dropout(self, present: list[Modality], like: Tensor) -> dict[str, Tensor] | None:
        """While training with stand-ins: drop each present modality of each sample with probability
        ``fusion_model.modality_dropout``, never all of a sample's, so the head learns to answer from any subset."""
        rate = self.config.fusion_model.modality_dropout or 0.0
        fusion = self.fusion
        if not (
            self.training and rate > 0 and len(present) > 1 and fusion is not None and fusion.has_missing_embeddings
        ):
            return None
        batch = like.shape[0]
        keep = torch.rand(batch, len(present), device=like.device) >= rate
        nothing = ~keep.any(dim=1)
        rescue = torch.randint(len(present), (batch,), device=like.device)
        keep[nothing, rescue[nothing]] = True
        return {m.fusion_key: keep[:, i] for i, m in enumerate(present)}

    def auxiliary_logits(self, features: UniHARFeatures) -> dict[str, Tensor]:
        """Each present modality's own classifier on its own feature (``classifier_pose``, ``classifier_imu``),
        for a model with several modalities: training adds their losses, so every encoder learns to
        recognise the action by itself instead of leaning on the modality that learns fastest."""
        if len(self._modalities) < 2:
            return {}
        out = {}
        for m in self._modalities.values():
            if m.classifier and getattr(self, m.classifier, None) is not None and m.name in features.tokens:
                out[m.name] = self._own_logits(m, features)
        return out

    def _own_logits(self, modality: Modality, features: UniHARFeatures) -> Tensor:
        """One modality's answer from its own classifier over its own pooled feature."""
        assert modality.classifier is not None  # called only for a modality that has one
        classifier = getattr(self, modality.classifier)
        logits: Tensor = classifier(modality.pool(self, features.tokens[modality.name], features.segment_mask))
        return logits

    def forward(
        self,
        pose: Tensor | None = None,
        images: Tensor | None = None,
        segment_mask: Tensor | None = None,
        return_auxiliary: bool = False,
        **signals: Tensor,
    ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """Logits (B, K) for pose (B, L, T, J, C), optional images (B, L, T', 3, H, W), optional sensor
        clips (``imu=`` (B, L, S, C)) and clip mask (B, L). A modality left out counts as missing.
        ``return_auxiliary`` (training): instead, the logits of every head that has a loss: the learned
        fusion head's (:meth:`fusion_head`) and each modality's own (:meth:`auxiliary_logits`)."""
        if not (
            torch.jit.is_tracing()  # see cpu_inference
            or torch.compiler.is_compiling()
            or torch.onnx.is_in_onnx_export()
        ):
            self.check_inputs(pose, images, segment_mask, **signals)
        features = self.forward_features(pose, images, segment_mask, **signals)
        if return_auxiliary:
            return self.fusion_head(features), self.auxiliary_logits(features)
        return self.forward_head(features)

    def probabilities(self, logits: Tensor) -> Tensor:
        """Calibrated class probabilities from logits: ``softmax(logits / temperature)``, in float32."""
        return F.softmax(logits.float() / self.temperature, dim=-1)

    @torch.no_grad()
    def predict_proba(
        self,
        pose: Tensor | None = None,
        images: Tensor | None = None,
        segment_mask: Tensor | None = None,
        **signals: Tensor,
    ) -> Tensor:
        """Softmax probabilities (B, K): the output is meant to be read as a distribution."""
        return self.probabilities(self(pose, images, segment_mask, **signals))

    # ------------------------------------------------------------------ Hub convention
    def save_pretrained(self, save_directory: str | Path, overwrite: bool = False) -> Path:
        """Write config.json, model.safetensors and class_label.json (see :func:`checkpoint.save_pretrained`)."""
        return checkpoint.save_pretrained(self, save_directory, overwrite=overwrite)

    @classmethod
    def from_pretrained(cls, repo_or_path: str | Path | None = None, revision: str | None = None) -> UniHAR:
        """Build and load a model from a ``save_pretrained`` folder, the published repo layout, or a Hub repo.

        Weights: ``model.safetensors`` if present, else ``pytorch_model.bin``; labels are optional.
        Returned in eval mode, on the CPU.
        """
        config = hub.load_config(repo_or_path, revision)
        model = cls(config)  # checks the config before anything else is read
        if hub.find_first((hub.LABELS_NAME,), repo_or_path, revision) is not None:
            model.labels = hub.labels_to_list(hub.load_labels(repo_or_path, revision), model.num_classes)
        weights = hub.find_first(hub.WEIGHTS_NAMES, repo_or_path, revision)
        if weights is None:
            where = repo_or_path or hub.DEFAULT_REPO_ID
            raise CheckpointError(f"no weights ({' or '.join(hub.WEIGHTS_NAMES)}) found in {where}")
        checkpoint.load_checkpoint(model, weights)
        return model.eval()


def check_model_inputs(
    config: ModelConfig, pose: Any = None, images: Any = None, segment_mask: Any = None, **signals: Any
) -> None:
    """:meth:`UniHAR.check_inputs` for a model of this config, whichever backend runs it."""
    batch = clips = None
    for modality, x in _model_inputs(config, pose, images, signals):
        batch, clips = modality.check(x, batch, clips)
    if batch is None:
        names = ", ".join(m.input_name for m in modalities_of(config))
        raise InputError(f"no input given: this model reads {names}")
    if segment_mask is not None:
        b, l = batch, clips
        if not isinstance(segment_mask, Tensor) or segment_mask.dtype != torch.bool:
            raise InputError(f"segment_mask: expected a bool tensor of shape ({b}, {l}), got {describe(segment_mask)}")
        if tuple(segment_mask.shape) != (b, l):
            raise InputError(f"segment_mask: expected shape ({b}, {l}), got {tuple(segment_mask.shape)}")
        if not bool(segment_mask.any(dim=1).all()):
            raise InputError("segment_mask: every sample needs at least one valid clip (a row of all False was given)")


def _model_inputs(
    config: ModelConfig, pose: Any, images: Any, signals: Mapping[str, Any]
) -> list[tuple[Modality, Any]]:
    """The (modality, input) pairs of the inputs given, in the model's order. An input for a modality
    the model does not read is an error (images excepted, see ``IGNORED_WHEN_ABSENT``)."""
    given = {"pose": pose, "images": images, **signals}
    by_input = {cls.input_name: name for name, cls in MODALITIES.items()}
    mine = {m.name: m for m in modalities_of(config)}
    for key, value in given.items():
        if value is None:
            continue
        if key not in by_input:
            raise InputError(f"unknown input {key!r}; the inputs are {sorted(by_input)}")
        if by_input[key] not in mine and by_input[key] not in IGNORED_WHEN_ABSENT:
            raise InputError(
                f"this model has no {by_input[key]!r} modality (it reads {list(mine)}): remove the {key!r} input"
            )
    return [(m, given[m.input_name]) for m in mine.values() if given.get(m.input_name) is not None]


def build_model(
    config: ModelConfig | Mapping[str, Any], labels: list[str] | None = None, pretrained_backbone: bool = False
) -> UniHAR:
    """Build an untrained Uni-HAR from a config dict. Never touches the network unless
    ``pretrained_backbone=True`` asks for torchvision's ImageNet weights."""
    return UniHAR(config, labels=labels, pretrained_backbone=pretrained_backbone)
