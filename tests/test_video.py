"""Video decoding (PyAV) and image folders, on the real clips in tests/data/videos, and every bad input."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from unihar.data.video import DEFAULT_IMAGE_FOLDER_FPS, open_video, read_frames
from unihar.errors import UniHARError, VideoError

VIDEOS = Path(__file__).resolve().parent / "data" / "videos"
CLEAN_AND_JERK = VIDEOS / "clean_and_jerk.mp4"
TEST_AVI = VIDEOS / "test.avi"


def test_reads_real_mp4() -> None:
    reader = open_video(CLEAN_AND_JERK)
    assert (reader.info.width, reader.info.height) == (340, 256)
    assert reader.info.rate == Fraction(30000, 1001)
    assert reader.info.fps == pytest.approx(29.97, abs=0.01)
    assert reader.info.num_frames == 300 and len(reader) == 300
    count = 0
    for frame in reader:
        assert frame.shape == (256, 340, 3) and frame.dtype == np.uint8
        count += 1
    assert count == 300


def test_reads_real_avi_and_is_reiterable() -> None:
    frames, info = read_frames(TEST_AVI)
    assert frames.shape == (164, 240, 320, 3)
    assert info.fps == 25.0 and info.exact_rate == Fraction(25)
    again = np.stack(list(open_video(TEST_AVI, max_frames=5)))
    np.testing.assert_array_equal(again, frames[:5])
    # A real image has colour and structure, not a constant.
    assert frames[0].std() > 10


@pytest.mark.parametrize("suffix,codec", [(".mkv", "mpeg4"), (".webm", "libvpx-vp9"), (".mov", "libx264")])
def test_other_containers(tmp_path: Path, suffix: str, codec: str) -> None:
    frames, _ = read_frames(TEST_AVI, max_frames=8)
    path = tmp_path / f"clip{suffix}"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(24000, 1001))
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    decoded, info = read_frames(path)
    assert decoded.shape == (8, 240, 320, 3)
    assert info.fps == pytest.approx(23.976, abs=0.01)
    # lossy, but the same picture
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 12


def test_image_folder_natural_order_and_fps(tmp_path: Path) -> None:
    frames, _ = read_frames(TEST_AVI, max_frames=12)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / f"frame_{i}.png")  # frame_2 must come before frame_10
    (tmp_path / "notes.txt").write_text("not an image")
    reader = open_video(tmp_path)
    assert reader.info.is_image_folder and reader.info.num_frames == 12
    assert reader.info.fps == DEFAULT_IMAGE_FOLDER_FPS
    np.testing.assert_array_equal(np.stack(list(reader)), frames)  # PNG is lossless
    assert open_video(tmp_path, fps=12.5).info.fps == 12.5


def test_image_folder_with_mixed_sizes(tmp_path: Path) -> None:
    Image.new("RGB", (64, 48)).save(tmp_path / "a.png")
    Image.new("RGB", (32, 48)).save(tmp_path / "b.png")
    with pytest.raises(VideoError, match=r"32x48, expected .* 64x48"):
        list(open_video(tmp_path))


def test_missing_file() -> None:
    with pytest.raises(VideoError, match="video not found: 'no/such/clip.mp4'"):
        open_video("no/such/clip.mp4")


@pytest.mark.parametrize(
    "name,content",
    [
        ("random.mp4", np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes()),
        ("text.mp4", b"this is not a video\n"),
        ("empty.mp4", b""),
        # the mp4's index (moov) is at its end: the first 100 kB alone cannot be opened
        ("truncated.mp4", CLEAN_AND_JERK.read_bytes()[:100_000]),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(VideoError, match=f"cannot read video .*{name}"):
        list(open_video(path))


def test_header_without_frames(tmp_path: Path) -> None:
    # An AVI cut right after its header: it opens, but no frame decodes.
    path = tmp_path / "cut.avi"
    path.write_bytes(TEST_AVI.read_bytes()[:12_000])
    with pytest.raises(VideoError, match="no decodable frames"):
        list(open_video(path))


def test_zero_frame_video(tmp_path: Path) -> None:
    path = tmp_path / "zero.mkv"
    container = av.open(str(path), "w")
    stream = container.add_stream("mpeg4", rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    container.start_encoding()
    container.close()
    with pytest.raises(VideoError):
        list(open_video(path))


def test_not_a_video_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="folder without images"):
        open_video(tmp_path)
    audio = tmp_path / "tone.wav"
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(VideoError, match="no video stream"):
        open_video(audio)


def test_errors_are_unihar_errors() -> None:
    assert issubclass(VideoError, UniHARError)
    with pytest.raises(VideoError, match="positive frame rate"):
        open_video(TEST_AVI, fps=0)


def test_webm_without_a_frame_rate_is_timed_by_its_timestamps() -> None:
    """Browsers' MediaRecorder webm states no rate (FFmpeg guesses 1000 fps); the timestamps give ~30 fps."""
    from pathlib import Path

    from unihar.data.video import open_video

    webm = Path(__file__).resolve().parent / "web" / "data" / "mediarecorder_no_rate.webm"
    info = open_video(webm).info
    assert abs(info.fps - 30.0) < 0.1 and info.num_frames == 59
    assert sum(1 for _ in open_video(webm)) == 59
