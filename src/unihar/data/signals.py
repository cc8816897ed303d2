"""Sensor signals (a wearable inertial sensor) and the one way they become model input.

A :class:`SignalRecording` is ``samples`` ``(N, C)`` taken at ``rate`` Hz, with a name per channel, and
``start``: where its first sample lies, in seconds, on the timeline of the frames it goes with (video
frame ``f`` is at ``f / fps``). Inertial channels are named ``acc_x, acc_y, acc_z`` (accelerometer, in
g, gravity included) and ``gyro_x, gyro_y, gyro_z`` (gyroscope, degrees per second); a file may store
them in m/s^2 or rad/s and say so, and they are converted on reading.

Model input, per clip (:func:`signal_clips`): the model cuts a window into ``L`` clips of equal
duration; the samples in a clip's time span are resampled to the ``samples_per_clip`` the model's
config fixes (``imu_model.rate`` x the clip's nominal duration) by taking the mean of the signal over
equal bins -- a faster sensor is low-passed rather than aliased, a slower one interpolated linearly --
and each channel is standardised with the model's ``mean`` / ``std``. Like the pose branch, a shorter
window (a track shorter than one window) is stretched to the same number of samples, so both
modalities see the same time warp. Past either end of the recording the signal is held at its first /
last sample; :func:`coverage` says how much of a span the recording really covers.

Files (:func:`read_signal_file`):

* ``.npz``: ``samples`` ``(N, C)`` float, ``rate`` (Hz), ``channels`` (C names); optional ``start``
  (seconds, default 0) and ``units`` (C strings, e.g. ``"m/s^2"``, ``"rad/s"``; default g and deg/s).
* ``.csv``: a header ``time,acc_x,...`` (a unit may follow a name in brackets: ``acc_x[m/s^2]``), then
  one line per sample; ``time`` in seconds on the video's timeline. Slightly irregular sampling (phones)
  is interpolated onto a uniform grid at the median rate.
"""

from __future__ import annotations

import math
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from unihar.config import ImuModelConfig, PreprocessConfig
from unihar.errors import InputError

__all__ = [
    "SignalRecording",
    "UNIT_SCALES",
    "convert_units",
    "MIN_RATE_FRACTION",
    "read_signal_file",
    "samples_per_clip",
    "clip_spans",
    "coverage",
    "resample_bins",
    "signal_clips",
    "channel_statistics",
    "check_recording",
]

# Channel prefix -> {unit: factor to the model's unit (the first one listed)}.
UNIT_SCALES = {
    "acc": {"g": 1.0, "m/s^2": 1.0 / 9.80665, "m/s2": 1.0 / 9.80665},
    "gyro": {"deg/s": 1.0, "dps": 1.0, "rad/s": 180.0 / math.pi},
}
# A recording slower than this fraction of the model's rate lacks the motion the model was trained on.
MIN_RATE_FRACTION = 0.5
_IRREGULAR = 0.01  # CSV time steps deviating more than this from the median are resampled onto a grid


@dataclass
class SignalRecording:
    """``samples`` ``(N, C)`` float32 at ``rate`` Hz; channel ``c`` is ``channels[c]``; sample 0 at ``start`` s."""

    samples: np.ndarray = field(repr=False)
    rate: float
    channels: tuple[str, ...]
    start: float = 0.0
    source: str = "the recording"  # named in messages (the file it came from)
    _knots: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)  # see integral()

    def __post_init__(self) -> None:
        self.channels = tuple(str(c) for c in self.channels)
        samples = np.asarray(self.samples)
        if samples.ndim != 2 or samples.shape[1] != len(self.channels):
            raise InputError(
                f"{self.source}: expected samples of shape (N, {len(self.channels)}) for the channels "
                f"{list(self.channels)}, "
                f"got {samples.shape}"
            )
        if samples.shape[0] < 2:
            raise InputError(f"{self.source}: a recording needs at least 2 samples, got {samples.shape[0]}")
        if not np.issubdtype(samples.dtype, np.number):
            raise InputError(f"{self.source}: expected numeric samples, got dtype {samples.dtype}")
        if not np.isfinite(samples).all():
            raise InputError(f"{self.source}: {int((~np.isfinite(samples)).sum())} samples are NaN or infinite")
        if isinstance(self.rate, bool) or not (
            isinstance(self.rate, (int, float, np.number)) and math.isfinite(self.rate) and self.rate > 0
        ):
            raise InputError(f"{self.source}: the sampling rate must be a positive number of Hz, got {self.rate!r}")
        if len(set(self.channels)) != len(self.channels):
            raise InputError(f"{self.source}: channel names repeat: {list(self.channels)}")
        self.samples = samples.astype(np.float32, copy=False)
        self.rate, self.start = float(self.rate), float(self.start)

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        return self.num_samples / self.rate

    @property
    def end(self) -> float:
        return self.start + self.duration

    def select(self, channels: Sequence[str]) -> SignalRecording:
        """The same recording with exactly ``channels``, in that order (matched by name)."""
        channels = tuple(channels)
        if self.channels == channels:
            return self
        missing = [c for c in channels if c not in self.channels]
        extra = [c for c in self.channels if c not in channels]
        if missing or extra:
            raise InputError(
                f"{self.source}: has {len(self.channels)} channels {list(self.channels)}; the model reads exactly "
                f"{len(channels)}: {list(channels)}"
                + (f" (missing {missing})" if missing else "")
                + (f" (unexpected {extra})" if extra else "")
            )
        order = [self.channels.index(c) for c in channels]
        return replace(self, samples=self.samples[:, order], channels=channels)

    def integral(self, times: np.ndarray) -> np.ndarray:
        """``(Q, C)`` float64: the integral from the first sample to each of ``times`` (seconds) of the
        piecewise-linear signal through the samples, held constant beyond both ends. The running
        integral at the samples is computed once, so each query costs O(1), however long the recording."""
        samples = self.samples
        if self._knots is None:
            pairs = (samples[:-1].astype(np.float64) + samples[1:]) / 2 / self.rate
            self._knots = np.concatenate([np.zeros((1, samples.shape[1])), np.cumsum(pairs, axis=0)])
        position = (np.asarray(times, dtype=np.float64) - self.start) * self.rate  # in samples
        last = self.num_samples - 1
        k = np.clip(np.floor(position), 0, last - 1).astype(np.int64)
        h = (np.clip(position, 0, last) - k)[:, None] / self.rate  # seconds past sample k, within the recording
        left, right = samples[k].astype(np.float64), samples[k + 1].astype(np.float64)
        inside = self._knots[k] + left * h + 0.5 * (right - left) * self.rate * h * h
        before = np.minimum(position, 0.0)[:, None] / self.rate * samples[0]
        after = np.maximum(position - last, 0.0)[:, None] / self.rate * samples[-1]
        integral: np.ndarray = inside + before + after
        return integral

    def stretched(self, start: float, duration: float) -> SignalRecording:
        """The same samples spread evenly over ``[start, start + duration)``: aligning two recordings of
        one event by relative position when their clocks disagree."""
        if not duration > 0:
            raise InputError(f"{self.source}: cannot stretch a recording over {duration} s")
        return replace(self, rate=self.num_samples / duration, start=start)


# ---------------------------------------------------------------------------- files
def convert_units(samples: np.ndarray, channels: Sequence[str], units: Sequence[str] | None, source: str) -> np.ndarray:
    """Scale each channel from its declared unit to the model's (g, deg/s)."""
    if units is None:
        return samples
    if len(units) != len(channels):
        raise InputError(f"{source}: {len(units)} units for {len(channels)} channels {list(channels)}")
    samples = samples.astype(np.float64, copy=True)
    for c, (channel, unit) in enumerate(zip(channels, units)):
        unit = str(unit).strip()
        if not unit:
            continue
        scales = UNIT_SCALES.get(channel.split("_")[0])
        if scales is None or unit not in scales:
            known = {f"{prefix}_*": list(s) for prefix, s in UNIT_SCALES.items()}
            raise InputError(f"{source}: channel {channel!r} in unknown unit {unit!r}; known: {known}")
        samples[:, c] *= scales[unit]
    return samples


def _read_npz(path: Path) -> SignalRecording:
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = set(archive.files)
            missing = [k for k in ("samples", "rate", "channels") if k not in names]
            if missing:
                raise InputError(
                    f"{path}: lacks {missing}; a sensor .npz holds 'samples' (N, C), 'rate' (Hz), 'channels' (C names)"
                    f" and optionally 'start' (s) and 'units'; it holds {sorted(names)}"
                )
            samples, rate, channels = archive["samples"], archive["rate"], archive["channels"]
            start = archive["start"] if "start" in names else np.float64(0.0)
            units = archive["units"].tolist() if "units" in names else None
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise InputError(f"cannot read sensor file {path}: {err}") from None
    if rate.size != 1 or rate.dtype.kind not in "iuf":
        raise InputError(f"{path}: 'rate' must be one number (Hz), got {rate!r}")
    if start.size != 1 or start.dtype.kind not in "iuf":
        raise InputError(f"{path}: 'start' must be one number (seconds), got {start!r}")
    if channels.ndim != 1 or channels.dtype.kind not in "US":
        raise InputError(f"{path}: 'channels' must be a list of names, got {channels!r}")
    channels = [str(c) for c in channels.tolist()]
    if samples.ndim != 2 or samples.shape[1] != len(channels):
        raise InputError(
            f"{path}: 'samples' must be (N, {len(channels)}) for the {len(channels)} channels {channels}, got "
            f"{samples.shape}"
        )
    if samples.dtype.kind not in "iuf":
        raise InputError(f"{path}: 'samples' must be numbers, got dtype {samples.dtype}")
    samples = convert_units(samples, channels, units, str(path))
    return SignalRecording(
        samples, float(rate.reshape(())), tuple(channels), float(start.reshape(())), source=str(path)
    )


_HEADER = re.compile(r"^\s*([^\[\]]+?)\s*(?:\[\s*([^\]]*?)\s*\])?\s*$")


def _read_csv(path: Path) -> SignalRecording:
    try:
        header = path.open(encoding="utf-8").readline()
        values = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise InputError(
            f"cannot read sensor file {path} as CSV (a header 'time,acc_x,...' then numbers): {err}"
        ) from None
    matches = [_HEADER.match(h) for h in header.strip().split(",")]
    fields = [f for f in matches if f is not None]
    if not matches or len(fields) != len(matches) or fields[0].group(1) != "time":
        raise InputError(
            f"{path}: the first line must name the columns, 'time' first (e.g. time,acc_x,acc_y,...), got "
            f"{header.strip()!r}"
        )
    channels = [f.group(1) for f in fields[1:]]
    units = [f.group(2) or "" for f in fields[1:]]
    if not channels:
        raise InputError(f"{path}: no channel columns after 'time'")
    if values.shape[0] < 2 or values.shape[1] != len(fields):
        raise InputError(
            f"{path}: expected at least 2 lines of {len(fields)} numbers under the header, got shape {values.shape}"
        )
    time, samples = values[:, 0], values[:, 1:]
    steps = np.diff(time)
    if not (steps > 0).all():
        raise InputError(
            f"{path}: 'time' must increase from line to line (line {int(np.argmax(steps <= 0)) + 3} does not)"
        )
    step = float(np.median(steps))
    if np.abs(steps - step).max() > _IRREGULAR * step:  # jittery timestamps: onto a uniform grid
        grid = time[0] + step * np.arange(int(np.floor((time[-1] - time[0]) / step)) + 1)
        samples = np.stack([np.interp(grid, time, samples[:, c]) for c in range(samples.shape[1])], axis=1)
    samples = convert_units(samples, channels, units, str(path))
    return SignalRecording(samples, 1.0 / step, tuple(channels), float(time[0]), source=str(path))


def read_signal_file(path: str | Path) -> SignalRecording:
    """A sensor recording from ``.npz`` or ``.csv`` (see the module docstring), in g and deg/s."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"sensor file not found: {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _read_npz(path)
    if suffix == ".csv":
        return _read_csv(path)
    raise InputError(f"expected a sensor recording as .npz or .csv, got {str(path)!r}")


# ---------------------------------------------------------------------------- model input
def samples_per_clip(preprocessing: PreprocessConfig, imu: ImuModelConfig) -> int:
    """Samples per clip the encoder reads: the model's rate times a clip's nominal duration."""
    return max(1, int(round(preprocessing.window_seconds / preprocessing.clips * imu.rate)))


def clip_spans(start_frame: float, end_frame: float, clips: int, fps: float) -> list[tuple[float, float]]:
    """The time spans (seconds) of the ``clips`` equal clips of the frames ``[start_frame, end_frame)``:
    the span whose frames the pose branch resamples into each clip."""
    edges = np.linspace(start_frame, end_frame, clips + 1) / fps
    return [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:])]


def coverage(recording: SignalRecording, t0: float, t1: float) -> float:
    """The fraction of ``[t0, t1)`` that lies within the recording."""
    if t1 <= t0:
        return 0.0
    return max(0.0, min(t1, recording.end) - max(t0, recording.start)) / (t1 - t0)


def resample_bins(recording: SignalRecording, t0: float, t1: float, n: int) -> np.ndarray:
    """``(n, C)`` float32: the mean of the (linearly interpolated) signal over ``n`` equal bins of ``[t0, t1)``."""
    if not t1 > t0:
        raise InputError(f"{recording.source}: an empty time span [{t0}, {t1})")
    edges = np.linspace(t0, t1, n + 1)
    return (np.diff(recording.integral(edges), axis=0) / np.diff(edges)[:, None]).astype(np.float32)


def _standardise(values: np.ndarray, imu: ImuModelConfig) -> np.ndarray:
    if imu.mean is not None:
        values = values - np.asarray(imu.mean, dtype=np.float32)
    if imu.std is not None:
        values = values / np.asarray(imu.std, dtype=np.float32)
    return values.astype(np.float32, copy=False)


def signal_clips(
    recording: SignalRecording,
    spans: Sequence[tuple[float, float]],
    preprocessing: PreprocessConfig,
    imu: ImuModelConfig,
) -> np.ndarray:
    """Model input ``(L, S, C)`` for the clips whose time spans are ``spans``: each resampled to
    :func:`samples_per_clip` samples, channels in the model's order, standardised."""
    recording = recording.select(imu.channels)
    n = samples_per_clip(preprocessing, imu)
    return _standardise(np.stack([resample_bins(recording, a, b, n) for a, b in spans]), imu)


def channel_statistics(
    recordings: Sequence[SignalRecording], channels: Sequence[str]
) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation over every sample of ``recordings`` (what
    ``imu_model.mean`` / ``std`` store); a constant channel gets std 1."""
    stacked = np.concatenate([r.select(channels).samples.astype(np.float64) for r in recordings])
    std = stacked.std(axis=0)
    return stacked.mean(axis=0).tolist(), np.where(std > 1e-8, std, 1.0).tolist()


def check_recording(
    recording: SignalRecording, preprocessing: PreprocessConfig, imu: ImuModelConfig
) -> SignalRecording:
    """A recording fit to be classified on its own timeline: the model's channels (reordered by name),
    at least ``MIN_RATE_FRACTION`` of the model's rate, and at least one window long."""
    recording = recording.select(imu.channels)
    if recording.rate < MIN_RATE_FRACTION * imu.rate:
        raise InputError(
            f"{recording.source}: sampled at {recording.rate:g} Hz; the model reads {imu.rate:g} Hz and needs at least "
            f"{MIN_RATE_FRACTION * imu.rate:g} Hz (a slower sensor misses the motion it was trained on)"
        )
    if recording.duration < preprocessing.window_seconds:
        raise InputError(
            f"{recording.source}: {recording.num_samples} samples at {recording.rate:g} Hz last "
            f"{recording.duration:.2f} s, "
            f"shorter than one window of the model ({preprocessing.window_seconds:g} s)"
        )
    return recording
