"""Reading request bodies with the limits enforced while they arrive, and without blocking the event loop.

A video upload is streamed into a temporary file the server names itself (the client's file name is
only echoed back as the result's ``source``, never used as a path); the body is cut off with 413 as
soon as it passes the limit, so an oversized upload never fills the disk or the memory. The multipart
body is parsed incrementally with ``python-multipart`` (the parser Starlette uses); the file is
created, written and deleted on worker threads, never on the event loop.

A JSON body is refused with 413 when its Content-Length announces more than the limit (before a byte
is read), when more arrives than the limit, and when its raw bytes hold more keypoints than the server
takes (:func:`check_keypoint_count`, before it is parsed into Python objects).

Every body must also keep arriving (:class:`BodyPace`): a client that pauses longer than the timeout,
or that averages less than the minimum rate once the timeout has passed, is cut off with 408. Without
this, a few clients sending a byte now and then would hold every place in the waiting line (taken
before the body is read) and its temporary files for as long as they liked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from fastapi import HTTPException, Request

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

__all__ = [
    "UploadedVideo",
    "BodyPace",
    "receive_video",
    "receive_bytes",
    "check_declared_length",
    "check_keypoint_count",
    "VIDEO_CONTENT_TYPES",
]

# Part content types accepted for the ``file`` field besides ``video/*`` (browsers and curl send these
# for files whose type they do not know).
VIDEO_CONTENT_TYPES = ("application/octet-stream", "application/x-matroska", "")
FILE_FIELD = "file"
WRITE_CHUNK = 1 << 20  # bytes gathered before one write on a worker thread


@dataclass
class UploadedVideo:
    path: Path  # server-made temporary file, deleted when ``receive_video`` exits
    filename: str  # the client's name for it: a label, not a path
    size: int


@dataclass(frozen=True)
class BodyPace:
    """How slowly a body may arrive: no pause over ``timeout`` seconds, and after the first ``timeout``
    seconds, at least ``min_rate`` bytes per second on average since it began."""

    timeout: float
    min_rate: float

    def deadline(self, started: float, received: int, last: float) -> float:
        """When the next chunk is overdue (``time.monotonic()`` clock), given what arrived so far."""
        return min(last + self.timeout, started + self.timeout + received / self.min_rate)

    def too_slow(self) -> HTTPException:
        # Connection: close, so the server does not keep reading the rest of the body for the next request.
        return HTTPException(
            408,
            f"request body too slow: this server waits at most {self.timeout:g} s for more of it and, after the "
            f"first {self.timeout:g} s, needs at least {self.min_rate / 1e3:g} kB/s on average",
            headers={"Connection": "close"},
        )


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"request body too large: this server accepts at most {limit / 1e6:g} MB ({limit} bytes)")


def check_declared_length(request: Request, limit: int) -> None:
    """413 before reading anything when the client announces a body over the limit."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise HTTPException(400, f"invalid Content-Length header {declared!r}") from None
        if length > limit:
            raise _too_large(limit)


async def _limited(request: Request, limit: int, pace: BodyPace) -> AsyncIterator[bytes]:
    """The body's chunks: 413 as soon as more than ``limit`` bytes have arrived, 408 when they come too slowly."""
    check_declared_length(request, limit)
    received = 0
    started = last = time.monotonic()
    chunks = request.stream().__aiter__()
    while True:
        wait = pace.deadline(started, received, last) - time.monotonic()
        if wait <= 0:
            raise pace.too_slow()
        try:
            chunk = await asyncio.wait_for(chunks.__anext__(), wait)
        except StopAsyncIteration:
            return
        except asyncio.TimeoutError:
            raise pace.too_slow() from None
        last = time.monotonic()
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)
        yield chunk


async def receive_bytes(request: Request, limit: int, pace: BodyPace) -> bytes:
    """The whole (size-limited, paced) body, for JSON requests."""
    parts = [chunk async for chunk in _limited(request, limit, pace)]
    return b"".join(parts)


def check_keypoint_count(body: bytes, max_keypoints: int, max_frames: int) -> None:
    """413 when a JSON pose request holds more keypoints than the server takes, judged before parsing it.

    Counted on the raw bytes (in C, no Python objects made): each joint ``[x, y, c]`` opens one ``[``
    and each frame one more, so a body within the limits has at most ``max_keypoints + max_frames + 2``
    of them; and its numbers are separated by commas, so it has at most about three commas per keypoint.
    A body over either bound is refused; one within them is small enough to parse, and its exact shape
    is checked after.
    """
    brackets, commas = body.count(b"["), body.count(b",")
    if brackets > max_keypoints + max_frames + 2 or commas > 3 * (max_keypoints + max_frames) + 1024:
        estimate = max(brackets - 2, (commas + 1) // 3)
        raise HTTPException(
            413,
            f"too many keypoints: this server accepts at most {max_keypoints} keypoints (frames x joints) per "
            f"request, the body holds about {estimate}",
        )


def _safe_label(filename: str) -> str:
    """The client's file name, reduced to a printable base name, for display only."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:200] or "upload"


class _FilePart:
    """The ``file`` field of a multipart body as the parser reports it: its methods are the parser's
    callbacks (run synchronously, inside ``parser.write``), which note its headers and gather its bytes
    in ``pending`` until :meth:`flush` writes them on a worker thread."""

    def __init__(self) -> None:
        self.header_name = b""
        self.header_value = b""
        self.headers: dict[bytes, bytes] = {}
        self.in_file = False
        self.seen_file = False
        self.filename = "upload"
        self.pending = bytearray()  # file bytes not yet written
        self.size = 0  # file bytes written
        self.problem: HTTPException | None = None

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def on_part_begin(self) -> None:
        self.headers = {}
        self.in_file = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.header_name.strip().lower()] = self.header_value.strip()
        self.header_name, self.header_value = b"", b""

    def on_headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        if options.get(b"name") != FILE_FIELD.encode() or self.seen_file:
            return  # other fields (and a second file) are ignored
        content_type = self.headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        if not (content_type.startswith("video/") or content_type in VIDEO_CONTENT_TYPES):
            self.problem = HTTPException(
                415, f"field 'file': expected a video (video/*, e.g. video/mp4 or video/webm), got {content_type!r}"
            )
            return
        self.in_file = self.seen_file = True
        raw_name = options.get(b"filename", b"")
        self.filename = _safe_label(raw_name.decode("utf-8", errors="replace")) if raw_name else "upload"

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            self.pending += data[start:end]

    def on_part_end(self) -> None:
        self.in_file = False

    async def flush(self, handle: BinaryIO) -> None:
        """Write the gathered bytes on a worker thread (the event loop never touches the disk)."""
        data = bytes(self.pending)
        self.pending.clear()
        self.size += len(data)
        await asyncio.to_thread(handle.write, data)


def _open_temp_file(upload_dir: str | None) -> tuple[BinaryIO, Path]:
    descriptor, name = tempfile.mkstemp(prefix="unihar-upload-", suffix=".video", dir=upload_dir)
    return os.fdopen(descriptor, "wb"), Path(name)


def _close_and_delete(handle: BinaryIO, path: Path) -> None:
    try:
        handle.close()
    finally:
        path.unlink(missing_ok=True)


def _boundary(request: Request) -> bytes:
    """The multipart boundary of the request's Content-Type; 400 without one."""
    from python_multipart.multipart import parse_options_header

    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise HTTPException(400, "multipart/form-data body without a boundary parameter in its Content-Type")
    return boundary


async def _write_file_part(
    request: Request, limit: int, pace: BodyPace, boundary: bytes, handle: BinaryIO
) -> _FilePart:
    """Parse the body as it arrives, writing its ``file`` field to ``handle``: the part, checked whole."""
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser

    part = _FilePart()
    try:
        parser = MultipartParser(boundary, part.callbacks())
        async for chunk in _limited(request, limit, pace):
            parser.write(chunk)
            if part.problem is not None:
                raise part.problem
            if len(part.pending) >= WRITE_CHUNK:
                await part.flush(handle)
        parser.finalize()
    except FormParserError:
        raise HTTPException(400, "malformed multipart/form-data body") from None
    if part.problem is not None:
        raise part.problem
    await part.flush(handle)
    await asyncio.to_thread(handle.flush)
    if not part.seen_file:
        raise HTTPException(422, "expected a multipart/form-data body with the video in a field named 'file'")
    if part.size == 0:
        raise HTTPException(422, "field 'file': the uploaded video is empty")
    return part


@contextlib.asynccontextmanager
async def receive_video(
    request: Request, limit: int, upload_dir: str | None, pace: BodyPace
) -> AsyncIterator[UploadedVideo]:
    """Stream the ``file`` field of a multipart body into a temporary file; delete it on exit.

    Raises HTTP 413 (too large), 415 (the part is not a video type), 400 (malformed multipart),
    422 (no ``file`` field / an empty file) or 408 (the body came too slowly).
    """
    boundary = _boundary(request)
    check_declared_length(request, limit)  # before a temporary file exists
    handle, path = await asyncio.to_thread(_open_temp_file, upload_dir)
    try:
        part = await _write_file_part(request, limit, pace, boundary, handle)
        yield UploadedVideo(path, part.filename, part.size)
    finally:
        await asyncio.to_thread(_close_and_delete, handle, path)
