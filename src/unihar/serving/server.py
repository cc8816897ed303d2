"""Running the app under uvicorn, with a deadline on what a connection sends outside a request.

uvicorn closes a keep-alive connection that goes quiet, but not one that keeps sending a few bytes
at a time: a request line and headers trickled in over minutes (the app is not even called until
they are complete), or the rest of a body the app already answered without reading (a 503 or 413).
Each such connection holds a socket and its buffers, and enough of them exhaust the process's file
descriptors. So, whenever none of its requests is being handled, a connection has ``header_timeout``
seconds, then must keep up ``min_upload_rate`` bytes per second on average and never pause longer
than ``header_timeout``, or it is closed. While a request is being handled the app paces its body
itself (:class:`unihar.serving.uploads.BodyPace`, 408).

    import uvicorn
    from unihar.serving.server import uvicorn_options
    uvicorn.run(app, host="127.0.0.1", port=8000, **uvicorn_options(settings))
"""

from __future__ import annotations

import asyncio
from typing import Any

from unihar.serving.service import ServeSettings

__all__ = ["uvicorn_options", "paced_protocol"]


def uvicorn_options(settings: ServeSettings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config`` that enforce ``settings``' deadlines."""
    return {"http": paced_protocol(settings.header_timeout, settings.min_upload_rate)}


def paced_protocol(timeout: float, min_rate: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol (h11, or httptools when installed), closing connections too slow outside a
    request."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class PacedHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        _watch: asyncio.TimerHandle | None = None
        _since = _last = 0.0
        _received = 0

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self._start_watch()

        def data_received(self, data: bytes) -> None:
            self._received += len(data)
            self._last = self.loop.time()
            super().data_received(data)
            if self._handling():  # a request's head is complete: the app takes over
                self._stop_watch()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self._handling() and not self.transport.is_closing():
                self._start_watch()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_watch()
            super().connection_lost(exc)

        def _handling(self) -> bool:
            cycle = self.cycle
            return cycle is not None and not cycle.response_complete

        def _start_watch(self) -> None:
            self._stop_watch()
            self._since = self._last = self.loop.time()
            self._received = 0
            self._watch = self.loop.call_at(self._since + timeout, self._check)

        def _stop_watch(self) -> None:
            if self._watch is not None:
                self._watch.cancel()
                self._watch = None

        def _check(self) -> None:
            self._watch = None
            if self._handling() or self.transport.is_closing():
                return
            due = min(self._last + timeout, self._since + timeout + self._received / min_rate)
            if self.loop.time() + 0.01 >= due:  # timers may fire a little early
                self.transport.close()
            else:
                self._watch = self.loop.call_at(due, self._check)

    return PacedHTTPProtocol
