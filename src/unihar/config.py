"""The model config: the published ``config.json`` schema, checked once, in one place.

A Uni-HAR config is the nested dict the published checkpoint ships as ``config.json``. Every size of
the network comes from it, so a config that lacks a key or holds a nonsensical value is refused here
with a message naming the key, before any module is built. Unknown keys are kept (our own models add
a ``preprocessing`` section) and ignored by the network.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Mapping

from unihar.errors import ConfigError

# (section, key, expected type). Required in every config.
_REQUIRED: tuple[tuple[str, str, type | tuple[type, ...]], ...] = (
    ("pose_model", "joints", int),
    ("pose_model", "in_channels", int),
    ("pose_model", "hidden_dim", int),
    ("pose_model", "layers", int),
    ("pose_model", "heads", int),
    ("pose_model", "max_seq_len", int),
    ("classifier", "num_classes", int),
    ("regularization", "short_term_dropout", (int, float)),
    ("long_term_model", "enabled", bool),
    ("image_model", "enabled", bool),
)
# Required only when their branch exists (long-term encoder on, image branch on).
_REQUIRED_LONG_TERM = (
    ("long_term_model", "heads", int),
    ("long_term_model", "layers", int),
    ("long_term_model", "dropout", (int, float)),
)
_REQUIRED_IMAGE = (
    ("image_model", "feature_dim", int),
    ("fusion_model", "mode", str),
    ("fusion_model", "output_dim", int),
)
# Optional keys and their defaults (the two the published schema marks optional, plus the backbone,
# which the schema documents with a default, and the auxiliary head width, which the published layout
# fixes at 6 and a checkpoint may override).
_OPTIONAL: dict[tuple[str, str], Any] = {
    ("pose_model", "use_sinusoidal_pe"): False,
    ("pose_model", "enable_temporal_attention"): True,
    ("pose_model", "aux_head_dim"): 6,
    ("image_model", "backbone"): "resnet18",
}

FUSION_MODES = ("concat", "xattn")
BACKBONES = {"resnet18": 512, "resnet50": 2048}  # name -> trunk output channels (Cb)


def _check_key(cfg: Mapping[str, Any], section: str, key: str, kind: type | tuple[type, ...]) -> None:
    if not isinstance(cfg.get(section), Mapping):
        raise ConfigError(f"config is missing the section '{section}' (needed for '{section}.{key}')")
    if key not in cfg[section]:
        raise ConfigError(f"config is missing the required key '{section}.{key}'")
    value = cfg[section][key]
    # bool is an int subclass: refuse True where a count is expected, and 0/1 where a flag is.
    wrong_bool = isinstance(value, bool) and kind is not bool
    if wrong_bool or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"config key '{section}.{key}' must be {names}, got {value!r}")


def validate_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Check a config and return a deep copy with the optional keys filled in.

    Raises :class:`ConfigError` naming the first missing or invalid key.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"config must be a dict (the parsed config.json), got {type(config).__name__}")
    cfg = copy.deepcopy(dict(config))
    for section, key, kind in _REQUIRED:
        _check_key(cfg, section, key, kind)
    if cfg["long_term_model"]["enabled"]:
        for section, key, kind in _REQUIRED_LONG_TERM:
            _check_key(cfg, section, key, kind)
    if cfg["image_model"]["enabled"]:
        for section, key, kind in _REQUIRED_IMAGE:
            _check_key(cfg, section, key, kind)
    for (section, key), default in _OPTIONAL.items():
        cfg.setdefault(section, {})
        cfg[section].setdefault(key, default)

    pose = cfg["pose_model"]
    for key in ("joints", "in_channels", "hidden_dim", "layers", "heads", "max_seq_len", "aux_head_dim"):
        if pose[key] < 1:
            raise ConfigError(f"config key 'pose_model.{key}' must be >= 1, got {pose[key]}")
    if pose["in_channels"] < 2:
        raise ConfigError(f"config key 'pose_model.in_channels' must be >= 2 (x, y[, confidence]), got {pose['in_channels']}")
    if pose["hidden_dim"] % pose["heads"]:
        raise ConfigError(
            f"'pose_model.hidden_dim' ({pose['hidden_dim']}) must be divisible by 'pose_model.heads' ({pose['heads']})"
        )
    if pose["use_sinusoidal_pe"] and pose["hidden_dim"] % 2:
        raise ConfigError(f"a sinusoidal position embedding needs an even 'pose_model.hidden_dim', got {pose['hidden_dim']}")
    if cfg["classifier"]["num_classes"] < 1:
        raise ConfigError(f"'classifier.num_classes' must be >= 1, got {cfg['classifier']['num_classes']}")
    if not 0.0 <= cfg["regularization"]["short_term_dropout"] < 1.0:
        raise ConfigError(
            f"'regularization.short_term_dropout' must be in [0, 1), got {cfg['regularization']['short_term_dropout']}"
        )
    long_term = cfg["long_term_model"]
    if long_term["enabled"]:
        if long_term["layers"] < 1 or long_term["heads"] < 1 or pose["hidden_dim"] % long_term["heads"]:
            raise ConfigError(
                f"'long_term_model' needs layers >= 1 and heads dividing hidden_dim ({pose['hidden_dim']}), "
                f"got layers={long_term['layers']}, heads={long_term['heads']}"
            )
    image = cfg["image_model"]
    if image["enabled"]:
        if image["backbone"] not in BACKBONES:
            raise ConfigError(f"'image_model.backbone' must be one of {sorted(BACKBONES)}, got {image['backbone']!r}")
        if cfg["fusion_model"]["mode"] not in FUSION_MODES:
            raise ConfigError(f"'fusion_model.mode' must be one of {list(FUSION_MODES)}, got {cfg['fusion_model']['mode']!r}")
        if cfg["fusion_model"]["mode"] == "xattn" and pose["hidden_dim"] % 4:
            raise ConfigError(f"'xattn' fusion uses 4 heads: 'pose_model.hidden_dim' ({pose['hidden_dim']}) must be divisible by 4")
        for key in ("feature_dim",):
            if image[key] < 1:
                raise ConfigError(f"'image_model.{key}' must be >= 1, got {image[key]}")
        if cfg["fusion_model"]["output_dim"] < 1:
            raise ConfigError(f"'fusion_model.output_dim' must be >= 1, got {cfg['fusion_model']['output_dim']}")
    return cfg


def read_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a ``config.json`` file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} is not valid JSON: {err}") from None
    return validate_config(config)


def default_config(num_classes: int = 500, joints: int = 17, image: bool = True) -> dict[str, Any]:
    """The config of the published layout in ``checkpoint-keys.txt`` (D=128, 4 layers, 8 heads, Tm=30)."""
    return {
        "pose_model": {"joints": joints, "in_channels": 3, "hidden_dim": 128, "layers": 4, "heads": 8, "max_seq_len": 30},
        "classifier": {"num_classes": num_classes},
        "regularization": {"short_term_dropout": 0.1},
        "long_term_model": {"enabled": True, "heads": 8, "layers": 2, "dropout": 0.1},
        "image_model": {"enabled": image, "feature_dim": 128, "backbone": "resnet18"},
        "fusion_model": {"mode": "concat", "output_dim": 128},
    }
