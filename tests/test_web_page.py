"""The web page in a real headless browser (Playwright driving Debian's Chromium).

The page uploads a real clip with two people in it, and the test reads the result off the page: a
row per person (colour, id, action), the top-k bars of the followed person, a timeline row per person,
each skeleton drawn in its person's colour with a label over it. A second test records from a fake
webcam (Chromium plays a real clip as the camera) and uploads the recording as webm.

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

from web.helpers import running_server, small_pipeline, two_lifters_clip, y4m_clip  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 180_000  # pose estimation on a shared 2-core CPU


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
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "playwright"], capture_output=True, text=True
        )
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


def _canvas_pixels_of(page, colour: str) -> int:
    """Pixels of the overlay painted exactly in ``colour`` (#rrggbb): the inside of that person's bones and joints."""
    return page.evaluate(
        """(colour) => {
            const canvas = document.getElementById('overlay');
            const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            const [r, g, b] = [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16));
            let count = 0;
            for (let i = 0; i < data.length; i += 4) {
                if (data[i] === r && data[i + 1] === g && data[i + 2] === b && data[i + 3] === 255) count++;
            }
            return count;
        }""",
        colour,
    )


def _bars(page, list_id: str) -> list[tuple[str, float]]:
    items = page.locator(f"#{list_id} li")
    return [
        (items.nth(i).get_attribute("data-label"), float(items.nth(i).get_attribute("data-prob")))
        for i in range(items.count())
    ]


def _nearest_window(windows: list[dict], frame: int) -> int:
    """The window shown at ``frame``: the nearest by centre, ties to the earlier (PersonPrediction.window_for_frame)."""
    centres = [(w["start_frame"] + w["end_frame"] - 1) / 2 for w in windows]
    return min(range(len(windows)), key=lambda i: (abs(centres[i] - frame), i))


@pytest.mark.slow
def test_upload_a_clip(playwright, server: str, workdir: Path) -> None:
    clip = two_lifters_clip(workdir, frames=75)
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
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
        assert result["source"] == clip.name and result["frames"] == 75
        people = {p["id"]: p for p in result["people"]}
        drawn = {p["id"]: p for p in result["poses"]["people"]}
        main = people[result["poses"]["main_person"]]
        assert len(people) == 2 and all("topk" in p for p in people.values())

        # A row per person, in their colour, with their top action; the main person is followed first.
        rows = page.locator("#people li")
        assert rows.count() == 2
        for i in range(2):
            person_id = int(rows.nth(i).get_attribute("data-person"))
            assert rows.nth(i).evaluate("e => e.style.getPropertyValue('--person')") == drawn[person_id]["colour"]
            assert people[person_id]["topk"][0]["label"] in rows.nth(i).inner_text()
        assert page.locator("#people li.selected").get_attribute("data-person") == str(main["id"])
        assert (
            _bars(page, "overall-topk")
            == [(s["label"], s["prob"]) for s in result["topk"]]
            == [(s["label"], s["prob"]) for s in main["topk"]]
        )
        assert page.locator("#overall-topk li .prob").first.inner_text() == f"{100 * result['topk'][0]['prob']:.1f}%"
        assert result["topk"][0]["label"] in page.locator("#status").inner_text()

        # One timeline row per person, one cell per window (2.5 s: windows at 0-2 s and 0.5-2.5 s).
        assert page.locator("#timeline .track").count() == 2
        for person_id, person in people.items():
            cells = page.locator(f"#timeline .track[data-person='{person_id}'] .window")
            assert cells.count() == len(person["windows"]) == 2
            assert cells.first.inner_text() == person["windows"][0]["topk"][0]["label"]

        # The browser decodes the mp4; each person's skeleton is drawn in their colour, labelled with
        # their id and current action.
        page.wait_for_function("document.getElementById('video').readyState >= 2", timeout=30_000)
        assert page.evaluate("document.getElementById('overlay').width") == 680
        frame = max(p["start_frame"] for p in people.values()) + 10  # everyone is in view there
        page.evaluate(f"document.getElementById('video').currentTime = {(frame + 0.5) / result['fps']}")
        page.wait_for_function(f"document.querySelectorAll('#labels .person-label').length === {len(people)}")
        page.wait_for_function("!document.getElementById('video').seeking")
        for person_id, person in drawn.items():
            assert _canvas_pixels_of(page, person["colour"]) > 50, person_id
            label = page.locator(f"#labels .person-label[data-person='{person_id}']")
            window = people[person_id]["windows"][_nearest_window(people[person_id]["windows"], frame)]
            assert label.inner_text().startswith(f"#{person_id} {window['topk'][0]['label']}")
        left = {pid: page.locator(f"#labels .person-label[data-person='{pid}']").bounding_box()["x"] for pid in drawn}
        centres = {
            pid: sum(k[0] for f in p["keypoints"] for k in f) / sum(len(f) for f in p["keypoints"])
            for pid, p in drawn.items()
        }
        assert sorted(left, key=left.get) == sorted(centres, key=centres.get)  # each label sits over its own person

        # Clicking the other person's last window follows that person and seeks the video there.
        other = next(pid for pid in people if pid != main["id"])
        page.locator(f"#timeline .track[data-person='{other}'] .window").last.click()
        page.wait_for_function("document.getElementById('video').currentTime > 1.2")
        page.wait_for_selector(f"#timeline .track[data-person='{other}'] .window.current[data-index='1']")
        assert page.locator("#people li.selected").get_attribute("data-person") == str(other)
        assert _bars(page, "current-topk") == [(s["label"], s["prob"]) for s in people[other]["windows"][-1]["topk"]]
        assert _bars(page, "overall-topk") == [(s["label"], s["prob"]) for s in people[other]["topk"]]
        assert f"person #{other}" in page.locator("#now-range").inner_text()
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
        assert page.locator("#timeline .track").count() == 0
        assert errors == []
    finally:
        browser.close()


@pytest.mark.slow
def test_webcam_recording(playwright, server: str, workdir: Path) -> None:
    camera = y4m_clip(workdir)
    args = CHROMIUM_ARGS + [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}",
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
        assert page.locator("#timeline .track").count() == len(result["people"]) >= 1
    finally:
        browser.close()
