"""Evaluate a model on whole sequences, the way inference sees a video.

Each sequence is cut into the same sliding windows :mod:`unihar.inference` cuts a video into
(:func:`unihar.data.datasets.sequence_windows`); the sequence's prediction is the mean of its windows'
softmax probabilities. Metrics: top-1, top-5, mean per-class accuracy, per-class accuracy and the
confusion matrix (rows = true class, columns = predicted).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from unihar.data.datasets import SkeletonDataset, window_spans
from unihar.data.preprocess import PreprocessConfig, image_window, pose_window
from unihar.errors import InputError
from unihar.inference.engine import run_sequences

__all__ = ["EvalResult", "predict_sequences", "evaluate", "compute_metrics", "plot_confusion", "align_labels"]


@dataclass
class EvalResult:
    """Per-sequence probabilities and the metrics derived from them."""

    probs: np.ndarray        # (N, K)
    labels: np.ndarray       # (N,)
    classes: list[str]

    @property
    def n(self) -> int:
        return int(self.labels.shape[0])

    @property
    def predictions(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    def topk(self, k: int) -> float:
        k = min(k, self.probs.shape[1])
        top = np.argsort(-self.probs, axis=1)[:, :k]
        return float((top == self.labels[:, None]).any(axis=1).mean()) if self.n else 0.0

    @property
    def confusion(self) -> np.ndarray:
        k = len(self.classes)
        return np.bincount(self.labels * k + self.predictions, minlength=k * k).reshape(k, k)

    @property
    def per_class_accuracy(self) -> np.ndarray:
        """Recall of each class; NaN for a class with no sample."""
        cm = self.confusion
        support = cm.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(support > 0, np.diag(cm) / support, np.nan)

    def metrics(self) -> dict[str, float | int]:
        """``{"n", "top1", "top5", "mean_class_acc"}``: fractions in 0-1 (classes without samples skipped)."""
        per_class = self.per_class_accuracy
        mean_class = float(np.nanmean(per_class)) if np.isfinite(per_class).any() else 0.0
        return {"n": self.n, "top1": self.topk(1), "top5": self.topk(5), "mean_class_acc": mean_class}


@torch.no_grad()
def predict_sequences(
    model: torch.nn.Module,
    data: SkeletonDataset,
    prep: PreprocessConfig,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    progress=None,
) -> np.ndarray:
    """Mean window probabilities ``(N, K)`` for every sequence of ``data`` (already in the model's layout).

    A model with an image branch also gets each window's RGB frames (video datasets only), one
    window per forward pass to bound memory.
    """
    model.eval()
    use_images = model.has_image_branch
    if use_images and data.videos is None:
        raise InputError(f"{data.name}: this model also reads RGB frames; evaluate it on haa500 or video-folder data")
    if not use_images:  # the windowing engine, exactly as a video is cut at inference
        windows = run_sequences(model, data.sequences, data.fps, pose_layout=data.layout, batch_windows=batch_size, device=device)
        if progress is not None:
            progress(len(data), len(data))
        return np.stack([np.mean([w.probs for w in seq], axis=0) for seq in windows])
    spans = [(i, s, e) for i, seq in enumerate(data.sequences) for s, e in window_spans(len(seq), data.fps, prep)]
    step = 1 if use_images else batch_size
    probs = []
    for first in range(0, len(spans), step):
        batch = spans[first : first + step]
        pose = torch.from_numpy(np.stack([pose_window(data.sequences[i][s:e], prep) for i, s, e in batch])).to(device)
        images = None
        if use_images:
            images = torch.stack([image_window(data.video_frames(i, s, e), prep) for i, s, e in batch]).to(device)
        probs.append(model.probabilities(model(pose, images=images)).cpu().numpy())
        if progress is not None:
            progress(min(first + step, len(spans)), len(spans))
    window_probs = np.concatenate(probs)
    owner_idx = np.asarray([i for i, _, _ in spans])
    sums = np.zeros((len(data), window_probs.shape[1]))
    np.add.at(sums, owner_idx, window_probs)
    return sums / np.bincount(owner_idx, minlength=len(data))[:, None]


def align_labels(data: SkeletonDataset, model_labels: list[str] | None) -> SkeletonDataset:
    """Re-index ``data``'s labels into the model's class list (by name), so a model can be scored on any
    dataset whose classes it knows. Without model labels the class count must simply match."""
    if model_labels is None or list(model_labels) == list(data.classes):
        return data
    index = {name: i for i, name in enumerate(model_labels)}
    unknown = [c for c in data.classes if c not in index]
    present = {data.classes[i] for i in np.unique(data.labels)}
    unknown = [c for c in unknown if c in present]
    if unknown:
        raise InputError(
            f"the model does not know the classes {unknown[:5]} of {data.name}; its classes are {list(model_labels)[:20]}"
        )
    remap = np.asarray([index.get(c, -1) for c in data.classes])
    return SkeletonDataset(data.sequences, remap[data.labels], list(model_labels), data.layout, data.fps,
                           data.names, data.name, data.videos)


def evaluate(model, data: SkeletonDataset, prep: PreprocessConfig, batch_size: int = 64, device="cpu", progress=None) -> EvalResult:
    """Score ``model`` on every sequence of ``data`` (converted to the model's layout, labels aligned by name)."""
    data = align_labels(data.to_layout(prep.layout), model.labels)
    probs = predict_sequences(model, data, prep, batch_size, device, progress)
    return EvalResult(probs, data.labels.copy(), list(data.classes))


def compute_metrics(probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict[str, float | int]:
    return EvalResult(np.asarray(probs), np.asarray(labels), classes).metrics()


def plot_confusion(result: EvalResult, path: str | Path, title: str = "") -> Path:
    """Save the row-normalised confusion matrix as a PNG (counts written in the cells)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = result.confusion
    k = len(result.classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.nan_to_num(cm / cm.sum(axis=1, keepdims=True))
    size = max(5.0, 0.45 * k + 2.5)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), result.classes, rotation=90, fontsize=8)
    ax.set_yticks(range(k), result.classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    m = result.metrics()
    ax.set_title(title or f"n={m['n']}  top-1={m['top1']:.3f}  mean class acc={m['mean_class_acc']:.3f}", fontsize=9)
    if k <= 40:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=6,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
