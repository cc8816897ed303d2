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

import heapq
import math
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from unihar.errors import VideoError

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream

__all__ = [
    "VIDEO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "GLOB_CHARACTERS",
    "DEFAULT_IMAGE_FOLDER_FPS",
    "VideoInfo",
    "VideoReader",
    "open_video",
    "read_frames",
    "natural_sort_key",
    "is_video_file",
    "StreamConnection",
    "open_stream",
]

# What folder searches take as videos (batch prediction, video-folder datasets): one list, so every
# command that looks through a folder finds the same files.
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
GLOB_CHARACTERS = frozenset("*?[")  # a path holding one of these (and not existing) is a glob pattern
DEFAULT_IMAGE_FOLDER_FPS = 30.0
# A header rate outside this range is taken as no rate at all (see _rate_from_timestamps); a rate measured
# outside it is refused: windows of a few seconds would hold a single frame, or thousands.
MIN_PLAUSIBLE_FPS = 1.0
MAX_PLAUSIBLE_FPS = 240.0
# A video with more frames than this share undecodable is refused rather than predicted from stand-ins.
MAX_CORRUPT_SHARE = 0.5


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a video before decoding it.

    ``num_frames`` comes from the container header and can be missing (``None``) or slightly off for
    some formats (webm, mkv, variable frame rate); the decoded count is the truth.
    ``frames_estimated`` says the header had no count and ``num_frames`` is duration x rate (which a
    variable frame rate makes wrong); :meth:`VideoReader.count_frames` counts them.
    """

    source: str
    width: int
    height: int
    fps: float
    num_frames: int | None
    is_image_folder: bool = False
    rate: Fraction | None = None  # the exact frame rate (e.g. 30000/1001), for writing a video back
    frames_estimated: bool = False

    @property
    def exact_rate(self) -> Fraction:
        """The frame rate as a fraction: the container's own when known, else ``fps`` made exact."""
        return self.rate if self.rate is not None else Fraction(self.fps).limit_denominator(1001)

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return (self.width, self.height)


def natural_sort_key(path: Path) -> list[int | str]:
    """Sort ``frame2.png`` before ``frame10.png``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def is_video_file(path: str | Path) -> bool:
    """Whether a folder search takes ``path`` as a video: a :data:`VIDEO_EXTENSIONS` name, not hidden
    (macOS leaves ``._clip.mp4`` metadata files beside videos copied to other disks)."""
    path = Path(path)
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")


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
        self.corrupt_frames = 0  # frames of the last pass over a file that could not be decoded (see _iter_file)
        if fps is not None and not fps > 0:
            raise VideoError(f"expected a positive frame rate, got {fps!r}")
        if not self.path.exists():
            raise VideoError(f"video not found: {str(source)!r} does not exist")
        self._images: list[Path] | None
        if self.path.is_dir():
            self._images = sorted(
                (p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
                key=natural_sort_key,
            )
            if not self._images:
                raise VideoError(
                    f"{str(source)!r} is a folder without images; expected files ending in "
                    f"{', '.join(IMAGE_EXTENSIONS)}"
                )
            width, height = self._open_image(self._images[0]).shape[1::-1]
            self.info = VideoInfo(
                str(source), width, height, float(fps or DEFAULT_IMAGE_FOLDER_FPS), len(self._images), True
            )
        else:
            self._images = None
            self.info = self._probe_file()

    # -- files -------------------------------------------------------------------------------------------
    def _open_container(self) -> InputContainer:
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
            header_rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            # a Fraction whatever PyAV gives (a Fraction before PyAV 19, its own rational type from 19)
            stated = (
                Fraction(header_rate.numerator, header_rate.denominator)
                if header_rate and header_rate.denominator
                else None
            )
            num_frames: int | None = int(stream.frames) if stream.frames else None
            if stated is not None and _plausible_rate(stated):
                rate = stated
            else:
                measured = _rate_from_timestamps(container, stream)
                if measured is None or not _plausible_rate(measured[0]):
                    raise VideoError(
                        f"cannot tell the frame rate of {str(self.path)!r}: its header states "
                        f"{_describe_rate(stated)} and "
                        f"the timestamps of its frames give {_describe_rate(measured and measured[0])}; expected "
                        f"{MIN_PLAUSIBLE_FPS:g} to {MAX_PLAUSIBLE_FPS:g} frames per second"
                    )
                rate, num_frames = measured
            fps = float(rate)
            estimated = False
            if num_frames is None:
                duration = None
                if stream.duration is not None and stream.time_base is not None:
                    duration = float(stream.duration * stream.time_base)
                elif container.duration is not None:
                    duration = container.duration / 1_000_000  # av.time_base is microseconds
                if duration:
                    num_frames, estimated = max(int(round(duration * fps)), 1), True
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
            return VideoInfo(str(self.path), int(width), int(height), fps, num_frames, False, Fraction(rate), estimated)
        finally:
            container.close()

    def count_frames(self) -> int:
        """The number of frames (capped by ``max_frames``), counted in the file where the header only
        estimates it: a variable frame rate makes duration x rate wrong. Demuxing only, no decoding."""
        count = self.info.num_frames
        if self._images is None and (count is None or self.info.frames_estimated):
            import av

            container = self._open_container()
            try:
                stream = container.streams.video[0]
                count = sum(1 for packet in container.demux(stream) if packet.size)
            except av.error.FFmpegError as exc:
                raise VideoError(f"video {str(self.path)!r} is corrupt: {_ffmpeg_reason(exc)}") from None
            finally:
                container.close()
        assert count is not None  # a folder's count is its images; a file without one was counted above
        return count if self.max_frames is None else min(count, self.max_frames)

    def _iter_file(self) -> Generator[np.ndarray, None, None]:
        """The frames of the file. A packet that fails to decode (a damaged stretch of the file) is
        skipped and counted in ``corrupt_frames``; the previous picture stands in for its frame at the
        frame's place in time (found from the timestamps: with frame threading the error is reported a
        few packets late), so the frames after it keep their numbers and times. A file whose frames are
        mostly undecodable is refused."""
        import av

        self.corrupt_frames = 0
        container = self._open_container()
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame threading: several frames decode in parallel
            index = decoded = placed = 0
            pending: list[int] = []  # heap: timestamps of the packets whose frame has not come out yet
            previous: np.ndarray | None = None
            reason = ""  # FFmpeg's reason for the last packet that failed
            try:
                for packet in container.demux(stream):
                    if packet.pts is not None and packet.size and not packet.is_discard:
                        heapq.heappush(pending, packet.pts)
                    try:
                        frames = packet.decode()
                    except av.error.FFmpegError as exc:
                        self.corrupt_frames += 1
                        reason = _ffmpeg_reason(exc)
                        continue
                    for frame in frames:
                        image: np.ndarray = frame.to_ndarray(format="rgb24")
                        turns = _quarter_turns(frame)
                        if turns:
                            image = np.ascontiguousarray(np.rot90(image, k=turns))
                        missing = _pop_until(pending, frame.pts)
                        # Only as many stand-ins as packets failed: a gap in the timestamps alone is the file's own.
                        stand_ins = min(missing, self.corrupt_frames - placed)
                        placed += stand_ins
                        pictures = [(previous if previous is not None else image).copy() for _ in range(stand_ins)]
                        for picture in pictures + [image]:
                            yield picture
                            index += 1
                            if self.max_frames is not None and index >= self.max_frames:
                                return
                        previous = image
                        decoded += 1
                if previous is not None:  # failed packets at the very end: their frames never came out
                    for _ in range(min(len(pending), self.corrupt_frames - placed)):
                        yield previous.copy()
                        index += 1
                        if self.max_frames is not None and index >= self.max_frames:
                            return
            except av.error.FFmpegError as exc:
                raise VideoError(
                    f"video {str(self.path)!r} is corrupt: decoding failed after {index} frames ({_ffmpeg_reason(exc)})"
                ) from None
            if decoded == 0:
                detail = f" ({self.corrupt_frames} failed: {reason})" if self.corrupt_frames else ""
                raise VideoError(f"video {str(self.path)!r} contains no decodable frames{detail}")
            if self.corrupt_frames > MAX_CORRUPT_SHARE * (decoded + self.corrupt_frames):
                raise VideoError(
                    f"video {str(self.path)!r} is corrupt: {self.corrupt_frames} of its "
                    f"{decoded + self.corrupt_frames} "
                    f"frames could not be decoded ({reason}); at most {MAX_CORRUPT_SHARE:.0%} are skipped"
                )
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

    def _iter_folder(self) -> Generator[np.ndarray, None, None]:
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

    def __iter__(self) -> Generator[np.ndarray, None, None]:
        return self._iter_folder() if self._images is not None else self._iter_file()

    def __len__(self) -> int:
        """Expected number of frames (header value, capped by ``max_frames``); 0 when unknown."""
        count = self.info.num_frames or 0
        return count if self.max_frames is None else min(count, self.max_frames)


def _quarter_turns(frame: VideoFrame) -> int:
    """Counter-clockwise quarter turns that make a frame upright (its display-matrix rotation, e.g. phones)."""
    rotation = getattr(frame, "rotation", 0) or 0
    return int(round(rotation / 90)) % 4


def _pop_until(pending: list[int], pts: int | None) -> int:
    """Take the timestamp of the frame that came out (``pts``) off the heap ``pending``, and every earlier
    one: frames come out in time order, so those will never come. Returns how many earlier ones there were."""
    if pts is None:
        return 0
    missing = 0
    while pending and pending[0] < pts:
        heapq.heappop(pending)
        missing += 1
    if pending and pending[0] == pts:
        heapq.heappop(pending)
    return missing


def _plausible_rate(rate: Fraction | float | None) -> bool:
    """Whether a frame rate can be a video's: positive, finite and within the plausible range."""
    try:
        value = float(rate) if rate is not None else 0.0
    except (TypeError, ValueError, OverflowError, ZeroDivisionError):
        return False
    return math.isfinite(value) and MIN_PLAUSIBLE_FPS <= value <= MAX_PLAUSIBLE_FPS


def _describe_rate(rate: Fraction | float | None) -> str:
    if rate is None or rate == 0:
        return "none"
    return f"{float(rate):g} fps"


def _rate_from_timestamps(container: InputContainer, stream: VideoStream) -> tuple[Fraction, int] | None:
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


# -- live streams (RTSP, HTTP, ...) -----------------------------------------------------------------------
STREAM_OPEN_TIMEOUT = 10.0  # seconds to connect
STREAM_STALL_TIMEOUT = 5.0  # seconds without data before a stream counts as lost


class StreamConnection:
    """One connection to a network stream: its ``(H, W, 3)`` uint8 RGB frames until it ends, stalls or fails.

    Reconnecting is the caller's business (``unihar stream`` does it, see
    :class:`~unihar.inference.streaming.LiveSource`). ``fps`` is the rate the stream states, or None when
    it states none (MJPEG over HTTP has no rate; FFmpeg then makes one up).
    """

    def __init__(
        self, url: str, *, stall_timeout: float = STREAM_STALL_TIMEOUT, open_timeout: float = STREAM_OPEN_TIMEOUT
    ) -> None:
        import av

        self.url, self.stall_timeout = url, stall_timeout
        options = {"rtsp_transport": "tcp"} if url.startswith("rtsp") else None
        try:
            # PyAV's timeout interrupts any blocking read, whatever the protocol: a stalled camera cannot hang us.
            self.container = av.open(url, options=options, timeout=(open_timeout, stall_timeout))
        except (av.error.FFmpegError, OSError) as exc:
            raise VideoError(f"cannot open live source {url!r}: {_stream_reason(exc, open_timeout)}") from None
        if not self.container.streams.video:
            self.container.close()
            raise VideoError(f"live source {url!r} has no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        rate = self.stream.average_rate
        self.fps = float(rate) if rate and 0 < float(rate) <= MAX_PLAUSIBLE_FPS else None

    def __iter__(self) -> Iterator[np.ndarray]:
        import av

        try:
            for frame in self.container.decode(self.stream):
                yield frame.to_ndarray(format="rgb24")
        except (av.error.FFmpegError, OSError) as exc:
            raise VideoError(f"live source {self.url!r} was lost: {_stream_reason(exc, self.stall_timeout)}") from None

    def close(self) -> None:
        self.container.close()


def _stream_reason(exc: Exception, timeout: float) -> str:
    """Why a stream failed, in words: FFmpeg calls its own timeout "Immediate exit requested"."""
    import av

    if isinstance(exc, av.error.ExitError):
        return f"no data for {timeout:g} s"
    return _ffmpeg_reason(exc)


def open_stream(
    url: str, *, stall_timeout: float = STREAM_STALL_TIMEOUT, open_timeout: float = STREAM_OPEN_TIMEOUT
) -> StreamConnection:
    """Connect to a network stream (``rtsp://``, ``http://``, ...); raises :class:`VideoError` if it cannot."""
    return StreamConnection(url, stall_timeout=stall_timeout, open_timeout=open_timeout)
