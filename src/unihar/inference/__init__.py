"""Inference: the windowing engine (one for files, live streams, the server and evaluation), the video
pipeline on top of it, the tensor-level predictor, rendering and the onnxruntime backend."""
