"""Keypoint layouts: the one table of joint orders Uni-HAR knows, and conversion between them.

Every pose source orders its joints differently (COCO-17, OpenPose BODY_25 / COCO-18, MediaPipe's 33
landmarks, Penn Action's 13 annotations). Rather than hard-coding index maps for every pair, each layout
is a list of *named* joints and conversion goes by name, so any layout converts to any other, including a
custom layout declared as a plain list of names.

Names are COCO's in lower_snake_case plus ``neck``, ``mid_hip``, ``head`` and the extra BODY_25 / MediaPipe
points spelled the same way (``left_big_toe``, ``mouth_left``, ``left_foot_index``...). A joint is "left" or
"right" when its name has a ``left`` / ``right`` word; swapping that word gives its mirror partner, which is
what flip augmentation needs.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np

from unihar.errors import InputError

__all__ = [
    "KeypointLayout",
    "LAYOUTS",
    "LAYOUTS_BY_NUM_JOINTS",
    "DERIVED_JOINTS",
    "get_layout",
    "convert_keypoints",
    "mirror_joint_name",
]

# The 17 COCO keypoints, in COCO order; most other layouts are supersets or subsets of these names.
_COCO17 = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)

# OpenPose BODY_25 output order (openpose/doc/02_output.md).
_BODY25 = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
    "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe", "left_small_toe",
    "left_heel", "right_big_toe", "right_small_toe", "right_heel",
)

# OpenPose COCO (18 points) output order: BODY_25 without mid_hip and the feet.
_COCO18 = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)

# MediaPipe Pose / BlazePose landmark order (mediapipe PoseLandmark enum, lower-cased).
_MEDIAPIPE33 = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
    "left_foot_index", "right_foot_index",
)

# Penn Action annotation order (joint 1..13 of the dataset's README).
_PENN13 = (
    "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)

# Bones shared by every layout that has both ends; layouts add their own below.
_LIMBS = (
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
    ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
)
_TORSO = (
    ("left_shoulder", "right_shoulder"), ("left_hip", "right_hip"),
    ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"),
)
_FACE = (
    ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"), ("right_eye", "right_ear"),
)
_OPENPOSE_TRUNK = (
    ("neck", "nose"), ("neck", "left_shoulder"), ("neck", "right_shoulder"),
)
_FEET = (
    ("left_ankle", "left_heel"), ("left_ankle", "left_big_toe"), ("left_big_toe", "left_small_toe"),
    ("right_ankle", "right_heel"), ("right_ankle", "right_big_toe"), ("right_big_toe", "right_small_toe"),
)
_MEDIAPIPE_EXTRA = (
    ("nose", "left_eye_inner"), ("left_eye_inner", "left_eye"), ("left_eye", "left_eye_outer"),
    ("left_eye_outer", "left_ear"), ("nose", "right_eye_inner"), ("right_eye_inner", "right_eye"),
    ("right_eye", "right_eye_outer"), ("right_eye_outer", "right_ear"), ("mouth_left", "mouth_right"),
    ("left_wrist", "left_pinky"), ("left_wrist", "left_index"), ("left_pinky", "left_index"),
    ("left_wrist", "left_thumb"), ("right_wrist", "right_pinky"), ("right_wrist", "right_index"),
    ("right_pinky", "right_index"), ("right_wrist", "right_thumb"),
    ("left_ankle", "left_heel"), ("left_heel", "left_foot_index"), ("left_ankle", "left_foot_index"),
    ("right_ankle", "right_heel"), ("right_heel", "right_foot_index"), ("right_ankle", "right_foot_index"),
)
_HEAD = (("head", "left_shoulder"), ("head", "right_shoulder"))

# Every bone any built-in layout draws; a custom layout draws those whose two ends it has.
_ALL_BONES = _LIMBS + _TORSO + _FACE + _OPENPOSE_TRUNK + _FEET + _MEDIAPIPE_EXTRA + _HEAD + (
    ("neck", "mid_hip"), ("mid_hip", "left_hip"), ("mid_hip", "right_hip"), ("neck", "head"),
)

# Joints computed from others when a source lacks them: name -> parts (see ``convert_keypoints``).
DERIVED_JOINTS: dict[str, tuple[str, ...]] = {
    "neck": ("left_shoulder", "right_shoulder"),
    "mid_hip": ("left_hip", "right_hip"),
    "head": ("nose", "left_eye", "right_eye", "left_ear", "right_ear"),
}


def mirror_joint_name(name: str) -> str:
    """The name of a joint's mirror partner (``left_x`` <-> ``right_x``, ``mouth_left`` <-> ``mouth_right``)."""
    words = name.split("_")
    swap = {"left": "right", "right": "left"}
    return "_".join(swap.get(word, word) for word in words)


@dataclass(frozen=True)
class KeypointLayout:
    """An ordered list of named joints, plus the bones drawn between them."""

    name: str
    joints: tuple[str, ...]
    edges: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.joints:
            raise InputError(f"layout {self.name!r}: expected at least one joint name, got none")
        for joint in self.joints:
            if not isinstance(joint, str) or not joint:
                raise InputError(f"layout {self.name!r}: expected joint names as non-empty strings, got {joint!r}")
        duplicates = sorted({j for j in self.joints if self.joints.count(j) > 1})
        if duplicates:
            raise InputError(f"layout {self.name!r}: joint names must be unique, got duplicates {duplicates}")
        for a, b in self.edges:
            if a not in self.joints or b not in self.joints:
                raise InputError(f"layout {self.name!r}: edge ({a!r}, {b!r}) names a joint the layout lacks")

    def __repr__(self) -> str:
        return f"KeypointLayout(name={self.name!r}, num_joints={self.num_joints})"

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @cached_property
    def _positions(self) -> dict[str, int]:
        return {joint: i for i, joint in enumerate(self.joints)}

    def index(self, joint_name: str) -> int:
        """Position of ``joint_name`` in this layout."""
        try:
            return self._positions[joint_name]
        except KeyError:
            raise InputError(
                f"layout {self.name!r} has no joint {joint_name!r}; its joints are {list(self.joints)}"
            ) from None

    def __contains__(self, joint_name: object) -> bool:
        return joint_name in self._positions

    @cached_property
    def flip_index(self) -> tuple[int, ...]:
        """Permutation that swaps every left/right pair, for horizontal-flip augmentation.

        ``flipped = kpts[..., layout.flip_index, :]`` (after mirroring x). A joint whose partner is
        absent from the layout maps to itself.
        """
        return tuple(self._positions.get(mirror_joint_name(j), i) for i, j in enumerate(self.joints))

    @cached_property
    def pairs(self) -> tuple[tuple[int, int], ...]:
        """``(left_index, right_index)`` for every joint pair present on both sides."""
        found = []
        for i, joint in enumerate(self.joints):
            if "left" in joint.split("_"):
                partner = self._positions.get(mirror_joint_name(joint))
                if partner is not None:
                    found.append((i, partner))
        return tuple(found)

    @cached_property
    def edge_index(self) -> tuple[tuple[int, int], ...]:
        """The bones as index pairs, for drawing."""
        return tuple((self._positions[a], self._positions[b]) for a, b in self.edges)


def _bones_within(joints: Sequence[str], bones: Sequence[tuple[str, str]] = _ALL_BONES) -> tuple[tuple[str, str], ...]:
    present = set(joints)
    unique: dict[tuple[str, str], None] = {}
    for a, b in bones:
        if a in present and b in present:
            unique.setdefault((a, b), None)
    return tuple(unique)


LAYOUTS: dict[str, KeypointLayout] = {
    "coco17": KeypointLayout("coco17", _COCO17, _bones_within(_COCO17, _FACE + _TORSO + _LIMBS)),
    "body25": KeypointLayout(
        "body25",
        _BODY25,
        _bones_within(
            _BODY25,
            _FACE + _OPENPOSE_TRUNK + (("neck", "mid_hip"), ("mid_hip", "left_hip"), ("mid_hip", "right_hip"))
            + _LIMBS + _FEET,
        ),
    ),
    "coco18": KeypointLayout(
        "coco18",
        _COCO18,
        _bones_within(_COCO18, _FACE + _OPENPOSE_TRUNK + (("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"), ("left_hip", "right_hip")) + _LIMBS),
    ),
    "mediapipe33": KeypointLayout(
        "mediapipe33", _MEDIAPIPE33, _bones_within(_MEDIAPIPE33, _MEDIAPIPE_EXTRA + _TORSO + _LIMBS)
    ),
    "penn13": KeypointLayout("penn13", _PENN13, _bones_within(_PENN13, _HEAD + _TORSO + _LIMBS)),
}

# The built-in layouts all have different sizes, so a joint count names one (for arrays without a layout).
LAYOUTS_BY_NUM_JOINTS: dict[int, KeypointLayout] = {layout.num_joints: layout for layout in LAYOUTS.values()}

# Other spellings users reach for.
_ALIASES = {
    "coco": "coco17", "coco_17": "coco17", "coco-17": "coco17",
    "body_25": "body25", "body-25": "body25", "openpose": "body25", "openpose_body25": "body25",
    "coco_18": "coco18", "coco-18": "coco18", "openpose_coco": "coco18", "openpose_coco18": "coco18",
    "mediapipe": "mediapipe33", "blazepose": "mediapipe33", "mediapipe_33": "mediapipe33",
    "penn": "penn13", "penn_action": "penn13", "penn-action": "penn13", "penn_action13": "penn13",
}


def get_layout(spec: str | Sequence[str] | KeypointLayout) -> KeypointLayout:
    """Resolve a layout name (``"coco17"``, ``"body25"``...), a list of joint names, or a layout itself.

    A list of names declares a custom layout; it draws the known bones whose two ends it has.
    """
    if isinstance(spec, KeypointLayout):
        return spec
    if isinstance(spec, str):
        key = spec.strip().lower()
        key = _ALIASES.get(key, key)
        if key not in LAYOUTS:
            raise InputError(
                f"unknown keypoint layout {spec!r}; expected one of {sorted(LAYOUTS)} or a list of joint names"
            )
        return LAYOUTS[key]
    if isinstance(spec, Sequence) and not isinstance(spec, (bytes, bytearray)):
        joints = tuple(spec)
        for known in LAYOUTS.values():
            if known.joints == joints:
                return known
        return KeypointLayout("custom", joints, _bones_within(joints))
    raise InputError(
        f"expected a keypoint layout name, a list of joint names or a KeypointLayout, got {type(spec).__name__}"
    )


def convert_keypoints(
    kpts: np.ndarray,
    src: str | Sequence[str] | KeypointLayout,
    dst: str | Sequence[str] | KeypointLayout,
) -> np.ndarray:
    """Reorder keypoints ``(..., J_src, C)`` from layout ``src`` into layout ``dst`` -> ``(..., J_dst, C)`` float32.

    Joints are matched by name. A joint ``dst`` has and ``src`` lacks is all zeros (confidence 0, so the
    model ignores it), except the derived joints: ``neck`` and ``mid_hip`` are the midpoints of the
    shoulders / hips when both are visible, and ``head`` is the mean of the visible nose, eyes and ears.
    "Visible" means confidence > 0 (the last channel, when ``C >= 3``); a derived joint's confidence is
    the mean confidence of the parts it was built from.
    """
    src_layout, dst_layout = get_layout(src), get_layout(dst)
    kpts = np.asarray(kpts)
    if kpts.ndim < 2 or kpts.shape[-2] != src_layout.num_joints:
        raise InputError(
            f"expected keypoints shaped (..., {src_layout.num_joints}, C) for layout {src_layout.name!r}, "
            f"got shape {tuple(kpts.shape)}"
        )
    kpts = kpts.astype(np.float32, copy=False)
    out = np.zeros(kpts.shape[:-2] + (dst_layout.num_joints, kpts.shape[-1]), dtype=np.float32)
    for j, joint in enumerate(dst_layout.joints):
        if joint in src_layout:
            out[..., j, :] = kpts[..., src_layout.index(joint), :]
        elif joint in DERIVED_JOINTS:
            out[..., j, :] = _derive(kpts, src_layout, joint)
    return out


def _derive(kpts: np.ndarray, layout: KeypointLayout, joint: str) -> np.ndarray:
    """A derived joint (see ``DERIVED_JOINTS``) computed from the parts ``layout`` has; zeros if none."""
    parts = [p for p in DERIVED_JOINTS[joint] if p in layout]
    shape = kpts.shape[:-2] + (kpts.shape[-1],)
    if not parts:
        return np.zeros(shape, dtype=np.float32)
    stack = kpts[..., [layout.index(p) for p in parts], :]  # (..., P, C)
    if kpts.shape[-1] >= 3:
        visible = stack[..., -1] > 0
    else:
        visible = np.ones(stack.shape[:-1], dtype=bool)
    if joint in ("neck", "mid_hip"):
        # A midpoint needs both sides; one shoulder alone would put the neck on that shoulder.
        ok = visible.all(axis=-1) & (len(parts) == 2)
    else:
        ok = visible.any(axis=-1)
    weights = visible.astype(np.float32)
    count = np.maximum(weights.sum(axis=-1, keepdims=True), 1.0)
    mean = (stack * weights[..., None]).sum(axis=-2) / count
    return np.where(ok[..., None], mean, 0.0).astype(np.float32)
