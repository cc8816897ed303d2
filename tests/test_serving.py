"""The HTTP API (``unihar serve``): predictions equal to ``unihar predict --json``, limits, back-pressure, logs.

A small random-weights model (real network, arbitrary outputs) and BlazePose on short real clips. Nothing
here depends on how fast the machine is: where a test needs the server busy, the pose stage waits at a
gate the test opens (:class:`GatedPoses`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")
httpx = pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from unihar.data.layouts import get_layout  # noqa: E402
from unihar.data.pose import PoseSequence, get_pose_backend  # noqa: E402
from unihar.inference.palette import person_colour  # noqa: E402
from unihar.inference.pipeline import VideoPipeline  # noqa: E402
from unihar.serving import ServeSettings, create_app  # noqa: E402
from unihar.serving.app import PoseRequest  # noqa: E402
from video_helpers import blank_video, small_model_dir  # noqa: E402
from web.helpers import free_port, running_server, short_clip, small_pipeline, two_lifters_clip  # noqa: E402

PREDICT_KEYS = {"source", "frames", "fps", "topk", "windows", "people"}
WAIT_S = 120  # upper bound for a condition to become true on a loaded machine; never a measured duration


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serving")


@pytest.fixture(scope="module")
def pipeline(workdir: Path):
    return small_pipeline(workdir / "model")


@pytest.fixture(scope="module")
def clip(workdir: Path) -> Path:
    return short_clip(workdir)


@pytest.fixture(scope="module")
def two_lifters(workdir: Path) -> Path:
    return two_lifters_clip(workdir)


@pytest.fixture(scope="module")
def uploads(workdir: Path) -> Path:
    folder = workdir / "uploads"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def client(pipeline, uploads: Path):
    settings = ServeSettings(
        upload_dir=str(uploads),
        max_upload_bytes=2_000_000,
        max_json_bytes=1_000_000,
        max_keypoints=20_000,
        max_frames=1_000,
        max_seconds=20,
    )
    with TestClient(create_app(pipeline, settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def video_response(client: TestClient, two_lifters: Path) -> dict:
    # A hostile file name: the server must neither read nor write it, only echo its base name.
    response = client.post(
        "/v1/predict?poses=1", files={"file": ("../../../etc/passwd", two_lifters.read_bytes(), "video/mp4")}
    )
    assert response.status_code == 200, response.text
    return response.json()


def _assert_same_topk(got: list[dict], expected: list[dict], atol: float) -> None:
    assert [s["label"] for s in got] == [s["label"] for s in expected]
    np.testing.assert_allclose([s["prob"] for s in got], [s["prob"] for s in expected], atol=atol)


def _assert_same_windows(got: list[dict], expected: list[dict], atol: float) -> None:
    assert [(w["start_frame"], w["end_frame"]) for w in got] == [(w["start_frame"], w["end_frame"]) for w in expected]
    for g, e in zip(got, expected):
        _assert_same_topk(g["topk"], e["topk"], atol)


def _assert_same_prediction(got: dict, expected: dict, atol: float = 1e-5) -> None:
    """Equal to ``unihar predict --json``'s object: the same people, windows and labels; probabilities to ``atol``."""
    assert set(got) == PREDICT_KEYS
    assert got["frames"] == expected["frames"] and got["fps"] == pytest.approx(expected["fps"])
    _assert_same_topk(got["topk"], expected["topk"], atol)
    _assert_same_windows(got["windows"], expected["windows"], atol)
    assert [(p["id"], p["start_frame"], p["end_frame"]) for p in got["people"]] == [
        (p["id"], p["start_frame"], p["end_frame"]) for p in expected["people"]
    ]
    for g, e in zip(got["people"], expected["people"]):
        assert set(g) == set(e)
        if "topk" in e:
            _assert_same_topk(g["topk"], e["topk"], atol)
            _assert_same_windows(g["windows"], e["windows"], atol)
        else:
            assert g["reason"] == e["reason"]


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _random_keypoints(frames: int, joints: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(20, 300, (frames, joints, 2)), np.full((frames, joints, 1), 0.9)], axis=-1)


# ---------------------------------------------------------------------------------------------- videos
@pytest.mark.slow
def test_video_upload_matches_predict_json(video_response: dict, pipeline, two_lifters: Path, uploads: Path) -> None:
    """Two people in view: the answer is ``unihar predict --json``'s, one entry per person."""
    expected = pipeline(two_lifters, topk=5).to_dict()  # what ``unihar predict two_lifters.mp4 --json`` prints
    got = {k: v for k, v in video_response.items() if k != "poses"}
    assert got["source"] == "passwd"
    _assert_same_prediction(got, expected)
    assert got["frames"] == 60 and len(got["people"]) == 2
    assert all("topk" in person and len(person["topk"]) == 5 for person in got["people"])
    assert list(uploads.iterdir()) == []  # the temporary upload is gone


@pytest.mark.slow
def test_poses_option(video_response: dict) -> None:
    """``?poses=1``: each person's keypoints over their frames, with their id and the annotated video's colour."""
    poses = video_response["poses"]
    assert poses["layout"] == "mediapipe33" and len(poses["joints"]) == 33
    assert poses["frame_size"] == [680, 256]
    assert all(0 <= a < 33 and 0 <= b < 33 for a, b in poses["edges"]) and len(poses["edges"]) > 10
    people = {p["id"]: p for p in video_response["people"]}
    assert [p["id"] for p in poses["people"]] == list(people)
    centres = []
    for drawn in poses["people"]:
        person = people[drawn["id"]]
        keypoints = np.array(drawn["keypoints"])
        assert drawn["start_frame"] == person["start_frame"]
        assert keypoints.shape == (person["end_frame"] - person["start_frame"] + 1, 33, 3)
        assert len(drawn["detected"]) == len(keypoints) and sum(drawn["detected"]) > 0.8 * len(keypoints)
        assert drawn["colour"] == "#{:02x}{:02x}{:02x}".format(*person_colour(drawn["id"]))
        visible = keypoints[..., 2] >= poses["min_confidence"]
        centres.append(keypoints[..., 0][visible].mean())
    # The lifter on the left half and the mirrored one on the right half of the 680-pixel frame.
    assert min(centres) < 340 < max(centres)
    assert len({p["colour"] for p in poses["people"]}) == 2
    main = people[poses["main_person"]]
    assert main["windows"] == video_response["windows"] and main["topk"] == video_response["topk"]


@pytest.mark.slow
def test_keypoints_json_round_trip(video_response: dict, client: TestClient) -> None:
    """A person's poses the server found, sent back as JSON, give that person's prediction (to the 0.1 px rounding)."""
    poses = video_response["poses"]
    drawn = next(p for p in poses["people"] if p["id"] == poses["main_person"])
    # Frames where the person was not found go back as "nobody here" (confidence 0), as the engine saw them.
    keypoints = [
        frame if found else [[x, y, 0.0] for x, y, _ in frame]
        for frame, found in zip(drawn["keypoints"], drawn["detected"])
    ]
    body = {"keypoints": keypoints, "layout": "mediapipe33", "fps": video_response["fps"], "width": 680, "height": 256}
    response = client.post("/v1/predict", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert set(data) == PREDICT_KEYS and data["source"] == "keypoints"
    assert [p["id"] for p in data["people"]] == [0] and data["frames"] == len(keypoints)
    _assert_same_topk(data["topk"], video_response["topk"], atol=2e-3)
    # The keypoints start at the person's first frame: the same windows, counted from there.
    first = drawn["start_frame"]
    shifted = [
        dict(w, start_frame=w["start_frame"] - first, end_frame=w["end_frame"] - first)
        for w in video_response["windows"]
    ]
    _assert_same_windows(data["windows"], shifted, atol=2e-3)


@pytest.mark.slow
def test_nobody_in_view(client: TestClient, uploads: Path, tmp_path: Path) -> None:
    wall = blank_video(tmp_path / "wall.mp4")
    response = client.post("/v1/predict", files={"file": ("empty room.mp4", wall.read_bytes(), "video/mp4")})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "nobody was detected in any of the 12 frames of empty room.mp4" in detail, detail
    assert response.json()["error"] == "NoPersonError"
    assert list(uploads.iterdir()) == []


def test_undecodable_video(client: TestClient, uploads: Path) -> None:
    response = client.post("/v1/predict", files={"file": ("holiday.mp4", b"not a video at all" * 100, "video/mp4")})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "holiday.mp4" in detail and "unihar-upload" not in detail  # no server path in the message
    assert list(uploads.iterdir()) == []


@pytest.mark.slow
def test_clip_too_long(pipeline, clip: Path, tmp_path: Path) -> None:
    app = create_app(pipeline, ServeSettings(max_seconds=1.0, upload_dir=str(tmp_path)))
    with TestClient(app) as client:
        response = client.post("/v1/predict", files={"file": ("clip.mp4", clip.read_bytes(), "video/mp4")})
        assert response.status_code == 422 and "clip too long" in response.json()["detail"]
        assert "got 45 frames" in response.json()["detail"]
        response = client.post("/v1/predict", json={"keypoints": [[[1, 2, 1]] * 17] * 31})  # 31 frames at 30 fps
        assert response.status_code == 422 and "clip too long" in response.json()["detail"]
        assert client.post("/v1/predict", json={"keypoints": [[[1, 2, 1]] * 17] * 30}).status_code == 200
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_rgb_fusion_model(tmp_path: Path) -> None:
    """A model with the image branch gets the decoded frames too; it cannot classify keypoints alone."""
    from unihar.loading import from_pretrained

    pipeline = VideoPipeline(from_pretrained(small_model_dir(tmp_path / "rgb", image=True)), device="cpu")
    clip = short_clip(tmp_path, frames=20)
    with TestClient(create_app(pipeline, ServeSettings(upload_dir=str(tmp_path)))) as client:
        response = client.post("/v1/predict", files={"file": (clip.name, clip.read_bytes(), "video/mp4")})
        assert response.status_code == 200, response.text
        _assert_same_prediction(response.json(), pipeline(clip).to_dict())
        response = client.post("/v1/predict", json={"keypoints": [[[1, 2, 1]] * 17] * 5})
        assert response.status_code == 422 and "RGB frames" in response.json()["detail"]


BROWSER_WEBM = Path(__file__).resolve().parent / "web" / "data" / "mediarecorder_no_rate.webm"


@pytest.mark.slow
def test_browser_recording_without_frame_rate(client: TestClient) -> None:
    """A webcam recording whose webm states no frame rate (FFmpeg guesses 1000 fps) is read at its real ~30 fps."""
    from unihar.data.video import open_video

    if not BROWSER_WEBM.is_file():
        pytest.skip(f"{BROWSER_WEBM} is not present")
    info = open_video(BROWSER_WEBM).info  # the rate comes from the packet timestamps
    assert info.fps == pytest.approx(30.0, abs=0.1) and info.num_frames == 59
    response = client.post("/v1/predict", files={"file": ("webcam.webm", BROWSER_WEBM.read_bytes(), "video/webm")})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["fps"] == pytest.approx(30.0, abs=0.1) and data["frames"] == 59
    # 2 s of video is shorter than one window (2 s at 30 fps, not 2000 frames at 1000 fps): one window, to the
    # last frame.
    assert [w["end_frame"] for w in data["windows"]] == [59]


# ---------------------------------------------------------------------------------------------- JSON
def test_keypoints_json(client: TestClient, pipeline) -> None:
    kpts = _random_keypoints(75, 17)
    # No layout (17 joints -> coco17), fps 25, and [x, y] pairs without confidence are accepted.
    response = client.post("/v1/predict?topk=2", json={"keypoints": kpts.tolist(), "fps": 25})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["frames"] == 75 and data["fps"] == 25.0 and len(data["topk"]) == 2
    assert [(w["start_frame"], w["end_frame"]) for w in data["windows"]] == [(0, 50), (25, 75)]
    assert [(p["id"], p["start_frame"], p["end_frame"]) for p in data["people"]] == [(0, 0, 74)]
    sequence = PoseSequence(kpts.astype(np.float32), get_layout("coco17"), (300, 300))
    _assert_same_prediction(data, pipeline.classify(sequence, 25.0, topk=2).to_dict())
    pairs = client.post("/v1/predict", json={"keypoints": kpts[..., :2].tolist(), "layout": "coco17"})
    assert pairs.status_code == 200, pairs.text
    with_poses = client.post(
        "/v1/predict?poses=1", json={"keypoints": kpts.tolist(), "width": 320, "height": 240}
    ).json()
    assert with_poses["poses"]["frame_size"] == [320, 240] and with_poses["poses"]["layout"] == "coco17"
    assert [p["id"] for p in with_poses["poses"]["people"]] == [0] and with_poses["poses"]["main_person"] == 0


def test_bad_json(client: TestClient) -> None:
    cases = [
        ({"keypoints": [[[1, 2, 1]] * 12] * 10}, "cannot guess the layout of 12 joints"),
        ({"keypoints": [[[1, 2, 1]] * 17, [[1, 2, 1]] * 16]}, "same number of joints"),
        ({"keypoints": [[[1, 2, 1]] * 13] * 10, "layout": "coco17"}, "has 17 joints, the array has 13"),
        ({"keypoints": [[[0, 0, 0]] * 17] * 10}, "nobody was detected"),
        ({"keypoints": [[[1, 2, 1]] * 17], "path": "/etc/passwd"}, "Extra inputs are not permitted"),
        ({"keypoints": [[[1, 2, 1]] * 17], "fps": -1}, "greater than 0"),
    ]
    for body, message in cases:
        response = client.post("/v1/predict", json=body)
        assert response.status_code == 422, (body, response.text)
        assert message in json.dumps(response.json()), response.text
    response = client.post("/v1/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    response = client.post("/v1/predict?topk=9", json={"keypoints": [[[1, 2, 1]] * 17]})
    assert response.status_code == 422 and "topk" in response.json()["detail"]


def test_json_refused_before_parsing(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bodies the server cannot take are refused from their size and raw bytes; the parser never sees them."""
    parsed: list[int] = []
    original = PoseRequest.model_validate_json.__func__

    def spy(cls, data, *args, **kwargs):
        parsed.append(len(data))
        return original(cls, data, *args, **kwargs)

    monkeypatch.setattr(PoseRequest, "model_validate_json", classmethod(spy))
    settings = client.app.state.service.settings
    # Over the byte limit (1 MB here), announced by Content-Length.
    response = client.post(
        "/v1/predict", content=b"[" + b"0," * 600_000 + b"0]", headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and "at most 1 MB" in response.json()["detail"]
    # Under the byte limit but more keypoints (frames x joints) than the server takes.
    frames = settings.max_keypoints // 17 + settings.max_frames // 17 + 1
    body = json.dumps({"keypoints": [[[0, 0]] * 17] * frames}).encode()
    assert len(body) < settings.max_json_bytes
    response = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413, response.text
    assert f"at most {settings.max_keypoints} keypoints" in response.json()["detail"]
    assert parsed == []
    # One flat list of numbers, no brackets to count: refused on its commas.
    body = b'{"keypoints": [[[' + b"0," * (3 * (settings.max_keypoints + settings.max_frames) + 2000) + b"0]]]}"
    assert len(body) < settings.max_json_bytes
    response = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413 and parsed == []
    # Over the limit by less than the raw count can tell: parsed, then refused on its exact shape, with the same status.
    frames = settings.max_keypoints // 33 + 1
    response = client.post("/v1/predict", json={"keypoints": [[[1, 2, 1]] * 33] * frames})
    assert response.status_code == 413 and f"got {frames} x 33" in response.json()["detail"]
    assert len(parsed) == 1
    # Within the limits: parsed and answered.
    assert client.post("/v1/predict", json={"keypoints": _random_keypoints(40, 17).tolist()}).status_code == 200
    assert len(parsed) == 2


@pytest.mark.slow
def test_declared_length_refused_without_reading(pipeline, tmp_path: Path) -> None:
    """Real HTTP: a Content-Length over the limit is answered 413 at once, though the body never comes."""
    app = create_app(pipeline, ServeSettings(upload_dir=str(tmp_path), max_json_bytes=1000, max_upload_bytes=5000))
    with running_server(app) as url:
        port = int(url.rsplit(":", 1)[1])
        for content_type, length in (("application/json", 1001), ("multipart/form-data; boundary=x", 5001)):
            with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
                head = (
                    f"POST /v1/predict HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\n"
                    f"Content-Length: {length}\r\n\r\n"
                )
                sock.sendall(head.encode())  # and no body: a server waiting for it would never answer
                answer = sock.recv(65536).decode("latin-1")
            assert answer.startswith("HTTP/1.1 413"), answer
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------- requests
def test_labels_health_docs(client: TestClient, pipeline) -> None:
    labels = client.get("/v1/labels").json()
    assert labels == {"num_classes": 5, "labels": [{"id": i, "label": name} for i, name in enumerate(pipeline.labels)]}
    assert client.get("/healthz").json() == {"status": "ok", "num_classes": 5}
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/v1/predict"]["post"]
    assert set(post["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert "503" in post["responses"] and "people" in spec["components"]["schemas"]["Prediction"]["properties"]
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/static/app.js" in page.text and client.get("/static/app.js").status_code == 200


def test_upload_too_large(client: TestClient, uploads: Path) -> None:
    big = b"\0" * 2_100_000
    response = client.post("/v1/predict", files={"file": ("big.mp4", big, "video/mp4")})
    assert response.status_code == 413 and "at most 2 MB" in response.json()["detail"]

    def chunked():  # no Content-Length: the limit is enforced while reading
        for _ in range(40):
            yield b"\0" * 100_000

    boundary = "xyz"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    )
    body = (part for part in [head.encode(), *chunked(), f"\r\n--{boundary}--\r\n".encode()])
    response = client.post(
        "/v1/predict", content=body, headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 413
    chunked_json = (b"0," * 1000 for _ in range(600))  # 1.2 MB of JSON without a Content-Length
    response = client.post("/v1/predict", content=chunked_json, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert list(uploads.iterdir()) == []


def test_wrong_content_types(client: TestClient) -> None:
    response = client.post("/v1/predict", content=b"hello", headers={"content-type": "text/plain"})
    assert response.status_code == 415 and "multipart/form-data" in response.json()["detail"]
    response = client.post("/v1/predict", files={"file": ("cat.png", b"\x89PNG....", "image/png")})
    assert response.status_code == 415 and "image/png" in response.json()["detail"]
    response = client.post("/v1/predict", files={"video": ("clip.mp4", b"data", "video/mp4")})
    assert response.status_code == 422 and "'file'" in response.json()["detail"]
    response = client.post("/v1/predict", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data"})
    assert response.status_code == 400


# ---------------------------------------------------------------------------------------------- a busy server
class GatedPoses:
    """A real pose backend whose estimator, once open, waits until the test opens ``gate``.

    ``started`` counts the videos that reached pose estimation, so a test knows the video worker is
    busy without guessing how long anything takes.
    """

    needs_video = True

    def __init__(self, backend) -> None:
        self.backend = backend
        self.name, self.layout = backend.name, backend.layout
        self.gate = threading.Event()
        self.started = threading.Semaphore(0)

    @contextlib.contextmanager
    def frame_estimator(self) -> Iterator:
        with self.backend.frame_estimator() as estimate:
            self.started.release()
            if not self.gate.wait(WAIT_S):
                raise RuntimeError("the test never opened the gate")
            yield estimate


@pytest.fixture
def gated_server(workdir: Path, tmp_path: Path):
    from unihar.loading import from_pretrained

    gated = GatedPoses(get_pose_backend("blazepose", max_people=6))
    model = from_pretrained(small_model_dir(workdir / "model", layout="penn13"))
    pipeline = VideoPipeline(model, pose_backend=gated, device="cpu")
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    app = create_app(pipeline, ServeSettings(max_pending=1, workers=2, upload_dir=str(uploads)))
    with running_server(app) as url:
        try:
            yield url, gated, app.state.service, uploads
        finally:
            gated.gate.set()


def _post_video(url: str, clip: Path) -> httpx.Response:
    with clip.open("rb") as handle:
        return httpx.post(f"{url}/v1/predict", files={"file": (clip.name, handle, "video/mp4")}, timeout=WAIT_S)


@pytest.mark.slow
def test_full_queue_gets_503(gated_server, clip: Path) -> None:
    """--max-pending 1: one video running, one waiting; the next is refused with 503 + Retry-After, no file kept."""
    url, gated, service, uploads = gated_server
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(_post_video, url, clip)
        assert gated.started.acquire(timeout=WAIT_S)  # the first video is in pose estimation, held at the gate
        second = pool.submit(_post_video, url, clip)
        _wait_until(lambda: service.videos.held == 2 and len(list(uploads.iterdir())) == 2, "the second video to wait")

        refused = httpx.post(
            f"{url}/v1/predict", files={"file": ("third.mp4", clip.read_bytes(), "video/mp4")}, timeout=WAIT_S
        )
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["Retry-After"]) >= 1
        assert "busy" in refused.json()["detail"]
        assert len(list(uploads.iterdir())) == 2  # the refused upload left no file behind
        assert service.videos.held == 2

        gated.gate.set()
        for response in (first.result(), second.result()):
            assert response.status_code == 200, response.text
            assert response.json()["frames"] == 45
    assert service.videos.held == 0 and list(uploads.iterdir()) == []
    assert _post_video(url, clip).status_code == 200  # places are given back


@pytest.mark.slow
def test_busy_video_does_not_block_other_requests(gated_server, clip: Path) -> None:
    """While a video is held in pose estimation, the event loop and the JSON workers keep answering."""
    url, gated, service, _ = gated_server
    kpts = _random_keypoints(60, 13, seed=1).tolist()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        video = pool.submit(_post_video, url, clip)
        assert gated.started.acquire(timeout=WAIT_S)
        # An undecodable upload waits behind the held video (the one place in the line) ...
        garbage = pool.submit(
            lambda: httpx.post(
                f"{url}/v1/predict", files={"file": ("x.mp4", b"garbage" * 50, "video/mp4")}, timeout=WAIT_S
            )
        )
        assert httpx.get(f"{url}/healthz", timeout=WAIT_S).status_code == 200
        good = [httpx.post(f"{url}/v1/predict", json={"keypoints": kpts}, timeout=WAIT_S) for _ in range(3)]
        bad = httpx.post(f"{url}/v1/predict", json={"keypoints": [[[0, 0, 0]] * 13]}, timeout=WAIT_S)
        assert not video.done()  # it cannot finish: the gate is still shut
        assert [r.status_code for r in good] == [200, 200, 200]
        assert all(r.json() == good[0].json() for r in good) and set(good[0].json()) == PREDICT_KEYS
        assert bad.status_code == 422 and "nobody was detected" in bad.json()["detail"]
        gated.gate.set()
        response = video.result()
        # ... and fails on its own, without disturbing the good video.
        assert garbage.result().status_code == 422
    assert response.status_code == 200 and response.json()["frames"] == 45


class StillPoses:
    """Pose estimation (the slow stage) stood in for by the same person in every frame, so many videos run
    in seconds; each video waits at ``gate`` until the test opens it."""

    needs_video = True

    def __init__(self) -> None:
        self.name, self.layout = "still", get_layout("penn13")
        xy = np.random.default_rng(0).uniform([120, 40], [220, 230], (13, 2))
        self.person = np.concatenate([xy, np.full((13, 1), 0.9)], axis=-1).astype(np.float32)[None]
        self.gate = threading.Event()

    @contextlib.contextmanager
    def frame_estimator(self) -> Iterator:
        if not self.gate.wait(WAIT_S):
            raise RuntimeError("the test never opened the gate")
        yield lambda frame: self.person


@pytest.mark.slow
def test_default_settings_serve_several_people(workdir: Path, tmp_path: Path, clip: Path) -> None:
    """Default settings: 8 uploads at once all wait their turn and get their answer; past the line's
    real size (what the documented disk bound covers) the next gets 503 + Retry-After."""
    from unihar.loading import from_pretrained

    poses = StillPoses()
    model = from_pretrained(small_model_dir(workdir / "model", layout="penn13"))
    pipeline = VideoPipeline(model, pose_backend=poses, device="cpu")
    poses.gate.set()
    expected = pipeline(clip, topk=5).to_dict()
    poses.gate.clear()
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    settings = ServeSettings(upload_dir=str(uploads))
    app = create_app(pipeline, settings)
    service = app.state.service
    capacity = service.videos.capacity
    assert settings.upload_disk_bytes == capacity * settings.max_upload_bytes

    def arrived(futures: list[concurrent.futures.Future], total: int) -> bool:
        """``total`` requests are in: each holds a place with its file written, or was answered already."""
        held, answered = service.videos.held, sum(future.done() for future in futures)
        return held + answered == total and len(list(uploads.iterdir())) == held

    with running_server(app) as url, concurrent.futures.ThreadPoolExecutor(max_workers=max(8, capacity)) as pool:
        try:
            first = [pool.submit(_post_video, url, clip) for _ in range(8)]
            _wait_until(lambda: arrived(first, 8), "8 uploads to arrive")
            assert [f.result().status_code for f in first if f.done()] == []  # none refused, none answered yet
            rest = [pool.submit(_post_video, url, clip) for _ in range(capacity - 8)]
            _wait_until(lambda: arrived(rest, capacity), f"{capacity} uploads to arrive")
            assert [f.result().status_code for f in rest if f.done()] == []

            refused = _post_video(url, clip)
            assert refused.status_code == 503, refused.text
            assert int(refused.headers["Retry-After"]) >= 1
            assert len(list(uploads.iterdir())) == capacity
        finally:
            poses.gate.set()
        responses = [future.result() for future in first + rest]
    assert [r.status_code for r in responses] == [200] * capacity, [r.text for r in responses if r.status_code != 200]
    for response in responses:
        _assert_same_prediction(response.json(), expected)
    assert service.videos.held == 0 and list(uploads.iterdir()) == []


# ---------------------------------------------------------------------------------------------- the command
def test_serve_command_registers() -> None:
    import typer
    from typer.testing import CliRunner

    from unihar.cli import serve

    app = typer.Typer()
    serve.register(app)
    app.command("noop")(lambda: None)  # a second command so typer keeps "serve" as a subcommand
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in (
        "--host",
        "--port",
        "--weights",
        "--max-upload-mb",
        "--max-json-mb",
        "--max-seconds",
        "--max-pending",
        "--max-people",
        "--pose-backend",
    ):
        assert option in result.output


def test_serve_refuses_bad_options(capsys: pytest.CaptureFixture) -> None:
    """Options are checked before a model is loaded: one ``error:`` line and exit code 2."""
    from unihar.cli import main

    cases = [
        (["serve", "--pose-backend", "array"], "only imports keypoint files"),
        (["serve", "--pose-backend", "openpose9"], "unknown pose backend 'openpose9'"),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        error = capsys.readouterr().err
        assert exit_info.value.code == 2 and error.startswith("error:") and message in error, error


def _unihar_command() -> list[str]:
    script = shutil.which("unihar", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-c", "from unihar.cli import main; main()"]


@pytest.mark.slow
def test_serve_access_log_on_stderr(clip: Path, tmp_path: Path) -> None:
    """``unihar serve`` in its own process: every request, a video's included, has its access-log line on stderr."""
    port = free_port()
    command = _unihar_command() + ["serve", "--port", str(port), "--max-pending", "2", "--max-people", "2"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("wb") as stderr:
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
        try:
            url = f"http://127.0.0.1:{port}"

            def up() -> bool:
                if server.poll() is not None:
                    raise AssertionError(f"unihar serve exited with {server.returncode}: {stderr_path.read_text()}")
                try:
                    return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
                except httpx.TransportError:
                    return False

            _wait_until(up, "unihar serve to answer")
            video = _post_video(url, clip)
            assert video.status_code == 200, video.text
            keypoints = httpx.post(
                f"{url}/v1/predict?topk=3", json={"keypoints": _random_keypoints(45, 17).tolist()}, timeout=WAIT_S
            )
            assert keypoints.status_code == 200, keypoints.text
            assert httpx.get(f"{url}/no-such-page", timeout=WAIT_S).status_code == 404
            assert (
                httpx.post(
                    f"{url}/v1/predict", content=b"x", headers={"content-type": "text/plain"}, timeout=WAIT_S
                ).status_code
                == 415
            )
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=WAIT_S)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    log = stderr_path.read_text(errors="replace")
    expected = [
        r'"GET /healthz HTTP/1\.1" 200',
        r'"POST /v1/predict HTTP/1\.1" 200',  # the video, after pose estimation ran in this process
        r'"POST /v1/predict\?topk=3 HTTP/1\.1" 200',
        r'"GET /no-such-page HTTP/1\.1" 404',
        r'"POST /v1/predict HTTP/1\.1" 415',
    ]
    for pattern in expected:
        assert re.search(pattern, log), f"no access-log line matching {pattern!r} on stderr:\n{log}"
