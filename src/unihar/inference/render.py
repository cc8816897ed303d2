"""The annotated video: the skeleton on every frame and the current top-3 actions as probability bars.

The output has the input's frame count and frame rate (the exact rational rate, e.g. 30000/1001).
Frames are drawn with Pillow and encoded with PyAV: H.264 (``libx264``) for .mp4/.mov/.mkv, VP9 for
.webm, MPEG-4 Part 2 for .avi. H.264/VP9 in yuv420p need even sizes, so an odd width or height is
padded by one black pixel row/column. At each frame the panel shows the window whose centre is
nearest to that frame (:meth:`VideoPrediction.window_for_frame`). Joints with confidence below
``MIN_DRAW_CONFIDENCE`` are not drawn; frames where nobody was detected (filled in by interpolation)
are drawn in grey.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from unihar.data.layouts import KeypointLayout
from unihar.data.video import VideoInfo, open_video
from unihar.errors import InputError, VideoError
from unihar.inference.pipeline import VideoPrediction, WindowPrediction

__all__ = ["render_video", "draw_frame", "check_output_path", "MIN_DRAW_CONFIDENCE"]

MIN_DRAW_CONFIDENCE = 0.3
_CODECS = {".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9", ".avi": "mpeg4"}
_LEFT, _RIGHT, _CENTRE = (255, 140, 0), (0, 170, 255), (80, 220, 80)
_FILLED = (170, 170, 170)


def check_output_path(path: str | Path, overwrite: bool = False) -> Path:
    """Refuse an existing file unless asked, an unknown extension, or a missing folder — before any work."""
    path = Path(path)
    if path.suffix.lower() not in _CODECS:
        raise InputError(f"output {str(path)!r}: expected a video file ending in {', '.join(sorted(_CODECS))}")
    if path.exists() and not overwrite:
        raise InputError(f"output {str(path)!r} already exists; pass --overwrite to replace it")
    if path.is_dir():
        raise InputError(f"output {str(path)!r} is a folder; expected a video file name")
    if not path.parent.is_dir():
        raise InputError(f"output folder {str(path.parent)!r} does not exist")
    return path


def _colour(name: str) -> tuple[int, int, int]:
    words = name.split("_")
    return _LEFT if "left" in words else _RIGHT if "right" in words else _CENTRE


def draw_frame(
    frame: np.ndarray,
    keypoints: np.ndarray | None,
    layout: KeypointLayout,
    window: WindowPrediction | None,
    detected: bool = True,
    top: int = 3,
) -> np.ndarray:
    """One annotated ``(H, W, 3)`` uint8 RGB frame: skeleton (``keypoints`` ``(J, 3)`` in pixels) + top bars."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(np.ascontiguousarray(frame)).convert("RGB")
    width, height = image.size
    scale = max(min(width, height) / 480.0, 0.5)
    draw = ImageDraw.Draw(image, "RGBA")

    if keypoints is not None:
        line = max(1, int(round(3 * scale)))
        radius = max(2, int(round(3.5 * scale)))
        visible = keypoints[:, 2] >= MIN_DRAW_CONFIDENCE
        for (a, b), (name_a, name_b) in zip(layout.edge_index, layout.edges):
            if visible[a] and visible[b]:
                colour = _FILLED if not detected else _colour(name_a if name_a.split("_")[0] in ("left", "right") else name_b)
                draw.line([tuple(keypoints[a, :2]), tuple(keypoints[b, :2])], fill=colour, width=line)
        for j, name in enumerate(layout.joints):
            if visible[j]:
                x, y = keypoints[j, :2]
                colour = _FILLED if not detected else _colour(name)
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour, outline=(0, 0, 0))

    if window is not None:
        font_size = max(10, int(round(15 * scale)))
        try:
            font = ImageFont.load_default(size=font_size)
        except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
            font = ImageFont.load_default()
        pad = max(3, int(round(6 * scale)))
        row = font_size + 2 * pad
        bar_width = max(60, int(round(width * 0.3)))
        panel_width = min(width - 2 * pad, bar_width + 2 * pad)
        scores = window.topk[:top]
        draw.rectangle([pad, pad, pad + panel_width, pad + row * len(scores) + pad], fill=(0, 0, 0, 150))
        for i, score in enumerate(scores):
            y0 = pad + pad + i * row
            filled = int(round((panel_width - 2 * pad) * min(max(score.prob, 0.0), 1.0)))
            draw.rectangle([2 * pad, y0, 2 * pad + filled, y0 + row - pad], fill=(40, 160, 255, 200))
            draw.text((2 * pad + 2, y0 + pad // 2), f"{score.label} {score.prob:.0%}", fill=(255, 255, 255), font=font)
    return np.asarray(image)


def render_video(
    source: str | Path,
    result: VideoPrediction,
    output: str | Path,
    overwrite: bool = False,
    fps: float | None = None,
    progress=None,
) -> Path:
    """Write ``source`` with ``result``'s poses and top-3 drawn on every frame to ``output``."""
    import av

    output = check_output_path(output, overwrite)
    reader = open_video(source, fps=fps)
    info: VideoInfo = reader.info
    width, height = info.width + info.width % 2, info.height + info.height % 2
    poses = result.poses
    detected = poses.detected if poses.detected is not None else np.ones(poses.num_frames, bool)
    expected = max(len(reader), poses.num_frames)
    shown = result.window_index(np.arange(expected)) if result.windows else None
    written = 0
    try:
        container = av.open(str(output), mode="w")
    except av.error.FFmpegError as exc:
        raise VideoError(f"cannot write {str(output)!r}: {exc}") from None
    try:
        stream = container.add_stream(_CODECS[output.suffix.lower()], rate=info.exact_rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index, frame in enumerate(reader):
            kpts = poses.keypoints[index] if index < poses.num_frames else None
            if shown is not None and index < len(shown):
                window = result.windows[int(shown[index])]
            else:
                window = result.window_for_frame(index)
            annotated = draw_frame(frame, kpts, poses.layout, window, bool(detected[min(index, len(detected) - 1)]))
            if annotated.shape[:2] != (height, width):
                padded = np.zeros((height, width, 3), np.uint8)
                padded[: annotated.shape[0], : annotated.shape[1]] = annotated
                annotated = padded
            video_frame = av.VideoFrame.from_ndarray(annotated, format="rgb24")
            for packet in stream.encode(video_frame):
                container.mux(packet)
            written += 1
            if progress is not None:
                progress(written, len(reader) or None)
        for packet in stream.encode():
            container.mux(packet)
    except BaseException:
        container.close()
        output.unlink(missing_ok=True)  # a half-written file is worse than none
        raise
    container.close()
    return output
