"""How fast the video front end runs: decoding (PyAV) and MediaPipe BlazePose (full) per frame.

    python benchmarks/video_pose_speed.py [VIDEO] [--repeats N]

Defaults to tests/data/videos/clean_and_jerk.mp4 (340x256, 300 frames). Prints one JSON line with
milliseconds per frame for decoding alone and for pose estimation alone (frames decoded beforehand),
the median over the repeats, plus the machine's CPU count and torch/mediapipe versions.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from unihar.data.pose import MediaPipePose
from unihar.data.video import open_video, read_frames

DEFAULT_VIDEO = Path(__file__).resolve().parents[1] / "tests" / "data" / "videos" / "clean_and_jerk.mp4"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    decode_ms, pose_ms = [], []
    frames, info = read_frames(args.video)
    for _ in range(args.repeats):
        start = time.perf_counter()
        count = sum(1 for _ in open_video(args.video))
        decode_ms.append((time.perf_counter() - start) * 1000 / count)
        start = time.perf_counter()
        sequence = MediaPipePose().estimate(iter(frames), args.video)
        pose_ms.append((time.perf_counter() - start) * 1000 / len(frames))
    import mediapipe

    print(json.dumps({
        "video": Path(args.video).name,
        "frames": int(len(frames)),
        "size": [info.width, info.height],
        "decode_ms_per_frame": round(statistics.median(decode_ms), 2),
        "mediapipe_full_ms_per_frame": round(statistics.median(pose_ms), 2),
        "mediapipe_fps": round(1000 / statistics.median(pose_ms), 1),
        "frames_without_person": int(sequence.missing),
        "all_runs_ms_per_frame": [round(v, 2) for v in pose_ms],
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "mediapipe": mediapipe.__version__,
    }))


if __name__ == "__main__":
    main()
