"""Uni-HAR: real-time human action recognition from pose sequences and RGB frames.

The public names below are imported on first use (PEP 562), so ``import unihar`` and the command
line start without loading torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# public name -> module that defines it
_EXPORTS = {
    "UniHARError": "unihar.errors",
    "download_model": "unihar.hub",
    "load_config": "unihar.hub",
    "load_labels": "unihar.hub",
    "from_pretrained": "unihar.loading",
    "load_model": "unihar.loading",
    "save_pretrained": "unihar.models",
    "HARModel": "unihar.models",
    "UniHAR": "unihar.models",
    "build_model": "unihar.models",
    "HARPredictor": "unihar.inference.predictor",
    "VideoPipeline": "unihar.inference.pipeline",
    "StreamingPredictor": "unihar.inference.streaming",
    "Recognizer": "unihar.recognizer",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names resolve lazily below
    from unihar.errors import UniHARError
    from unihar.hub import download_model, load_config, load_labels
    from unihar.inference.pipeline import VideoPipeline
    from unihar.inference.predictor import HARPredictor
    from unihar.inference.streaming import StreamingPredictor
    from unihar.loading import from_pretrained, load_model
    from unihar.models import HARModel, UniHAR, build_model, save_pretrained
    from unihar.recognizer import Recognizer


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'unihar' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
