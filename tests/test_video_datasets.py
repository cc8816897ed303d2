"""haa500 and video-folder loaders: real video (a trimmed copy of tests/data/videos/clean_and_jerk.mp4)
laid out in each format, poses extracted with the default pose backend (BlazePose) in parallel workers and
cached (resumable); a video without poses stops the loading unless it is explicitly skipped."""

import os
from pathlib import Path

import numpy as np
import pytest

from unihar.data.datasets import load_dataset
from unihar.errors import InputError
from video_helpers import blank_video

CLIP = Path(__file__).resolve().parent / "data" / "videos" / "clean_and_jerk.mp4"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UNIHAR_CACHE", str(tmp_path / "cache"))


def trimmed_clip(path: Path, frames: int, start: int = 0) -> Path:
    """``frames`` frames of the real clip, re-encoded (MPEG-4) so each test video is short."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(CLIP)) as src, av.open(str(path), "w") as dst:
        stream = dst.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 340, 256, "yuv420p"
        for i, frame in enumerate(src.decode(video=0)):
            if i < start:
                continue
            if i >= start + frames:
                break
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    return path


@pytest.mark.slow
def test_haa500_splits_parallel_extraction_and_resume(tmp_path):
    base = trimmed_clip(tmp_path / "base.mp4", 12)
    root = tmp_path / "haa500"
    for cls in ("clean_and_jerk", "lifting"):
        for n in (0, 15, 16, 17):
            target = root / "video" / cls / f"{cls}_{n:03d}.mp4"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(base.read_bytes())
    train = load_dataset(f"haa500:{root}", "train", workers=2)
    assert sorted(train.names) == ["clean_and_jerk_000", "clean_and_jerk_015", "lifting_000", "lifting_015"]
    assert train.classes == ["clean_and_jerk", "lifting"] and train.layout.name == "mediapipe33"  # BlazePose's 33
    seq = train.sequences[0]
    assert seq.shape[1:] == (33, 3) and abs(seq.shape[0] - 12 * 30 / 30) <= 1
    assert (seq[..., 2] > 0).mean() > 0.5  # the lifter is found
    caches = sorted((tmp_path / "cache" / "poses" / "blazepose").glob("*.npz"))
    assert len(caches) == 4
    stamps = {p: p.stat().st_mtime_ns for p in caches}
    os.remove(caches[0])  # an interrupted extraction: one file missing
    again = load_dataset(f"haa500:{root}", "train", workers=2)
    assert len(again) == 4
    for p in caches[1:]:
        assert p.stat().st_mtime_ns == stamps[p]  # done videos are not extracted again
    assert caches[0].is_file()
    assert [s.shape for s in again.sequences] == [s.shape for s in train.sequences]
    assert sorted(load_dataset(f"haa500:{root / 'video'}", "val").names) == ["clean_and_jerk_016", "lifting_016"]
    with pytest.raises(InputError, match="split must be one of"):
        load_dataset(f"haa500:{root}", "dev")


@pytest.mark.slow
def test_video_folder_default_split_and_explicit_splits(tmp_path):
    base = trimmed_clip(tmp_path / "base.mp4", 8)
    root = tmp_path / "mine"
    for i in range(5):
        (root / "lift").mkdir(parents=True, exist_ok=True)
        (root / "lift" / f"v{i}.mp4").write_bytes(base.read_bytes())
    train = load_dataset(f"video-folder:{root}", "train")
    test = load_dataset(f"video-folder:{root}", "test")
    assert train.names == ["v0", "v1", "v2", "v3"] and test.names == ["v4"]  # every 5th video is test
    assert train.fps == 30.0 and np.all(train.labels == 0)
    explicit = tmp_path / "explicit"
    for split, n in (("train", 2), ("test", 1)):
        for i in range(n):
            (explicit / split / "lift").mkdir(parents=True, exist_ok=True)
            (explicit / split / "lift" / f"{split}{i}.mp4").write_bytes(base.read_bytes())
    assert load_dataset(f"video-folder:{explicit}", "test").names == ["test0"]
    assert load_dataset(f"video-folder:{explicit}", "train").names == ["train0", "train1"]
    (tmp_path / "nothing").mkdir()
    with pytest.raises(InputError, match="one folder per class"):
        load_dataset(f"video-folder:{tmp_path / 'nothing'}", "train")


def test_a_video_without_poses_is_an_error_unless_skipped(tmp_path):
    """An evaluation split must not shrink behind the user's back."""
    root = tmp_path / "mine"
    trimmed_clip(root / "train" / "lift" / "lift0.mp4", 4)
    trimmed_clip(root / "test" / "lift" / "lift1.mp4", 4)
    blank_video(root / "test" / "lift" / "empty_room.mp4", frames=4)
    with pytest.raises(
        InputError, match=r"no poses could be extracted from 1 of 2 videos: .*empty_room\.mp4.*--skip-failed-videos"
    ):
        load_dataset(f"video-folder:{root}", "test")
    with pytest.warns(UserWarning, match=r"1 of 2 videos left out.*empty_room\.mp4"):
        test = load_dataset(f"video-folder:{root}", "test", skip_failed=True)
    assert test.names == ["lift1"]


@pytest.mark.slow
def test_stage2_adds_the_image_branch_on_video_data(tmp_path, monkeypatch):
    import json

    import torch
    from safetensors.torch import load_file

    from unihar.loading import from_pretrained
    from unihar.training.evaluation import evaluate
    from unihar.training.trainer import RunConfig, train

    root = tmp_path / "videos"
    for cls, start in (("lift", 0), ("hold", 200)):
        for i in range(2):
            trimmed_clip(root / "train" / cls / f"{cls}{i}.mp4", 6, start + 6 * i)
            trimmed_clip(root / "test" / cls / f"{cls}{i}.mp4", 6, start + 40 + 6 * i)
    stage1 = RunConfig.from_dict(
        {
            "model": {"pose_model": {"hidden_dim": 16, "layers": 1, "heads": 2}},
            "preprocessing": {"layout": "coco17", "clips": 1, "clip_len": 4, "window_seconds": 0.2, "image_size": 32},
            "train": {"epochs": 1, "batch_size": 2, "num_threads": 1},
        }
    )
    train(f"video-folder:{root}", tmp_path / "s1", stage1, progress=False)
    stage2 = RunConfig.from_dict(
        {
            "model": {
                "image_model": {"enabled": True, "feature_dim": 8, "backbone": "resnet18"},
                "fusion_model": {"mode": "concat", "output_dim": 8},
            },
            "train": {"epochs": 1, "batch_size": 2, "num_threads": 1, "freeze_pose": True},
        }
    )
    # Workers that decode video never start as a fork of this process (a fork of a process holding PyAV's
    # decoder threads can wait forever on a lock copied in its held state).
    loaders = []

    class RecordingLoader(torch.utils.data.DataLoader):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            loaders.append(self)

    monkeypatch.setattr(torch.utils.data, "DataLoader", RecordingLoader)
    metrics = train(f"video-folder:{root}", tmp_path / "s2", stage2, init=tmp_path / "s1", progress=False)
    assert metrics["n"] == 4
    (loader,) = loaders
    assert loader.num_workers > 0 and loader.multiprocessing_context is not None
    assert loader.multiprocessing_context.get_start_method() != "fork"
    s1, s2 = (
        load_file(str(tmp_path / "s1" / "model.safetensors")),
        load_file(str(tmp_path / "s2" / "model.safetensors")),
    )
    assert all(torch.equal(s1[k], s2[k]) for k in s1 if k.startswith("short_seq_model."))
    assert any(k.startswith("image_encoder.") for k in s2) and any(k.startswith("fusion.") for k in s2)
    config = json.loads((tmp_path / "s2" / "config.json").read_text())
    assert config["image_model"]["enabled"] and config["preprocessing"]["image_size"] == 32
    model = from_pretrained(tmp_path / "s2")
    result = evaluate(model, load_dataset(f"video-folder:{root}", "test"))
    assert result.probs.shape == (4, 2) and np.allclose(result.probs.sum(1), 1, atol=1e-5)
