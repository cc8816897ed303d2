"""The annotated video: everyone's skeleton with their id and current top action, and the main person's top-3.

The output has the input's frame count and frame rate (the exact rational rate, e.g. 30000/1001).
Frames are drawn with Pillow and encoded with PyAV: H.264 (``libx264``) for .mp4/.mov/.mkv, VP9 for
.webm, MPEG-4 Part 2 for .avi. H.264/VP9 in yuv420p need even sizes, so an odd width or height is
padded by one black pixel row/column. Each person is drawn in a colour of their own (by track id), with
a label over the head: their id and the top action of their window nearest to the frame. The panel in
the corner shows the main person's top-3 probabilities. Joints with confidence below
``MIN_DRAW_CONFIDENCE`` (:mod:`unihar.inference.palette`) are not drawn; frames where a person was not
found (interpolated) are drawn thin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from unihar.data.layouts import KeypointLayout
from unihar.data.video import VideoInfo, open_video
from unihar.errors import InputError, VideoError
from unihar.inference.palette import MIN_DRAW_CONFIDENCE, person_colour
from unihar.inference.results import ActionScore, VideoPrediction

__all__ = ["render_video", "draw_frame", "PersonOverlay", "check_output_path"]

_Encoder = Literal["libx264", "libvpx-vp9", "mpeg4"]  # video encoders: PyAV then gives a VideoStream
_CODECS: dict[str, _Encoder] = {
    ".mp4": "libx264",
    ".m4v": "libx264",
    ".mov": "libx264",
    ".mkv": "libx264",
    ".webm": "libvpx-vp9",
    ".avi": "mpeg4",
}


@dataclass
class PersonOverlay:
    """What is drawn for one person in one frame."""

    id: int
    keypoints: np.ndarray  # (J, 3) pixels + confidence
    action: ActionScore | None = None  # their current top action
    detected: bool = True  # False: interpolated over a frame where they were not found


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


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()


def draw_frame(
    frame: np.ndarray,
    people: list[PersonOverlay],
    layout: KeypointLayout,
    panel: list[ActionScore] | None = None,
) -> np.ndarray:
    """One annotated ``(H, W, 3)`` uint8 RGB frame: each person's skeleton and label, and a top-k panel."""
    image = Image.fromarray(np.ascontiguousarray(frame)).convert("RGB")
    width, height = image.size
    scale = max(min(width, height) / 480.0, 0.5)
    draw = ImageDraw.Draw(image, "RGBA")
    font_size = max(10, int(round(15 * scale)))
    font = _font(font_size)
    pad = max(3, int(round(6 * scale)))

    for person in people:
        keypoints = person.keypoints
        colour = person_colour(person.id)
        line = max(1, int(round((3 if person.detected else 1.5) * scale)))
        radius = max(2, int(round(3.5 * scale)))
        visible = keypoints[:, 2] >= MIN_DRAW_CONFIDENCE
        for a, b in layout.edge_index:
            if visible[a] and visible[b]:
                draw.line([tuple(keypoints[a, :2]), tuple(keypoints[b, :2])], fill=colour, width=line)
        for j in np.flatnonzero(visible):
            x, y = keypoints[j, :2]
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour, outline=(0, 0, 0))
        if visible.any():
            text = f"#{person.id}" + (f" {person.action.label} {person.action.prob:.0%}" if person.action else "")
            x = float(keypoints[visible, 0].min())
            y = float(keypoints[visible, 1].min()) - font_size - 2 * pad
            x, y = min(max(x, 0.0), max(width - 10.0, 0.0)), max(y, 0.0)
            box = draw.textbbox((x + pad, y + pad / 2), text, font=font)
            draw.rectangle(
                [box[0] - pad / 2, box[1] - pad / 2, box[2] + pad / 2, box[3] + pad / 2], fill=(*colour, 200)
            )
            draw.text((x + pad, y + pad / 2), text, fill=(0, 0, 0), font=font)

    if panel:
        row = font_size + 2 * pad
        bar_width = max(60, int(round(width * 0.3)))
        panel_width = min(width - 2 * pad, bar_width + 2 * pad)
        draw.rectangle([pad, pad, pad + panel_width, pad + row * len(panel) + pad], fill=(0, 0, 0, 150))
        for i, score in enumerate(panel):
            y0 = pad + pad + i * row
            filled = int(round((panel_width - 2 * pad) * min(max(score.prob, 0.0), 1.0)))
            draw.rectangle([2 * pad, y0, 2 * pad + filled, y0 + row - pad], fill=(40, 160, 255, 200))
            draw.text((2 * pad + 2, y0 + pad // 2), f"{score.label} {score.prob:.0%}", fill=(255, 255, 255), font=font)
    return np.asarray(image)


def overlays_at(result: VideoPrediction, frame: int) -> list[PersonOverlay]:
    """Everyone present at source frame ``frame``, with their current top action."""
    people = []
    for person in result.people:
        keypoints = person.pose_at(frame)
        if keypoints is None:
            continue
        window = person.window_for_frame(frame)
        action = window.topk[0] if window is not None else None
        people.append(PersonOverlay(person.id, keypoints, action, bool(person.detected[frame - person.start_frame])))
    return people


def render_video(
    source: str | Path,
    result: VideoPrediction,
    output: str | Path,
    overwrite: bool = False,
    fps: float | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Write ``source`` with everyone's skeleton and action, and the main person's top-3, to ``output``."""
    import av

    output = check_output_path(output, overwrite)
    reader = open_video(source, fps=fps)
    info: VideoInfo = reader.info
    width, height = info.width + info.width % 2, info.height + info.height % 2
    layout = result.people[0].layout
    main = result.main
    written = 0
    try:
        container = av.open(str(output), mode="w")
    except av.error.FFmpegError as exc:
        raise VideoError(f"cannot write {str(output)!r}: {exc}") from None
    try:
        stream = container.add_stream(_CODECS[output.suffix.lower()], rate=info.exact_rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index, frame in enumerate(reader):
            window = main.window_for_frame(index)
            annotated = draw_frame(frame, overlays_at(result, index), layout, window.topk[:3] if window else None)
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
