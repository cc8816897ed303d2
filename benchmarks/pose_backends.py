"""The pose stage: unihar's BlazePose (LiteRT, several people) against MediaPipe 0.10.21 on the same frames.

    python benchmarks/pose_backends.py [--threads 2] [--shared ../shared/data/mmaction2-videos]

1. One person, tests/data/videos/clean_and_jerk.mp4 (340x256, 300 frames): milliseconds per frame and
   keypoint agreement with ``mediapipe.python.solutions.pose`` (``model_complexity=1``, video mode, its
   default landmark smoothing on) when mediapipe is importable: mean distance over the joints
   MediaPipe sees (visibility > 0.5) in units of its torso (shoulder centre to hip centre), and
   PCK@0.1 (share of those joints within 0.1 torso).
2. Several people (when the MMAction2 clips are there): frames per second and people found per frame
   on ``test_video_structuralize.mp4`` (426x240, a gym) and ``demo_skeleton.mp4`` (1920x1080, two people),
   and on any clip given with ``--clips``.

Frames are decoded beforehand; times cover pose estimation only. Prints a markdown table and the machine.
Targets on a 2-core CPU: one person no slower than MediaPipe 0.10.21; three people >= 15 frames/s.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import time
from pathlib import Path

import numpy as np

from unihar.data.layouts import LAYOUTS
from unihar.data.pose import BlazePose
from unihar.data.video import read_frames

ROOT = Path(__file__).resolve().parents[1]
SINGLE = ROOT / "tests" / "data" / "videos" / "clean_and_jerk.mp4"
SHARED = ROOT.parent / "shared" / "data" / "mmaction2-videos"
MULTI = ("test_video_structuralize.mp4", "demo_skeleton.mp4")
LAYOUT = LAYOUTS["mediapipe33"]
SHOULDERS = [LAYOUT.index("left_shoulder"), LAYOUT.index("right_shoulder")]
HIPS = [LAYOUT.index("left_hip"), LAYOUT.index("right_hip")]


def run_blazepose(frames: np.ndarray, **options) -> tuple[list[np.ndarray], float]:
    """Everyone found in each frame, and the milliseconds per frame.

    The first frame is seen twice: once to warm the interpreters up (untimed), then as frame 0.
    """
    with BlazePose(**options).frame_estimator() as estimate:
        estimate(frames[0])
        start = time.perf_counter()
        people = [estimate(frame) for frame in frames]
        elapsed = time.perf_counter() - start
    return people, 1000 * elapsed / len(frames)


def run_mediapipe(frames: np.ndarray) -> tuple[list[np.ndarray | None], float]:
    """MediaPipe 0.10.21's legacy BlazePose (full, video mode): one person or None per frame."""
    from mediapipe.python.solutions import pose as mp_pose

    height, width = frames.shape[1:3]
    found: list[np.ndarray | None] = []
    with mp_pose.Pose(static_image_mode=False, model_complexity=1, enable_segmentation=False) as solution:
        solution.process(np.zeros((64, 64, 3), np.uint8))  # warm-up on nobody: no tracking state left
        start = time.perf_counter()
        for frame in frames:
            result = solution.process(frame)
            if result.pose_landmarks is None:
                found.append(None)
            else:
                found.append(
                    np.array([(p.x * width, p.y * height, p.visibility) for p in result.pose_landmarks.landmark])
                )
        elapsed = time.perf_counter() - start
    return found, 1000 * elapsed / len(frames)


def agreement(ours: list[np.ndarray], reference: list[np.ndarray | None]) -> tuple[float, float, int]:
    """Mean distance / torso and PCK@0.1 over the joints the reference sees, and the frames compared.

    In each frame, the person of ours closest to the reference person is compared.
    """
    distances = []
    for people, expected in zip(ours, reference):
        if expected is None or len(people) == 0:
            continue
        torso = np.linalg.norm(expected[SHOULDERS, :2].mean(axis=0) - expected[HIPS, :2].mean(axis=0))
        visible = expected[:, 2] > 0.5
        gaps = np.linalg.norm(people[:, visible, :2] - expected[None, visible, :2], axis=-1).mean(axis=1)
        closest = people[int(np.argmin(gaps))]
        distances.append(np.linalg.norm(closest[visible, :2] - expected[visible, :2], axis=1) / torso)
    if not distances:
        return float("nan"), float("nan"), 0
    joined = np.concatenate(distances)
    return float(joined.mean()), float((joined < 0.1).mean()), len(distances)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for LiteRT (the machine has 2 cores)")
    parser.add_argument("--shared", type=Path, default=SHARED, help="folder with the MMAction2 demo clips")
    parser.add_argument(
        "--clips",
        type=Path,
        nargs="*",
        default=[],
        help="more videos with several people (e.g. tests/data/videos/sports2d_demo_walk_jumping_jacks_2_people.mp4)",
    )
    args = parser.parse_args()
    has_mediapipe = importlib.util.find_spec("mediapipe") is not None

    rows = [
        "| clip | backend | ms/frame | frames/s | people/frame (mean, max) | vs MediaPipe: mean dist / torso | "
        "PCK@0.1 |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    frames, _ = read_frames(SINGLE)
    reference, mediapipe_ms = run_mediapipe(frames) if has_mediapipe else (None, None)
    if reference is not None:
        seen = sum(p is not None for p in reference)
        rows.append(
            f"| {SINGLE.name} | mediapipe 0.10.21 full | {mediapipe_ms:.1f} | {1000 / mediapipe_ms:.0f} | "
            f"{seen / len(frames):.2f}, 1 | - | - |"
        )
    for model in ("full", "lite"):
        people, ms = run_blazepose(frames, model=model, num_threads=args.threads)
        counts = [len(p) for p in people]
        mean_dist, pck, compared = agreement(people, reference) if reference is not None else (float("nan"),) * 2 + (0,)
        rows.append(
            f"| {SINGLE.name} | blazepose {model} | {ms:.1f} | {1000 / ms:.0f} | {np.mean(counts):.2f}, {max(counts)} "
            f"| {mean_dist:.3f} | {pck:.3f} |"
        )
    for path in [args.shared / name for name in MULTI] + list(args.clips):
        name = path.name
        if not path.is_file():
            rows.append(f"| {name} | (missing: {path}) | | | | | |")
            continue
        frames, _ = read_frames(path)
        if has_mediapipe:
            found, ms = run_mediapipe(frames)
            seen = sum(p is not None for p in found)
            rows.append(
                f"| {name} | mediapipe 0.10.21 full | {ms:.1f} | {1000 / ms:.0f} | {seen / len(frames):.2f}, 1 | - | "
                "- |"
            )
        people, ms = run_blazepose(frames, num_threads=args.threads)
        counts = [len(p) for p in people]
        rows.append(
            f"| {name} | blazepose full | {ms:.1f} | {1000 / ms:.0f} | {np.mean(counts):.2f}, {max(counts)} | - | - |"
        )
        del frames

    print("\n".join(rows))
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("n/a",)
    versions = []
    for package in ("ai_edge_litert", "mediapipe", "cv2", "numpy"):
        if importlib.util.find_spec(package) is not None:
            module = __import__(package)
            versions.append(f"{package} {getattr(module, '__version__', '?')}")
    print(
        f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{', '.join(f'{v:.2f}' if isinstance(v, float) else v for v in load)}; LiteRT threads {args.threads}; "
        + "; ".join(versions)
    )


if __name__ == "__main__":
    main()
