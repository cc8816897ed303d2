"""Your own keypoints with a wearable sensor recorded alongside: ``sensor-npz:DIR``.

::

    DIR/dataset.json   {"joints": ["nose", ...], "classes": ["wave", ...], "fps": 30,
                        "signals": {"imu": {"rate": 50,
                                            "channels": ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"],
                                            "units": ["g", "g", "g", "deg/s", "deg/s", "deg/s"],   # optional
                                            "align": "time"}}}                                      # optional
    DIR/train/*.npz    "keypoints" (T, J, 3) float (x, y, confidence), "label" int,
                       "imu" (N, C) float, the sensor's samples; optional "imu_start" (seconds)
    DIR/test/*.npz     (and optionally DIR/val/*.npz)

The skeleton is as in ``skeleton-npz`` (frame ``f`` at ``f / fps`` seconds; ``fps`` is required here).
Each sensor named under ``signals`` (``imu``: the only kind a model reads today) has one array per file
of ``C`` channels in the order ``channels`` names them, sampled at ``rate`` Hz. Channels are matched
to a model's by name; accelerometers in ``g`` or ``m/s^2``, gyroscopes in ``deg/s`` or ``rad/s`` (the
default units are g and deg/s). ``align``: ``"time"`` (default) puts sample ``i`` at ``imu_start + i /
rate`` seconds on the skeleton's timeline; ``"relative"`` spreads the samples evenly over the
skeleton sequence (for recordings whose clocks disagree but that start and stop with the action, like
UTD-MHAD's). A recording must cover at least 90 % of its skeleton sequence.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from unihar.data.datasets.base import SkeletonDataset
from unihar.data.datasets.skeleton_npz import read_dataset_json
from unihar.data.layouts import get_layout
from unihar.data.signals import SignalRecording, convert_units, coverage
from unihar.errors import InputError

__all__ = ["load_sensor_npz", "SIGNAL_KINDS", "MIN_COVERAGE"]

_NAME = "sensor-npz"
SIGNAL_KINDS = ("imu",)
ALIGNMENTS = ("time", "relative")
MIN_COVERAGE = 0.9


def _signal_specs(meta: dict[str, Any], meta_file: Path) -> dict[str, dict[str, Any]]:
    """The ``signals`` section of dataset.json, checked."""
    signals = meta.get("signals")
    if not isinstance(signals, dict) or not signals:
        raise InputError(
            f'{_NAME}: {meta_file} needs \'signals\', e.g. {{"imu": {{"rate": 50, "channels": ["acc_x", ...]}}}}; '
            "for keypoints alone use skeleton-npz"
        )
    if meta.get("fps") is None:
        raise InputError(
            f"{_NAME}: {meta_file} needs 'fps': the frame rate puts the skeleton and the sensor on one timeline"
        )
    for name, spec in signals.items():
        where = f"{_NAME}: {meta_file}: signals.{name}"
        if name not in SIGNAL_KINDS:
            raise InputError(f"{_NAME}: {meta_file}: unknown sensor {name!r}; known: {list(SIGNAL_KINDS)}")
        if not isinstance(spec, dict):
            raise InputError(f"{where} must be an object with 'rate' and 'channels', got {spec!r}")
        rate, channels = spec.get("rate"), spec.get("channels")
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
            raise InputError(f"{where}.rate must be a positive number of Hz, got {rate!r}")
        if not isinstance(channels, list) or not channels or not all(isinstance(c, str) for c in channels):
            raise InputError(f"{where}.channels must be a non-empty list of names, got {channels!r}")
        units = spec.get("units")
        if units is not None and (not isinstance(units, list) or len(units) != len(channels)):
            raise InputError(f"{where}.units must list one unit per channel ({len(channels)}), got {units!r}")
        if spec.get("align", "time") not in ALIGNMENTS:
            raise InputError(f"{where}.align must be one of {list(ALIGNMENTS)}, got {spec.get('align')!r}")
        unknown = set(spec) - {"rate", "channels", "units", "align"}
        if unknown:
            raise InputError(f"{where}: unknown keys {sorted(unknown)}; expected rate, channels, units, align")
    return signals


def _read_file(
    f: Path, num_joints: int, specs: dict[str, dict[str, Any]]
) -> tuple[np.ndarray, int, dict[str, np.ndarray], dict[str, float]]:
    arrays = ["keypoints", "label", *specs]
    try:
        with np.load(f, allow_pickle=False) as z:
            missing = [k for k in arrays if k not in z.files]
            if missing:
                raise InputError(
                    f"{_NAME}: {f} lacks the arrays {missing}; expected {arrays} (and optionally <sensor>_start)"
                )
            kpts, label = z["keypoints"], z["label"]
            samples = {name: z[name] for name in specs}
            starts = {name: z[f"{name}_start"] for name in specs if f"{name}_start" in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise InputError(f"{_NAME}: cannot read {f}: {err}") from None
    if kpts.ndim != 3 or kpts.shape[1:] != (num_joints, 3) or kpts.shape[0] < 1:
        raise InputError(
            f"{_NAME}: {f}: 'keypoints' must be (frames, {num_joints}, 3) ({num_joints} joints in dataset.json), "
            f"got {kpts.shape}"
        )
    if label.size != 1 or label.dtype.kind not in "iu":
        raise InputError(f"{_NAME}: {f}: 'label' must be one integer, got {label!r}")
    for name, values in samples.items():
        channels = specs[name]["channels"]
        if values.ndim != 2 or values.shape[1] != len(channels) or values.dtype.kind not in "iuf":
            raise InputError(
                f"{_NAME}: {f}: '{name}' must be (samples, {len(channels)}) numbers for the {len(channels)} channels "
                f"{channels} of dataset.json, got {values.shape} {values.dtype}"
            )
    for name, start in starts.items():
        if start.size != 1 or start.dtype.kind not in "iuf":
            raise InputError(f"{_NAME}: {f}: '{name}_start' must be one number (seconds), got {start!r}")
    return (
        kpts.astype(np.float32),
        int(label.reshape(())),
        samples,
        {k: float(v.reshape(())) for k, v in starts.items()},
    )


def load_sensor_npz(path: str | Path, split: str = "train") -> SkeletonDataset:
    """Load ``DIR/<split>/*.npz`` (sorted by file name): keypoints plus each sensor's recording (``signals``)."""
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"{_NAME}: folder not found: {root}")
    meta = read_dataset_json(root)
    specs = _signal_specs(meta, root / "dataset.json")
    layout = get_layout(meta["joints"])
    fps = float(meta["fps"])
    files = sorted((root / split).glob("*.npz"))
    if not files:
        raise InputError(f"{_NAME}: no .npz files in {root / split}")
    sequences, labels = [], []
    signals: dict[str, list[SignalRecording]] = {name: [] for name in specs}
    for f in files:
        kpts, label, samples, starts = _read_file(f, layout.num_joints, specs)
        sequences.append(kpts)
        labels.append(label)
        duration = len(kpts) / fps
        for name, spec in specs.items():
            where = f"{f} ({name})"
            values = convert_units(samples[name], spec["channels"], spec.get("units"), where)
            recording = SignalRecording(
                values, spec["rate"], tuple(spec["channels"]), starts.get(name, 0.0), source=where
            )
            if spec.get("align", "time") == "relative":
                recording = recording.stretched(0.0, duration)
            covered = coverage(recording, 0.0, duration)
            if covered < MIN_COVERAGE:
                raise InputError(
                    f"{_NAME}: {where}: the recording ({recording.start:.2f}-{recording.end:.2f} s) "
                    f"covers {covered:.0%} of the "
                    f"keypoints (0-{duration:.2f} s); at least {MIN_COVERAGE:.0%} is needed"
                )
            signals[name].append(recording)
    return SkeletonDataset(
        sequences,
        np.asarray(labels),
        list(meta["classes"]),
        layout,
        fps=fps,
        names=[f.stem for f in files],
        name=f"{_NAME}/{split}",
        signals=signals,
    )
