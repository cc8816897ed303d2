"""Fusion heads: the features of any set of modalities -> logits.

Both heads take their inputs keyed by each modality's ``fusion_key`` (``pose``, ``img``, ``imu``), in
the model's modality order, and reproduce the published pose + image heads exactly when given those
two (same parameter names: ``fusion.ln``, ``fusion.mlp``, ``fusion.pose_proj``, ``fusion.img_proj``...).

A modality can be missing: not given at all (a sensor that dropped out, a stream without video), or
absent for some samples only (modality dropout while training, ``available``). With
``missing_embeddings`` each modality has a learned stand-in, ``missing_<key>``, in the modality's own
feature width, used wherever its feature is absent; without them (the published layout) every
modality must be given and the model answers with a modality's own classifier instead (see
:meth:`unihar.models.UniHAR.forward_head`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

__all__ = ["ConcatFusion", "CrossAttentionFusion", "masked_mean", "ENCODER_FF_DIM", "XATTN_HEADS", "XATTN_DROPOUT"]

# Feed-forward width of torch.nn.TransformerEncoderLayer's default, used by the published long-term
# encoder and the cross-attention fusion layer.
ENCODER_FF_DIM = 2048
XATTN_HEADS = 4
XATTN_DROPOUT = 0.1


def masked_mean(x: Tensor, mask: Tensor | None) -> Tensor:
    """Mean over dim 1 of (B, L, ...), over the entries where mask (B, L) is True."""
    if mask is None:
        return x.mean(dim=1)
    weights = mask.to(x.dtype).reshape(mask.shape + (1,) * (x.dim() - 2))
    return (x * weights).sum(dim=1) / weights.sum(dim=1)


class _MissingEmbeddings(nn.Module):
    """Holds ``missing_<key>`` parameters (one learned stand-in feature per modality) when asked to."""

    def _add_missing_embeddings(self, dims: Mapping[str, int]) -> None:
        for key, dim in dims.items():
            embedding = nn.Parameter(torch.zeros(dim))
            nn.init.trunc_normal_(embedding, std=0.02)
            self.register_parameter(f"missing_{key}", embedding)

    @property
    def has_missing_embeddings(self) -> bool:
        return any(name.startswith("missing_") for name, _ in self.named_parameters(recurse=False))

    def missing(self, key: str) -> Tensor:
        embedding: Tensor = getattr(self, f"missing_{key}")
        return embedding


class ConcatFusion(_MissingEmbeddings):
    """Late fusion: cat(one feature per modality) -> LN -> Linear -> GELU -> Linear -> classifier."""

    def __init__(
        self, feature_dims: Mapping[str, int], output_dim: int, num_classes: int, missing_embeddings: bool = False
    ) -> None:
        super().__init__()
        self.keys = list(feature_dims)
        width = sum(feature_dims.values())
        self.ln = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, output_dim), nn.GELU(), nn.Linear(output_dim, output_dim))
        self.classifier = nn.Linear(output_dim, num_classes)
        if missing_embeddings:
            self._add_missing_embeddings(feature_dims)

    def forward(self, features: Mapping[str, Tensor], available: Mapping[str, Tensor] | None = None) -> Tensor:
        """features: key -> (B, D_k) for the modalities given; available: key -> (B,) bool, False where a
        given modality is to be treated as missing."""
        batch = next(iter(features.values())).shape[0]
        parts = []
        for key in self.keys:
            if key not in features:
                parts.append(self.missing(key).expand(batch, -1))
                continue
            feature = features[key]
            if available is not None and key in available:
                feature = torch.where(available[key][:, None], feature, self.missing(key))
            parts.append(feature)
        logits: Tensor = self.classifier(self.mlp(self.ln(torch.cat(parts, dim=-1))))
        return logits


class CrossAttentionFusion(_MissingEmbeddings):
    """One encoder layer over the tokens of every modality, then the mean over the first one's tokens.

    Each modality's tokens are projected to the common width by ``<key>_proj`` (the skeleton gives its
    per-frame tokens, the image branch one token, the sensor its per-step tokens). The fused vector is
    the mean of the output tokens of the first modality present (the skeleton's whenever it is there,
    as published); the others reach it through attention. A missing modality with a stand-in adds its
    one ``missing_<key>`` token.
    """

    def __init__(
        self, dim: int, token_dims: Mapping[str, int], num_classes: int, missing_embeddings: bool = False
    ) -> None:
        super().__init__()
        self.keys = list(token_dims)
        for key, token_dim in token_dims.items():
            self.add_module(f"{key}_proj", nn.Linear(token_dim, dim))
        layer = nn.TransformerEncoderLayer(dim, XATTN_HEADS, ENCODER_FF_DIM, XATTN_DROPOUT, batch_first=True)
        self.cross = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.ln = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.classifier = nn.Linear(dim, num_classes)
        if missing_embeddings:
            self._add_missing_embeddings(token_dims)

    def forward(
        self,
        tokens: Mapping[str, Tensor],
        masks: Mapping[str, Tensor | None] | None = None,
        available: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        """tokens: key -> (B, S_k, D_k); masks: key -> (B, S_k) bool (True = a real token) or None;
        available: key -> (B,) bool, False where a given modality is to be treated as missing."""
        masks, available = masks or {}, available or {}
        batch = next(iter(tokens.values())).shape[0]
        parts: list[Tensor] = []
        valid: list[Tensor] = []
        pooled: list[Tensor] = []  # per part: whether it is pooled, (B, S_k) bool
        chosen = None  # (B,) True once a sample's pooled modality is found
        for key in self.keys:
            proj = getattr(self, f"{key}_proj")
            given = key in tokens
            if given:
                seq = tokens[key]
                real = masks.get(key)
                real = torch.ones(seq.shape[:2], dtype=torch.bool, device=seq.device) if real is None else real
                here = available.get(key, torch.ones(batch, dtype=torch.bool, device=seq.device))
                parts.append(proj(seq))
                valid.append(real & here[:, None])
                first = here if chosen is None else here & ~chosen
                pooled.append(real & first[:, None])
                chosen = first if chosen is None else chosen | first
                stand_in = ~here
            else:
                stand_in = None
            if self.has_missing_embeddings and (stand_in is None or (key in available)):
                token = proj(self.missing(key)).expand(batch, 1, -1)
                parts.append(token)
                use = (
                    torch.ones(batch, 1, dtype=torch.bool, device=token.device)
                    if stand_in is None
                    else stand_in[:, None]
                )
                valid.append(use)
                pooled.append(torch.zeros_like(use))
        x = torch.cat(parts, dim=1)
        is_valid = torch.cat(valid, dim=1)
        weights = torch.cat(pooled, dim=1)
        # Decided from what was given, not from the values, so the graph exports with one shape of code.
        masked = any(masks.get(key) is not None for key in tokens) or bool(available)
        padding = ~is_valid if masked else None
        out = self.cross(x, src_key_padding_mask=padding)
        logits: Tensor = self.classifier(self.mlp(self.ln(masked_mean(out, weights))))
        return logits
