"""The HTTP server under hostile clients: a flood of slow (slowloris-style) uploads on the real uvicorn server.

Everything talks to 127.0.0.1 only; every loop is bounded in rounds and in time, and every socket and the
server are closed at the end, whatever happens.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from unihar.serving import ServeSettings, create_app  # noqa: E402
from unihar.serving.server import uvicorn_options  # noqa: E402
from web.helpers import free_port, short_clip, small_pipeline  # noqa: E402

DEADLINE_S = 4.0  # header_timeout and body_timeout of the server under test
TICK_S = 0.25  # each slow client sends TRICKLE bytes per tick: 16 bytes/s, far under the minimum rate
TRICKLE = 4
GIVE_UP_S = 60  # bound on the whole flood; the server must have cut every slow client well before
HEALTH_TIMEOUT_S = 5  # /healthz must answer within this, while the flood goes on


@contextlib.contextmanager
def serving(app, settings: ServeSettings) -> Iterator[tuple[str, int]]:
    """The app on uvicorn with ``unihar serve``'s options, on a thread; yields (base URL, port), then stops it."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=5, **uvicorn_options(settings)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # 30 s at most
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if not thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.1)
        else:
            raise RuntimeError("the test server did not answer within 30 s")
        yield url, port
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class SlowClient:
    """A raw connection that sends a multipart video upload ``TRICKLE`` bytes at a time.

    ``slow_head``: the request line and headers trickle too (the app never sees the request);
    otherwise the head goes at once and only the body trickles.
    """

    def __init__(self, port: int, video: bytes, slow_head: bool) -> None:
        boundary = "----unihar-slow-client"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.mp4"\r\n'
                f"Content-Type: video/mp4\r\n\r\n"
            ).encode()
            + video
            + f"\r\n--{boundary}--\r\n".encode()
        )
        head = (
            f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if not slow_head:
            self.sock.sendall(head)
        self.sock.setblocking(False)
        self.unsent = body if not slow_head else head + body
        self.answer = b""
        self.closed = False  # by the server

    def step(self) -> None:
        """Read what the server sent (an answer, or the end of the connection), then send a few more bytes."""
        if self.closed:
            return
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    self.closed = True
                    return
                self.answer += data
        except BlockingIOError:
            pass
        except OSError:
            self.closed = True
            return
        try:
            sent = self.sock.send(self.unsent[:TRICKLE])
            self.unsent = self.unsent[sent:]
        except BlockingIOError:
            pass
        except OSError as error:
            assert error.errno in (errno.EPIPE, errno.ECONNRESET), error
            self.closed = True

    @property
    def status(self) -> int | None:
        return int(self.answer.split(b" ", 2)[1]) if self.answer.startswith(b"HTTP/1.1 ") else None


@pytest.mark.slow
def test_slow_clients_are_cut_off_and_health_keeps_answering(tmp_path: Path) -> None:
    """60 connections trickle an upload at 16 bytes/s: 30 their headers, 30 their body after a quick head.

    While they hold every place in the video line, /healthz answers at once and a real upload is refused
    with 503 (not left hanging); within the server's deadlines every slow connection is closed (408 for
    those whose body the app was reading), their places and temporary files are given back, and a real
    upload is then answered.
    """
    clip = short_clip(tmp_path)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    settings = ServeSettings(upload_dir=str(uploads), header_timeout=DEADLINE_S, body_timeout=DEADLINE_S)
    app = create_app(small_pipeline(tmp_path / "model"), settings)
    service = app.state.service
    video = clip.read_bytes()
    clients: list[SlowClient] = []
    health_seconds: list[float] = []
    with serving(app, settings) as (url, port):
        try:
            for index in range(60):
                clients.append(SlowClient(port, video, slow_head=index % 2 == 0))
            heads, bodies = clients[0::2], clients[1::2]
            # The quick heads reach the app: as many as there are places take one, the others get 503.
            capacity = service.videos.capacity
            for _ in range(200):
                for client in clients:
                    client.step()
                if service.videos.held == capacity and sum(client.status == 503 for client in bodies) == 30 - capacity:
                    break
                time.sleep(0.02)
            assert service.videos.held == capacity, service.videos.held

            started = time.monotonic()
            answer = httpx.get(f"{url}/healthz", timeout=HEALTH_TIMEOUT_S)
            health_seconds.append(time.monotonic() - started)
            assert answer.status_code == 200
            busy = httpx.post(
                f"{url}/v1/predict", files={"file": ("real.mp4", video, "video/mp4")}, timeout=HEALTH_TIMEOUT_S
            )
            assert busy.status_code == 503 and int(busy.headers["Retry-After"]) >= 1
            for client in clients:
                client.step()
            assert not any(client.closed for client in clients)  # all of that happened during the flood

            flood_began, give_up = time.monotonic(), time.monotonic() + GIVE_UP_S
            for _ in range(int(GIVE_UP_S / TICK_S)):
                if all(client.closed for client in clients) or time.monotonic() > give_up:
                    break
                for client in clients:
                    client.step()
                started = time.monotonic()
                assert httpx.get(f"{url}/healthz", timeout=HEALTH_TIMEOUT_S).status_code == 200
                health_seconds.append(time.monotonic() - started)
                time.sleep(TICK_S)
            still_open = sum(not client.closed for client in clients)
            cut_after = time.monotonic() - flood_began
            assert still_open == 0, f"{still_open} of 60 slow connections still open after {GIVE_UP_S} s"
            assert all(client.status is None for client in heads)  # cut before their request was complete
            statuses = [client.status for client in bodies]
            # Those that held a place were answered 408 (unless the close overtook the answer); the others 503.
            assert statuses.count(503) == 30 - capacity, statuses
            assert set(statuses) <= {408, 503, None} and 408 in statuses, statuses

            assert service.videos.held == 0 and list(uploads.iterdir()) == []
            answer = httpx.post(f"{url}/v1/predict", files={"file": ("real.mp4", video, "video/mp4")}, timeout=120)
            assert answer.status_code == 200, answer.text
            assert answer.json()["frames"] == 45
        finally:
            for client in clients:
                client.sock.close()
    print(
        f"slow clients cut within {cut_after:.1f} s; /healthz answered {len(health_seconds)} times during the flood, "
        f"slowest in {max(health_seconds) * 1e3:.0f} ms; body statuses {sorted(statuses, key=str)}"
    )


@pytest.mark.slow
def test_steady_upload_and_long_answer_are_not_cut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deadlines catch trickles only: an upload at a modest steady rate that lasts longer than the body
    timeout, then an answer that takes longer than every deadline while the client waits in silence."""
    deadline = 1.5
    clip = short_clip(tmp_path)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    settings = ServeSettings(upload_dir=str(uploads), header_timeout=deadline, body_timeout=deadline)
    app = create_app(small_pipeline(tmp_path / "model"), settings)
    service = app.state.service
    predict = service.predict_video

    def slow_predict(*args):
        time.sleep(3 * deadline)  # the job outlasts every deadline; the connection is silent meanwhile
        return predict(*args)

    monkeypatch.setattr(service, "predict_video", slow_predict)
    boundary = "----unihar-steady-client"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\n'.encode()
        + b"x" * 800_000
        + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="steady.mp4"\r\n'
        f"Content-Type: video/mp4\r\n\r\n".encode()
        + clip.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    piece = 16_384

    def steady() -> Iterator[bytes]:
        """About 330 kB/s in small pieces: over 2 s in all, above the minimum rate, never pausing long."""
        for start in range(0, len(body), piece):
            yield body[start : start + piece]
            time.sleep(0.05)

    with serving(app, settings) as (url, _):
        answer = httpx.post(
            f"{url}/v1/predict",
            content=steady(),
            timeout=120,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(len(body))},
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["source"] == "steady.mp4" and answer.json()["frames"] == 45
    assert list(uploads.iterdir()) == []
