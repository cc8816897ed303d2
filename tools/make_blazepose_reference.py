"""Write tests/data/blazepose_reference.npz: MediaPipe 0.10.21's own BlazePose on three real frames.

    python tools/make_blazepose_reference.py      # needs mediapipe==0.10.21 (numpy<2)

tests/test_blazepose.py checks that unihar's BlazePose (same models, our pipeline on LiteRT) agrees
with it. Reference: ``mediapipe.python.solutions.pose.Pose(static_image_mode=True, model_complexity=1)``
(detector + full landmark model on each frame alone, no tracking or smoothing) on frames 0, 150 and
299 of tests/data/videos/clean_and_jerk.mp4, decoded with unihar's PyAV reader.
"""

from __future__ import annotations

from pathlib import Path

import mediapipe
import numpy as np
from mediapipe.python.solutions import pose as mp_pose

from unihar.data.video import read_frames

ROOT = Path(__file__).resolve().parents[1]
VIDEO = ROOT / "tests" / "data" / "videos" / "clean_and_jerk.mp4"
OUT = ROOT / "tests" / "data" / "blazepose_reference.npz"
FRAMES = (0, 150, 299)


def main() -> None:
    frames, _ = read_frames(VIDEO)
    keypoints = []
    with mp_pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=False) as solution:
        for index in FRAMES:
            frame = frames[index]
            height, width = frame.shape[:2]
            result = solution.process(frame)
            landmarks = result.pose_landmarks.landmark
            keypoints.append([(lm.x * width, lm.y * height, lm.visibility) for lm in landmarks])
    note = (
        f"mediapipe=={mediapipe.__version__} solutions.pose, static_image_mode=True, model_complexity=1, "
        f"on frames {list(FRAMES)} of tests/data/videos/clean_and_jerk.mp4; x, y in pixels, visibility; "
        "made by tools/make_blazepose_reference.py"
    )
    np.savez_compressed(
        OUT,
        frames=np.array(FRAMES),
        keypoints=np.array(keypoints, dtype=np.float32),
        frame_size=np.array([frames.shape[2], frames.shape[1]]),
        note=np.array(note),
    )
    print(f"wrote {OUT.relative_to(ROOT)}: {note}")


if __name__ == "__main__":
    main()
