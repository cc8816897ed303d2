"""Measure a pose model the way the bundled default model is judged (see its MODEL_CARD.md).

1. Penn Action, official test split, annotated joints: top-1 / top-5 / mean class accuracy
   (``unihar eval`` numbers; sequences cut into windows exactly as a video is).
2. Transfer to real video: MediaPipe (BlazePose full) poses of ``clean_and_jerk.mp4`` through the same
   ``VideoPipeline.classify`` that ``unihar predict`` uses; reports the whole-video top-1 and the
   fraction of windows whose top-1 is ``clean_and_jerk``.

The MediaPipe poses are extracted once and cached (``--poses-cache``), so comparing several models
(e.g. the normalisation / augmentation ablations) costs one extraction.

    python benchmarks/train_default_model.py [--weights DIR ...] [--json]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def mediapipe_poses(video: Path, cache: Path):
    """PoseSequence of ``video`` from the default backend, cached as .npz."""
    from unihar.data.layouts import get_layout
    from unihar.data.pose import PoseSequence
    from unihar.data.video import open_video

    if cache.is_file():
        z = np.load(cache)
        return PoseSequence(z["keypoints"], get_layout("mediapipe33"), tuple(z["frame_size"]), int(z["missing"])), float(z["fps"])
    from unihar.data.pose import get_pose_backend

    reader = open_video(video)
    t0 = time.perf_counter()
    seq = get_pose_backend("mediapipe")(str(video))
    print(f"mediapipe: {seq.num_frames} frames in {time.perf_counter() - t0:.1f} s, {seq.missing} missing")
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, keypoints=seq.keypoints, frame_size=np.asarray(seq.frame_size), missing=seq.missing, fps=reader.info.fps)
    return seq, float(reader.info.fps)


def measure(weights: str | None, penn: Path, video: Path, cache: Path, batch_size: int = 128) -> dict:
    from unihar.assets import default_model_dir
    from unihar.data.datasets import load_dataset
    from unihar.data.preprocess import PreprocessConfig
    from unihar.hub import from_pretrained
    from unihar.inference.pipeline import VideoPipeline
    from unihar.training.evaluation import evaluate

    folder = weights or str(default_model_dir())
    model = from_pretrained(folder)
    prep = PreprocessConfig.from_model_config(model.config)
    report: dict = {"weights": folder}
    if penn.is_dir():
        t0 = time.perf_counter()
        result = evaluate(model, load_dataset(f"penn-action:{penn}", "test"), prep, batch_size=batch_size)
        report["penn_test"] = {**result.metrics(), "seconds": round(time.perf_counter() - t0, 1)}
    if video.is_file():
        poses, fps = mediapipe_poses(video, cache)
        pred = VideoPipeline(model, pose_backend="array").classify(poses, fps, topk=3)
        target = "clean_and_jerk"
        report["clean_and_jerk_mediapipe"] = {
            "top1": pred.topk[0].label,
            "top3": [(s.label, round(s.prob, 3)) for s in pred.topk],
            "windows_correct": round(float(np.mean([w.topk[0].label == target for w in pred.windows])), 3),
            "windows": len(pred.windows),
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", nargs="*", default=[None], help="save_pretrained folders (default: the bundled model)")
    parser.add_argument("--penn", type=Path, default=SHARED / "penn-action-labels")
    parser.add_argument("--video", type=Path, default=SHARED / "mmskeleton-videos" / "clean_and_jerk.mp4")
    parser.add_argument("--poses-cache", type=Path, default=Path("/tmp/unihar-bench/clean_and_jerk.mediapipe33.npz"))
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    for weights in args.weights:
        report = measure(weights, args.penn, args.video, args.poses_cache)
        print(json.dumps(report) if args.json else json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
