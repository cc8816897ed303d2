"""Keypoint layouts: the one table of joint orders Uni-HAR knows, and conversion between them.

Every pose source orders its joints differently (COCO-17, OpenPose BODY_25 / COCO-18, MediaPipe's 33
landmarks, Penn Action's 13 annotations). Rather than hard-coding index maps for every pair, each layout
is a list of *named* joints and conversion goes by name, so any layout converts to any other, including a
custom layout declared as a plain list of names.

Names are COCO's in lower_snake_case plus ``neck``, ``mid_hip``, ``head`` and the extra BODY_25 / MediaPipe
points spelled the same way (``left_big_toe``, ``mouth_left``, ``left_foot_index``...). The skeleton datasets
(Kinect v1, MSR Action3D, SBU's OpenNI tracker, MoveNet) add ``spine`` (mid-torso), ``left_hand`` /
``right_hand`` (the hand centre, past the wrist) and ``left_foot`` / ``right_foot`` (the foot, past the
ankle); their layouts are in :data:`DATASET_LAYOUTS`. A joint is "left" or "right" when its name has a
``left`` / ``right`` word; swapping that word gives its mirror partner, which is what flip augmentation needs.

Conversion fills a target joint the source lacks in two ways: *derived* joints (:data:`DERIVED_JOINTS`: a
neck from the shoulders...) and *stand-ins* (:data:`FALLBACK_JOINTS`: the nearest joint the source does
have, a few centimetres off, e.g. a wrist from SBU's hand), so no data is thrown away for lack of a name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from unihar.errors import InputError

__all__ = [
    "KeypointLayout",
    "LAYOUTS",
    "DATASET_LAYOUTS",
    "DERIVED_JOINTS",
    "FALLBACK_JOINTS",
    "source_joints",
    "get_layout",
    "convert_keypoints",
    "mirror_joint_name",
]

# The 17 COCO keypoints, in COCO order; most other layouts are supersets or subsets of these names.
_COCO17 = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

# OpenPose BODY_25 output order (openpose/doc/02_output.md).
_BODY25 = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "mid_hip",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
    "left_big_toe",
    "left_small_toe",
    "left_heel",
    "right_big_toe",
    "right_small_toe",
    "right_heel",
)

# OpenPose COCO (18 points) output order: BODY_25 without mid_hip and the feet.
_COCO18 = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
)

# MediaPipe Pose / BlazePose landmark order (mediapipe PoseLandmark enum, lower-cased).
_MEDIAPIPE33 = (
    "nose",
    "left_eye_inner",
    "left_eye",
    "left_eye_outer",
    "right_eye_inner",
    "right_eye",
    "right_eye_outer",
    "left_ear",
    "right_ear",
    "mouth_left",
    "mouth_right",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_pinky",
    "right_pinky",
    "left_index",
    "right_index",
    "left_thumb",
    "right_thumb",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_heel",
    "right_heel",
    "left_foot_index",
    "right_foot_index",
)

# Penn Action annotation order (joint 1..13 of the dataset's README).
_PENN13 = (
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

# Kinect for Windows SDK v1 skeleton order (NUI_SKELETON_POSITION_INDEX), used by NW-UCLA and UT-Kinect:
# hip_center, spine, shoulder_center, head, then the left arm, right arm, left leg, right leg.
_KINECT_V1 = (
    "mid_hip",
    "spine",
    "neck",
    "head",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "left_hand",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "right_hand",
    "left_hip",
    "left_knee",
    "left_ankle",
    "left_foot",
    "right_hip",
    "right_knee",
    "right_ankle",
    "right_foot",
)

# UTD-MHAD's Kinect v1 order (its Skeleton_joint_order.txt): the same joints, the trunk listed top-down.
_UTD_MHAD = ("head", "neck", "spine", "mid_hip") + _KINECT_V1[4:]

# MSR Action3D's 20 joints (the dataset's own order, not the Kinect SDK's).
_MSR_ACTION3D = (
    "left_shoulder",
    "right_shoulder",
    "neck",
    "spine",
    "left_hip",
    "right_hip",
    "mid_hip",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hand",
    "right_hand",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_foot",
    "right_foot",
    "head",
)

# SBU Kinect Interaction, per person (OpenNI/NITE's 15 joints: no wrists or ankles; "torso" is the spine).
_SBU15 = (
    "head",
    "neck",
    "spine",
    "left_shoulder",
    "left_elbow",
    "left_hand",
    "right_shoulder",
    "right_elbow",
    "right_hand",
    "left_hip",
    "left_knee",
    "left_foot",
    "right_hip",
    "right_knee",
    "right_foot",
)

# MoveNet's COCO-17 without the eyes and ears (the UR Fall pose files).
_MOVENET13 = ("nose",) + _COCO17[5:]

# Bones shared by every layout that has both ends; layouts add their own below.
_LIMBS = (
    ("left_shoulder", "left_elbow"),
    ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"),
    ("left_hip", "left_knee"),
    ("left_knee", "left_ankle"),
    ("right_hip", "right_knee"),
    ("right_knee", "right_ankle"),
)
_TORSO = (
    ("left_shoulder", "right_shoulder"),
    ("left_hip", "right_hip"),
    ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"),
)
_FACE = (
    ("nose", "left_eye"),
    ("nose", "right_eye"),
    ("left_eye", "left_ear"),
    ("right_eye", "right_ear"),
)
_OPENPOSE_TRUNK = (
    ("neck", "nose"),
    ("neck", "left_shoulder"),
    ("neck", "right_shoulder"),
)
_FEET = (
    ("left_ankle", "left_heel"),
    ("left_ankle", "left_big_toe"),
    ("left_big_toe", "left_small_toe"),
    ("right_ankle", "right_heel"),
    ("right_ankle", "right_big_toe"),
    ("right_big_toe", "right_small_toe"),
)
_MEDIAPIPE_EXTRA = (
    ("nose", "left_eye_inner"),
    ("left_eye_inner", "left_eye"),
    ("left_eye", "left_eye_outer"),
    ("left_eye_outer", "left_ear"),
    ("nose", "right_eye_inner"),
    ("right_eye_inner", "right_eye"),
    ("right_eye", "right_eye_outer"),
    ("right_eye_outer", "right_ear"),
    ("mouth_left", "mouth_right"),
    ("left_wrist", "left_pinky"),
    ("left_wrist", "left_index"),
    ("left_pinky", "left_index"),
    ("left_wrist", "left_thumb"),
    ("right_wrist", "right_pinky"),
    ("right_wrist", "right_index"),
    ("right_pinky", "right_index"),
    ("right_wrist", "right_thumb"),
    ("left_ankle", "left_heel"),
    ("left_heel", "left_foot_index"),
    ("left_ankle", "left_foot_index"),
    ("right_ankle", "right_heel"),
    ("right_heel", "right_foot_index"),
    ("right_ankle", "right_foot_index"),
)
_HEAD = (("head", "left_shoulder"), ("head", "right_shoulder"))
_SPINE = (("neck", "head"), ("neck", "spine"), ("spine", "mid_hip"), ("mid_hip", "left_hip"), ("mid_hip", "right_hip"))
_HANDS_FEET = (
    ("left_wrist", "left_hand"),
    ("right_wrist", "right_hand"),
    ("left_ankle", "left_foot"),
    ("right_ankle", "right_foot"),
)
# Without wrists and ankles (SBU) the forearm and shin end at the hand and foot.
_SBU_LIMBS = (
    ("left_elbow", "left_hand"),
    ("right_elbow", "right_hand"),
    ("left_knee", "left_foot"),
    ("right_knee", "right_foot"),
    ("spine", "left_hip"),
    ("spine", "right_hip"),
)

# Every bone any built-in layout draws; a custom layout draws those whose two ends it has.
_ALL_BONES = (
    _LIMBS
    + _TORSO
    + _FACE
    + _OPENPOSE_TRUNK
    + _FEET
    + _MEDIAPIPE_EXTRA
    + _HEAD
    + (
        ("neck", "mid_hip"),
        ("mid_hip", "left_hip"),
        ("mid_hip", "right_hip"),
        ("neck", "head"),
    )
    + _SPINE
    + _HANDS_FEET
)

# Joints computed from others when a source lacks them: name -> parts (see ``convert_keypoints``).
DERIVED_JOINTS: dict[str, tuple[str, ...]] = {
    "neck": ("left_shoulder", "right_shoulder"),
    "mid_hip": ("left_hip", "right_hip"),
    "head": ("nose", "left_eye", "right_eye", "left_ear", "right_ear"),
}

# Stand-ins for a joint the source lacks: the nearest joint it has, in order of preference, copied as is
# (position and confidence). SBU's OpenNI skeleton has hands but no wrists and feet but no ankles; the
# hand centre is ~8 cm past the wrist and the Kinect foot ~10 cm in front of the ankle, far less than the
# error of a monocular pose estimator, so the stand-in keeps the forearm and shin instead of dropping them.
FALLBACK_JOINTS: dict[str, tuple[str, ...]] = {
    "left_wrist": ("left_hand",),
    "right_wrist": ("right_hand",),
    "left_ankle": ("left_foot",),
    "right_ankle": ("right_foot",),
}


def source_joints(joint: str, src: KeypointLayout) -> tuple[str, ...]:
    """The joints of ``src`` that fill ``joint`` on conversion: itself, its derivation parts, or its
    first stand-in; empty when ``src`` cannot fill it."""
    if joint in src:
        return (joint,)
    parts = tuple(p for p in DERIVED_JOINTS.get(joint, ()) if p in src)
    if parts:
        return parts
    for stand_in in FALLBACK_JOINTS.get(joint, ()):
        if stand_in in src:
            return (stand_in,)
    return ()


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
            _FACE
            + _OPENPOSE_TRUNK
            + (("neck", "mid_hip"), ("mid_hip", "left_hip"), ("mid_hip", "right_hip"))
            + _LIMBS
            + _FEET,
        ),
    ),
    "coco18": KeypointLayout(
        "coco18",
        _COCO18,
        _bones_within(
            _COCO18,
            _FACE
            + _OPENPOSE_TRUNK
            + (("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"), ("left_hip", "right_hip"))
            + _LIMBS,
        ),
    ),
    "mediapipe33": KeypointLayout(
        "mediapipe33", _MEDIAPIPE33, _bones_within(_MEDIAPIPE33, _MEDIAPIPE_EXTRA + _TORSO + _LIMBS)
    ),
    "penn13": KeypointLayout("penn13", _PENN13, _bones_within(_PENN13, _HEAD + _TORSO + _LIMBS)),
}

# The joint orders of the skeleton datasets (:mod:`unihar.data.datasets`). They are kept apart from the pose
# sources above because several share a joint count with them (MoveNet-13 and Penn-13), so a count alone
# must keep naming a pose source; ``get_layout`` resolves both tables by name.
DATASET_LAYOUTS: dict[str, KeypointLayout] = {
    "kinect_v1": KeypointLayout(
        "kinect_v1", _KINECT_V1, _bones_within(_KINECT_V1, _SPINE + _OPENPOSE_TRUNK[1:] + _LIMBS + _HANDS_FEET)
    ),
    "utd_mhad": KeypointLayout(
        "utd_mhad", _UTD_MHAD, _bones_within(_UTD_MHAD, _SPINE + _OPENPOSE_TRUNK[1:] + _LIMBS + _HANDS_FEET)
    ),
    "msr_action3d": KeypointLayout(
        "msr_action3d",
        _MSR_ACTION3D,
        _bones_within(_MSR_ACTION3D, _SPINE + _OPENPOSE_TRUNK[1:] + _LIMBS + _HANDS_FEET),
    ),
    "sbu15": KeypointLayout(
        "sbu15",
        _SBU15,
        _bones_within(
            _SBU15, (("neck", "head"), ("neck", "spine")) + _OPENPOSE_TRUNK[1:] + _TORSO[:1] + _LIMBS + _SBU_LIMBS
        ),
    ),
    "movenet13": KeypointLayout(
        "movenet13",
        _MOVENET13,
        _bones_within(_MOVENET13, (("nose", "left_shoulder"), ("nose", "right_shoulder")) + _TORSO + _LIMBS),
    ),
}

# Other spellings users reach for.
_ALIASES = {
    "coco": "coco17",
    "coco_17": "coco17",
    "coco-17": "coco17",
    "body_25": "body25",
    "body-25": "body25",
    "openpose": "body25",
    "openpose_body25": "body25",
    "coco_18": "coco18",
    "coco-18": "coco18",
    "openpose_coco": "coco18",
    "openpose_coco18": "coco18",
    "mediapipe": "mediapipe33",
    "blazepose": "mediapipe33",
    "mediapipe_33": "mediapipe33",
    "penn": "penn13",
    "penn_action": "penn13",
    "penn-action": "penn13",
    "penn_action13": "penn13",
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
        if key in DATASET_LAYOUTS:
            return DATASET_LAYOUTS[key]
        if key not in LAYOUTS:
            raise InputError(
                f"unknown keypoint layout {spec!r}; expected one of {sorted(LAYOUTS) + sorted(DATASET_LAYOUTS)} "
                "or a list of joint names"
            )
        return LAYOUTS[key]
    if isinstance(spec, Sequence) and not isinstance(spec, (bytes, bytearray)):
        joints = tuple(spec)
        for known in (*LAYOUTS.values(), *DATASET_LAYOUTS.values()):
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
    shoulders / hips when both are visible, and ``head`` is the mean of the visible nose, eyes and ears;
    and the joints with a stand-in (:data:`FALLBACK_JOINTS`), copied from it. "Visible" means confidence
    > 0 (the last channel, when ``C >= 3``); a derived joint's confidence is the mean confidence of the
    parts it was built from. Any channel count works: ``(x, y, confidence)`` and ``(x, y, z, confidence)``.
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
        elif any(p in src_layout for p in DERIVED_JOINTS.get(joint, ())):
            out[..., j, :] = _derive(kpts, src_layout, joint)
        elif stand_in := source_joints(joint, src_layout):
            out[..., j, :] = kpts[..., src_layout.index(stand_in[0]), :]
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
        ok = np.asarray(visible.all(axis=-1) & (len(parts) == 2))
    else:
        ok = np.asarray(visible.any(axis=-1))
    weights = visible.astype(np.float32)
    count = np.maximum(weights.sum(axis=-1, keepdims=True), 1.0)
    mean = (stack * weights[..., None]).sum(axis=-2) / count
    return np.where(ok[..., None], mean, 0.0).astype(np.float32)
