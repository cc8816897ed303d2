"""Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017).

A network trained with cross-entropy (and label smoothing) is rarely calibrated: its top-1 probability
is not the chance of being right. One scalar ``T`` fitted on held-out data fixes most of it without
changing any prediction's ranking: probabilities become ``softmax(logits / T)``. The trainer fits it at
the end of a run on sequences held out of training and stores it in ``config.classifier.temperature``,
which the model applies in ``probabilities``.

The fit matches how predictions are read: a sequence's probability is the mean over its windows of the
tempered softmax, and ``T`` minimises the negative log-likelihood of the true class under it (LBFGS on
``log T``, so ``T`` stays positive).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["fit_temperature", "sequence_nll"]

TEMPERATURE_RANGE = (0.25, 10.0)  # beyond these the held-out set is too small or too easy to say
MIN_SEQUENCES = 20  # fewer held-out sequences than this: no fit (temperature 1.0)


def _stack(logits: Sequence[np.ndarray], labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """All windows in one ``(M, K)`` tensor, the true class of each window and the sequence it belongs to."""
    owners = np.concatenate([np.full(len(seq), i) for i, seq in enumerate(logits)])
    windows = torch.as_tensor(np.concatenate(logits), dtype=torch.float64)
    return windows, torch.as_tensor(np.asarray(labels)[owners]), torch.as_tensor(owners), len(logits)


def sequence_nll(logits: Sequence[np.ndarray], labels: np.ndarray, temperature: float | torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of ``labels`` (one per sequence) under the window-averaged tempered
    softmax of each sequence's ``(windows, K)`` logits."""
    return _nll(*_stack(logits, labels), temperature)


def _nll(
    windows: torch.Tensor, targets: torch.Tensor, owners: torch.Tensor, count: int, temperature: float | torch.Tensor
) -> torch.Tensor:
    p_true = torch.softmax(windows / temperature, dim=-1).gather(1, targets[:, None])[:, 0]
    per_sequence = torch.zeros(count, dtype=torch.float64).index_add(0, owners, p_true)
    per_sequence = per_sequence / torch.bincount(owners, minlength=count).to(torch.float64)
    return -torch.log(per_sequence.clamp_min(1e-12)).mean()


def fit_temperature(logits: Sequence[np.ndarray], labels: np.ndarray, max_iter: int = 100) -> float:
    """The temperature minimising :func:`sequence_nll` of ``labels`` (one per sequence) given the
    ``(windows, K)`` logits of each sequence; 1.0 with fewer than ``MIN_SEQUENCES`` sequences."""
    labels = np.asarray(labels)
    if len(labels) < MIN_SEQUENCES:
        return 1.0
    stacked = _stack(logits, labels)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = _nll(*stacked, log_t.exp())
        loss.backward()
        return loss

    optimizer.step(closure)
    low, high = TEMPERATURE_RANGE
    value = float(log_t.detach().exp())
    return float(np.clip(value, low, high)) if np.isfinite(value) else 1.0
