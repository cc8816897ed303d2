"""The HTTP API (``unihar serve``): predictions equal to ``unihar predict --json``, limits, concurrency.

A small random-weights model (real network, arbitrary outputs) and MediaPipe on a short real clip.
"""
from __future__ import annotations

import concurrent.futures
import json
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")
httpx = pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from unihar.serving import ServeSettings, create_app  # noqa: E402
from web.helpers import running_server, short_clip, small_pipeline  # noqa: E402

PREDICT_KEYS = {"source", "frames", "fps", "topk", "windows"}


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
def uploads(workdir: Path) -> Path:
    folder = workdir / "uploads"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def client(pipeline, uploads: Path):
    app = create_app(pipeline, ServeSettings(upload_dir=str(uploads), max_upload_bytes=2_000_000, max_seconds=20))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def video_response(client: TestClient, clip: Path) -> dict:
    # A hostile file name: the server must neither read nor write it, only echo its base name.
    response = client.post(
        "/v1/predict?poses=1", files={"file": ("../../../etc/passwd", clip.read_bytes(), "video/mp4")}
    )
    assert response.status_code == 200, response.text
    return response.json()


def _assert_same_prediction(got: dict, expected: dict, atol: float = 1e-5) -> None:
    assert got["frames"] == expected["frames"] and got["fps"] == pytest.approx(expected["fps"])
    assert len(got["windows"]) == len(expected["windows"])
    pairs = [(got["topk"], expected["topk"])] + [(g["topk"], e["topk"]) for g, e in zip(got["windows"], expected["windows"])]
    for g, e in zip(got["windows"], expected["windows"]):
        assert (g["start_frame"], g["end_frame"]) == (e["start_frame"], e["end_frame"])
    for got_topk, expected_topk in pairs:
        assert [s["label"] for s in got_topk] == [s["label"] for s in expected_topk]
        np.testing.assert_allclose([s["prob"] for s in got_topk], [s["prob"] for s in expected_topk], atol=atol)


@pytest.mark.slow
def test_video_upload_matches_predict_json(video_response: dict, pipeline, clip: Path, uploads: Path) -> None:
    expected = pipeline(clip, topk=5).to_dict()  # what ``unihar predict clip --json`` prints
    got = {k: v for k, v in video_response.items() if k != "poses"}
    assert set(got) == PREDICT_KEYS
    assert got["source"] == "passwd"
    _assert_same_prediction(got, expected)
    assert got["frames"] == 45 and len(got["windows"]) == 1  # a 1.5 s clip is shorter than one 2 s window
    assert list(uploads.iterdir()) == []  # the temporary upload is gone


@pytest.mark.slow
def test_poses_option(video_response: dict, client: TestClient, clip: Path) -> None:
    poses = video_response["poses"]
    assert poses["layout"] == "mediapipe33" and len(poses["joints"]) == 33
    assert poses["frame_size"] == [340, 256]
    keypoints = np.array(poses["keypoints"])
    assert keypoints.shape == (45, 33, 3) and len(poses["detected"]) == 45
    assert all(0 <= a < 33 and 0 <= b < 33 for a, b in poses["edges"]) and len(poses["edges"]) > 10
    # The lifter is in view: most joints of most frames land inside the frame.
    inside = (keypoints[..., 0] >= 0) & (keypoints[..., 0] <= 340) & (keypoints[..., 1] >= 0) & (keypoints[..., 1] <= 256)
    assert inside.mean() > 0.8 and sum(poses["detected"]) > 40


@pytest.mark.slow
def test_keypoints_json_round_trip(video_response: dict, client: TestClient) -> None:
    """The poses the server found, sent back as JSON, give the video's prediction (up to the 0.1 px rounding)."""
    poses = video_response["poses"]
    body = {"keypoints": poses["keypoints"], "layout": "mediapipe33", "fps": video_response["fps"],
            "width": 340, "height": 256}
    response = client.post("/v1/predict", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert set(data) == PREDICT_KEYS and data["source"] == "keypoints"
    _assert_same_prediction(data, video_response, atol=2e-3)


def test_keypoints_json(client: TestClient, pipeline) -> None:
    rng = np.random.default_rng(0)
    kpts = np.concatenate([rng.uniform(20, 300, (75, 17, 2)), np.full((75, 17, 1), 0.9)], axis=-1)
    # No layout (17 joints -> coco17), fps 25, and [x, y] pairs without confidence are accepted.
    response = client.post("/v1/predict?topk=2", json={"keypoints": kpts.tolist(), "fps": 25})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["frames"] == 75 and data["fps"] == 25.0 and len(data["topk"]) == 2
    assert [(w["start_frame"], w["end_frame"]) for w in data["windows"]] == [(0, 50), (25, 75)]
    from unihar.data.pose import PoseSequence
    from unihar.data.layouts import get_layout

    expected = pipeline.classify(PoseSequence(kpts.astype(np.float32), get_layout("coco17"), (300, 300)), 25.0, topk=2)
    _assert_same_prediction(data, expected.to_dict())
    pairs = client.post("/v1/predict", json={"keypoints": kpts[..., :2].tolist(), "layout": "coco17"})
    assert pairs.status_code == 200, pairs.text


def test_labels_health_docs(client: TestClient, pipeline) -> None:
    labels = client.get("/v1/labels").json()
    assert labels == {"num_classes": 5, "labels": [{"id": i, "label": name} for i, name in enumerate(pipeline.labels)]}
    assert client.get("/healthz").json() == {"status": "ok", "num_classes": 5}
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
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
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\nContent-Type: video/mp4\r\n\r\n'
    body = (part for part in [head.encode(), *chunked(), f"\r\n--{boundary}--\r\n".encode()])
    response = client.post("/v1/predict", content=body, headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 413
    big_json = client.post("/v1/predict", content=b"[" + b"0," * 1_100_000 + b"0]", headers={"content-type": "application/json"})
    assert big_json.status_code == 413
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


def test_undecodable_video(client: TestClient, uploads: Path) -> None:
    response = client.post("/v1/predict", files={"file": ("holiday.mp4", b"not a video at all" * 100, "video/mp4")})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "holiday.mp4" in detail and "unihar-upload" not in detail  # no server path in the message
    assert list(uploads.iterdir()) == []


def test_bad_json(client: TestClient) -> None:
    cases = [
        ({"keypoints": [[[1, 2, 1]] * 12] * 10}, "cannot guess the layout of 12 joints"),
        ({"keypoints": [[[1, 2, 1]] * 17, [[1, 2, 1]] * 16]}, "same number of joints"),
        ({"keypoints": [[[1, 2, 1]] * 13] * 10, "layout": "coco17"}, "has 17 joints, the keypoints have 13"),
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
def test_concurrent_requests_over_http(pipeline, clip: Path) -> None:
    """Real HTTP: the event loop keeps answering while a video is analysed; bad requests do not disturb good ones."""
    rng = np.random.default_rng(1)
    kpts = np.concatenate([rng.uniform(20, 300, (60, 13, 2)), np.full((60, 13, 1), 0.8)], axis=-1).tolist()
    app = create_app(pipeline, ServeSettings(workers=3))
    with running_server(app) as url, concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        def post_video():
            with clip.open("rb") as handle:
                response = httpx.post(f"{url}/v1/predict", files={"file": ("clip.mp4", handle, "video/mp4")}, timeout=120)
            return response

        def post_json(body):
            return httpx.post(f"{url}/v1/predict", json=body, timeout=120)

        def post_garbage():
            return httpx.post(f"{url}/v1/predict", files={"file": ("x.mp4", b"garbage" * 50, "video/mp4")}, timeout=120)

        video = pool.submit(post_video)
        good = [pool.submit(post_json, {"keypoints": kpts}) for _ in range(6)]
        bad = [pool.submit(post_garbage) for _ in range(2)] + [pool.submit(post_json, {"keypoints": [[[0, 0, 0]] * 13]})]
        # While MediaPipe works on the video (seconds), the event loop still answers at once.
        time.sleep(0.5)
        health = httpx.get(f"{url}/healthz", timeout=10)
        assert health.status_code == 200 and not video.done()

        results = [f.result().json() for f in good]
        assert all(r == results[0] for r in results) and set(results[0]) == PREDICT_KEYS
        assert [f.result().status_code for f in bad] == [422, 422, 422]
        response = video.result()
        assert response.status_code == 200 and response.json()["frames"] == 45


@pytest.mark.slow
def test_rgb_fusion_model(tmp_path: Path) -> None:
    """A model with the image branch gets the decoded frames too; it cannot classify keypoints alone."""
    from unihar.loading import from_pretrained
    from unihar.inference.pipeline import VideoPipeline
    from video_helpers import small_model_dir

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
    assert data["fps"] == pytest.approx(30.0, abs=0.1)
    assert data["frames"] == 59 and [(w["start_frame"], w["end_frame"]) for w in data["windows"]] == [(0, 59)]


def test_serve_command_registers() -> None:
    import typer
    from typer.testing import CliRunner

    from unihar.cli import serve

    app = typer.Typer()
    serve.register(app)
    app.command("noop")(lambda: None)  # a second command so typer keeps "serve" as a subcommand
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--weights", "--max-upload-mb", "--max-seconds"):
        assert option in result.output
