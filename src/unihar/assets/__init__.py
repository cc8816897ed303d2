"""Files shipped inside the package: the bundled default model (``default_model/``)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["default_model_dir"]


def default_model_dir() -> Path:
    """Folder of the bundled pose-only model (Penn Action, 15 classes): a ``save_pretrained`` folder
    with ``config.json``, ``model.safetensors``, ``class_label.json`` and ``MODEL_CARD.md``."""
    return Path(str(files("unihar") / "assets" / "default_model"))
