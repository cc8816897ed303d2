"""Shared by the serving tests: a small real model, a short real clip, and a live server on a free port."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from video_helpers import CLEAN_AND_JERK, small_model_dir, write_video


def short_clip(folder: Path, frames: int = 45, name: str = "clean_and_jerk_short.mp4") -> Path:
    """The first ``frames`` frames of the real weightlifting clip (H.264 mp4, 340x256, 30000/1001 fps).

    Short so pose estimation takes a few seconds, not twenty, on a 2-core CPU.
    """
    if not CLEAN_AND_JERK.is_file():
        pytest.skip(f"the real test clip {CLEAN_AND_JERK} is not present")
    from fractions import Fraction

    from unihar.data.video import read_frames

    pixels, _ = read_frames(CLEAN_AND_JERK, max_frames=frames)
    return write_video(folder / name, pixels, rate=Fraction(30000, 1001))


def y4m_clip(folder: Path, frames: int = 90) -> Path:
    """The real clip as raw YUV4MPEG (what Chromium's fake webcam plays with --use-file-for-fake-video-capture)."""
    import av

    from unihar.data.video import read_frames

    if not CLEAN_AND_JERK.is_file():
        pytest.skip(f"the real test clip {CLEAN_AND_JERK} is not present")
    pixels, _ = read_frames(CLEAN_AND_JERK, max_frames=frames)
    path = folder / "webcam.y4m"
    with av.open(str(path), "w", format="yuv4mpegpipe") as container:
        stream = container.add_stream("rawvideo", rate=30)
        stream.width, stream.height, stream.pix_fmt = pixels.shape[2], pixels.shape[1], "yuv420p"
        for frame in pixels:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def small_pipeline(folder: Path, max_people: int = 6, pose_backend="blazepose"):
    """A VideoPipeline (BlazePose, several people) around a small random-weights pose model in the penn13 layout."""
    from unihar.inference.pipeline import VideoPipeline
    from unihar.loading import from_pretrained

    model = from_pretrained(small_model_dir(folder, layout="penn13"))
    return VideoPipeline(model, pose_backend=pose_backend, max_people=max_people, device="cpu")


def two_lifters_clip(folder: Path, frames: int = 60) -> Path:
    """Two people at once: the real clip beside its mirror image (680x256), the same lift on both sides."""
    from fractions import Fraction

    from unihar.data.video import read_frames

    if not CLEAN_AND_JERK.is_file():
        pytest.skip(f"the real test clip {CLEAN_AND_JERK} is not present")
    pixels, _ = read_frames(CLEAN_AND_JERK, max_frames=frames)
    pair = np.ascontiguousarray(np.concatenate([pixels, pixels[:, :, ::-1]], axis=2))
    return write_video(folder / "two_lifters.mp4", pair, rate=Fraction(30000, 1001))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(app) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a thread; yields its base URL and stops it afterwards."""
    import httpx
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.1)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
