"""The model config, typed: the published ``config.json`` schema plus our ``preprocessing`` section.

A Uni-HAR config is the nested JSON the published checkpoint ships as ``config.json``. Here each
section is a pydantic dataclass (:mod:`unihar.schema`, like the run config's), checked once when it is
read: a missing key, a value of the wrong type or out of range is refused with a message naming
``section.key``, what it takes and what was given, before any module is built. Keys a section does not
know are ignored, as the published format says. ``ModelConfig.to_dict()`` writes the same schema back,
so a published config round-trips; sections we do not know are kept verbatim. The JSON Schema of the
whole file is :func:`json_schema` (written out in ``docs/config-schema.md``).

``PreprocessConfig`` is our addition and the model's half of the input contract, like timm's
``pretrained_cfg``: which keypoint layout, how many clips of how many frames per window, how long a
window is, how confidences are read, the image size and normalisation. A model carries it
(``model.preprocessing``), so training, offline prediction, streaming and serving cannot drift apart.

This module imports no torch (and nothing of :mod:`unihar.data`): the command line reads configs before
it decides to load a model.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import Field
from typing_extensions import Self

from unihar.errors import ConfigError
from unihar.jsonfile import read_json
from unihar.schema import Bool, ConfigBase, Float, Int, Str, config_dataclass, object_schema

__all__ = [
    "BACKBONES",
    "FUSION_MODES",
    "FUSION_ANSWERS",
    "NORMALIZATIONS",
    "Backbone",
    "FusionMode",
    "FusionAnswer",
    "Normalization",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LAYOUT_BY_NUM_JOINTS",
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
    "json_schema",
    "read_config",
    "default_config",
]

FusionMode = Literal["concat", "xattn"]
FusionAnswer = Literal["head", "product"]
Backbone = Literal["resnet18", "resnet50"]
Normalization = Literal["center_scale", "none"]
FUSION_MODES: tuple[FusionMode, ...] = get_args(FusionMode)
FUSION_ANSWERS: tuple[FusionAnswer, ...] = get_args(FusionAnswer)
BACKBONES: dict[str, int] = dict(zip(get_args(Backbone), (512, 2048)))  # name -> trunk output channels (Cb)
NORMALIZATIONS: tuple[Normalization, ...] = get_args(Normalization)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# A 6-axis inertial sensor: accelerometer in g (gravity included), gyroscope in degrees per second.
IMU_CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
# The built-in keypoint layouts by joint count (they all differ in size), for a config without a
# ``preprocessing`` section (the published one names only ``pose_model.joints``) and arrays without a
# layout. Names only: the layouts live in unihar.data.layouts, above this module; tests/test_layouts.py
# keeps the two equal.
LAYOUT_BY_NUM_JOINTS = {17: "coco17", 25: "body25", 18: "coco18", 33: "mediapipe33", 13: "penn13"}

Count = Annotated[Int, Field(ge=1)]
Share = Annotated[Float, Field(ge=0, lt=1)]  # a dropout rate: 1 would drop everything
Positive = Annotated[Float, Field(gt=0)]
Name = Annotated[Str, Field(min_length=1)]


class Section(ConfigBase):
    """A config section: a pydantic dataclass whose fields are the section's keys.

    ``SECTION`` is its name in ``config.json``. Fields without a default are required, and so are those
    ``required_fields`` names (the sizes of a branch that is switched on). ``from_dict`` takes a parsed
    section: a key set to null counts as left out, and keys the section does not know are ignored.
    """

    QUOTED: ClassVar[bool] = True
    SIGNAL: ClassVar[bool] = False  # modality sections: a sensor recording worn by a person

    @classmethod
    def required_fields(cls, data: Mapping[str, Any]) -> list[str]:
        """The keys a section holding ``data`` must have (override where that depends on ``enabled``)."""
        return [f.name for f in dataclasses.fields(cls) if _is_required(f)]

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        if not isinstance(data, Mapping):
            raise ConfigError(f"config section '{cls.SECTION}' must be a JSON object, got {type(data).__name__}")
        return cls(**{k: v for k, v in data.items() if v is not None})

    def check_rules(self) -> None:
        given = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in self.required_fields({k: v for k, v in given.items() if v is not None}):
            if given[name] is None:
                raise ConfigError(f"config is missing the required key '{self.SECTION}.{name}'")

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items() if v is not None
        }


def _is_required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


@config_dataclass(unknown_keys="ignore")
class PoseModelConfig(Section):
    """The factorized pose transformer (``short_seq_model``). ``enabled: false`` (our addition; the
    published schema has no such key) is a model without the skeleton branch, e.g. inertial only; its
    sizes are required otherwise."""

    SECTION: ClassVar[str] = "pose_model"
    MODALITY: ClassVar[str] = "skeleton"
    enabled: Bool | None = None  # None: on (the published configs do not say)
    joints: Count | None = None
    in_channels: Annotated[Int, Field(ge=2)] | None = None  # x, y[, confidence]
    hidden_dim: Count | None = None
    layers: Count | None = None
    heads: Count | None = None
    max_seq_len: Count | None = None
    use_sinusoidal_pe: Bool = False
    enable_temporal_attention: Bool = True
    aux_head_dim: Count = 6  # the published layout fixes it at 6; a checkpoint may hold another width

    @classmethod
    def required_fields(cls, data: Mapping[str, Any]) -> list[str]:
        if data.get("enabled") is False:
            return []
        return ["joints", "in_channels", "hidden_dim", "layers", "heads", "max_seq_len"]

    @property
    def on(self) -> bool:
        return self.enabled is not False

    def check_rules(self) -> None:
        super().check_rules()
        if not self.on:
            return
        # an enabled pose model has its sizes (super().check_rules() requires them)
        assert self.hidden_dim is not None and self.heads is not None
        if self.hidden_dim % self.heads:
            raise ConfigError(
                f"'pose_model.hidden_dim' ({self.hidden_dim}) must be divisible by 'pose_model.heads' ({self.heads})"
            )
        if self.use_sinusoidal_pe and self.hidden_dim % 2:
            raise ConfigError(
                f"a sinusoidal position embedding needs an even 'pose_model.hidden_dim', got {self.hidden_dim}"
            )


@config_dataclass(unknown_keys="ignore")
class ClassifierConfig(Section):
    """The label space, and the softmax temperature fitted on held-out data (1.0 = uncalibrated)."""

    SECTION: ClassVar[str] = "classifier"
    num_classes: Count
    temperature: Positive = 1.0


@config_dataclass(unknown_keys="ignore")
class RegularizationConfig(Section):
    SECTION: ClassVar[str] = "regularization"
    short_term_dropout: Share


@config_dataclass(unknown_keys="ignore")
class LongTermConfig(Section):
    """The transformer over the L clip embeddings of a window; its sizes are required only when enabled."""

    SECTION: ClassVar[str] = "long_term_model"
    enabled: Bool
    heads: Count | None = None
    layers: Count | None = None
    dropout: Share | None = None

    @classmethod
    def required_fields(cls, data: Mapping[str, Any]) -> list[str]:
        return ["enabled", "heads", "layers", "dropout"] if data.get("enabled") else ["enabled"]


@config_dataclass(unknown_keys="ignore")
class ImageModelConfig(Section):
    """The ResNet over RGB frames; ``enabled: false`` is a pose-only model."""

    SECTION: ClassVar[str] = "image_model"
    MODALITY: ClassVar[str] = "rgb"
    enabled: Bool
    feature_dim: Count | None = None
    backbone: Backbone = "resnet18"

    @classmethod
    def required_fields(cls, data: Mapping[str, Any]) -> list[str]:
        return ["enabled", "feature_dim"] if data.get("enabled") else ["enabled"]

    @property
    def on(self) -> bool:
        return self.enabled


@config_dataclass(unknown_keys="ignore")
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
    enabled: Bool = True
    channels: Annotated[tuple[Name, ...], Field(min_length=1)] = IMU_CHANNELS
    rate: Positive = 50.0  # Hz
    mean: tuple[Float, ...] | None = None
    std: tuple[Positive, ...] | None = None
    hidden_dim: Count = 64
    conv_layers: Annotated[Int, Field(ge=0)] = 2
    kernel_size: Count = 5
    layers: Count = 2
    heads: Count = 4
    dropout: Share = 0.1

    @property
    def on(self) -> bool:
        return self.enabled

    def check_rules(self) -> None:
        super().check_rules()
        name = self.SECTION
        if len(set(self.channels)) != len(self.channels):
            raise ConfigError(f"'{name}.channels' must be distinct non-empty names, got {list(self.channels)}")
        for key in ("mean", "std"):
            values = getattr(self, key)
            if values is not None and len(values) != len(self.channels):
                raise ConfigError(
                    f"'{name}.{key}' must be {len(self.channels)} numbers (one per channel), got {list(values)}"
                )
        if self.hidden_dim % self.heads:
            raise ConfigError(
                f"'{name}.hidden_dim' ({self.hidden_dim}) must be divisible by '{name}.heads' ({self.heads})"
            )
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"'{name}.kernel_size' must be odd (centred convolutions), got {self.kernel_size}")


@config_dataclass(unknown_keys="ignore")
class FusionConfig(Section):
    """How the modalities' features join; required only when a model has several modalities.

    ``mode``: ``"concat"`` (an MLP over the concatenated features) or ``"xattn"`` (cross-attention over
    their tokens), as published. ``answer`` (our addition): ``"head"`` (default, as published) answers
    with that learned head; ``"product"`` answers with the product of the modalities' own classifiers
    (``classifier_pose``, ``classifier_imu``) over the modalities present, and the learned head is
    trained beside them but does not vote (docs/sensors.md: it generalised better across subjects).
    """

    SECTION: ClassVar[str] = "fusion_model"
    mode: FusionMode | None = None
    output_dim: Count | None = None
    # Our additions for models that must answer with a modality missing (a sensor that dropped out):
    # a learned stand-in feature per modality, and the chance that training drops each modality of a
    # sample. Without them (the published layout) a model missing its images answers from the skeleton
    # alone through ``classifier_pose``.
    missing_embeddings: Bool | None = None
    modality_dropout: Share | None = None
    answer: FusionAnswer | None = None  # None = "head"


@config_dataclass
class PreprocessConfig(Section):
    """How raw keypoints and frames become model input (the ``preprocessing`` section; see
    :mod:`unihar.data.preprocess` for what each step does). Unlike the published sections it refuses
    keys it does not know: it is ours, and a misspelt key would silently change the input.

    ``layout``: a built-in layout's name or the list of joint names. ``min_confidence`` /
    ``binarize_confidence``: a joint whose confidence is below ``min_confidence`` is missing
    (confidence 0, x = y = 0); with ``binarize_confidence`` every other joint gets confidence 1. Pose
    sources disagree on what a confidence means (Penn Action's 0/0.5/1 flags, MediaPipe's visibilities
    that are never 0, Kinect's none at all), so models trained on several of them read "seen or not".
    Both default to the old behaviour (raw confidences) for configs that predate them.
    """

    SECTION: ClassVar[str] = "preprocessing"
    layout: Str | list[Str] = "coco17"
    clips: Count = 4
    clip_len: Count = 30
    window_seconds: Positive = 4.0
    stride_seconds: Positive = 1.0
    normalization: Normalization = "center_scale"
    image_size: Count = 224
    image_mean: tuple[Float, Float, Float] = IMAGENET_MEAN
    image_std: tuple[Positive, Positive, Positive] = IMAGENET_STD
    min_confidence: Annotated[Float, Field(ge=0, le=1)] = 0.0
    binarize_confidence: Bool = False

    @property
    def num_frames(self) -> int:
        """Frames per window after resampling (``clips * clip_len``)."""
        return self.clips * self.clip_len

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
    if pose.joints not in LAYOUT_BY_NUM_JOINTS:
        raise ConfigError(
            f"config has no 'preprocessing' section and pose_model.joints={pose.joints} matches no known layout "
            f"({sorted(LAYOUT_BY_NUM_JOINTS)}); add preprocessing.layout"
        )
    assert pose.max_seq_len is not None  # only an enabled pose model gets here, and it has its sizes
    return PreprocessConfig(layout=LAYOUT_BY_NUM_JOINTS[pose.joints], clip_len=min(30, pose.max_seq_len))


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
ModalitySection = PoseModelConfig | ImageModelConfig | ImuModelConfig
MODALITY_SECTIONS: tuple[type[ModalitySection], ...] = (PoseModelConfig, ImageModelConfig, ImuModelConfig)


@config_dataclass
class ModelConfig(ConfigBase):
    """A whole model config. Sections are typed; ``extra`` keeps sections we do not know, verbatim.
    Built from ``config.json`` by :meth:`from_dict`; the rules across sections are checked however
    it is built."""

    QUOTED: ClassVar[bool] = True
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
        pose = sections["pose_model"]
        preprocessing_data = config.get("preprocessing")
        if not preprocessing_data and not pose.on:
            raise ConfigError(
                "a config without pose_model needs a 'preprocessing' section (window_seconds, clips, ...)"
            )
        preprocessing = (
            PreprocessConfig.from_dict(preprocessing_data) if preprocessing_data else _derived_preprocessing(pose)
        )
        known = {kind.SECTION for kind in _SECTIONS + _OPTIONAL_SECTIONS} | {"preprocessing"}
        extra = {k: copy.deepcopy(v) for k, v in config.items() if k not in known}
        return cls(**sections, preprocessing=preprocessing, extra=extra)

    def check_rules(self) -> None:
        pose, image, fusion = self.pose_model, self.image_model, self.fusion_model
        modalities = [s for s in (getattr(self, kind.SECTION) for kind in MODALITY_SECTIONS) if s is not None and s.on]
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
                    f"'xattn' fusion uses 4 heads: '{first.SECTION}.hidden_dim' ({first.hidden_dim}) "
                    "must be divisible by 4"
                )
        if not pose.on:
            return
        # the sections' own checks require the sizes of an enabled branch
        assert pose.hidden_dim is not None and pose.max_seq_len is not None
        long_term = self.long_term_model
        if long_term.enabled:
            assert long_term.heads is not None
            if pose.hidden_dim % long_term.heads:
                raise ConfigError(
                    f"'long_term_model' needs heads dividing hidden_dim ({pose.hidden_dim}), "
                    f"got heads={long_term.heads}"
                )
        preprocessing = self.preprocessing
        if preprocessing.clip_len > pose.max_seq_len:
            raise ConfigError(
                f"preprocessing.clip_len ({preprocessing.clip_len}) exceeds pose_model.max_seq_len ({pose.max_seq_len})"
            )

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
            section: ModalitySection | None = getattr(self, kind.SECTION)
            if kind.MODALITY == name and section is not None and section.on:
                return section
        raise ConfigError(f"this model has no {name!r} modality; it reads {self.modalities}")

    @property
    def num_classes(self) -> int:
        return self.classifier.num_classes

    @property
    def has_image_branch(self) -> bool:
        return self.image_model.enabled


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``config.json``: every section's keys, types, ranges and defaults.

    Beyond it: the sizes of a branch are required when it is enabled, widths must divide by head
    counts, ``preprocessing.clip_len`` fits in ``pose_model.max_seq_len``, and a model with several
    modalities needs ``fusion_model.mode`` and ``output_dim``.
    """
    sections: tuple[type[Section], ...] = (*_SECTIONS, *_OPTIONAL_SECTIONS, PreprocessConfig)
    optional: tuple[type[Section], ...] = (FusionConfig, *_OPTIONAL_SECTIONS, PreprocessConfig)
    return object_schema(
        "config.json",
        "A Uni-HAR model config. Keys a published section does not know are ignored, and sections this "
        "version does not know are kept as they are.",
        {kind.SECTION: kind for kind in sections},
        required=tuple(kind.SECTION for kind in sections if kind not in optional),
    )


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
