"""Where Uni-HAR keeps what it computes once and reuses: parsed datasets, extracted poses, exported models."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["cache_dir", "save_npz_atomic"]


def cache_dir(*parts: str) -> Path:
    """``$UNIHAR_CACHE`` (default ``~/.cache/unihar``), joined with ``parts``; not created here."""
    return Path(os.environ.get("UNIHAR_CACHE", Path.home() / ".cache" / "unihar")).joinpath(*parts)


def save_npz_atomic(path: str | Path, **arrays: np.ndarray) -> None:
    """Write a compressed ``.npz`` so that readers only ever see a whole file.

    The arrays go to a temporary file of this process in the same folder, which then replaces ``path``:
    two processes filling the same cache entry at once (parallel runs, DDP ranks, pose workers) each
    write their own file and the last rename wins, instead of one renaming the other's half-written file.
    """
    path = Path(path)
    arrays = {name: np.asanyarray(value) for name, value in arrays.items()}  # fail before any file exists
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp.npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            # numpy's stub gives savez_compressed a keyword ``allow_pickle: bool``, which mypy matches
            # against any key of a **mapping; these are all arrays.
            np.savez_compressed(f, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
