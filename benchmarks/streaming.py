"""Live-stream speed: can Uni-HAR keep up with a real 30 fps video on this CPU?

1. End to end, a real video read as a live stream (decoded at its own frame rate, the default pose
   backend (BlazePose full on LiteRT, several people, tracking), the windowing engine, top-k), with the
   bundled pose-only model, ``--live-runs`` times (a shared machine is noisy): frames delivered,
   dropped, fps, the process's CPU time per handled frame, the pose stage's median wall time per
   frame, and the load average when the run started (other work on the machine).
2. The same with a multimodal model of the published sizes (ResNet-18 + concat fusion, random
   weights: speed does not depend on the values), with the image cost controls given on the command line.
3. Multimodal window latency: the direct implementation (pose + 120 ResNet-18 frames at 224 px per
   window, recomputed for every window) against the streaming predictor (each clip's tokens and
   each frame's features computed once; per window only the new clip), exact and with cost controls.
4. What each cost control does to the output (max |prob difference| and image-feature cosine
   similarity against exact, on the real frames).

Usage:  python benchmarks/streaming.py [--video PATH] [--image-stride 4] [--image-size 112] [--skip-live]
                                      [--live-runs 3] [--live-only]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from unihar import build_model
from unihar.config import default_config
from unihar.data.preprocess import PreprocessConfig, image_window, pose_window
from unihar.data.video import open_video
from unihar.inference.pipeline import VideoPipeline
from unihar.inference.streaming import StreamingPredictor, open_live_source, run_source
from unihar.loading import load_model

REPO = Path(__file__).resolve().parents[1]
VIDEO_CANDIDATES = [
    REPO / "examples" / "clean_and_jerk.mp4",
    REPO / "tests" / "data" / "videos" / "clean_and_jerk.mp4",
    REPO.parent / "shared" / "data" / "mmskeleton-videos" / "clean_and_jerk.mp4",
]


def multimodal_model() -> torch.nn.Module:
    cfg = default_config(num_classes=500, joints=17, image=True)
    cfg["preprocessing"] = PreprocessConfig(layout="coco17", clips=4, clip_len=30, window_seconds=4.0).to_dict()
    return build_model(cfg).eval()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def live(video: Path, model, image_stride: int, image_size: int | None, max_people: int = 6) -> dict:
    """The video delivered at its own frame rate through ``unihar stream``'s runner."""
    pipeline = VideoPipeline(model, device="cpu", max_people=max_people)
    source = open_live_source(str(video))
    fps = source.fps
    engine = pipeline.engine(fps, warmup=True, image_stride=image_stride, image_size=image_size, batch_windows=1)
    windows, pose_seconds = [], []

    @contextlib.contextmanager
    def timed_estimator():
        with pipeline.pose_backend.frame_estimator() as estimate:

            def timed(frame):
                start = time.perf_counter()
                people = estimate(frame)
                pose_seconds.append(time.perf_counter() - start)
                return people

            yield timed

    load = os.getloadavg()[0]
    cpu = _cpu_seconds()
    summary = run_source(
        source, timed_estimator, pipeline.tracker(fps), engine, windows.extend, live=True, pace_fps=fps
    )
    handled = summary.frames - summary.dropped
    return {
        "source_fps": fps,
        **summary.to_dict(),
        "predictions": len(windows),
        "dropped_pct": 100 * summary.dropped / summary.frames,
        "cpu_ms_per_frame": 1000 * (_cpu_seconds() - cpu) / max(handled, 1),
        "pose_ms": 1000 * statistics.median(pose_seconds),
        "load": load,
    }


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def window_latency(frames: np.ndarray, model, controls: list[tuple[str, int, int | None]], repeats: int) -> list[dict]:
    """Per-window cost once the stream is warm: the direct implementation vs the streaming predictor."""
    preprocessing = model.preprocessing
    rng = np.random.default_rng(0)
    kpts = np.concatenate(
        [rng.uniform(0, 300, (len(frames), 17, 2)), rng.uniform(0.5, 1, (len(frames), 17, 1))], -1
    ).astype(np.float32)
    window = preprocessing.clips * preprocessing.clip_len  # 30 fps video: span = clip_len
    rows = []

    def direct(end: int) -> np.ndarray:
        pose = torch.from_numpy(pose_window(kpts[end - window : end], preprocessing))[None]
        images = image_window(frames[end - window : end], preprocessing)[None]
        with torch.inference_mode():
            return model.probabilities(model(pose, images))[0].numpy()

    ends = [window + i * preprocessing.clip_len for i in range(repeats)]
    ends = [e for e in ends if e <= len(frames)]
    direct_ms = median_ms(lambda: direct(ends[0]), max(2, min(3, repeats)))
    exact_probs = direct(ends[-1])
    rows.append(
        {"mode": "direct (recompute 120 frames + 4 clips)", "ms": direct_ms, "speedup": 1.0, "max_prob_diff": 0.0}
    )
    for name, image_stride, image_size in controls:
        predictor = StreamingPredictor(model, 30.0, image_stride=image_stride, image_size=image_size, device="cpu")
        times, out = [], None
        for i in range(ends[-1]):
            start = time.perf_counter()
            out = predictor.push(kpts[i], frames[i]) or out
            if i + 1 in ends[1:]:  # warm windows: everything but the newest clip is cached
                times.append(time.perf_counter() - start)
        ms = 1000 * statistics.median(times)
        rows.append(
            {
                "mode": name,
                "ms": ms,
                "speedup": direct_ms / ms,
                "max_prob_diff": float(np.abs(out.probs - exact_probs).max()),
            }
        )
    return rows


def feature_similarity(frames: np.ndarray, model, image_size: int) -> float:
    """Mean cosine similarity of per-frame image features at ``image_size`` vs the model's size."""
    preprocessing = model.preprocessing
    sample = frames[:: max(1, len(frames) // 16)][:16]
    full = image_window(sample, PreprocessConfig(**{**preprocessing.to_dict(), "clips": 1, "clip_len": len(sample)}))[0]
    small = image_window(
        sample,
        PreprocessConfig(**{**preprocessing.to_dict(), "clips": 1, "clip_len": len(sample), "image_size": image_size}),
    )[0]
    with torch.inference_mode():
        a, b = model.encode_frames(full), model.encode_frames(small)
    return float(torch.nn.functional.cosine_similarity(a, b).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=None)
    parser.add_argument("--image-stride", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--repeats", type=int, default=4, help="warm windows timed per mode")
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument(
        "--live-runs", type=int, default=3, help="live runs of the pose-only model (the machine is noisy)"
    )
    parser.add_argument("--live-only", action="store_true", help="only the live runs of the pose-only model")
    args = parser.parse_args()
    video = args.video or next((p for p in VIDEO_CANDIDATES if p.is_file()), None)
    if video is None:
        raise SystemExit("no video: pass --video PATH")
    torch.manual_seed(0)
    print(
        f"machine: {torch.get_num_threads()} torch threads, torch {torch.__version__}, bf16 kernels: "
        f"{'yes' if torch.ops.mkldnn._is_mkldnn_bf16_supported() else 'not supported by this CPU'}"
    )
    print(f"video: {video}")
    if not args.skip_live:
        pose_only = load_model()  # the bundled model
        drops = []
        for run in range(args.live_runs):
            r = live(video, pose_only, 1, None)
            drops.append(r["dropped_pct"])
            print(
                f"live, bundled pose-only model, run {run + 1}: {r['frames']} frames at {r['source_fps']:.2f} fps, "
                f"dropped {r['dropped']} ({r['dropped_pct']:.1f}%), {r['fps']:.1f} fps handled, {r['predictions']} "
                "predictions; "
                f"{r['cpu_ms_per_frame']:.1f} ms CPU per handled frame, pose stage {r['pose_ms']:.1f} ms median; "
                f"load average {r['load']:.2f}"
            )
        print(f"live, bundled pose-only model: median {statistics.median(drops):.1f}% dropped over {len(drops)} runs")
    if args.live_only:
        return
    mm = multimodal_model()
    if not args.skip_live:
        r = live(video, mm, args.image_stride, args.image_size)
        print(
            f"live, multimodal (image stride {args.image_stride}, {args.image_size} px): {r['frames']} frames, "
            f"dropped {r['dropped']} ({r['dropped_pct']:.1f}%), {r['fps']:.1f} fps handled"
        )

    frames = np.stack(list(open_video(video)))
    controls = [
        ("streaming, exact", 1, None),
        (f"streaming, image stride {args.image_stride}", args.image_stride, None),
        (f"streaming, {args.image_size} px", 1, args.image_size),
        (f"streaming, image stride {args.image_stride} + {args.image_size} px", args.image_stride, args.image_size),
    ]
    print("\n| multimodal window (4 x 30 frames) | ms per window | speed-up vs direct | max abs prob diff vs exact |")
    print("|---|---|---|---|")
    for row in window_latency(frames, mm, controls, args.repeats + 1):
        print(f"| {row['mode']} | {row['ms']:.0f} | {row['speedup']:.1f}x | {row['max_prob_diff']:.2e} |")
    sim = feature_similarity(frames, mm, args.image_size)
    print(
        f"\nimage features at {args.image_size} px vs 224 px: mean cosine similarity {sim:.3f} (random-weight "
        "ResNet-18)"
    )


if __name__ == "__main__":
    main()
