"""``HARPredictor``: the published inference API, on tensors.

    predictor = HARPredictor(weight_path=download_model(), config=load_config())
    topk_ids, topk_probs = predictor.topk(pose, img, k=5)     # each (B, k)
    filtered = predictor.threshold(pose, img, thr=0.1)         # (B, K), entries <= thr set to 0

Inputs are checked before any compute; a bad shape raises ``ValueError`` naming what was expected.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from unihar.config import read_config
from unihar.errors import InputError
from unihar.inference.device import place_model, resolve_device
from unihar.models import UniHAR, build_model, load_checkpoint


def as_tensor(name: str, value: Any) -> Tensor:
    """Accept torch tensors and numpy arrays; anything else is refused with its type."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind != "f":
            raise InputError(
                f"{name}: expected a floating-point array, got dtype {value.dtype} with shape {value.shape}"
            )
        return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    raise InputError(f"{name}: expected a torch.Tensor or numpy array, got {type(value).__name__}")


class HARPredictor:
    """Loads a checkpoint onto the model its config describes and reads its output as a distribution.

    ``device``: where the model runs; None: CUDA if available, else the CPU (a model given to
    :meth:`from_model` that is already on an accelerator stays there; see :func:`~unihar.inference.device.place_model`).
    """

    def __init__(
        self,
        weight_path: str | Path,
        config: Mapping[str, Any] | str | Path,
        device: str | torch.device | None = None,
        labels: list[str] | None = None,
    ) -> None:
        model_config = read_config(config) if isinstance(config, (str, Path)) else config
        resolve_device(device)  # a bad device is refused before the checkpoint is read
        model = build_model(model_config, labels=labels)
        load_checkpoint(model, weight_path)
        self.model: UniHAR = model.eval()
        self.device = place_model(self.model, device)

    @classmethod
    def from_model(cls, model: UniHAR, device: str | torch.device | None = None) -> HARPredictor:
        """Wrap an already loaded model (e.g. from :func:`unihar.hub.from_pretrained`)."""
        predictor = cls.__new__(cls)
        predictor.model = model.eval()
        predictor.device = place_model(predictor.model, device)
        return predictor

    @classmethod
    def from_pretrained(
        cls,
        repo_or_path: str | Path | None = None,
        device: str | torch.device | None = None,
        revision: str | None = None,
    ) -> HARPredictor:
        return cls.from_model(UniHAR.from_pretrained(repo_or_path, revision=revision), device=device)

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    @property
    def labels(self) -> list[str] | None:
        return self.model.labels

    @torch.inference_mode()
    def predict_proba(self, pose: Any, img: Any = None, segment_mask: Any = None) -> Tensor:
        """Class probabilities (B, K) on the CPU. ``img=None`` runs the pose-only path."""
        pose = as_tensor("pose", pose)
        img = None if img is None else as_tensor("img", img)
        if img is not None and not self.model.has_image_branch:
            warnings.warn(
                "this model is pose-only (image_model.enabled is false): the images are ignored", stacklevel=2
            )
            img = None
        self.model.check_inputs(pose, img, segment_mask)
        to = dict(device=self.device, dtype=torch.float32)
        pose = pose.to(**to)
        img = None if img is None else img.to(**to)
        segment_mask = None if segment_mask is None else segment_mask.to(self.device)
        logits = self.model.forward_head(self.model.forward_features(pose, img, segment_mask))
        return self.model.probabilities(logits).cpu()

    def topk(self, pose: Any, img: Any = None, k: int = 5) -> tuple[Tensor, Tensor]:
        """The k most probable classes: ``(ids, probs)``, each (B, k), most probable first."""
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= self.num_classes:
            raise InputError(f"k: expected an integer in [1, {self.num_classes}], got {k!r}")
        probs, ids = self.predict_proba(pose, img).topk(k, dim=-1)
        return ids, probs

    def threshold(self, pose: Any, img: Any = None, thr: float = 0.1) -> Tensor:
        """Probabilities (B, K) with every entry <= ``thr`` set to 0."""
        if not isinstance(thr, (int, float)) or isinstance(thr, bool) or not 0.0 <= thr <= 1.0:
            raise InputError(f"thr: expected a number in [0, 1], got {thr!r}")
        probs = self.predict_proba(pose, img)
        return probs.masked_fill(probs <= thr, 0.0)
