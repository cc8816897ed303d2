"""The arithmetic around the two BlazePose networks: anchors, decoding, NMS, rotated regions, crops.

Every number here is a published fact of MediaPipe's pose graphs (as shipped in ``mediapipe==0.10.21``:
``pose_detection_cpu``, ``pose_detection_to_roi``, ``pose_landmarks_to_roi`` and
``tensors_to_pose_landmarks_and_segmentation``); the code is ours. Coordinates are frame pixels unless
a name says ``normalized``. A region of interest (ROI) is a rotated square, stored as one row
``(center_x, center_y, side, angle)``, angle in radians, clockwise on screen (y points down).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import expit

from unihar.data.pose.tracking import box_iou

__all__ = [
    "DETECTOR_SIZE",
    "LANDMARK_SIZE",
    "crop_matrix",
    "decode_detections",
    "detection_regions",
    "letterbox_roi",
    "refine_with_heatmap",
    "rois_from_points",
    "ssd_anchor_centers",
    "warp_crop",
    "weighted_nms",
]

DETECTOR_SIZE = 224  # the detector sees the letterboxed frame at 224x224, values in [-1, 1]
LANDMARK_SIZE = 256  # the landmark model sees the ROI at 256x256, values in [0, 1]
ANCHOR_STRIDES = (8, 16, 32, 32, 32)  # 28x28x2 + 14x14x2 + 7x7x6 = 2254 anchors
ANCHORS_PER_LAYER = 2  # aspect ratio 1 plus the "interpolated" scale, both of size 1 (fixed_anchor_size)
SCORE_CLIP = 100.0  # raw detector logits are clipped to +-100 before the sigmoid
NMS_IOU = 0.3  # face boxes overlapping more than this are one person (weighted NMS)
ROI_SCALE = 1.25  # the body circle's diameter times 1.25 is the side of the landmark crop
HEATMAP_KERNEL = 7  # landmarks are refined by the heatmap's weighted mean in a 7x7 window ...
HEATMAP_MIN_CONFIDENCE = 0.5  # ... when the window's peak is at least this confident
TILE_ASPECT = 1.5  # frames this elongated are also searched in square tiles (ours, not MediaPipe's)


def ssd_anchor_centers(input_size: int = DETECTOR_SIZE, strides: tuple[int, ...] = ANCHOR_STRIDES) -> np.ndarray:
    """``(N, 2)`` anchor centres (x, y) in [0, 1], in the order of the detector's outputs.

    Consecutive layers with the same stride share one grid; each cell gets ``ANCHORS_PER_LAYER``
    anchors per layer. With fixed-size anchors only the centres matter.
    """
    centers = []
    layer = 0
    while layer < len(strides):
        stride, same = strides[layer], 0
        while layer < len(strides) and strides[layer] == stride:
            same += 1
            layer += 1
        cells = math.ceil(input_size / stride)
        rows, cols = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        grid = (np.stack([cols, rows], axis=-1).reshape(-1, 2) + 0.5) / cells
        centers.append(np.repeat(grid, same * ANCHORS_PER_LAYER, axis=0))
    return np.concatenate(centers).astype(np.float32)


def decode_detections(
    raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, min_score: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode the detector's ``(N, 12)`` regressors and ``(N,)`` logits, keeping scores >= ``min_score``.

    Each regressor row is ``(dx, dy, w, h)`` of the face box then four keypoints ``(dx, dy)`` (hip
    centre, full-body scale point, shoulder centre, upper-body scale point), offsets in input pixels
    from the anchor centre. Returns scores ``(D,)``, boxes ``(D, 4)`` as (x0, y0, x1, y1) and
    keypoints ``(D, 4, 2)``, all normalized to the 224x224 input.
    """
    scores = expit(np.clip(raw_scores, -SCORE_CLIP, SCORE_CLIP))
    keep = scores >= min_score
    offsets = raw_boxes[keep] / DETECTOR_SIZE
    centers = anchors[keep]
    box_center = offsets[:, 0:2] + centers
    box_size = offsets[:, 2:4]
    boxes = np.concatenate([box_center - box_size / 2, box_center + box_size / 2], axis=1)
    keypoints = offsets[:, 4:12].reshape(-1, 4, 2) + centers[:, None, :]
    return scores[keep], boxes, keypoints


def weighted_nms(
    scores: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray, iou_threshold: float = NMS_IOU
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's *weighted* non-maximum suppression.

    The best remaining detection takes every remaining detection whose box overlaps it by more than
    ``iou_threshold`` (itself included); the merged detection keeps the best score and the
    score-weighted mean of their boxes and keypoints. Averaging many anchors' votes steadies the
    keypoints, which set the landmark crop. Output is sorted by score, best first.
    """
    remaining = np.argsort(-scores, kind="stable")
    merged_scores, merged_boxes, merged_keypoints = [], [], []
    while remaining.size:
        overlap = box_iou(boxes[remaining[0]][None], boxes[remaining])[0] > iou_threshold
        overlap[0] = True  # a degenerate (empty) best box still forms its own cluster
        cluster, remaining = remaining[overlap], remaining[~overlap]
        weights = scores[cluster] / scores[cluster].sum()
        merged_scores.append(scores[cluster[0]])
        merged_boxes.append(weights @ boxes[cluster])
        merged_keypoints.append(np.tensordot(weights, keypoints[cluster], axes=1))
    if not merged_scores:
        return np.zeros(0, np.float32), np.zeros((0, 4), np.float32), np.zeros((0,) + keypoints.shape[1:], np.float32)
    return np.array(merged_scores), np.stack(merged_boxes), np.stack(merged_keypoints)


def rois_from_points(centers: np.ndarray, scale_points: np.ndarray) -> np.ndarray:
    """ROIs ``(N, 4)`` from a body centre and a point on the body circle, both ``(N, 2)`` pixels.

    The square is centred on the centre point, its side is ``ROI_SCALE`` times the circle's diameter,
    and it is turned so that the centre -> scale-point direction points up in the crop. Detections
    (keypoints 0 and 1) and landmarks (auxiliary landmarks 33 and 34) follow the same rule, which is
    what lets a person's own landmarks place their crop in the next frame.
    """
    delta = scale_points - centers
    side = 2.0 * ROI_SCALE * np.hypot(delta[:, 0], delta[:, 1])
    angle = np.pi / 2 - np.arctan2(-delta[:, 1], delta[:, 0])
    angle = angle - 2 * np.pi * np.floor((angle + np.pi) / (2 * np.pi))  # into [-pi, pi)
    return np.column_stack([centers, side, angle]).astype(np.float32)


def letterbox_roi(width: int, height: int) -> np.ndarray:
    """The ROI that letterboxes a whole frame: an upright square of side max(W, H), centred."""
    return np.array([width / 2, height / 2, max(width, height), 0.0], np.float32)


def detection_regions(width: int, height: int) -> np.ndarray:
    """Where the detector looks, ``(R, 4)`` ROIs: the letterboxed frame, plus square tiles on wide frames.

    Letterboxing a wide frame shrinks its people (a 1920x1080 frame becomes 224x126), and the
    detector, trained on people who fill much of the image, misses the small ones. On frames at least
    ``TILE_ASPECT`` times wider than high (or higher than wide), the fewest evenly spaced overlapping
    squares of side min(W, H) that cover the frame are searched too.
    """
    regions = [letterbox_roi(width, height)]
    long_side, short_side = max(width, height), min(width, height)
    if long_side >= TILE_ASPECT * short_side:
        for centre in np.linspace(short_side / 2, long_side - short_side / 2, math.ceil(long_side / short_side)):
            along = (centre, height / 2) if width >= height else (width / 2, centre)
            regions.append(np.array([*along, short_side, 0.0], np.float32))
    return np.stack(regions)


def crop_matrix(roi: np.ndarray, out_size: int) -> np.ndarray:
    """``(2, 3)`` affine map from a pixel of the ``out_size`` crop to frame pixels.

    The crop's corners (0 and ``out_size``) land on the ROI's corners, as in MediaPipe's
    ``ImageToTensorCalculator``. Use it with ``cv2.WARP_INVERSE_MAP`` to cut the crop, and apply it to
    the model's outputs (crop pixels) to bring them back to the frame.
    """
    center_x, center_y, side, angle = (float(v) for v in roi)
    cos, sin = math.cos(angle), math.sin(angle)
    scale = side / out_size
    linear = scale * np.array([[cos, -sin], [sin, cos]])
    offset = np.array([center_x, center_y]) - linear @ np.array([out_size / 2, out_size / 2])
    return np.column_stack([linear, offset]).astype(np.float32)


def refine_with_heatmap(
    points: np.ndarray,
    heatmap: np.ndarray,
    kernel: int = HEATMAP_KERNEL,
    min_confidence: float = HEATMAP_MIN_CONFIDENCE,
) -> np.ndarray:
    """Refine ``(L, 2)`` landmark positions (normalized to the crop) with the ``(h, w, L)`` heatmap logits.

    For each landmark, the sigmoid heatmap in a ``kernel`` x ``kernel`` window around its cell gives a
    confidence-weighted mean cell; it replaces the regressed position when the window's peak reaches
    ``min_confidence``. Landmarks outside the heatmap are kept as they are.
    """
    rows_total, cols_total, count = heatmap.shape
    cells = np.trunc(points * np.array([cols_total, rows_total])).astype(np.int64)  # C-style float -> int
    inside = (cells[:, 0] >= 0) & (cells[:, 0] < cols_total) & (cells[:, 1] >= 0) & (cells[:, 1] < rows_total)
    steps = np.arange(kernel) - (kernel - 1) // 2
    cols = cells[:, 0:1] + steps  # (L, k)
    rows = cells[:, 1:2] + steps
    window = heatmap[
        np.clip(rows, 0, rows_total - 1)[:, :, None],
        np.clip(cols, 0, cols_total - 1)[:, None, :],
        np.arange(count)[:, None, None],
    ]  # (L, k, k): rows x cols
    valid = ((rows >= 0) & (rows < rows_total))[:, :, None] & ((cols >= 0) & (cols < cols_total))[:, None, :]
    confidence = np.where(valid, expit(window), 0.0)
    total = confidence.sum(axis=(1, 2))
    safe_total = np.where(total > 0, total, 1.0)
    mean_col = (confidence * cols[:, None, :]).sum(axis=(1, 2)) / safe_total / cols_total
    mean_row = (confidence * rows[:, :, None]).sum(axis=(1, 2)) / safe_total / rows_total
    refine = inside & (confidence.max(axis=(1, 2)) >= min_confidence) & (total > 0)
    refined: np.ndarray = points.copy()
    refined[refine] = np.column_stack([mean_col, mean_row])[refine]
    return refined


def warp_crop(frame: np.ndarray, to_frame: np.ndarray, out_size: int, border: str) -> np.ndarray:
    """The ``out_size`` square crop that ``to_frame`` (see :func:`crop_matrix`) cuts from ``frame``, as
    float32 ``(out_size, out_size, 3)`` pixel values in [0, 255], by exact bilinear interpolation.

    Crop pixel ``(x, y)`` takes the frame's value at ``to_frame @ (x, y, 1)``, pixel centres on integer
    coordinates (``cv2.warpAffine`` with ``WARP_INVERSE_MAP``). OpenCV is not used for this: before 5.0
    it rounds the sampling positions to 1/32 pixel for 8-bit images and from 5.0 it does not, and the
    networks' answers moved with the version installed. ``border``: ``"zeros"`` (outside the frame is
    black, the detector's letterbox) or ``"replicate"`` (the nearest edge pixel, the landmark crop).
    Only the frame's pixels under the crop are converted to floats.
    """
    if border not in ("zeros", "replicate"):
        raise ValueError(f"border must be 'zeros' or 'replicate', got {border!r}")
    height, width = frame.shape[:2]
    matrix = np.asarray(to_frame, dtype=np.float64)
    steps = np.arange(out_size, dtype=np.float64)
    source_x = matrix[0, 0] * steps[None, :] + matrix[0, 1] * steps[:, None] + matrix[0, 2]  # (out, out)
    source_y = matrix[1, 0] * steps[None, :] + matrix[1, 1] * steps[:, None] + matrix[1, 2]
    # The frame's pixels that any sample touches (one pixel of margin), clipped to the frame.
    x0 = int(np.clip(np.floor(source_x.min()) - 1, 0, width - 1))
    x1 = int(np.clip(np.ceil(source_x.max()) + 1, 0, width - 1))
    y0 = int(np.clip(np.floor(source_y.min()) - 1, 0, height - 1))
    y1 = int(np.clip(np.ceil(source_y.max()) + 1, 0, height - 1))
    patch = torch.from_numpy(np.ascontiguousarray(frame[y0 : y1 + 1, x0 : x1 + 1])).permute(2, 0, 1)[None].float()
    patch_w, patch_h = x1 - x0 + 1, y1 - y0 + 1
    # grid_sample's normalized coordinates (align_corners=False): pixel i of n is centred at (2 i + 1) / n - 1.
    grid = np.stack([(2 * (source_x - x0) + 1) / patch_w - 1, (2 * (source_y - y0) + 1) / patch_h - 1], axis=-1)
    crop = torch.nn.functional.grid_sample(
        patch,
        torch.from_numpy(grid.astype(np.float32))[None],
        mode="bilinear",
        padding_mode="border" if border == "replicate" else "zeros",
        align_corners=False,
    )
    return crop[0].permute(1, 2, 0).numpy()
