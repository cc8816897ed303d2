"""The web page in a real headless browser (Playwright driving Debian's Chromium).

The page uploads a real clip, and the test reads the result off the page: the top-k bars, the
timeline of windows, the skeleton drawn on the canvas. A second test records from a fake webcam
(Chromium plays the same real clip as the camera) and uploads the recording as webm.

Needs Chromium (``apt-get install -y chromium``) and the ``playwright`` Python package (never
``playwright install``: it downloads browsers). The test installs either when it can (as root, with
apt-get / pip), and skips with the reason when it cannot.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")

from web.helpers import running_server, short_clip, small_pipeline, y4m_clip  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TIMEOUT_MS = 180_000  # MediaPipe on a shared 2-core CPU


def _install_chromium() -> str | None:
    """Install Debian's chromium if missing; None when done, else why not."""
    if CHROMIUM.exists():
        return None
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return "/usr/bin/chromium is missing and cannot be installed here (needs root and apt-get)"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(command)} failed: {exc}"
        if done.returncode != 0:
            return f"{' '.join(command)} failed: {done.stderr.strip().splitlines()[-1:]}"
    return None if CHROMIUM.exists() else "apt-get installed chromium but /usr/bin/chromium is still missing"


def _import_playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "playwright"], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"the playwright package is missing and pip could not install it: {done.stderr.strip()[-300:]}")
        from playwright.sync_api import sync_playwright
    return sync_playwright


@pytest.fixture(scope="module")
def playwright():
    sync_playwright = _import_playwright()
    reason = _install_chromium()
    if reason is not None:
        pytest.skip(reason)
    with sync_playwright() as handle:
        yield handle


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("web")


@pytest.fixture(scope="module")
def server(workdir: Path):
    from unihar.serving import ServeSettings, create_app

    app = create_app(small_pipeline(workdir / "model"), ServeSettings(upload_dir=str(workdir)))
    with running_server(app) as url:
        yield url


def _canvas_painted_pixels(page) -> int:
    return page.evaluate(
        """() => {
            const canvas = document.getElementById('overlay');
            const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            let painted = 0;
            for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
            return painted;
        }"""
    )


def _bars(page, list_id: str) -> list[tuple[str, float]]:
    items = page.locator(f"#{list_id} li")
    return [(items.nth(i).get_attribute("data-label"), float(items.nth(i).get_attribute("data-prob"))) for i in range(items.count())]


@pytest.mark.slow
def test_upload_a_clip(playwright, server: str, workdir: Path) -> None:
    clip = short_clip(workdir, frames=75)
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        page = browser.new_page(viewport={"width": 1200, "height": 820})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(server)
        assert page.title().startswith("Uni-HAR")
        page.wait_for_function("document.getElementById('model-info').textContent.includes('5 actions')")

        with page.expect_response(lambda r: "/v1/predict" in r.url, timeout=TIMEOUT_MS) as answer:
            page.set_input_files("#file", str(clip))
        result = answer.value.json()
        assert answer.value.status == 200, result
        page.wait_for_selector("#status[data-state='done']", timeout=30_000)

        # What the page shows is what the API answered.
        assert _bars(page, "overall-topk") == [(s["label"], s["prob"]) for s in result["topk"]]
        assert page.locator("#overall-topk li .prob").first.inner_text() == f"{100 * result['topk'][0]['prob']:.1f}%"
        assert result["topk"][0]["label"] in page.locator("#status").inner_text()
        windows = result["windows"]
        assert page.locator("#timeline .window").count() == len(windows) == 2  # 2.5 s: windows at 0-2 s, 0.5-2.5 s
        assert result["source"] == clip.name and result["frames"] == 75
        assert len(result["poses"]["keypoints"]) == 75

        # The browser decodes the mp4 and the skeleton is drawn over it.
        page.wait_for_function("document.getElementById('video').readyState >= 2", timeout=30_000)
        assert page.evaluate("document.getElementById('overlay').width") == 340
        assert _canvas_painted_pixels(page) > 200

        # Clicking the last window seeks the video there and shows that window's top-k.
        page.locator("#timeline .window").last.click()
        page.wait_for_function("document.getElementById('video').currentTime > 1.2")
        page.wait_for_selector("#timeline .window.current[data-index='1']")
        assert _bars(page, "current-topk") == [(s["label"], s["prob"]) for s in windows[-1]["topk"]]
        assert "window 2/2" in page.locator("#now-range").inner_text()
        page.screenshot(path=str(workdir / "page.png"))
        if os.environ.get("UNIHAR_SCREENSHOT"):
            page.screenshot(path=os.environ["UNIHAR_SCREENSHOT"])

        # A file that is not a video: the server's message appears on the page.
        bad = workdir / "notes.mp4"
        bad.write_bytes(b"this is not a video" * 50)
        page.set_input_files("#file", str(bad))
        page.wait_for_selector("#status[data-state='error']", timeout=30_000)
        assert "notes.mp4" in page.locator("#status").inner_text()
        assert errors == []
    finally:
        browser.close()


@pytest.mark.slow
def test_webcam_recording(playwright, server: str, workdir: Path) -> None:
    camera = y4m_clip(workdir)
    args = CHROMIUM_ARGS + [
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={camera}",
    ]
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
    try:
        page = browser.new_page()
        page.goto(server)
        page.click("#webcam")
        page.wait_for_selector("#record", state="visible")
        page.select_option("#record-seconds", "3")
        with page.expect_response(lambda r: "/v1/predict" in r.url, timeout=TIMEOUT_MS) as answer:
            page.click("#record")
        result = answer.value.json()
        assert answer.value.status == 200, result
        page.wait_for_selector("#status[data-state='done']", timeout=30_000)
        assert result["source"] == "webcam.webm"
        # About 3 s of recording: the server read the webm's real frame rate and length.
        duration = result["frames"] / result["fps"]
        assert 2.0 < duration < 4.5, (result["frames"], result["fps"])
        assert 10 <= result["fps"] <= 60
        assert _bars(page, "overall-topk") == [(s["label"], s["prob"]) for s in result["topk"]]
    finally:
        browser.close()
