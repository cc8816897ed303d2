"""Write tests/data/pose_stage_reference.npz: what unihar's own BlazePose stage finds in the committed clips.

    python tools/make_pose_reference.py

tests/test_pose_stage_reference.py checks that the pose stage gives these keypoints again, within a
stated tolerance, whatever versions of numpy, OpenCV, PyAV and LiteRT are installed: small numeric
changes there used to move people's keypoints enough to change the actions recognised. For each clip,
the first ``FRAMES`` frames go through one pose stream (detector, landmarks, the stream's own region
tracking), as ``unihar predict`` runs it; every person found in every frame is stored.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from unihar.data.pose import BlazePose
from unihar.data.video import open_video

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT / "tests" / "data" / "videos"
OUT = ROOT / "tests" / "data" / "pose_stage_reference.npz"
CLIPS = (
    "clean_and_jerk.mp4",
    "gmdcsa24_s3_fall20_walk_then_fall_forward.mp4",
    "intel_worker_zone_walk.mp4",
    "sports2d_demo_walk_jumping_jacks_2_people.mp4",
)
FRAMES = 60


def stage_keypoints(clip: str, frames: int = FRAMES) -> list[np.ndarray]:
    """Everyone BlazePose finds in each of the first ``frames`` frames of ``clip``: ``(P, 33, 3)`` each."""
    found = []
    with BlazePose(num_threads=2).frame_estimator() as estimate:
        for frame in open_video(VIDEOS / clip, max_frames=frames):
            found.append(estimate(frame))
    return found


def main() -> None:
    import importlib.metadata as metadata

    arrays: dict[str, np.ndarray] = {}
    for index, clip in enumerate(CLIPS):
        people = stage_keypoints(clip)
        arrays[f"clip{index}_counts"] = np.array([len(p) for p in people])
        arrays[f"clip{index}_keypoints"] = np.concatenate(people).astype(np.float32)
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("numpy", "opencv-python-headless", "av", "ai-edge-litert", "torch")
    )
    note = f"made by tools/make_pose_reference.py on Python {platform.python_version()} with {versions}"
    np.savez_compressed(OUT, clips=np.array(CLIPS), frames=np.array(FRAMES), note=np.array(note), **arrays)
    print(f"wrote {OUT.relative_to(ROOT)}: {note}")


if __name__ == "__main__":
    main()
