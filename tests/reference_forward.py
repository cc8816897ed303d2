"""An independent, functional reading of the forward pass in docs/checkpoint-format.md.

It uses only the state dict and torch.nn.functional (attention written out by hand, no nn.Module of
the package), so a wiring mistake in ``unihar.models`` (wrong axis, wrong order, a missing residual)
shows up as a numerical difference against it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _ln(x: Tensor, sd: dict, prefix: str) -> Tensor:
    return F.layer_norm(x, x.shape[-1:], sd[f"{prefix}.weight"], sd[f"{prefix}.bias"], eps=1e-5)


def _linear(x: Tensor, sd: dict, prefix: str) -> Tensor:
    return x @ sd[f"{prefix}.weight"].T + sd[f"{prefix}.bias"]


def _mha(x: Tensor, sd: dict, prefix: str, heads: int, key_padding: Tensor | None = None) -> Tensor:
    n, s, d = x.shape
    qkv = x @ sd[f"{prefix}.in_proj_weight"].T + sd[f"{prefix}.in_proj_bias"]
    q, k, v = (t.reshape(n, s, heads, d // heads).transpose(1, 2) for t in qkv.split(d, dim=-1))
    scores = q @ k.transpose(-1, -2) / math.sqrt(d // heads)
    if key_padding is not None:
        scores = scores.masked_fill(key_padding[:, None, None, :], float("-inf"))
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, s, d)
    return _linear(out, sd, f"{prefix}.out_proj")


def _pre_ln_block(s: Tensor, sd: dict, prefix: str, heads: int) -> Tensor:
    s = s + _mha(_ln(s, sd, f"{prefix}.ln1"), sd, f"{prefix}.attn", heads)
    h = F.gelu(_linear(_ln(s, sd, f"{prefix}.ln2"), sd, f"{prefix}.mlp.0"))
    return s + _linear(h, sd, f"{prefix}.mlp.3")


def _post_ln_encoder_layer(x: Tensor, sd: dict, prefix: str, heads: int, key_padding: Tensor | None = None) -> Tensor:
    x = _ln(x + _mha(x, sd, f"{prefix}.self_attn", heads, key_padding), sd, f"{prefix}.norm1")
    return _ln(x + _linear(F.relu(_linear(x, sd, f"{prefix}.linear1")), sd, f"{prefix}.linear2"), sd, f"{prefix}.norm2")


def _sinusoidal(max_len: int, dim: int) -> Tensor:
    pe = torch.zeros(max_len, dim)
    for t in range(max_len):
        for i in range(0, dim, 2):
            angle = t / (10000 ** (i / dim))
            pe[t, i] = math.sin(angle)
            pe[t, i + 1] = math.cos(angle)
    return pe


def _pose_tokens(x: Tensor, sd: dict, cfg: dict) -> Tensor:
    """One segment (B, T, J, C) -> token grid (B, T, J, D)."""
    pm = cfg["pose_model"]
    if x.shape[-1] == 2:
        x = torch.cat([x, torch.zeros_like(x[..., :1])], -1)
    x = x[..., :3].clone()
    x[..., 2] = torch.tanh(x[..., 2])
    b, t, j, _ = x.shape
    tok = _linear(x, sd, "short_seq_model.embed") + sd["short_seq_model.joint_type_emb.weight"][None, None]
    if pm.get("use_sinusoidal_pe", False):
        tok = tok + _sinusoidal(pm["max_seq_len"], pm["hidden_dim"])[:t][None, :, None, :]
    else:
        tok = tok + sd["short_seq_model.temporal_pe_param"][:, :t]
    d = tok.shape[-1]
    for i in range(pm["layers"]):
        if pm.get("enable_temporal_attention", True):
            for jj in range(j):  # one joint at a time, attention across frames
                tok[:, :, jj] = _pre_ln_block(tok[:, :, jj].clone(), sd, f"short_seq_model.blocks.{i}.0", pm["heads"])
        for tt in range(t):  # one frame at a time, attention across joints
            tok[:, tt] = _pre_ln_block(tok[:, tt].clone(), sd, f"short_seq_model.blocks.{i}.1", pm["heads"])
    assert tok.shape[-1] == d
    return tok


def _resnet_trunk(frames: Tensor, sd: dict, backbone: str) -> Tensor:
    """torchvision ResNet children[:-1], evaluated from the state dict (BatchNorm in eval mode)."""
    p = "image_encoder.backbone"

    def bn(x: Tensor, name: str) -> Tensor:
        return F.batch_norm(
            x,
            sd[f"{name}.running_mean"],
            sd[f"{name}.running_var"],
            sd[f"{name}.weight"],
            sd[f"{name}.bias"],
            False,
            0.0,
            1e-5,
        )

    x = F.relu(bn(F.conv2d(frames, sd[f"{p}.0.weight"], stride=2, padding=3), f"{p}.1"))
    x = F.max_pool2d(x, 3, 2, 1)
    bottleneck = backbone == "resnet50"
    for stage, blocks in zip(range(4, 8), (3, 4, 6, 3) if bottleneck else (2, 2, 2, 2)):
        for blk in range(blocks):
            q = f"{p}.{stage}.{blk}"
            stride = 2 if (blk == 0 and stage > 4) else 1
            identity = x
            if f"{q}.downsample.0.weight" in sd:
                identity = bn(F.conv2d(x, sd[f"{q}.downsample.0.weight"], stride=stride), f"{q}.downsample.1")
            if bottleneck:
                y = F.relu(bn(F.conv2d(x, sd[f"{q}.conv1.weight"]), f"{q}.bn1"))
                y = F.relu(bn(F.conv2d(y, sd[f"{q}.conv2.weight"], stride=stride, padding=1), f"{q}.bn2"))
                y = bn(F.conv2d(y, sd[f"{q}.conv3.weight"]), f"{q}.bn3")
            else:
                y = F.relu(bn(F.conv2d(x, sd[f"{q}.conv1.weight"], stride=stride, padding=1), f"{q}.bn1"))
                y = bn(F.conv2d(y, sd[f"{q}.conv2.weight"], padding=1), f"{q}.bn2")
            x = F.relu(y + identity)
    return x.mean(dim=(2, 3))


def reference_logits(sd: dict, cfg: dict, pose: Tensor, images: Tensor | None = None) -> Tensor:
    """Logits (B, K) following the spec step by step, one segment at a time."""
    b, l = pose.shape[:2]
    grids = [_pose_tokens(pose[:, i], sd, cfg) for i in range(l)]  # each (B, T, J, D)
    seg = torch.stack([g.mean(dim=(1, 2)) for g in grids], dim=1)  # (B, L, D)
    lt = cfg["long_term_model"]
    if lt["enabled"]:
        for k in range(lt["layers"]):
            seg = _post_ln_encoder_layer(seg, sd, f"long_term.encoder.layers.{k}", lt["heads"])
    pose_feature = seg.mean(dim=1)
    if images is None or not cfg["image_model"]["enabled"]:
        return _linear(pose_feature, sd, "classifier_pose")
    per_segment = []
    for i in range(l):
        frames = images[:, i]
        tt = frames.shape[1]
        feats = _linear(
            _resnet_trunk(
                frames.reshape(b * tt, *frames.shape[2:]), sd, cfg["image_model"].get("backbone", "resnet18")
            ),
            sd,
            "image_encoder.fc",
        )
        per_segment.append(feats.reshape(b, tt, -1).mean(dim=1))
    image_feature = torch.stack(per_segment, dim=1).mean(dim=1)
    if cfg["fusion_model"]["mode"] == "concat":
        z = _ln(torch.cat([pose_feature, image_feature], -1), sd, "fusion.ln")
        z = _linear(F.gelu(_linear(z, sd, "fusion.mlp.0")), sd, "fusion.mlp.2")
        return _linear(z, sd, "fusion.classifier")
    tokens = torch.cat(grids, dim=1).mean(dim=2)  # (B, L*T, D)
    tokens = _linear(tokens, sd, "fusion.pose_proj")
    tokens = torch.cat([tokens, _linear(image_feature, sd, "fusion.img_proj")[:, None]], dim=1)
    tokens = _post_ln_encoder_layer(tokens, sd, "fusion.cross.layers.0", 4)[:, :-1]
    z = _ln(tokens.mean(dim=1), sd, "fusion.ln")
    z = _linear(F.gelu(_linear(z, sd, "fusion.mlp.0")), sd, "fusion.mlp.2")
    return _linear(z, sd, "fusion.classifier")
