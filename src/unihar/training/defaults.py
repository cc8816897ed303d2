"""Settings a run chooses from its data when the run config leaves them out.

The published model size (D=128, 4 layers, 4 clips of 30 frames: ~0.5 M pose parameters, 14 M with
the image branch) is made for HAA500-scale data and a GPU. A few hundred skeleton sequences on a CPU
want a small network, short windows and a schedule counted in samples, not epochs:

* **window** (``window_seconds``): the 75th percentile of the sequences' durations, rounded to 0.5 s and
  kept within 1.5-4 s, so most actions fit one window and long recordings are cut like a video;
  ``stride_seconds`` a third of it. One clip (``clips=1``) of ``clip_len`` = the frames a window holds
  at the data's frame rate, at most 20 (fewer tokens, same motion). Without a frame rate each sequence
  is one window.
* **confidence**: joints below 0.3 are missing and the rest count as seen (``min_confidence=0.3``,
  ``binarize_confidence=true``), so datasets with different confidence conventions (Penn Action's
  0 / 0.5 / 1, detector scores, Kinect's none) mean the same thing to the model.
* **model**: hidden 64, 2 layers, 4 heads, no dropout (0.2 M parameters); from 4000 sequences on, 3 layers.
* **schedule**: about ``SAMPLES_PER_RUN`` training windows in all (``epochs = SAMPLES_PER_RUN /
  sequences``, within 20-500), warm-up over the first 5 % of the epochs, evaluation 5 times per run;
  AdamW at lr 4e-3 (``TrainConfig``). Measured on UT-Kinect and NW-UCLA, the number of windows seen
  matters more than anything else at this size (docs/training.md).

Every choice is written to the run's ``training_args.json``; any key set in the run config wins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from unihar.data.datasets import SkeletonDataset

__all__ = ["DataSummary", "summarize", "default_preprocessing", "default_model", "default_schedule", "SAMPLES_PER_RUN"]

SAMPLES_PER_RUN = 50_000
MAX_CLIP_LEN = 20
WINDOW_RANGE = (1.5, 4.0)
EPOCH_RANGE = (20, 500)
EVALUATIONS_PER_RUN = 5


@dataclass(frozen=True)
class DataSummary:
    """What the defaults look at: how much data, how long its sequences are, at what frame rate."""

    sequences: int
    classes: int
    fps: float | None
    duration_p75: float | None  # seconds; None without a frame rate


def summarize(datasets: Sequence[SkeletonDataset], classes: int) -> DataSummary:
    rated = [(d, d.fps) for d in datasets if d.fps]
    durations = np.concatenate([[len(s) / rate for s in d.sequences] for d, rate in rated]) if rated else np.zeros(0)
    fps = float(np.median([rate for _, rate in rated])) if rated else None
    return DataSummary(
        sequences=sum(len(d) for d in datasets),
        classes=classes,
        fps=fps,
        duration_p75=float(np.percentile(durations, 75)) if len(durations) else None,
    )


def default_preprocessing(summary: DataSummary) -> dict[str, Any]:
    """The ``preprocessing`` keys (other than the layout) for this data."""
    preprocessing: dict[str, Any] = {
        "clips": 1,
        "min_confidence": 0.3,
        "binarize_confidence": True,
        "normalization": "center_scale",
    }
    if summary.duration_p75 is None or summary.fps is None:
        preprocessing.update(clip_len=MAX_CLIP_LEN)
        return preprocessing
    window = float(np.clip(round(summary.duration_p75 * 2) / 2, *WINDOW_RANGE))
    preprocessing.update(
        window_seconds=window,
        stride_seconds=round(window / 3, 2),
        clip_len=int(np.clip(round(window * summary.fps), 8, MAX_CLIP_LEN)),
    )
    return preprocessing


def default_model(summary: DataSummary, clip_len: int, clips: int) -> dict[str, Any]:
    """Model-config overrides (published schema) of a small pose-only network for this data."""
    layers = 3 if summary.sequences >= 4000 else 2
    return {
        "pose_model": {"hidden_dim": 64, "layers": layers, "heads": 4, "max_seq_len": clip_len},
        "regularization": {"short_term_dropout": 0.0},
        "long_term_model": {"enabled": clips > 1, "heads": 4, "layers": 1, "dropout": 0.1},
        "image_model": {"enabled": False, "feature_dim": 128, "backbone": "resnet18"},
        "fusion_model": {"mode": "concat", "output_dim": 128},
    }


def default_schedule(summary: DataSummary) -> dict[str, Any]:
    """``epochs``, ``warmup_epochs`` and ``eval_every`` for this much data."""
    epochs = int(np.clip(math.ceil(SAMPLES_PER_RUN / max(summary.sequences, 1)), *EPOCH_RANGE))
    return {
        "epochs": epochs,
        "warmup_epochs": max(1.0, round(0.05 * epochs, 1)),
        "eval_every": max(1, epochs // EVALUATIONS_PER_RUN),
    }
