"""Shared inputs for the video / pose / pipeline / CLI tests (computed once per test session)."""

from __future__ import annotations

import functools
import importlib.util
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

VIDEOS = Path(__file__).resolve().parent / "data" / "videos"
CLEAN_AND_JERK = VIDEOS / "clean_and_jerk.mp4"
TEST_AVI = VIDEOS / "test.avi"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# The legacy MediaPipe backend is optional (``unihar[mediapipe]``, Python <= 3.12); tests of it need it.
needs_mediapipe = pytest.mark.skipif(
    importlib.util.find_spec("mediapipe") is None, reason="mediapipe is not installed (pip install 'unihar[mediapipe]')"
)


@functools.cache
def clean_and_jerk_poses(backend: str = "blazepose"):
    """The default pose backend on the whole real clip (a few seconds on a 2-core CPU, once per session)."""
    from unihar.data.pose import get_pose_backend
    from unihar.data.pose.extract import estimate_main_person

    return estimate_main_person(get_pose_backend(backend, max_people=1), CLEAN_AND_JERK)


def write_video(path: Path, frames: np.ndarray, rate: Fraction | int = 25, codec: str = "libx264") -> Path:
    """Encode ``(N, H, W, 3)`` uint8 RGB frames (even H and W) into ``path``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def blank_video(path: Path, frames: int = 12) -> Path:
    """A video of a plain grey wall: nobody to detect."""
    return write_video(path, np.full((frames, 96, 128, 3), 120, np.uint8))


def small_model_dir(folder: Path, layout: str = "coco17", image: bool = False, labels: list[str] | None = None) -> Path:
    """A small randomly initialised model saved with save_pretrained (its outputs are arbitrary but real)."""
    import torch

    from unihar.config import default_config
    from unihar.data.layouts import get_layout
    from unihar.models import build_model, save_pretrained

    torch.manual_seed(0)
    config = default_config(num_classes=5, joints=get_layout(layout).num_joints, image=image)
    config["pose_model"].update(hidden_dim=32, layers=1, heads=4, max_seq_len=8)
    config["long_term_model"].update(heads=4, layers=1)
    config["image_model"].update(feature_dim=16)
    config["fusion_model"].update(output_dim=16)
    config["preprocessing"] = {
        "layout": layout,
        "clips": 2,
        "clip_len": 8,
        "window_seconds": 2.0,
        "stride_seconds": 1.0,
        "image_size": 32,
    }
    labels = labels or ["clean and jerk", "arm wrestling", "jumping jacks", "squat", "bowling"]
    model = build_model(config, labels=labels)
    save_pretrained(model, folder, overwrite=True)
    return folder


def run_cli(capfd: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """Run ``unihar ARGS...`` in this process, as the console script would: (exit code, stdout, stderr)."""
    from unihar.cli import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capfd.readouterr()
    return code, out, err
