"""Reading videos and image folders as RGB frames.

Files are decoded with PyAV (FFmpeg), so anything FFmpeg reads works: mp4, avi, mkv, webm, mov, ...
A folder of images (jpg, png, bmp, webp, tif), sorted by file name, is read as a video too; it has no
frame rate of its own, so one is given (``DEFAULT_IMAGE_FOLDER_FPS`` unless the caller says otherwise).

Frames are streamed one at a time (``VideoReader`` is an iterable you can walk more than once), because
a long 1080p video does not fit in memory; ``read_frames`` loads everything for short clips.
Every failure the user can cause (missing path, not a video, corrupt data, no frames) is a
:class:`~unihar.errors.VideoError` with one clear message.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from unihar.errors import VideoError

__all__ = [
    "VIDEO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "DEFAULT_IMAGE_FOLDER_FPS",
    "VideoInfo",
    "VideoReader",
    "open_video",
    "read_frames",
    "natural_sort_key",
]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_IMAGE_FOLDER_FPS = 30.0
# A header claiming more than this is taken as no rate at all (see _rate_from_timestamps).
MAX_PLAUSIBLE_FPS = 240.0


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a video before decoding it.

    ``num_frames`` comes from the container header and can be missing (``None``) or slightly off for
    some formats (webm, mkv, variable frame rate); the decoded count is the truth.
    """

    source: str
    width: int
    height: int
    fps: float
    num_frames: int | None
    is_image_folder: bool = False
    rate: Fraction | None = None  # the exact frame rate (e.g. 30000/1001), for writing a video back

    @property
    def exact_rate(self) -> Fraction:
        """The frame rate as a fraction: the container's own when known, else ``fps`` made exact."""
        return self.rate if self.rate is not None else Fraction(self.fps).limit_denominator(1001)

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return (self.width, self.height)


def natural_sort_key(path: Path) -> list:
    """Sort ``frame2.png`` before ``frame10.png``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


class VideoReader:
    """Iterates over the frames of a video file or an image folder as ``(H, W, 3)`` uint8 RGB arrays.

    Args:
        source: a video file or a folder of images.
        fps: frame rate to report for an image folder (ignored for files, whose rate is in the header).
        max_frames: stop after this many frames (``None`` = all).
    """

    def __init__(self, source: str | Path, *, fps: float | None = None, max_frames: int | None = None) -> None:
        self.path = Path(source)
        self.max_frames = max_frames
        if fps is not None and not fps > 0:
            raise VideoError(f"expected a positive frame rate, got {fps!r}")
        if not self.path.exists():
            raise VideoError(f"video not found: {str(source)!r} does not exist")
        if self.path.is_dir():
            self._images = sorted(
                (p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
                key=natural_sort_key,
            )
            if not self._images:
                raise VideoError(
                    f"{str(source)!r} is a folder without images; expected files ending in {', '.join(IMAGE_EXTENSIONS)}"
                )
            width, height = self._open_image(self._images[0]).shape[1::-1]
            self.info = VideoInfo(
                str(source), width, height, float(fps or DEFAULT_IMAGE_FOLDER_FPS), len(self._images), True
            )
        else:
            self._images = None
            self.info = self._probe_file()

    # -- files -------------------------------------------------------------------------------------------
    def _open_container(self):
        import av

        try:
            container = av.open(str(self.path))
        except av.error.FFmpegError as exc:
            raise VideoError(f"cannot read video {str(self.path)!r}: {_ffmpeg_reason(exc)}") from None
        if not container.streams.video:
            container.close()
            raise VideoError(f"{str(self.path)!r} has no video stream (expected a video file or an image folder)")
        return container

    def _probe_file(self) -> VideoInfo:
        import av

        container = self._open_container()
        try:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            num_frames: int | None = int(stream.frames) if stream.frames else None
            if not rate or float(rate) > MAX_PLAUSIBLE_FPS:
                rate, num_frames = _rate_from_timestamps(container, stream) or (rate, num_frames)
            fps = float(rate) if rate else 0.0
            if not fps > 0:
                raise VideoError(f"cannot read the frame rate of {str(self.path)!r}")
            if num_frames is None:
                duration = None
                if stream.duration is not None and stream.time_base is not None:
                    duration = float(stream.duration * stream.time_base)
                elif container.duration is not None:
                    duration = container.duration / 1_000_000  # av.time_base is microseconds
                if duration:
                    num_frames = max(int(round(duration * fps)), 1)
            width, height = stream.codec_context.width, stream.codec_context.height
            if not width or not height:
                raise VideoError(f"cannot read the frame size of {str(self.path)!r}; the file looks corrupt")
            # Decode one frame now: an empty or broken file fails here, before any model is loaded, and
            # the display rotation (phone videos) tells the size the frames will have once upright.
            try:
                first = next(iter(container.decode(stream)), None)
            except av.error.FFmpegError as exc:
                raise VideoError(f"video {str(self.path)!r} is corrupt: {_ffmpeg_reason(exc)}") from None
            if first is None:
                raise VideoError(f"video {str(self.path)!r} contains no decodable frames")
            if _quarter_turns(first) % 2:
                width, height = height, width
            return VideoInfo(str(self.path), int(width), int(height), fps, num_frames, False, Fraction(rate))
        finally:
            container.close()

    def _iter_file(self) -> Iterator[np.ndarray]:
        import av

        container = self._open_container()
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame threading: several frames decode in parallel
            index = 0
            try:
                for frame in container.decode(stream):
                    image = frame.to_ndarray(format="rgb24")
                    turns = _quarter_turns(frame)
                    if turns:
                        image = np.ascontiguousarray(np.rot90(image, k=turns))
                    yield image
                    index += 1
                    if self.max_frames is not None and index >= self.max_frames:
                        return
            except av.error.FFmpegError as exc:
                raise VideoError(
                    f"video {str(self.path)!r} is corrupt: decoding failed after {index} frames ({_ffmpeg_reason(exc)})"
                ) from None
            if index == 0:
                raise VideoError(f"video {str(self.path)!r} contains no decodable frames")
        finally:
            container.close()

    # -- image folders -----------------------------------------------------------------------------------
    @staticmethod
    def _open_image(path: Path) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                return np.asarray(image.convert("RGB"))
        except (UnidentifiedImageError, OSError) as exc:
            raise VideoError(f"cannot read image {str(path)!r}: {exc}") from None

    def _iter_folder(self) -> Iterator[np.ndarray]:
        assert self._images is not None
        limit = len(self._images) if self.max_frames is None else min(self.max_frames, len(self._images))
        for path in self._images[:limit]:
            image = self._open_image(path)
            if image.shape[:2] != (self.info.height, self.info.width):
                raise VideoError(
                    f"image {str(path)!r} is {image.shape[1]}x{image.shape[0]}, expected every image in the folder "
                    f"to be {self.info.width}x{self.info.height} like the first one"
                )
            yield image

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._iter_folder() if self._images is not None else self._iter_file()

    def __len__(self) -> int:
        """Expected number of frames (header value, capped by ``max_frames``); 0 when unknown."""
        count = self.info.num_frames or 0
        return count if self.max_frames is None else min(count, self.max_frames)


def _quarter_turns(frame) -> int:
    """Counter-clockwise quarter turns that make a frame upright (its display-matrix rotation, e.g. phones)."""
    rotation = getattr(frame, "rotation", 0) or 0
    return int(round(rotation / 90)) % 4


def _rate_from_timestamps(container, stream) -> tuple[Fraction, int] | None:
    """(frame rate, frame count) from the packet timestamps, for files whose header states no usable rate.

    Browsers' MediaRecorder writes webm with a variable rate and a 1 ms time base; FFmpeg then guesses
    anything up to 1000 fps, which would make a 4-second window span a minute of video. The mean frame
    interval over the whole file is the rate to use. Demuxing only (no decoding), so it is cheap; the
    container is rewound for the caller.
    """
    stamps = sorted(packet.pts for packet in container.demux(stream) if packet.pts is not None)
    container.seek(0)
    if len(stamps) < 2 or stream.time_base is None or stamps[-1] <= stamps[0]:
        return None
    rate = Fraction(len(stamps) - 1) / ((stamps[-1] - stamps[0]) * stream.time_base)
    return rate.limit_denominator(1001), len(stamps)


def _ffmpeg_reason(exc: Exception) -> str:
    """FFmpeg's own short reason (e.g. 'Invalid data found when processing input'), without the path."""
    reason = getattr(exc, "strerror", None) or str(exc)
    return str(reason).strip()


def open_video(source: str | Path, *, fps: float | None = None, max_frames: int | None = None) -> VideoReader:
    """Open a video file or image folder for streaming; raises :class:`VideoError` if it cannot be read."""
    return VideoReader(source, fps=fps, max_frames=max_frames)


def read_frames(
    source: str | Path, *, fps: float | None = None, max_frames: int | None = None
) -> tuple[np.ndarray, VideoInfo]:
    """Decode a whole (short) video into ``(N, H, W, 3)`` uint8 RGB, with its :class:`VideoInfo`."""
    reader = open_video(source, fps=fps, max_frames=max_frames)
    frames = list(reader)
    return np.stack(frames), reader.info
