"""Uni-HAR: real-time human action recognition from pose sequences and RGB frames."""
from unihar.errors import UniHARError
from unihar.hub import download_model, from_pretrained, load_config, load_labels, save_pretrained
from unihar.inference.predictor import HARPredictor
from unihar.models import UniHAR, build_model

__version__ = "0.1.0"

__all__ = [
    "HARPredictor",
    "UniHAR",
    "UniHARError",
    "build_model",
    "download_model",
    "from_pretrained",
    "load_config",
    "load_labels",
    "save_pretrained",
    "__version__",
]
