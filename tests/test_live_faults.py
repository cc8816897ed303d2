"""``unihar stream`` on live sources that misbehave: a network camera that stalls, disconnects or never
answers (served on 127.0.0.1 from the real clip as MJPEG over HTTP), the window's q key, a failure after
the source was opened, and the tracker's clock when frames are skipped."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from unihar.data.pose.tracking import PoseTracker, multi_person_tracker
from unihar.data.video import read_frames
from unihar.errors import InputError, VideoError
from unihar.inference.streaming import LiveSource, Outage, Reconnect, open_live_source, run_source
from video_helpers import CLEAN_AND_JERK, run_cli, small_model_dir

FPS = 30000 / 1001  # the clip's rate


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_model_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def jpegs() -> list[bytes]:
    frames, _ = read_frames(CLEAN_AND_JERK, max_frames=210)
    return [cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))[1].tobytes() for frame in frames]


class _Camera:
    """A network camera on 127.0.0.1: the clip as MJPEG over HTTP (``multipart/x-mixed-replace``), on a
    real-time clock that starts with the first client. Like a real camera it sends the current frame,
    so the frames that go by while a client is away are lost. ``stall_after``: the first connection
    goes silent (open, nothing sent) after that many frames. Once the clip is over it answers 404."""

    def __init__(self, jpegs: list[bytes], stall_after: int | None = None) -> None:
        self.jpegs, self.stall_after = jpegs, stall_after
        self.sent: list[list[int]] = []  # the frame numbers sent, per connection
        self.started: float | None = None
        self.server: ThreadingHTTPServer | None = None
        self.port = 0
        self.start()

    def now(self) -> int:
        if self.started is None:
            self.started = time.monotonic()
        return int((time.monotonic() - self.started) * FPS)

    def start(self) -> None:
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                index = camera.now()
                if index >= len(camera.jpegs):
                    self.send_error(404, "the camera is off")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                sent: list[int] = []
                camera.sent.append(sent)
                stall = camera.stall_after if len(camera.sent) == 1 else None
                deadline = time.monotonic() + 30
                while index < len(camera.jpegs) and camera.server is self.server and time.monotonic() < deadline:
                    time.sleep(max(0.0, camera.started + index / FPS - time.monotonic()))
                    if stall is not None and len(sent) >= stall:
                        if len(camera.sent) > 1:
                            return  # the client gave up on this connection and opened another
                        time.sleep(0.02)  # silent, connection open
                        continue
                    part = camera.jpegs[index]
                    try:
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(part)
                            + part
                            + b"\r\n"
                        )
                    except OSError:
                        return  # the client went away
                    sent.append(index)
                    index = max(index + 1, camera.now())

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def cut(self) -> None:
        """Unplug: no new connections, and the open ones are closed within a frame."""
        server, self.server = self.server, None
        server.shutdown()
        server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/video.mjpg"


def _wait_for(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------- reconnection, end to end


@pytest.mark.slow
def test_a_camera_that_disconnects_is_reconnected_and_the_lost_time_counts(
    jpegs: list[bytes], model_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    camera = _Camera(jpegs)

    def unplug_for_a_second() -> None:
        _wait_for(lambda: camera.sent and len(camera.sent[0]) >= 60, 60)
        camera.cut()
        time.sleep(1.0)
        camera.start()  # the same port; the clock went on meanwhile

    outage = threading.Thread(target=unplug_for_a_second, daemon=True)
    outage.start()
    code, out, err = run_cli(
        capfd,
        "stream",
        camera.url,
        "--weights",
        model_dir,
        "--json",
        "--headless",
        "--reconnect-attempts",
        "2",
    )
    outage.join(5)
    assert code == 0, err
    *lines, last = [json.loads(line) for line in out.strip().splitlines()]
    summary = last["summary"]
    before, after = camera.sent[0], camera.sent[-1]
    assert len(camera.sent) == 2 and summary["reconnects"] == 1
    expected_lost = after[0] - before[-1] - 1  # about 1.5 s: the second back-off wait found the camera again
    assert expected_lost > 30
    assert abs(summary["lost"] - expected_lost) <= max(4, 0.1 * expected_lost), (summary, expected_lost)
    assert len(before) + len(after) - 2 <= summary["frames"] <= len(before) + len(after)
    # The frame numbers went on by the frames lost: the last windows end past the count of frames received.
    assert max(line["frame"] for line in lines) >= summary["frames"]
    # ... and a gap longer than a person may go unseen ended the track: whoever is seen after is a new one.
    people_before = {line["person"] for line in lines if line["frame"] <= before[-1]}
    people_after = {line["person"] for line in lines if line["frame"] >= after[0] + 60}
    assert people_before and people_after and not people_before & people_after, (lines, before[-1], after[0])
    assert "warning:" in err and "404" in err and "gave up after 2 reconnection attempts" in err
    assert "Traceback" not in err


def test_a_stalled_stream_is_given_up_on_and_opened_again(jpegs: list[bytes]) -> None:
    camera = _Camera(jpegs[:100], stall_after=40)
    started = time.monotonic()
    source = open_live_source(camera.url, Reconnect(attempts=2, stall=0.5, first_delay=0.2))
    items = list(source)
    assert time.monotonic() - started < 15
    outages = [item for item in items if isinstance(item, Outage)]
    frames = [item for item in items if not isinstance(item, Outage)]
    assert len(camera.sent) == 2 and len(camera.sent[0]) == 40
    expected_lost = camera.sent[1][0] - camera.sent[0][-1] - 1  # the stall, the wait, the reconnection
    assert len(outages) == 1 and abs(outages[0].lost - expected_lost) <= 4, (outages, expected_lost)
    assert [isinstance(item, Outage) for item in items].index(True) == 40
    assert len(frames) == len(camera.sent[0]) + len(camera.sent[1])
    assert source.reconnects == 1 and source.lost == outages[0].lost
    assert abs(source.fps - FPS) < 1.5  # MJPEG states no rate: timed from the frames' arrival
    assert "404" in source.gave_up and "gave up after 2 reconnection attempts" in source.gave_up


def test_a_camera_that_never_answers_is_an_error_after_the_retries(
    capfd: pytest.CaptureFixture[str], model_dir: Path
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/video.mjpg"
    started = time.monotonic()
    code, out, err = run_cli(capfd, "stream", url, "--weights", model_dir, "--headless", "--reconnect-attempts", "1")
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.startswith("error: cannot open live source") and "gave up after 1 reconnection attempt " in err
    assert time.monotonic() - started < 30
    code, _, err = run_cli(capfd, "stream", url, "--weights", model_dir, "--headless", "--reconnect-timeout", "0")
    assert code == 2 and err.startswith("error: --reconnect-timeout")


def test_reconnection_backs_off_and_a_close_ends_the_wait() -> None:
    attempts: list[float] = []

    def refuse():
        attempts.append(time.monotonic())
        raise VideoError("connection refused")

    started = time.monotonic()
    with pytest.raises(VideoError, match="gave up after 3 reconnection attempts"):
        LiveSource("camera", refuse, Reconnect(attempts=3, first_delay=0.1, max_delay=0.2))
    waits = np.diff([started, *attempts])
    assert len(attempts) == 4 and waits[0] < 0.1  # the first try at once, then 0.1, 0.2, 0.2 s (capped)
    assert all(want <= got < want + 1.0 for got, want in zip(waits[1:], (0.1, 0.2, 0.2))), waits

    class _Once:
        """A connection with 3 frames, then gone; every reconnection fails."""

        fps = 30.0
        closed = 0

        def __iter__(self):
            return iter([np.zeros((4, 4, 3), np.uint8)] * 3)

        def close(self):
            _Once.closed += 1

    connections = iter([_Once()])
    source = LiveSource("camera", lambda: next(connections, None) or refuse(), Reconnect(attempts=5, first_delay=30))
    threading.Timer(0.3, source.close).start()
    started = time.monotonic()
    assert len(list(source)) == 3  # then waits 30 s to reconnect ... until closed
    assert time.monotonic() - started < 5 and _Once.closed >= 1
    with pytest.raises(InputError, match="attempts"):
        Reconnect(attempts=-1)


# ---------------------------------------------------------------------- the window's q, closing the source


def _fake_window(monkeypatch: pytest.MonkeyPatch, quit_after: int) -> list[int]:
    """cv2's window calls as a display would answer them, with q pressed at the ``quit_after``-th frame."""
    shown = [0]

    def wait_key(delay: int) -> int:
        shown[0] += 1
        return ord("q") if shown[0] >= quit_after else -1

    monkeypatch.setattr(cv2, "namedWindow", lambda *args: None)
    monkeypatch.setattr(cv2, "imshow", lambda *args: None)
    monkeypatch.setattr(cv2, "destroyAllWindows", lambda: None)
    monkeypatch.setattr(cv2, "waitKey", wait_key)
    return shown


def test_q_in_the_window_ends_the_stream_cleanly(
    monkeypatch: pytest.MonkeyPatch, model_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    shown = _fake_window(monkeypatch, quit_after=15)
    code, out, err = run_cli(capfd, "stream", CLEAN_AND_JERK, "--weights", model_dir, "--json")
    assert code == 0, err
    assert "interrupted" not in err and "Traceback" not in err
    summary = json.loads(out.strip().splitlines()[-1])["summary"]
    assert 15 <= shown[0] and summary["frames"] < 60  # it stopped at q, well before the clip's 300 frames


class _RecordingSource:
    """A live source that only records whether it was closed."""

    fps, is_file, gave_up = FPS, False, None

    def __init__(self) -> None:
        self.closed = False

    def __iter__(self):
        return iter(())

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("failure", ["engine", "window"])
def test_the_source_is_closed_when_the_stream_fails_to_start(
    failure: str, monkeypatch: pytest.MonkeyPatch, model_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import unihar.inference.streaming as streaming

    source = _RecordingSource()
    monkeypatch.setattr(streaming, "open_live_source", lambda *args, **kwargs: source)
    args = ["--image-stride", "0", "--headless"] if failure == "engine" else []  # no display here: no window
    code, _, err = run_cli(capfd, "stream", "0", "--weights", model_dir, *args)
    assert code == 2 and ("image_stride" in err if failure == "engine" else "use --headless" in err), err
    assert source.closed


# ---------------------------------------------------------------------- the tracker's clock


def _walker(x: float) -> np.ndarray:
    """One person (17 joints, 40 x 160 pixels) whose left edge is at ``x``."""
    joints = np.stack([x + 10 * (np.arange(17) % 5), 100 + 10 * np.arange(17), np.full(17, 0.9)], axis=-1)
    return joints[None]


def test_the_tracker_counts_source_frames_not_calls() -> None:
    tracker = PoseTracker(max_age=5)
    seen = [0, 1, 2, 3, 6, 7, 10, 14, 15, 18, 19, 20]  # a live source that dropped some frames
    ids = [int(tracker.update(_walker(100 + 4 * frame), frame)[0]) for frame in seen]
    assert ids == [ids[0]] * len(seen)
    np.testing.assert_allclose(tracker.tracks[0].velocity, [4.0, 0.0], atol=0.05)  # pixels per source frame
    assert int(tracker.update(_walker(100 + 4 * 27), 27)[0]) != ids[0]  # one call later, but unseen 6 > max_age frames
    with pytest.raises(InputError, match="increase"):
        tracker.update(_walker(0), 27)

    track = multi_person_tracker(max_age=5)
    for frame in (0, 3, 6):  # the pose stage keeps up with one frame in three
        people, ended = track(_walker(100 + 4 * frame), frame)
    assert list(people) == [0] and ended == []  # found in all three frames looked at: a person
    people, ended = track(_walker(100 + 4 * 20), 20)  # one call later, but 13 frames unseen
    assert ended == [0] and 0 not in people


def test_the_runner_numbers_frames_across_an_outage_and_tells_the_tracker(model_dir: Path) -> None:
    from unihar.inference.engine import WindowEngine
    from unihar.loading import load_model

    frame = np.zeros((8, 8, 3), np.uint8)
    numbers: list[int] = []

    def track(people: np.ndarray, number: int):
        numbers.append(number)
        return {0: np.tile([[50.0, 50.0, 0.9]], (17, 1)) + number}, []

    @contextlib.contextmanager
    def estimator():
        yield lambda image: np.zeros((0, 17, 3), np.float32)

    items = [frame] * 10 + [Outage(50)] + [frame] * 10
    windows: list = []
    engine = WindowEngine(load_model(model_dir), FPS, warmup=True, min_seconds=0.2)
    summary = run_source(iter(items), estimator, track, engine, windows.extend, live=False)
    assert numbers == list(range(10)) + list(range(60, 70))
    assert (summary.frames, summary.lost, summary.reconnects, summary.dropped) == (20, 50, 1, 0)
    assert summary.to_dict()["lost"] == 50 and max(w.last_frame for w in windows) == 69
