"""Videos per minute: batch prediction (``unihar predict DIR --out``) against one ``unihar predict`` per file.

    python benchmarks/batch.py                       # the real clips below, workers 0/1/2, Ray if installed
    python benchmarks/batch.py --workers 0 2 4 --no-ray --clips /data/videos

Clips: /work/shared/data/mmaction2-videos, /work/shared/data/mmskeleton-videos and /work/clips (top
level), whichever exist; the default model and pose backend (BlazePose), as a user would run them.
Every run is a fresh process timed from the outside, so interpreter, imports and model loading count,
as they do for a user. Printed, one JSON object per line:

* ``stages``: decoding, pose estimation and the model stage measured one after the other in one
  process (frames/s, videos/s);
* ``per_file``: ``unihar predict CLIP --json`` once per clip;
* ``batch``: the batch job with N worker processes (``workers=0``: all in one process) or on a local Ray
  instance, with where its time went (``worker_seconds``: decoding + poses summed over workers;
  ``model_seconds``: tracking + windows + model);
* that every batch line matches the per-file JSON (probabilities within 1e-5);

then a table, with the load average beside each number (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLIP_FOLDERS = ["/work/shared/data/mmaction2-videos", "/work/shared/data/mmskeleton-videos", "/work/clips"]
TOLERANCE = 1e-5
UNIHAR = str(Path(sys.executable).with_name("unihar"))  # the installed command, as a user runs it


def load() -> float:
    return round(os.getloadavg()[0], 2)


def clips_in(folders: list[str]) -> list[Path]:
    from unihar.data.video import VIDEO_EXTENSIONS

    clips = []
    for folder in map(Path, folders):
        if folder.is_dir():  # top level only: /work/clips/local_only is not ours to measure
            clips += sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
    return clips


def stages(clips: list[Path]) -> dict:
    """Each stage alone, one after the other, in this process (the machine's other cores idle)."""
    import torch

    from unihar.data.video import open_video
    from unihar.inference.batch import BatchSettings, PoseClassifier, VideoPoses

    settings = BatchSettings()
    pose = settings.pose()
    classifier = PoseClassifier(settings, settings.model())
    torch.set_num_threads(1)  # as the batch job runs the model stage
    decode_s = pose_s = model_s = 0.0
    frames_total = windows = 0
    for clip in clips:
        started = time.perf_counter()
        reader = open_video(clip)
        frames = list(reader)
        decode_s += time.perf_counter() - started
        started = time.perf_counter()
        with pose.frame_estimator() as estimate:
            people = [estimate(frame) for frame in frames]
        pose_s += time.perf_counter() - started
        outcome = classifier(VideoPoses(reader.info, people))
        model_s += outcome.model_seconds
        frames_total += len(frames)
        windows += sum(len(p.get("windows", [])) for p in outcome.line.get("people", []))
    return {
        "kind": "stages",
        "videos": len(clips),
        "frames": frames_total,
        "load": load(),
        "decode_fps": round(frames_total / decode_s, 1),
        "pose_fps": round(frames_total / pose_s, 1),
        "pose_backend": repr(pose),
        "model_videos_per_s": round(len(clips) / model_s, 1),
        "model_windows_per_s": round(windows / model_s, 1),
    }


def per_file(clips: list[Path]) -> tuple[dict, dict[str, dict]]:
    lines, started, first_load = {}, time.perf_counter(), load()
    for clip in clips:
        done = subprocess.run([UNIHAR, "predict", str(clip), "--json"], capture_output=True, text=True)
        lines[str(clip)] = (
            json.loads(done.stdout) if done.returncode == 0 else {"source": str(clip), "error": done.stderr.strip()}
        )
    seconds = time.perf_counter() - started
    return {
        "kind": "per_file",
        "videos": len(clips),
        "seconds": round(seconds, 1),
        "videos_per_min": round(60 * len(clips) / seconds, 2),
        "load": [first_load, load()],
    }, lines


RUN_ONE = """
import json, sys, time
from unihar.inference.batch import BatchSettings, predict_videos
out, workers, ray = sys.argv[1], int(sys.argv[2]), sys.argv[3] or None
summary = predict_videos(sys.argv[4:], out, BatchSettings(), workers=workers, ray_address=ray)
fields = ("done", "failed", "frames", "seconds", "worker_seconds", "model_seconds")
    print(json.dumps({k: getattr(summary, k) for k in fields}))
"""


def batch(clips: list[Path], workers: int, ray: str | None, folder: Path) -> tuple[dict, list[dict]]:
    out = folder / (f"batch_ray_{ray}.jsonl" if ray else f"batch_workers_{workers}.jsonl")
    first_load, started = load(), time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RUN_ONE, str(out), str(workers), ray or "", *map(str, clips)],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"batch run failed:\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    frames = summary["frames"]
    return {
        "kind": "batch",
        "mode": f"ray {ray}" if ray else f"workers={workers}",
        "videos": len(clips),
        "seconds": round(seconds, 1),
        "videos_per_min": round(60 * len(clips) / seconds, 2),
        "in_job_seconds": round(summary["seconds"], 1),
        "failed": summary["failed"],
        "frames": frames,
        "pose_stage_fps_per_worker": round(frames / summary["worker_seconds"], 1)
        if summary["worker_seconds"]
        else None,
        "model_stage_videos_per_s": round(len(clips) / summary["model_seconds"], 1)
        if summary["model_seconds"]
        else None,
        "load": [first_load, load()],
    }, [json.loads(line) for line in out.read_text().splitlines()]


def largest_difference(a, b) -> float:
    """Largest difference between the numbers of two predictions; inf when their structure differs."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return max((largest_difference(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return max((largest_difference(x, y) for x, y in zip(a, b)), default=0.0)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b)
    return 0.0 if a == b else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", default=CLIP_FOLDERS, help="folders of clips (top level)")
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--no-per-file", action="store_true", help="skip the one-process-per-file baseline")
    parser.add_argument("--no-stages", action="store_true", help="skip timing the stages one by one")
    args = parser.parse_args()

    clips = clips_in(args.clips)
    if not clips:
        raise SystemExit(f"no clips in {args.clips}")
    print(
        json.dumps(
            {"machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(), "clips": len(clips)}
        )
    )
    results = [] if args.no_stages else [stages(clips)]
    for row in results:
        print(json.dumps(row), flush=True)
    reference = None
    if not args.no_per_file:
        row, reference = per_file(clips)
        results.append(row)
        print(json.dumps(row), flush=True)
    modes = [(w, None) for w in args.workers]
    if not args.no_ray:
        try:
            import ray.data  # noqa: F401

            modes.append((0, "local"))
        except ImportError:
            print(json.dumps({"ray": "not installed: pip install 'unihar[ray]'"}))
    with tempfile.TemporaryDirectory() as folder:
        for workers, ray_address in modes:
            row, lines = batch(clips, workers, ray_address, Path(folder))
            if reference is not None:
                row["max_difference_to_per_file"] = max(
                    largest_difference(reference[line["source"]], line) for line in lines
                )
                row["same_as_per_file"] = row["max_difference_to_per_file"] <= TOLERANCE
            results.append(row)
            print(json.dumps(row), flush=True)

    print(f"\n{len(clips)} clips; {os.cpu_count()} CPU cores")
    print("| run | videos/min | wall s | pose stage, frames/s per worker | model stage, videos/s | load (1 min) |")
    print("|---|---|---|---|---|---|")
    for row in results:
        if row["kind"] == "stages":
            continue
        name = "one `unihar predict` per file" if row["kind"] == "per_file" else f"batch, {row['mode']}"
        stage_rates = f"{row.get('pose_stage_fps_per_worker') or '-'} | {row.get('model_stage_videos_per_s') or '-'}"
        print(
            f"| {name} | {row['videos_per_min']} | {row['seconds']} | {stage_rates} | "
            f"{row['load'][0]}-{row['load'][1]} |"
        )
    for stage in results[:1] if not args.no_stages else []:
        print(
            f"\nstages alone: decode {stage['decode_fps']} frames/s, pose {stage['pose_fps']} frames/s, "
            f"model {stage['model_videos_per_s']} videos/s ({stage['model_windows_per_s']} windows/s); load "
            f"{stage['load']}"
        )


if __name__ == "__main__":
    main()
