"""Which modalities a run trains: ``unihar train --modalities skeleton,imu`` (or ``imu``, ``skeleton``).

``--modalities`` turns the model config's modality sections on and off (``pose_model.enabled``,
``image_model.enabled``, an ``imu_model`` section) and fills in what the data decides:

* the sensor's per-channel normalisation (``imu_model.mean`` / ``std``): the statistics of every training
  recording, unless the run config sets them;
* with several modalities, a learned stand-in for each (``fusion_model.missing_embeddings``) and
  modality dropout in training (``fusion_model.modality_dropout``, default ``MODALITY_DROPOUT``), so the
  learned fusion head still answers when a sensor drops out; and for skeleton + sensors, the answer is
  the product of each modality's own classifier (``fusion_model.answer = "product"``, ``SENSOR_ANSWER``),
  the learned head trained beside them: across UTD-MHAD's subjects it generalised better than the head.

Data that carries a body-worn sensor recording fixes which side of the body is which (UTD-MHAD's sensor
is on the right wrist or thigh; its actions include mirror pairs such as swipe left / swipe right), so
training on it does not mirror or side-swap the skeleton (:func:`augment_for`).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

from unihar.config import MODALITY_SECTIONS, ImuModelConfig
from unihar.data.datasets import SkeletonDataset
from unihar.data.signals import channel_statistics
from unihar.errors import ConfigError, InputError
from unihar.training.augment import AugmentConfig

__all__ = [
    "MODALITIES",
    "MODALITY_DROPOUT",
    "SENSOR_ANSWER",
    "parse_modalities",
    "apply_modalities",
    "check_signals",
    "augment_for",
]

MODALITIES = tuple(kind.MODALITY for kind in MODALITY_SECTIONS)  # skeleton, rgb, imu
SENSOR_SECTIONS = {kind.MODALITY: kind.SECTION for kind in MODALITY_SECTIONS if kind.SIGNAL}  # imu -> imu_model
MODALITY_DROPOUT = 0.25
SENSOR_ANSWER = "product"  # skeleton + sensors, unless the run config says otherwise (docs/sensors.md)


def parse_modalities(value: str | Sequence[str]) -> list[str]:
    """``"skeleton,imu"`` or ``["skeleton", "imu"]`` -> the names, checked, in the model's order."""
    names = [v.strip().lower() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    unknown = [n for n in names if n not in MODALITIES]
    if unknown or not names or len(set(names)) != len(names):
        raise ConfigError(f"--modalities: expected distinct names from {list(MODALITIES)} joined by ',', got {value!r}")
    return [m for m in MODALITIES if m in names]


def check_signals(datasets: Sequence[SkeletonDataset], sensors: Sequence[str]) -> None:
    """Every dataset must carry a recording of every sensor the model reads."""
    for data in datasets:
        missing = [s for s in sensors if not data.signals or s not in data.signals]
        if missing:
            raise InputError(
                f"{data.name}: the model reads {missing} but the data has no such recordings "
                f"(utd-mhad: the Inertial folder; your own data: sensor-npz, see docs/sensors.md)"
            )


def apply_modalities(
    model: dict[str, Any], modalities: Sequence[str], overrides: dict[str, Any], datasets: Sequence[SkeletonDataset]
) -> dict[str, Any]:
    """The model config dict with exactly ``modalities`` on. ``overrides`` (the run config's ``model``
    section) win over what is chosen here; ``datasets`` (training) give the sensor's statistics."""
    model = copy.deepcopy(model)
    if "skeleton" not in modalities:
        model["pose_model"] = {"enabled": False}
    elif model.get("pose_model", {}).get("enabled") is False:
        raise ConfigError("--modalities names skeleton but the run config's model.pose_model is disabled")
    model["image_model"] = {**model.get("image_model", {}), "enabled": "rgb" in modalities}
    for sensor, section in SENSOR_SECTIONS.items():
        if sensor not in modalities:
            model.pop(section, None)
            continue
        check_signals(datasets, [sensor])
        config = {**model.get(section, {}), **overrides.get(section, {})}
        if config.get("mean") is None or config.get("std") is None:  # the training recordings' statistics
            channels = config.get("channels", ImuModelConfig().channels)
            # check_signals: every dataset has its recordings
            mean, std = channel_statistics([r for d in datasets if d.signals for r in d.signals[sensor]], channels)
            config = {"mean": mean, "std": std, **{k: v for k, v in config.items() if v is not None}}
        model[section] = config
    if len(modalities) > 1:
        fusion = overrides.get("fusion_model", {})
        model["fusion_model"] = {
            **model.get("fusion_model", {}),
            "missing_embeddings": fusion.get("missing_embeddings", True),
            "modality_dropout": fusion.get("modality_dropout", MODALITY_DROPOUT),
            # the product of the modalities' own classifiers, where each modality has one (not RGB)
            "answer": fusion.get("answer", "head" if "rgb" in modalities else SENSOR_ANSWER),
        }
    return model


def augment_for(augment: AugmentConfig, data: SkeletonDataset) -> AugmentConfig:
    """No mirroring or side swaps of the skeleton of a dataset that carries a body-worn sensor (see the
    module docstring); the other datasets of a mixture keep them."""
    if data.signals:
        return dataclasses.replace(augment, flip_prob=0.0, swap_sides_prob=0.0)
    return augment
