"""The pose stage gives the same keypoints on the committed clips whatever library versions are installed.

tests/data/pose_stage_reference.npz holds what BlazePose found in the first 60 frames of four real clips
(tools/make_pose_reference.py; its ``note`` names the versions it was made with). The crops are cut by
our own exact bilinear interpolation, so what is left to differ between versions and machines is the
networks' float arithmetic (LiteRT / XNNPACK kernels): a few thousandths of a pixel. The tolerance
below is a tenth of a pixel on the joints the model sees (visibility >= 0.5); the crops OpenCV cuts
(8-bit, 1/32-pixel positions before OpenCV 5, exact positions from 5.0) move the same joints by
pixels, and some unseen joints by tens of pixels.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from unihar.data.pose.blazepose_geometry import crop_matrix, warp_crop

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "pose_stage_reference.npz"
TOLERANCE_PX = 0.1  # on joints with visibility >= 0.5
VISIBLE = 0.5
sys.path.insert(0, str(ROOT / "tools"))
from make_pose_reference import CLIPS, FRAMES, stage_keypoints  # noqa: E402


def _reference(index: int) -> list[np.ndarray]:
    data = np.load(REFERENCE)
    counts = data[f"clip{index}_counts"]
    return np.split(data[f"clip{index}_keypoints"], np.cumsum(counts)[:-1])


def test_reference_file_matches_the_tool() -> None:
    data = np.load(REFERENCE)
    assert list(data["clips"]) == list(CLIPS) and int(data["frames"]) == FRAMES
    for index in range(len(CLIPS)):
        assert len(_reference(index)) == FRAMES


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(CLIPS)), ids=list(CLIPS))
def test_pose_stage_reproduces_the_reference_keypoints(index: int) -> None:
    expected, found = _reference(index), stage_keypoints(CLIPS[index])
    assert [len(p) for p in found] == [len(p) for p in expected]  # the same people in every frame
    worst = 0.0
    for want, got in zip(expected, found):
        if len(want) == 0:
            continue
        # people come in no particular order: pair them by mean joint distance
        cost = np.linalg.norm(want[:, None, :, :2] - got[None, :, :, :2], axis=-1).mean(axis=-1)
        rows, cols = linear_sum_assignment(cost)
        seen = want[rows, :, 2] >= VISIBLE
        gap = np.linalg.norm(want[rows, :, :2] - got[cols, :, :2], axis=-1)[seen]
        worst = max(worst, float(gap.max(initial=0.0)))
        np.testing.assert_allclose(got[cols, :, 2], want[rows, :, 2], atol=0.01)
    assert worst <= TOLERANCE_PX


def test_crops_are_exact_bilinear_samples() -> None:
    """Each crop pixel is the bilinear mix of the four frame pixels around its source position."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    roi = np.array([24.3, 19.7, 30.0, 0.4], np.float32)
    matrix = crop_matrix(roi, 16).astype(np.float64)
    crop = warp_crop(frame, matrix, 16, border="replicate")
    for y, x in ((0, 0), (7, 11), (15, 15), (3, 12)):
        sx, sy = matrix @ [x, y, 1.0]
        x0, y0 = int(np.floor(sx)), int(np.floor(sy))
        ax, ay = sx - x0, sy - y0
        f = frame.astype(np.float64)
        expected = (1 - ay) * ((1 - ax) * f[y0, x0] + ax * f[y0, x0 + 1]) + ay * (
            (1 - ax) * f[y0 + 1, x0] + ax * f[y0 + 1, x0 + 1]
        )
        np.testing.assert_allclose(crop[y, x], expected, atol=1e-2)
    # outside the frame: black for the detector's letterbox, the nearest edge pixel for the landmark crop
    far = crop_matrix(np.array([200.0, 20.0, 10.0, 0.0], np.float32), 4)
    assert (warp_crop(frame, far, 4, border="zeros") == 0).all()
    np.testing.assert_allclose(warp_crop(frame, far, 4, border="replicate")[0, 0], frame[15, 49], atol=1e-3)
    with pytest.raises(ValueError, match="border must be"):
        warp_crop(frame, far, 4, border="reflect")
