"""Uni-HAR: a factorized space-time pose transformer, optionally fused with a ResNet over RGB frames.

The module names and the forward pass follow the published checkpoint layout (see the project's
``docs/checkpoint-format.md``) to the letter, so a published ``pytorch_model.bin`` loads with strict
key matching and gives the same numbers. Read top to bottom:

1. :class:`PoseFormerFactorized` encodes one clip of T frames x J joints into a (T, J, D) token grid:
   per-joint embedding + joint-type embedding + temporal position embedding, then N x (attention
   across frames for each joint, attention across joints for each frame).
2. :class:`UniHAR` runs it on the L clips of a window, optionally a long-term transformer over the L
   clip embeddings, and averages over the valid clips -> the pose feature.
3. :class:`ImageEncoder` (torchvision ResNet trunk + linear) turns each RGB frame into a feature,
   averaged over time and clips -> the image feature.
4. :class:`ConcatFusion` or :class:`CrossAttentionFusion` combines both; without images the pose
   feature goes through ``classifier_pose``.

``forward_features`` returns the per-frame pose tokens and per-frame image features (what a streaming
predictor caches); ``forward_head`` turns them into logits.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from unihar import hub
from unihar.config import BACKBONES, ModelConfig, PreprocessConfig
from unihar.errors import CheckpointError, InputError
from unihar.models import checkpoint
from unihar.models.base import UniHARFeatures

# Feed-forward width of torch.nn.TransformerEncoderLayer's default, used by the published long-term
# encoder and the cross-attention fusion layer.
ENCODER_FF_DIM = 2048
XATTN_HEADS = 4
XATTN_DROPOUT = 0.1


class AttentionBlock(nn.Module):
    """Pre-LayerNorm transformer block over a batch of sequences (N, S, D).

    Used both as the temporal block (sequences = one joint over frames) and the spatial block
    (sequences = one frame over joints): the factorization is only in how tokens are grouped.
    """

    def __init__(self, dim: int, heads: int, mlp_dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(mlp_dropout), nn.Linear(4 * dim, dim)
        )

    def forward(self, s: Tensor) -> Tensor:
        h = self.ln1(s)
        s = s + self.attn(h, h, h, need_weights=False)[0]
        return s + self.mlp(self.ln2(s))


class SinusoidalPositionEmbedding(nn.Module):
    """Fixed sin/cos table over time, shape (Tm, 1, D) so it broadcasts over joints."""

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
        # blocks[i] = (temporal block, spatial block); the temporal one is kept (and loaded) even when
        # temporal attention is switched off, as in the published layout.
        self.blocks = nn.ModuleList(
            nn.ModuleList([AttentionBlock(hidden_dim, heads, mlp_dropout), AttentionBlock(hidden_dim, heads, mlp_dropout)])
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
            return self.temporal_pe(num_frames)  # (T, 1, D)
        return self.temporal_pe_param[:, :num_frames]  # (1, T, 1, D)

    def forward(self, x: Tensor) -> Tensor:
        n, t, j, _ = x.shape
        tokens = self.embed(self.prepare_input(x)) + self.joint_type_emb.weight + self.position_embedding(t)
        d = tokens.shape[-1]
        for temporal, spatial in self.blocks:
            if self.enable_temporal_attention:
                s = tokens.transpose(1, 2).reshape(n * j, t, d)  # one sequence per joint, over frames
                tokens = temporal(s).reshape(n, j, t, d).transpose(1, 2)
            s = tokens.reshape(n * t, j, d)  # one sequence per frame, over joints
            tokens = spatial(s).reshape(n, t, j, d)
        return tokens


class LongTermEncoder(nn.Module):
    """Post-norm transformer encoder over the L clip embeddings of a window (no position encoding)."""

    def __init__(self, dim: int, heads: int, layers: int, dropout: float) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(dim, heads, ENCODER_FF_DIM, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, clips: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        return self.encoder(clips, src_key_padding_mask=padding_mask)


class ImageEncoder(nn.Module):
    """torchvision ResNet trunk (children without the final fc) + a linear projection to ``feature_dim``."""

    def __init__(self, feature_dim: int, backbone: str = "resnet18", pretrained: bool = False) -> None:
        super().__init__()
        # weights=None builds the architecture only; ImageNet weights are fetched only when asked for.
        weights = "DEFAULT" if pretrained else None
        resnet = getattr(torchvision.models, backbone)(weights=weights)
        self.backbone = nn.Sequential(*list(resnet.children())[:-1])
        self.fc = nn.Linear(BACKBONES[backbone], feature_dim)

    def forward(self, frames: Tensor) -> Tensor:
        """(N, 3, H, W), ImageNet-normalised -> (N, feature_dim)."""
        return self.fc(torch.flatten(self.backbone(frames), 1))


class ConcatFusion(nn.Module):
    """Late fusion: cat(pose feature, image feature) -> LN -> Linear -> GELU -> Linear -> classifier."""

    def __init__(self, pose_dim: int, image_dim: int, output_dim: int, num_classes: int) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(pose_dim + image_dim)
        self.mlp = nn.Sequential(nn.Linear(pose_dim + image_dim, output_dim), nn.GELU(), nn.Linear(output_dim, output_dim))
        self.classifier = nn.Linear(output_dim, num_classes)

    def forward(self, pose_feature: Tensor, image_feature: Tensor) -> Tensor:
        return self.classifier(self.mlp(self.ln(torch.cat([pose_feature, image_feature], dim=-1))))


class CrossAttentionFusion(nn.Module):
    """One encoder layer over the per-frame pose tokens plus one image token, then mean over frames."""

    def __init__(self, pose_dim: int, image_dim: int, num_classes: int) -> None:
        super().__init__()
        self.pose_proj = nn.Linear(pose_dim, pose_dim)
        self.img_proj = nn.Linear(image_dim, pose_dim)
        layer = nn.TransformerEncoderLayer(pose_dim, XATTN_HEADS, ENCODER_FF_DIM, XATTN_DROPOUT, batch_first=True)
        self.cross = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.ln = nn.LayerNorm(pose_dim)
        self.mlp = nn.Sequential(nn.Linear(pose_dim, pose_dim), nn.GELU(), nn.Linear(pose_dim, pose_dim))
        self.classifier = nn.Linear(pose_dim, num_classes)

    def forward(self, frame_tokens: Tensor, image_feature: Tensor, frame_mask: Tensor | None = None) -> Tensor:
        """frame_tokens (B, S, D) (S = L*T, joints already averaged), image_feature (B, Di), frame_mask (B, S)."""
        tokens = torch.cat([self.pose_proj(frame_tokens), self.img_proj(image_feature).unsqueeze(1)], dim=1)
        padding = None
        if frame_mask is not None:
            padding = torch.cat([~frame_mask, frame_mask.new_zeros(frame_mask.shape[0], 1)], dim=1)
        pose_tokens = self.cross(tokens, src_key_padding_mask=padding)[:, :-1]
        return self.classifier(self.mlp(self.ln(masked_mean(pose_tokens, frame_mask))))


def masked_mean(x: Tensor, mask: Tensor | None) -> Tensor:
    """Mean over dim 1 of (B, L, ...), over the entries where mask (B, L) is True."""
    if mask is None:
        return x.mean(dim=1)
    weights = mask.to(x.dtype).reshape(mask.shape + (1,) * (x.dim() - 2))
    return (x * weights).sum(dim=1) / weights.sum(dim=1)


class UniHAR(nn.Module):
    """The full Uni-HAR network, sized from a validated config dict (see :mod:`unihar.config`)."""

    def __init__(
        self, config: ModelConfig | Mapping[str, Any], labels: list[str] | None = None, pretrained_backbone: bool = False
    ) -> None:
        super().__init__()
        self.config = cfg = ModelConfig.from_dict(config)
        num_classes = cfg.classifier.num_classes
        if labels is not None and len(labels) != num_classes:
            raise InputError(f"got {len(labels)} labels for a model with classifier.num_classes={num_classes}")
        # Every model has names for its classes: the checkpoint's, or class_0.. when it has none.
        self.labels: list[str] = list(labels) if labels is not None else [f"class_{i}" for i in range(num_classes)]
        pose_cfg = cfg.pose_model
        dim = pose_cfg.hidden_dim

        self.short_seq_model = PoseFormerFactorized(
            joints=pose_cfg.joints,
            hidden_dim=dim,
            layers=pose_cfg.layers,
            heads=pose_cfg.heads,
            max_seq_len=pose_cfg.max_seq_len,
            mlp_dropout=cfg.regularization.short_term_dropout,
            use_sinusoidal_pe=pose_cfg.use_sinusoidal_pe,
            enable_temporal_attention=pose_cfg.enable_temporal_attention,
            aux_head_dim=pose_cfg.aux_head_dim,
        )
        lt = cfg.long_term_model
        self.long_term = LongTermEncoder(dim, lt.heads, lt.layers, lt.dropout) if lt.enabled else None
        self.classifier_pose = nn.Linear(dim, num_classes)

        self.image_encoder: ImageEncoder | None = None
        self.fusion: nn.Module | None = None
        img = cfg.image_model
        if img.enabled:
            self.image_encoder = ImageEncoder(img.feature_dim, img.backbone, pretrained=pretrained_backbone)
            if cfg.fusion_model.mode == "concat":
                self.fusion = ConcatFusion(dim, img.feature_dim, cfg.fusion_model.output_dim, num_classes)
            else:
                self.fusion = CrossAttentionFusion(dim, img.feature_dim, num_classes)

    # ------------------------------------------------------------------ properties
    @property
    def num_classes(self) -> int:
        return self.config.classifier.num_classes

    @property
    def has_image_branch(self) -> bool:
        return self.image_encoder is not None

    @property
    def prep(self) -> PreprocessConfig:
        """How this model's input is made (layout, clips, window length, image size...): the model's
        half of the input contract, stored in its ``config.json`` (like timm's ``pretrained_cfg``)."""
        return self.config.preprocessing

    @property
    def temperature(self) -> float:
        """Softmax temperature fitted on held-out data (1.0 when the model was not calibrated)."""
        return self.config.classifier.temperature

    # ------------------------------------------------------------------ input checks
    def check_inputs(self, pose: Any, images: Any = None, segment_mask: Any = None) -> None:
        """Raise :class:`InputError` naming the expected and the given shape, before any compute."""
        j, tm = self.config.pose_model.joints, self.config.pose_model.max_seq_len
        expected = f"(B, L, T, J, C) with J={j}, 1 <= T <= {tm}, C >= 2"
        _check_float_tensor("pose", pose)
        if pose.dim() != 5:
            raise InputError(f"pose: expected a 5-D tensor {expected}, got shape {tuple(pose.shape)}")
        b, l, t, jj, c = pose.shape
        if jj != j or not 1 <= t <= tm or c < 2 or b < 1 or l < 1:
            raise InputError(f"pose: expected shape {expected}, got {tuple(pose.shape)}")
        _check_finite("pose", pose)
        if images is not None and self.has_image_branch:
            _check_float_tensor("images", images)
            expected_img = f"(B, L, T', 3, H, W) with B={b}, L={l}"
            if images.dim() != 6:
                raise InputError(f"images: expected a 6-D tensor {expected_img}, got shape {tuple(images.shape)}")
            if images.shape[:2] != pose.shape[:2] or images.shape[3] != 3 or min(images.shape) < 1:
                raise InputError(f"images: expected shape {expected_img} (matching the pose batch and clip count), got {tuple(images.shape)}")
            _check_finite("images", images)
        if segment_mask is not None:
            if not isinstance(segment_mask, Tensor) or segment_mask.dtype != torch.bool:
                raise InputError(f"segment_mask: expected a bool tensor of shape ({b}, {l}), got {_describe(segment_mask)}")
            if tuple(segment_mask.shape) != (b, l):
                raise InputError(f"segment_mask: expected shape ({b}, {l}), got {tuple(segment_mask.shape)}")
            if not bool(segment_mask.any(dim=1).all()):
                raise InputError("segment_mask: every sample needs at least one valid clip (a row of all False was given)")

    # ------------------------------------------------------------------ forward
    def encode_clips(self, clips: Tensor) -> Tensor:
        """Pose clips (N, T, J, C) -> per-frame tokens (N, T, D) (the token grid averaged over joints).

        The mean of a clip's frame tokens over T is its clip embedding. Clips are independent, so a
        streaming predictor can encode each clip once and reuse it in every window that contains it.
        """
        return self.short_seq_model(clips).mean(dim=2)

    def encode_frames(self, frames: Tensor) -> Tensor:
        """RGB frames (N, 3, H, W), ImageNet-normalised -> per-frame image features (N, Di)."""
        if self.image_encoder is None:
            raise InputError("this model is pose-only (image_model.enabled is false): it has no image encoder")
        return self.image_encoder(frames)

    def forward_features(self, pose: Tensor, images: Tensor | None = None, segment_mask: Tensor | None = None) -> UniHARFeatures:
        """Pose (B, L, T, J, C) [+ images (B, L, T', 3, H, W)] -> per-frame pose tokens and image features."""
        b, l, t, j, c = pose.shape
        frame_tokens = self.encode_clips(pose.reshape(b * l, t, j, c)).reshape(b, l, t, -1)  # clips share weights
        image_frames = None
        if images is not None and self.image_encoder is not None:
            tt = images.shape[2]
            image_frames = self.encode_frames(images.reshape(b * l * tt, *images.shape[3:])).reshape(b, l, tt, -1)
        return UniHARFeatures(frame_tokens, image_frames, segment_mask)

    def pose_feature(self, frame_tokens: Tensor, segment_mask: Tensor | None = None) -> Tensor:
        """(B, L, T, D) -> (B, D): clip embeddings, long-term encoder, mean over valid clips."""
        clips = frame_tokens.mean(dim=2)
        if self.long_term is not None:
            clips = self.long_term(clips, None if segment_mask is None else ~segment_mask)
        return masked_mean(clips, segment_mask)

    def forward_head(self, features: UniHARFeatures) -> Tensor:
        """Features -> logits (B, K)."""
        mask = features.segment_mask
        pose_feature = self.pose_feature(features.frame_tokens, mask)
        if features.image_frames is None or self.fusion is None:
            return self.classifier_pose(pose_feature)
        image_feature = masked_mean(features.image_frames.mean(dim=2), mask)
        if isinstance(self.fusion, ConcatFusion):
            return self.fusion(pose_feature, image_feature)
        b, l, t, d = features.frame_tokens.shape
        frame_mask = None if mask is None else mask.unsqueeze(2).expand(b, l, t).reshape(b, l * t)
        return self.fusion(features.frame_tokens.reshape(b, l * t, d), image_feature, frame_mask)

    def forward(self, pose: Tensor, images: Tensor | None = None, segment_mask: Tensor | None = None) -> Tensor:
        """Logits (B, K) for pose (B, L, T, J, C), optional images (B, L, T', 3, H, W) and clip mask (B, L)."""
        if not (torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()):
            self.check_inputs(pose, images, segment_mask)
        return self.forward_head(self.forward_features(pose, images, segment_mask))

    def probabilities(self, logits: Tensor) -> Tensor:
        """Calibrated class probabilities from logits: ``softmax(logits / temperature)``, in float32."""
        return F.softmax(logits.float() / self.temperature, dim=-1)

    @torch.no_grad()
    def predict_proba(self, pose: Tensor, images: Tensor | None = None, segment_mask: Tensor | None = None) -> Tensor:
        """Softmax probabilities (B, K): the output is meant to be read as a distribution."""
        return self.probabilities(self(pose, images, segment_mask))

    # ------------------------------------------------------------------ Hub convention
    def save_pretrained(self, save_directory: str | Path, overwrite: bool = False) -> Path:
        """Write config.json, model.safetensors and class_label.json (see :func:`checkpoint.save_pretrained`)."""
        return checkpoint.save_pretrained(self, save_directory, overwrite=overwrite)

    @classmethod
    def from_pretrained(cls, repo_or_path: str | Path | None = None, revision: str | None = None) -> "UniHAR":
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


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def _check_float_tensor(name: str, value: Any) -> None:
    if not isinstance(value, Tensor):
        raise InputError(f"{name}: expected a torch.Tensor, got {_describe(value)}")
    if not value.is_floating_point():
        raise InputError(f"{name}: expected a floating-point tensor, got {_describe(value)}")


def _check_finite(name: str, value: Tensor) -> None:
    if not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise InputError(f"{name}: expected finite values, got {bad} NaN/inf entries in shape {tuple(value.shape)}")


def build_model(config: Mapping[str, Any], labels: list[str] | None = None, pretrained_backbone: bool = False) -> UniHAR:
    """Build an untrained Uni-HAR from a config dict. Never touches the network unless
    ``pretrained_backbone=True`` asks for torchvision's ImageNet weights."""
    return UniHAR(config, labels=labels, pretrained_backbone=pretrained_backbone)
