"""The model config, typed: the published ``config.json`` schema plus our ``preprocessing`` section.

A Uni-HAR config is the nested JSON the published checkpoint ships as ``config.json``. Here each
section is a dataclass, checked once when it is read: a missing key or a nonsensical value is refused
with a message naming ``section.key``, before any module is built. ``ModelConfig.to_dict()`` writes the
same schema back, so a published config round-trips; sections we do not know are kept verbatim.

``PreprocessConfig`` is our addition and the model's half of the input contract, like timm's
``pretrained_cfg``: which keypoint layout, how many clips of how many frames per window, how long a
window is, how confidences are read, the image size and normalisation. A model carries it
(``model.prep``), so training, offline prediction, streaming and serving cannot drift apart.

This module imports no torch: the command line reads configs before it decides to load a model.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from unihar.data.layouts import LAYOUTS_BY_NUM_JOINTS
from unihar.errors import ConfigError
from unihar.jsonfile import read_json

__all__ = [
    "BACKBONES",
    "FUSION_MODES",
    "FUSION_ANSWERS",
    "NORMALIZATIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PoseModelConfig",
    "ClassifierConfig",
    "RegularizationConfig",
    "LongTermConfig",
    "ImageModelConfig",
    "ImuModelConfig",
    "IMU_CHANNELS",
    "FusionConfig",
    "PreprocessConfig",
    "ModelConfig",
    "validate_config",
    "read_config",
    "default_config",
]

FUSION_MODES = ("concat", "xattn")
FUSION_ANSWERS = ("head", "product")
BACKBONES = {"resnet18": 512, "resnet50": 2048}  # name -> trunk output channels (Cb)
NORMALIZATIONS = ("center_scale", "none")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# A 6-axis inertial sensor: accelerometer in g (gravity included), gyroscope in degrees per second.
IMU_CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")

_TYPE_NAMES = {int: "int", float: "float", bool: "bool", str: "str"}


class Section:
    """A config section: a dataclass whose fields are the section's keys.

    ``SECTION`` is its name in ``config.json``. Fields without a default are required; ``from_dict``
    checks presence and type (an int is accepted where a float is expected, a bool never where a
    number is) and then ``check`` validates the values.
    """

    SECTION: ClassVar[str] = ""
    SIGNAL: ClassVar[bool] = False  # modality sections: a sensor recording worn by a person
    # Fields only required when the section is "on" (e.g. the image branch); see ``required_fields``.

    @classmethod
    def required_fields(cls, data: Mapping[str, Any]) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if _is_required(f)]

    @classmethod
    def from_dict(cls, data: Any) -> Section:
        if not isinstance(data, Mapping):
            raise ConfigError(f"config section '{cls.SECTION}' must be a JSON object, got {type(data).__name__}")
        for name in cls.required_fields(data):
            if name not in data:
                raise ConfigError(f"config is missing the required key '{cls.SECTION}.{name}'")
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in data and data[f.name] is not None:
                values[f.name] = _checked(cls.SECTION, f.name, data[f.name], f.type)
        section = cls(**values)
        section.check()
        return section

    def check(self) -> None:
        """Value checks beyond the types (override)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items() if v is not None
        }


def _is_required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _checked(section: str, key: str, value: Any, annotation: str) -> Any:
    """``value`` if it has the type the field's annotation names; a ConfigError naming the key otherwise."""
    kinds = [k for k in (int, float, bool, str, tuple, list) if _TYPE_NAMES.get(k, k.__name__) in str(annotation)]
    if "float" in str(annotation):
        kinds.append(int)
    ok = any(isinstance(value, k) for k in kinds)
    if isinstance(value, bool) and bool not in kinds:  # True is an int: refuse it where a count is expected
        ok = False
    if not ok:
        expected = " or ".join(dict.fromkeys(_TYPE_NAMES.get(k, k.__name__) for k in kinds)) or str(annotation)
        raise ConfigError(f"config key '{section}.{key}' must be {expected}, got {value!r}")
    if "float" in str(annotation) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _at_least(section: str, key: str, value: float, minimum: float) -> None:
    if value < minimum:
        raise ConfigError(f"config key '{section}.{key}' must be >= {minimum:g}, got {value}")


@dataclass
class PoseModelConfig(Section):
    """The factorized pose transformer (``short_seq_model``). ``enabled: false`` (our addition; the
    published schema has no such key) is a model without the skeleton branch, e.g. inertial only."""

    SECTION: ClassVar[str] = "pose_model"
    MODALITY: ClassVar[str] = "skeleton"
    enabled: bool | None = None  # None: on (the published configs do not say)
    joints: int | None = None
    in_channels: int | None = None
    hidden_dim: int | None = None
    layers: int | None = None
    heads: int | None = None
    max_seq_len: int | None = None
    use_sinusoidal_pe: bool = False
    enable_temporal_attention: bool = True
    aux_head_dim: int = 6  # the published layout fixes it at 6; a checkpoint may hold another width

    @classmethod
    def required_fields(cls, data: Mapping[str, Any]) -> list[str]:
        if data.get("enabled") is False:
            return []
        return ["joints", "in_channels", "hidden_dim", "layers", "heads", "max_seq_len"]

    @property
    def on(self) -> bool:
        return self.enabled is not False

    def check(self) -> None:
        if not self.on:
            return
        for key in ("joints", "hidden_dim", "layers", "heads", "max_seq_len", "aux_head_dim"):
            _at_least(self.SECTION, key, getattr(self, key), 1)
        if self.in_channels < 2:
            raise ConfigError(
                f"config key 'pose_model.in_channels' must be >= 2 (x, y[, confidence]), got {self.in_channels}"
            )
        if self.hidden_dim % self.heads:
            raise ConfigError(
                f"'pose_model.hidden_dim' ({self.hidden_dim}) must be divisible by 'pose_model.heads' ({self.heads})"
            )
        if self.use_sinusoidal_pe and self.hidden_dim % 2:
            raise ConfigError(
                f"a sinusoidal position embedding needs an even 'pose_model.hidden_dim', got {self.hidden_dim}"
            )


@dataclass
class ClassifierConfig(Section):
    """The label space, and the softmax temperature fitted on held-out data (1.0 = uncalibrated)."""

    SECTION: ClassVar[str] = "classifier"
    num_classes: int
    temperature: float = 1.0

    def check(self) -> None:
        _at_least(self.SECTION, "num_classes", self.num_classes, 1)
        if not self.temperature > 0:
            raise ConfigError(f"config key 'classifier.temperature' must be > 0, got {self.temperature}")


@dataclass
class RegularizationConfig(Section):
    SECTION: ClassVar[str] = "regularization"
    short_term_dropout: float

    def check(self) -> None:
        if not 0.0 <= self.short_term_dropout < 1.0:
            raise ConfigError(f"'regularization.short_term_dropout' must be in [0, 1), got {self.short_term_dropout}")


@dataclass
class LongTermConfig(Section):
    """The transformer over the L clip embeddings of a window; its sizes are required only when enabled."""

    SECTION: ClassVar[str] = "long_term_model"
    enabled: bool
    heads: int | None = None
    layers: int | None = None
    dropout: float | None = None

    @classmethod
    def required_fields(cls, data: Mapping[str, Any]) -> list[str]:
        return ["enabled", "heads", "layers", "dropout"] if data.get("enabled") else ["enabled"]

    def check(self) -> None:
        if self.enabled and (self.layers < 1 or self.heads < 1):
            raise ConfigError(
                f"'long_term_model' needs layers >= 1 and heads >= 1, got layers={self.layers}, heads={self.heads}"
            )


@dataclass
class ImageModelConfig(Section):
    """The ResNet over RGB frames; ``enabled: false`` is a pose-only model."""

    SECTION: ClassVar[str] = "image_model"
    MODALITY: ClassVar[str] = "rgb"
    enabled: bool
    feature_dim: int | None = None
    backbone: str = "resnet18"

    @classmethod
    def required_fields(cls, data: Mapping[str, Any]) -> list[str]:
        return ["enabled", "feature_dim"] if data.get("enabled") else ["enabled"]

    def check(self) -> None:
        if self.enabled:
            _at_least(self.SECTION, "feature_dim", self.feature_dim, 1)
            if self.backbone not in BACKBONES:
                raise ConfigError(f"'image_model.backbone' must be one of {sorted(BACKBONES)}, got {self.backbone!r}")

    @property
    def on(self) -> bool:
        return self.enabled


@dataclass
class ImuModelConfig(Section):
    """A wearable inertial sensor (``imu_model``; no section = no such branch), with its preprocessing.

    A recording is cut along the video's clips, each clip resampled to ``rate`` Hz (bin means, so a
    faster sensor is low-passed, not aliased) and each channel standardised with ``mean`` / ``std``
    (the training data's statistics; none = left as they are). ``channels`` names the axes in the
    model's order: a recording is matched to them by name and must have exactly these. The encoder is a
    strided 1D convolution stem (``conv_layers`` x stride 2, ``kernel_size``) and ``layers`` transformer
    layers over the resulting time steps.
    """

    SECTION: ClassVar[str] = "imu_model"
    MODALITY: ClassVar[str] = "imu"
    SIGNAL: ClassVar[bool] = True  # a recording attached to the person who wears it (not poses, not frames)
    enabled: bool = True
    channels: tuple | list = IMU_CHANNELS
    rate: float = 50.0
    mean: tuple | list | None = None
    std: tuple | list | None = None
    hidden_dim: int = 64
    conv_layers: int = 2
    kernel_size: int = 5
    layers: int = 2
    heads: int = 4
    dropout: float = 0.1

    def __post_init__(self) -> None:
        self.check()

    @property
    def on(self) -> bool:
        return self.enabled

    def check(self) -> None:
        name = self.SECTION
        self.channels = tuple(self.channels)
        if (
            not self.channels
            or not all(isinstance(c, str) and c for c in self.channels)
            or len(set(self.channels)) != len(self.channels)
        ):
            raise ConfigError(f"'{name}.channels' must be distinct non-empty names, got {list(self.channels)}")
        if not self.rate > 0:
            raise ConfigError(f"'{name}.rate' must be > 0 (Hz), got {self.rate}")
        for key in ("mean", "std"):
            values = getattr(self, key)
            if values is None:
                continue
            if len(values) != len(self.channels) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
            ):
                raise ConfigError(
                    f"'{name}.{key}' must be {len(self.channels)} numbers (one per channel), got {list(values)}"
                )
            setattr(self, key, tuple(float(v) for v in values))
        if self.std is not None and min(self.std) <= 0:
            raise ConfigError(f"'{name}.std' must be > 0 for every channel, got {list(self.std)}")
        for key in ("hidden_dim", "kernel_size", "layers", "heads"):
            _at_least(name, key, getattr(self, key), 1)
        _at_least(name, "conv_layers", self.conv_layers, 0)
        if self.hidden_dim % self.heads:
            raise ConfigError(
                f"'{name}.hidden_dim' ({self.hidden_dim}) must be divisible by '{name}.heads' ({self.heads})"
            )
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"'{name}.kernel_size' must be odd (centred convolutions), got {self.kernel_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"'{name}.dropout' must be in [0, 1), got {self.dropout}")


@dataclass
class FusionConfig(Section):
    """How the modalities' features join; required only when a model has several modalities.

    ``mode``: ``"concat"`` (an MLP over the concatenated features) or ``"xattn"`` (cross-attention over
    their tokens), as published. ``answer`` (our addition): ``"head"`` (default, as published) answers
    with that learned head; ``"product"`` answers with the product of the modalities' own classifiers
    (``classifier_pose``, ``classifier_imu``) over the modalities present, and the learned head is
    trained beside them but does not vote (docs/sensors.md: it generalised better across subjects).
    """

    SECTION: ClassVar[str] = "fusion_model"
    mode: str | None = None
    output_dim: int | None = None
    # Our additions for models that must answer with a modality missing (a sensor that dropped out):
    # a learned stand-in feature per modality, and the chance that training drops each modality of a
    # sample. Without them (the published layout) a model missing its images answers from the skeleton
    # alone through ``classifier_pose``.
    missing_embeddings: bool | None = None
    modality_dropout: float | None = None
    answer: str | None = None  # None = "head"

    def check(self) -> None:
        if self.mode is not None and self.mode not in FUSION_MODES:
            raise ConfigError(f"'fusion_model.mode' must be one of {list(FUSION_MODES)}, got {self.mode!r}")
        if self.output_dim is not None:
            _at_least(self.SECTION, "output_dim", self.output_dim, 1)
        if self.answer is not None and self.answer not in FUSION_ANSWERS:
            raise ConfigError(f"'fusion_model.answer' must be one of {list(FUSION_ANSWERS)}, got {self.answer!r}")
        if self.modality_dropout is not None and not 0.0 <= self.modality_dropout < 1.0:
            raise ConfigError(f"'fusion_model.modality_dropout' must be in [0, 1), got {self.modality_dropout}")


@dataclass
class PreprocessConfig(Section):
    """How raw keypoints and frames become model input (the ``preprocessing`` section; see
    :mod:`unihar.data.preprocess` for what each step does).

    ``min_confidence`` / ``binarize_confidence``: a joint whose confidence is below ``min_confidence``
    is missing (confidence 0, x = y = 0); with ``binarize_confidence`` every other joint gets
    confidence 1. Pose sources disagree on what a confidence means (Penn Action's 0/0.5/1 flags,
    MediaPipe's visibilities that are never 0, Kinect's none at all), so models trained on several of
    them read "seen or not". Both default to the old behaviour (raw confidences) for configs that
    predate them.
    """

    SECTION: ClassVar[str] = "preprocessing"
    layout: str | list = "coco17"
    clips: int = 4
    clip_len: int = 30
    window_seconds: float = 4.0
    stride_seconds: float = 1.0
    normalization: str = "center_scale"
    image_size: int = 224
    image_mean: tuple | list = IMAGENET_MEAN
    image_std: tuple | list = IMAGENET_STD
    min_confidence: float = 0.0
    binarize_confidence: bool = False

    def __post_init__(self) -> None:
        self.layout = list(self.layout) if isinstance(self.layout, (list, tuple)) else self.layout
        self.image_mean = tuple(float(v) for v in self.image_mean)
        self.image_std = tuple(float(v) for v in self.image_std)
        self.check()

    def check(self) -> None:
        if isinstance(self.clips, bool) or int(self.clips) < 1 or int(self.clip_len) < 1:
            raise ConfigError(f"preprocessing: clips and clip_len must be >= 1, got {self.clips} and {self.clip_len}")
        if not (self.window_seconds > 0 and self.stride_seconds > 0):
            raise ConfigError(
                "preprocessing: window_seconds and stride_seconds must be > 0, "
                f"got {self.window_seconds} and {self.stride_seconds}"
            )
        if self.normalization not in NORMALIZATIONS:
            raise ConfigError(
                f"preprocessing.normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}"
            )
        if int(self.image_size) < 1:
            raise ConfigError(f"preprocessing.image_size must be >= 1, got {self.image_size}")
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or min(self.image_std) <= 0:
            raise ConfigError(
                f"preprocessing.image_mean / image_std must be 3 numbers each (std > 0), got {self.image_mean} and {self.image_std}"
            )
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ConfigError(f"preprocessing.min_confidence must be in [0, 1], got {self.min_confidence}")
        self.clips, self.clip_len, self.image_size = int(self.clips), int(self.clip_len), int(self.image_size)
        self.window_seconds, self.stride_seconds = float(self.window_seconds), float(self.stride_seconds)

    @property
    def num_frames(self) -> int:
        """Frames per window after resampling (``clips * clip_len``)."""
        return self.clips * self.clip_len

    @classmethod
    def from_dict(cls, data: Any) -> PreprocessConfig:
        if isinstance(data, Mapping):
            known = {f.name for f in dataclasses.fields(cls)}
            unknown = set(data) - known
            if unknown:
                raise ConfigError(
                    f"preprocessing: unknown keys {sorted(unknown)}; expected a subset of {sorted(known)}"
                )
        return super().from_dict(data)  # type: ignore[return-value]

    @classmethod
    def from_model_config(cls, config: ModelConfig | Mapping[str, Any]) -> PreprocessConfig:
        """The preprocessing of a model config (a :class:`ModelConfig` or its dict)."""
        if isinstance(config, ModelConfig):
            return config.preprocessing
        return ModelConfig.from_dict(config).preprocessing

    def replace(self, **changes: Any) -> PreprocessConfig:
        return dataclasses.replace(self, **changes)


def _derived_preprocessing(pose: PoseModelConfig) -> PreprocessConfig:
    """Defaults for a config without a ``preprocessing`` section (the published one): the layout is
    the one with ``pose_model.joints`` joints, clips as long as the model takes."""
    if pose.joints not in LAYOUTS_BY_NUM_JOINTS:
        raise ConfigError(
            f"config has no 'preprocessing' section and pose_model.joints={pose.joints} matches no known layout "
            f"({sorted(LAYOUTS_BY_NUM_JOINTS)}); add preprocessing.layout"
        )
    return PreprocessConfig(layout=LAYOUTS_BY_NUM_JOINTS[pose.joints].name, clip_len=min(30, pose.max_seq_len))


_SECTIONS: tuple[type[Section], ...] = (
    PoseModelConfig,
    ClassifierConfig,
    RegularizationConfig,
    LongTermConfig,
    ImageModelConfig,
    FusionConfig,
)
# Sections a config may leave out: the modalities beyond the published two. A new modality adds its
# section class here (and a field of the same name to ModelConfig).
_OPTIONAL_SECTIONS: tuple[type[Section], ...] = (ImuModelConfig,)
# Every modality's section, in the order the model encodes and fuses them.
MODALITY_SECTIONS: tuple[type[Section], ...] = (PoseModelConfig, ImageModelConfig, ImuModelConfig)


@dataclass
class ModelConfig:
    """A whole model config. Sections are typed; ``extra`` keeps sections we do not know, verbatim."""

    pose_model: PoseModelConfig
    classifier: ClassifierConfig
    regularization: RegularizationConfig
    long_term_model: LongTermConfig
    image_model: ImageModelConfig
    fusion_model: FusionConfig
    preprocessing: PreprocessConfig
    extra: dict[str, Any] = field(default_factory=dict)
    imu_model: ImuModelConfig | None = None

    @classmethod
    def from_dict(cls, config: Any) -> ModelConfig:
        """Check a parsed ``config.json``; raises :class:`ConfigError` naming the first bad key."""
        if isinstance(config, ModelConfig):
            return copy.deepcopy(config)
        if not isinstance(config, Mapping):
            raise ConfigError(f"config must be a dict (the parsed config.json), got {type(config).__name__}")
        sections: dict[str, Any] = {}
        for kind in _SECTIONS:
            if kind.SECTION not in config:
                if kind is FusionConfig:
                    sections[kind.SECTION] = FusionConfig()
                    continue
                raise ConfigError(
                    f"config is missing the section '{kind.SECTION}' (needed for '{kind.SECTION}."
                    f"{kind.required_fields({'enabled': True})[0]}')"
                )
            sections[kind.SECTION] = kind.from_dict(config[kind.SECTION])
        for kind in _OPTIONAL_SECTIONS:
            if config.get(kind.SECTION) is not None:
                sections[kind.SECTION] = kind.from_dict(config[kind.SECTION])
        pose, image, fusion = sections["pose_model"], sections["image_model"], sections["fusion_model"]
        modalities = [s for s in (sections.get(kind.SECTION) for kind in MODALITY_SECTIONS) if s is not None and s.on]
        if not modalities:
            raise ConfigError(
                "config has no modality: pose_model is disabled and no other (image_model, imu_model) is on"
            )
        if image.enabled and not pose.on:
            raise ConfigError("'image_model' is fused with the skeleton: it needs pose_model (enabled)")
        if len(modalities) > 1:
            for key in ("mode", "output_dim"):
                if getattr(fusion, key) is None:
                    raise ConfigError(f"config is missing the required key 'fusion_model.{key}'")
            if fusion.answer == "product" and image.enabled:
                raise ConfigError(
                    "'fusion_model.answer': 'product' multiplies each modality's own classifier; the image "
                    "branch has none (use 'head' with image_model)"
                )
            # cross-attention runs at the width of the first modality (the skeleton's, as published)
            first = modalities[0]
            if fusion.mode == "xattn" and first.hidden_dim % 4:
                raise ConfigError(
                    f"'xattn' fusion uses 4 heads: '{first.SECTION}.hidden_dim' ({first.hidden_dim}) must be divisible by 4"
                )
        long_term = sections["long_term_model"]
        if pose.on and long_term.enabled and pose.hidden_dim % long_term.heads:
            raise ConfigError(
                f"'long_term_model' needs heads dividing hidden_dim ({pose.hidden_dim}), got heads={long_term.heads}"
            )
        prep_data = config.get("preprocessing")
        if not prep_data and not pose.on:
            raise ConfigError(
                "a config without pose_model needs a 'preprocessing' section (window_seconds, clips, ...)"
            )
        prep = PreprocessConfig.from_dict(prep_data) if prep_data else _derived_preprocessing(pose)
        if pose.on and prep.clip_len > pose.max_seq_len:
            raise ConfigError(
                f"preprocessing.clip_len ({prep.clip_len}) exceeds pose_model.max_seq_len ({pose.max_seq_len})"
            )
        known = {kind.SECTION for kind in _SECTIONS + _OPTIONAL_SECTIONS} | {"preprocessing"}
        extra = {k: copy.deepcopy(v) for k, v in config.items() if k not in known}
        return cls(**sections, preprocessing=prep, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """The ``config.json`` dict: the published sections, then ours, then unknown ones as read."""
        out = {kind.SECTION: getattr(self, kind.SECTION).to_dict() for kind in _SECTIONS}
        for kind in _OPTIONAL_SECTIONS:
            section = getattr(self, kind.SECTION)
            if section is not None:
                out[kind.SECTION] = section.to_dict()
        out["preprocessing"] = self.preprocessing.to_dict()
        out.update(copy.deepcopy(self.extra))
        return out

    @property
    def modalities(self) -> list[str]:
        """The model's modalities, in the order they are encoded and fused (e.g. ``["skeleton", "imu"]``)."""
        sections = (getattr(self, kind.SECTION) for kind in MODALITY_SECTIONS)
        return [s.MODALITY for s in sections if s is not None and s.on]

    @property
    def signal_modalities(self) -> list[str]:
        """The modalities that are sensor recordings worn by a person (``["imu"]``), attached per track."""
        sections = (getattr(self, kind.SECTION) for kind in MODALITY_SECTIONS if kind.SIGNAL)
        return [s.MODALITY for s in sections if s is not None and s.on]

    def modality_config(self, name: str) -> Section:
        """The config section of the modality ``name`` (``"imu"`` -> ``imu_model``), if this model reads it."""
        for kind in MODALITY_SECTIONS:
            section = getattr(self, kind.SECTION)
            if kind.MODALITY == name and section is not None and section.on:
                return section
        raise ConfigError(f"this model has no {name!r} modality; it reads {self.modalities}")

    @property
    def num_classes(self) -> int:
        return self.classifier.num_classes

    @property
    def has_image_branch(self) -> bool:
        return self.image_model.enabled


def validate_config(config: Any) -> dict[str, Any]:
    """Check a config dict and return it with the optional keys filled in (see :class:`ModelConfig`)."""
    return ModelConfig.from_dict(config).to_dict()


def read_config(path: str | Path) -> ModelConfig:
    """Read and check a ``config.json`` file."""
    return ModelConfig.from_dict(read_json(path, "config file", ConfigError))


def default_config(num_classes: int = 500, joints: int = 17, image: bool = True) -> dict[str, Any]:
    """The config of the published layout in ``checkpoint-keys.txt`` (D=128, 4 layers, 8 heads, Tm=30)."""
    return {
        "pose_model": {
            "joints": joints,
            "in_channels": 3,
            "hidden_dim": 128,
            "layers": 4,
            "heads": 8,
            "max_seq_len": 30,
        },
        "classifier": {"num_classes": num_classes},
        "regularization": {"short_term_dropout": 0.1},
        "long_term_model": {"enabled": True, "heads": 8, "layers": 2, "dropout": 0.1},
        "image_model": {"enabled": image, "feature_dim": 128, "backbone": "resnet18"},
        "fusion_model": {"mode": "concat", "output_dim": 128},
    }
