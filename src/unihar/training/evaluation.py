"""Evaluate a model on whole sequences, the way inference sees a video.

Every sequence goes through the windowing engine (:mod:`unihar.inference.engine`) as one track, so it
is cut into exactly the windows ``unihar predict`` would cut a video of it into; the sequence's
prediction is the mean of its windows' probabilities. Image models get the RGB frames behind each
window, decoded as the engine asks for them and resized at once (memory stays bounded whatever the
video's length). 3D datasets are seen through their fixed recording camera (frontal).

Labels are matched by name: a dataset whose class names are not the model's is relabelled through the
taxonomy (:mod:`unihar.data.taxonomy`), so a model trained on a mixture can be scored on any of its
datasets. A *negative* label (UR Fall's ``not_fall``: "none of ``fall``") is right when the prediction
is none of the classes it rules out; those sequences are reported apart from top-1.

Metrics: top-1, top-5, mean per-class accuracy, expected calibration error (15 equal-width bins on the
top-1 probability), per-class accuracy and the confusion matrix (rows = true class, columns = predicted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unihar.config import PreprocessConfig
from unihar.data.datasets import SkeletonDataset
from unihar.data.layouts import KeypointLayout
from unihar.data.preprocess import frame_indices
from unihar.data.signals import SignalRecording
from unihar.data.taxonomy import Taxonomy, dataset_key, load_taxonomy
from unihar.data.video import open_video
from unihar.errors import InputError
from unihar.inference.engine import WindowEngine, run_sequences
from unihar.models import HARModel
from unihar.training.modalities import check_signals

__all__ = [
    "EvalResult",
    "ECE_BINS",
    "expected_calibration_error",
    "window_logits",
    "mean_probabilities",
    "predict_sequences",
    "evaluate",
    "plot_confusion",
    "align_labels",
    "eval_view",
]

ECE_BINS = 15
IMAGE_BATCH_WINDOWS = 4  # windows gathered per forward pass for image models (their frames wait in memory)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: over ``bins`` equal-width bins of the top-1 probability, the sample-weighted mean of
    |accuracy - mean confidence| in each bin."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    if len(labels) == 0:
        return 0.0
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)  # bin b: (b/bins, (b+1)/bins]
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            total += members.sum() * abs(correct[members].mean() - confidence[members].mean())
    return float(total / len(labels))


@dataclass
class EvalResult:
    """Per-sequence probabilities over the model's ``num_classes`` classes and the metrics derived from them.

    ``classes`` lists the model's classes, then the names of negative labels found in the data; a label
    ``>= num_classes`` is such a negative, right when the prediction is none of ``excluded[label]``.
    """

    probs: np.ndarray  # (N, K)
    labels: np.ndarray  # (N,)
    classes: list[str]
    excluded: dict[int, list[int]] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return int(self.probs.shape[1]) if self.probs.ndim == 2 else len(self.classes)

    @property
    def positive(self) -> np.ndarray:
        return self.labels < self.num_classes

    @property
    def n(self) -> int:
        return int(self.positive.sum())

    @property
    def predictions(self) -> np.ndarray:
        predictions: np.ndarray = self.probs.argmax(axis=1)
        return predictions

    def topk(self, k: int) -> float:
        """Fraction of the (positive) sequences whose class is among the ``k`` most probable."""
        k = min(k, self.num_classes)
        probs, labels = self.probs[self.positive], self.labels[self.positive]
        if not len(labels):
            return 0.0
        top = np.argsort(-probs, axis=1)[:, :k]
        return float((top == labels[:, None]).any(axis=1).mean())

    def ece(self, bins: int = ECE_BINS) -> float:
        return expected_calibration_error(self.probs[self.positive], self.labels[self.positive], bins)

    @property
    def confusion(self) -> np.ndarray:
        """``(len(classes), num_classes)`` counts: true class (negatives last) x predicted class."""
        rows, k = len(self.classes), self.num_classes
        return np.bincount(self.labels * k + self.predictions, minlength=rows * k).reshape(rows, k)

    def correct(self) -> np.ndarray:
        """Per sequence: top-1 right (a negative: top-1 is none of the classes it rules out)."""
        predictions = self.predictions
        right: np.ndarray = predictions == self.labels
        for label, ruled_out in self.excluded.items():
            rows = self.labels == label
            right[rows] = ~np.isin(predictions[rows], ruled_out)
        return right

    @property
    def per_class_accuracy(self) -> np.ndarray:
        """Recall of each row of :attr:`classes` (negatives: the share not flagged); NaN without samples."""
        right = self.correct()
        support = np.bincount(self.labels, minlength=len(self.classes))
        hits = np.bincount(self.labels[right], minlength=len(self.classes))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(support > 0, hits / support, np.nan)

    def metrics(self) -> dict[str, float | int]:
        """``{"n", "top1", "top5", "mean_class_acc", "ece"}`` over the sequences of the model's classes
        (fractions in 0-1; classes without samples skipped); with negatives also ``"negatives"`` (how
        many) and ``"negative_false_alarm"`` (the share whose top-1 is a class they rule out)."""
        per_class = self.per_class_accuracy[: self.num_classes]
        mean_class = float(np.nanmean(per_class)) if np.isfinite(per_class).any() else 0.0
        out: dict[str, float | int] = {
            "n": self.n,
            "top1": self.topk(1),
            "top5": self.topk(5),
            "mean_class_acc": mean_class,
            "ece": self.ece(),
        }
        negative = ~self.positive
        if negative.any():
            out["negatives"] = int(negative.sum())
            out["negative_false_alarm"] = float(1.0 - self.correct()[negative].mean())
        return out


class _Logits(torch.nn.Module):
    """The model, answering logits where it would answer probabilities: the engine returns whatever
    ``probabilities`` gives, and evaluation and temperature fitting want the logits. Everything else
    is the wrapped model's (a PyTorch module or an onnxruntime model)."""

    def __init__(self, model: HARModel) -> None:
        super().__init__()
        self.inner = model

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)  # the module's own parameters and submodules (``inner``)
        except AttributeError:
            inner = self._modules["inner"] if "inner" in self._modules else self.__dict__["inner"]
            return getattr(inner, name)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float()


def eval_view(data: SkeletonDataset, layout: str | Sequence[str] | KeypointLayout) -> SkeletonDataset:
    """What a model is scored on: 3D data seen through its fixed recording camera, in the model's layout."""
    return data.projected().to_layout(layout)


@torch.no_grad()
def window_logits(
    model: HARModel, data: SkeletonDataset, batch_size: int = 256, device: torch.device | str = "cpu"
) -> list[np.ndarray]:
    """The logits ``(W_i, K)`` of the engine's windows of every sequence of ``data`` (2D, model layout)."""
    if isinstance(model, torch.nn.Module):
        model.eval()
    raw = _Logits(model)
    sensors = model.config.signal_modalities  # the recordings of the sensors the model reads, one per sequence
    check_signals([data], sensors)
    recordings = data.signals or {}  # check_signals: the data has every sensor the model reads
    signals = {name: recordings[name] for name in sensors}
    if not model.has_image_branch:
        windows = run_sequences(
            raw,
            data.sequences,
            data.fps,
            pose_layout=data.layout,
            batch_windows=batch_size,
            device=device,
            signals=signals,
        )
        return [np.stack([w.probs for w in seq]) for seq in windows]
    if data.videos is None:
        raise InputError(f"{data.name}: this model also reads RGB frames; evaluate it on haa500 or video-folder data")
    return [_image_sequence_logits(raw, data, i, device, signals) for i in range(len(data))]


def _image_sequence_logits(
    model: _Logits,
    data: SkeletonDataset,
    index: int,
    device: torch.device | str,
    signals: dict[str, list[SignalRecording]],
) -> np.ndarray:
    """One sequence of a video dataset through the engine, its frames decoded in step with its poses."""
    engine = WindowEngine(
        model, data.fps, pose_layout=data.layout, batch_windows=IMAGE_BATCH_WINDOWS, min_seconds=0.0, device=device
    )
    for name, recordings in signals.items():
        engine.attach_signal(0, name, recordings[index])
    sequence = data.sequences[index]
    assert data.videos is not None  # window_logits sends only video datasets here
    path, total = data.videos[index]
    wanted = frame_indices(total, len(sequence))  # sequence frame -> video frame (non-decreasing)
    results = []
    frames = iter(open_video(path))
    decoded, image = -1, None
    for step, target in enumerate(wanted):
        while decoded < target:
            try:
                image = next(frames)
            except StopIteration:
                break  # a video shorter than its header said: keep the last frame
            decoded += 1
        if image is None:
            raise InputError(f"{data.name}: could not decode any frame of {path}")
        results += engine.push(step, {0: sequence[step]}, image)
    results += engine.end_track(0) + engine.finish()
    return np.stack([r.probs for r in sorted(results, key=lambda r: r.end_frame)])


def mean_probabilities(logits: list[np.ndarray], temperature: float) -> np.ndarray:
    """Per sequence, the mean over its windows of ``softmax(logits / temperature)``."""
    out = []
    for seq in logits:
        z = seq / temperature
        z = np.exp(z - z.max(axis=1, keepdims=True))
        out.append((z / z.sum(axis=1, keepdims=True)).mean(axis=0))
    return np.stack(out)


def predict_sequences(
    model: HARModel, data: SkeletonDataset, batch_size: int = 256, device: torch.device | str = "cpu"
) -> np.ndarray:
    """Mean window probabilities ``(N, K)`` of every sequence of ``data`` (2D, in the model's layout)."""
    temperature = float(model.config.classifier.temperature)
    return mean_probabilities(window_logits(model, data, batch_size, device), temperature)


def align_labels(
    data: SkeletonDataset, model_labels: list[str] | None, taxonomy: Taxonomy | None = None
) -> tuple[SkeletonDataset, dict[int, list[int]]]:
    """Re-index ``data``'s labels into the model's classes, by name or through the taxonomy.

    Returns the relabelled data (its ``classes``: the model's, then any negative labels) and, per
    negative label, the model classes it rules out. A class present in the data that the model cannot
    name is an error.
    """
    if model_labels is None or list(model_labels) == list(data.classes):
        return data, {}
    model_labels = list(model_labels)
    index = {name: i for i, name in enumerate(model_labels)}
    taxonomy = taxonomy or load_taxonomy()
    key = dataset_key(data)
    negatives: list[str] = []
    targets: list[int] = []
    unknown: list[str] = []
    present = set(np.unique(data.labels).tolist())
    for c, name in enumerate(data.classes):
        canonical = name
        if name not in index and key in taxonomy.datasets and name in taxonomy.datasets[key]:
            canonical = taxonomy.canonical(key, name)
        if canonical in index:
            targets.append(index[canonical])
        elif taxonomy.negated(canonical) and all(x in index for x in taxonomy.negated(canonical)):
            if canonical not in negatives:
                negatives.append(canonical)
            targets.append(len(model_labels) + negatives.index(canonical))
        else:
            targets.append(-1)
            if c in present:
                unknown.append(name if canonical == name else f"{name} ({canonical})")
    if unknown:
        raise InputError(
            f"the model does not know the classes {unknown[:5]} of {data.name}; its classes are {model_labels[:20]}"
        )
    excluded = {len(model_labels) + j: [index[x] for x in taxonomy.negated(name)] for j, name in enumerate(negatives)}
    relabelled = replace(data, labels=np.asarray(targets)[data.labels], classes=model_labels + negatives)
    return relabelled, excluded


def evaluate(
    model: HARModel,
    data: SkeletonDataset,
    preprocessing: PreprocessConfig | None = None,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    closed_set: bool = False,
    taxonomy: Taxonomy | None = None,
) -> EvalResult:
    """Score ``model`` on every sequence of ``data`` (any layout, 2D or 3D; labels matched by name).

    ``preprocessing`` defaults to the model's own preprocessing. ``closed_set``: only the classes the data has
    can be predicted (probabilities renormalised over them): a dataset's standard protocol, for a model
    that knows more classes than the dataset.
    """
    preprocessing = preprocessing or model.preprocessing
    data, excluded = align_labels(eval_view(data, preprocessing.layout), model.labels, taxonomy)
    probs = predict_sequences(model, data, batch_size, device)
    if closed_set:
        allowed = np.zeros(probs.shape[1], dtype=bool)
        labels = np.unique(data.labels)
        allowed[labels[labels < probs.shape[1]]] = True
        for ruled_out in excluded.values():
            allowed[ruled_out] = True
        probs = np.where(allowed, probs, 0.0)
        probs = probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)
    return EvalResult(probs, data.labels.copy(), list(data.classes), excluded)


def plot_confusion(result: EvalResult, path: str | Path, title: str = "") -> Path:
    """Save the row-normalised confusion matrix as a PNG (counts written in the cells); classes the
    data never has are left out of the rows, never of the columns they were predicted in."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = result.confusion
    rows = np.flatnonzero(cm.sum(axis=1) > 0)
    cols = np.flatnonzero((cm.sum(axis=0) > 0) | np.isin(np.arange(cm.shape[1]), rows))
    cm = cm[np.ix_(rows, cols)]
    row_names = [result.classes[i] for i in rows]
    col_names = [result.classes[i] for i in cols]
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.nan_to_num(cm / cm.sum(axis=1, keepdims=True))
    width = max(5.0, 0.45 * len(cols) + 2.5)
    height = max(4.5, 0.45 * len(rows) + 2.0)
    fig, ax = plt.subplots(figsize=(width, height))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(cols)), col_names, rotation=90, fontsize=8)
    ax.set_yticks(range(len(rows)), row_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    m = result.metrics()
    ax.set_title(title or f"n={m['n']}  top-1={m['top1']:.3f}  mean class acc={m['mean_class_acc']:.3f}", fontsize=9)
    if max(len(rows), len(cols)) <= 40:
        for i in range(len(rows)):
            for j in range(len(cols)):
                if cm[i, j]:
                    ax.text(
                        j,
                        i,
                        str(cm[i, j]),
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black",
                    )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
