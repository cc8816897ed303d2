"""Reading request bodies with the size limit enforced while they arrive.

A video upload is streamed straight into a temporary file the server names itself (the client's
file name is only echoed back as the result's ``source``, never used as a path); the body is cut off
with 413 as soon as it passes the limit, so an oversized upload never fills the disk or the memory.
The multipart body is parsed incrementally with ``python-multipart`` (the parser Starlette uses).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

from fastapi import HTTPException, Request

__all__ = ["UploadedVideo", "receive_video", "receive_bytes", "check_declared_length", "VIDEO_CONTENT_TYPES"]

# Part content types accepted for the ``file`` field besides ``video/*`` (browsers and curl send these
# for files whose type they do not know).
VIDEO_CONTENT_TYPES = ("application/octet-stream", "application/x-matroska", "")
FILE_FIELD = "file"


@dataclass
class UploadedVideo:
    path: Path  # server-made temporary file; the caller deletes it (see ``receive_video``)
    filename: str  # the client's name for it: a label, not a path
    size: int


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


async def _limited(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The body's chunks, 413 as soon as more than ``limit`` bytes have arrived."""
    check_declared_length(request, limit)
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)
        yield chunk


async def receive_bytes(request: Request, limit: int) -> bytes:
    """The whole (size-limited) body, for JSON requests."""
    parts = [chunk async for chunk in _limited(request, limit)]
    return b"".join(parts)


def _safe_label(filename: str) -> str:
    """The client's file name, reduced to a printable base name, for display only."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:200] or "upload"


@contextlib.asynccontextmanager
async def receive_video(request: Request, limit: int, upload_dir: str | None = None) -> AsyncIterator[UploadedVideo]:
    """Stream the ``file`` field of a multipart body into a temporary file; delete it on exit.

    Raises HTTP 413 (too large), 415 (the part is not a video type), 400 (malformed multipart) or
    422 (no ``file`` field / an empty file).
    """
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise HTTPException(400, "multipart/form-data body without a boundary parameter in its Content-Type")

    descriptor, temp_name = tempfile.mkstemp(prefix="unihar-upload-", suffix=".video", dir=upload_dir)
    path = Path(temp_name)
    state = {"header_name": b"", "header_value": b"", "headers": {}, "in_file": False, "seen_file": False}
    size = 0
    filename = "upload"
    problem: HTTPException | None = None

    def on_part_begin() -> None:
        state["headers"] = {}
        state["in_file"] = False

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["header_name"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["header_value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["header_name"].strip().lower()] = state["header_value"].strip()
        state["header_name"], state["header_value"] = b"", b""

    def on_headers_finished() -> None:
        nonlocal filename, problem
        _, options = parse_options_header(state["headers"].get(b"content-disposition", b""))
        if options.get(b"name") != FILE_FIELD.encode() or state["seen_file"]:
            return  # other fields (and a second file) are ignored
        content_type = state["headers"].get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        if not (content_type.startswith("video/") or content_type in VIDEO_CONTENT_TYPES):
            problem = HTTPException(
                415, f"field 'file': expected a video (video/*, e.g. video/mp4 or video/webm), got {content_type!r}"
            )
            return
        state["in_file"] = state["seen_file"] = True
        raw_name = options.get(b"filename", b"")
        filename = _safe_label(raw_name.decode("utf-8", errors="replace")) if raw_name else "upload"

    def on_part_data(data: bytes, start: int, end: int) -> None:
        nonlocal size
        if state["in_file"]:
            os.write(descriptor, data[start:end])  # local disk, a chunk at a time
            size += end - start

    def on_part_end() -> None:
        state["in_file"] = False

    callbacks = {
        "on_part_begin": on_part_begin,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
    }
    try:
        try:
            parser = MultipartParser(boundary, callbacks)
            async for chunk in _limited(request, limit):
                parser.write(chunk)
                if problem is not None:
                    raise problem
            parser.finalize()
        except FormParserError:
            raise HTTPException(400, "malformed multipart/form-data body") from None
        finally:
            os.close(descriptor)
        if problem is not None:
            raise problem
        if not state["seen_file"]:
            raise HTTPException(422, "expected a multipart/form-data body with the video in a field named 'file'")
        if size == 0:
            raise HTTPException(422, "field 'file': the uploaded video is empty")
        yield UploadedVideo(path, filename, size)
    finally:
        path.unlink(missing_ok=True)
