"""Checkpoint files: reading them onto a :class:`UniHAR` strictly, and writing ``save_pretrained`` folders.

The model module builds on this one, so the functions here take the model (a
:class:`~unihar.models.UniHAR`: its ``config``, ``labels`` and branches) without importing it at run time.

A checkpoint is a ``pytorch_model.bin`` (``torch.save`` of a state dict, plain or wrapped as
``{"state_dict": ...}``) or a ``model.safetensors``. :func:`checkpoint_filter_fn` maps the foreign
wrappings we know of onto the model's key names; :func:`load_checkpoint` then refuses any checkpoint
that does not match the model its config describes, listing every missing key, unexpected key and
shape mismatch, instead of loading part of it and returning wrong numbers.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as load_safetensors
from safetensors.torch import save_file as save_safetensors
from torch import Tensor, nn

from unihar.errors import CheckpointError, UniHARError
from unihar.hub import CONFIG_NAME, LABELS_NAME, SAFETENSORS_NAME

__all__ = ["read_state_dict", "checkpoint_filter_fn", "load_checkpoint", "save_pretrained"]

# load_checkpoint hands back the model it was given. The model module builds on this one, so the model is
# typed as a module here (its UniHAR-specific parts are read as attributes).
Model = TypeVar("Model", bound=nn.Module)

# Prefixes that training wrappers add to every key: DistributedDataParallel, torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Which config key decides whether a family of weights exists, to explain a mismatch.
_KEY_HINTS = {
    "long_term.": "long_term_model.enabled",
    "image_encoder.": "image_model.enabled / image_model.backbone / image_model.feature_dim",
    "fusion.": "image_model.enabled / fusion_model.mode / fusion_model.output_dim",
    "short_seq_model.temporal_pe": "pose_model.use_sinusoidal_pe / pose_model.max_seq_len",
    "short_seq_model.blocks.": "pose_model.layers / pose_model.hidden_dim",
    "short_seq_model.joint_type_emb": "pose_model.joints",
    "classifier_pose.": "classifier.num_classes",
}


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Load the tensors of a ``.safetensors`` or ``torch.save`` file onto the CPU (no pickled code runs)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            return load_safetensors(str(path), device="cpu")
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {str(err).splitlines()[0]}") from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, expected a state dict of tensors")
    return dict(obj)


def checkpoint_filter_fn(state_dict: Mapping[str, object]) -> dict[str, Tensor]:
    """Unwrap ``{"state_dict": ...}`` / ``{"model": ...}`` and strip DDP / torch.compile key prefixes."""
    for wrapper in ("state_dict", "model"):
        inner = state_dict.get(wrapper)
        if isinstance(inner, Mapping) and all(isinstance(v, Tensor) for v in inner.values()):
            state_dict = inner
            break
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if not isinstance(value, Tensor):
            raise CheckpointError(f"checkpoint entry '{key}' is a {type(value).__name__}, expected a tensor")
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def _adapt_aux_head(model: Any, state_dict: Mapping[str, Tensor]) -> None:
    """The auxiliary pose head is unused in the forward pass and its width is whatever the checkpoint
    holds (6 in the published layout): resize ours to match instead of refusing the checkpoint."""
    weight = state_dict.get("short_seq_model.head.weight")
    if weight is None or model.short_seq_model is None:  # no skeleton branch on one side or the other
        return
    head = model.short_seq_model.head
    if weight.dim() != 2 or weight.shape[1] != head.in_features or weight.shape[0] == head.out_features:
        return
    model.short_seq_model.head = nn.Linear(head.in_features, weight.shape[0])
    model.config.pose_model.aux_head_dim = int(weight.shape[0])


def _hint(keys: list[str]) -> str:
    hints = sorted({hint for key in keys for prefix, hint in _KEY_HINTS.items() if key.startswith(prefix)})
    return f" (check {'; '.join(hints)})" if hints else ""


def _listing(title: str, keys: list[str], limit: int = 12) -> str:
    """All keys when few; otherwise one entry per module (``image_encoder.backbone.* (120 keys)``)."""
    if len(keys) <= limit:
        return f"\n  {title} ({len(keys)}): {', '.join(keys)}"
    groups: dict[str, int] = {}
    for key in keys:
        group = ".".join(key.split(":")[0].split(".")[:2])
        groups[group] = groups.get(group, 0) + 1
    shown = ", ".join(f"{group}.* ({n} keys)" for group, n in groups.items())
    return f"\n  {title} ({len(keys)}): {shown}; first: {', '.join(keys[:3])}"


def load_checkpoint(model: Model, checkpoint: str | Path | Mapping[str, Tensor]) -> Model:
    """Load a checkpoint file or state dict into ``model`` with strict key and shape matching.

    Raises :class:`CheckpointError` listing missing keys, unexpected keys and shape mismatches.
    """
    source = str(checkpoint) if isinstance(checkpoint, (str, Path)) else "the given state dict"
    raw = read_state_dict(checkpoint) if isinstance(checkpoint, (str, Path)) else checkpoint
    state_dict = checkpoint_filter_fn(raw)
    _adapt_aux_head(model, state_dict)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or mismatched:
        message = f"checkpoint {source} does not match its config" + _hint(
            missing + unexpected + [m.split(":")[0] for m in mismatched]
        )
        if missing:
            message += _listing("missing keys", missing)
        if unexpected:
            message += _listing("unexpected keys", unexpected)
        if mismatched:
            message += _listing("shape mismatches", mismatched)
        raise CheckpointError(message)
    model.load_state_dict(state_dict, strict=True)
    return model


def save_pretrained(model: Any, save_directory: str | Path, overwrite: bool = False) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``class_label.json`` (the Hugging Face layout).

    Refuses to replace existing files unless ``overwrite=True``.
    """
    out = Path(save_directory)
    targets = [out / CONFIG_NAME, out / SAFETENSORS_NAME, out / LABELS_NAME]
    existing = [p.name for p in targets if p.exists()]
    if existing and not overwrite:
        raise UniHARError(
            f"{out} already holds {', '.join(existing)}; pass overwrite=True (or --overwrite) to replace them"
        )
    out.mkdir(parents=True, exist_ok=True)
    # safetensors refuses shared or non-contiguous storage: give each tensor its own contiguous copy.
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_safetensors(tensors, str(out / SAFETENSORS_NAME), metadata={"format": "pt"})
    _readable_like_the_config(out / SAFETENSORS_NAME)
    (out / CONFIG_NAME).write_text(json.dumps(model.config.to_dict(), indent=2) + "\n", encoding="utf-8")
    labels = {str(i): name for i, name in enumerate(model.labels)}
    (out / LABELS_NAME).write_text(json.dumps(labels, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def _readable_like_the_config(path: Path) -> None:
    """safetensors writes its file owner-only (0600); give it the permissions an ordinary file gets (umask)."""
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)
