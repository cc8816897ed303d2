"""Augmentation of sensor recordings (a wearable inertial sensor), in physical units, before the
recording is cut into clips and standardised.

What varies between two people wearing the same sensor, or two sessions of one: how the sensor sits on
the wrist (a small rotation of its axes, the same for the accelerometer and the gyroscope), its gain,
its noise, and how well its clock is synchronised with the camera (a shift of the whole recording).
Speed changes and temporal crops come from the window cut shared with the skeleton
(:func:`unihar.training.data.crop_for_training`), so both modalities warp together.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import WithJsonSchema
from scipy.spatial.transform import Rotation

from unihar.data.signals import SignalRecording
from unihar.errors import ConfigError
from unihar.schema import Bounds, ConfigBase, Number, build, config_dataclass

__all__ = ["SignalAugmentConfig", "SignalAugment"]

# Never negative; check_rules says so in one message for all four, so the bound is the schema's only.
Strength = Annotated[Number, Bounds(), WithJsonSchema({"type": "number", "minimum": 0})]


@config_dataclass
class SignalAugmentConfig(ConfigBase):
    """Strengths; 0 turns one off, and none may be negative (that would silently turn one off too).
    The ``imu`` subsection of a run config's ``augment`` section."""

    SECTION: ClassVar[str] = "augment.imu"
    rotation_deg: Strength = 15.0  # sensor mounting: rotation of the axes about a random axis, up to this angle
    gain: Strength = 0.1  # per-channel gain, 1 +- this
    noise: Strength = 0.02  # Gaussian noise, in units of each channel's standard deviation in the window
    shift_seconds: Strength = 0.1  # clock offset against the video, +- this

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> SignalAugmentConfig:
        """The ``augment.imu`` section of a run config; keys left out keep their defaults."""
        return build(cls, data, source)

    def check_rules(self) -> None:
        negative = {k: v for k, v in asdict(self).items() if v < 0}
        if negative:
            raise ConfigError(f"augment.imu: strengths must be >= 0 (0 turns one off), got {negative}")

    @classmethod
    def off(cls) -> SignalAugmentConfig:
        return cls(rotation_deg=0.0, gain=0.0, noise=0.0, shift_seconds=0.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _triplets(channels: tuple[str, ...]) -> list[list[int]]:
    """Index triplets of the 3-axis sensors among ``channels`` (``acc_x, acc_y, acc_z`` -> one triplet)."""
    groups: dict[str, dict[str, int]] = {}
    for i, name in enumerate(channels):
        prefix, _, axis = name.rpartition("_")
        if axis in ("x", "y", "z"):
            groups.setdefault(prefix, {})[axis] = i
    return [[g["x"], g["y"], g["z"]] for g in groups.values() if len(g) == 3]


class SignalAugment:
    """Callable ``(recording, rng) -> recording`` applied to each training window's recording."""

    def __init__(self, config: SignalAugmentConfig | None = None) -> None:
        self.cfg = config or SignalAugmentConfig()

    def __call__(self, recording: SignalRecording, rng: np.random.Generator) -> SignalRecording:
        cfg = self.cfg
        samples = recording.samples.astype(np.float64, copy=True)
        if cfg.rotation_deg > 0:
            axis = rng.normal(size=3)
            angle = np.deg2rad(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg))
            matrix = Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix()
            for triplet in _triplets(recording.channels):  # the accelerometer and the gyroscope turn together
                samples[:, triplet] = samples[:, triplet] @ matrix.T
        if cfg.gain > 0:
            samples *= rng.uniform(1 - cfg.gain, 1 + cfg.gain, size=samples.shape[1])
        if cfg.noise > 0:
            samples += rng.normal(size=samples.shape) * cfg.noise * samples.std(axis=0)
        start = recording.start + (rng.uniform(-cfg.shift_seconds, cfg.shift_seconds) if cfg.shift_seconds > 0 else 0.0)
        return replace(recording, samples=samples.astype(np.float32), start=start)
