"""Where Uni-HAR keeps what it computes once and reuses: parsed datasets, extracted poses, exported models."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(*parts: str) -> Path:
    """``$UNIHAR_CACHE`` (default ``~/.cache/unihar``), joined with ``parts``; not created here."""
    return Path(os.environ.get("UNIHAR_CACHE", Path.home() / ".cache" / "unihar")).joinpath(*parts)
