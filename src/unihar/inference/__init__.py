"""Inference: the tensor-level predictor, and the video pipeline built on it."""
from unihar.inference.predictor import HARPredictor, resolve_device

__all__ = ["HARPredictor", "resolve_device"]
