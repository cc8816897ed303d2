"""The inertial-sensor modality: the model with any subset of modalities, a sensor missing at inference,
the engine's signal attachment, the sensor files, and one clear error for every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import randomize_, small_config
from reference_forward import reference_logits
from unihar import build_model
from unihar.config import IMU_CHANNELS, ModelConfig
from unihar.data.layouts import get_layout
from unihar.data.pose.base import PoseSequence
from unihar.data.preprocess import pose_window
from unihar.data.signals import (
    SignalRecording,
    check_recording,
    clip_spans,
    read_signal_file,
    resample_bins,
    samples_per_clip,
    signal_clips,
)
from unihar.errors import ConfigError, InputError
from unihar.inference.engine import WindowEngine, run_sequences
from unihar.inference.pipeline import VideoPipeline
from unihar.models import UniHAR
from unihar.training.signal_augment import SignalAugment, SignalAugmentConfig
from video_helpers import run_cli

FPS = 10.0  # window 2.4 s = 24 frames = 3 clips of 8 frames (0.8 s); at 25 Hz a sensor clip is 20 samples
RATE = 25.0


def _config(modalities: tuple[str, ...] = ("skeleton", "imu"), mode: str = "concat", missing: bool = True) -> dict:
    cfg = small_config(
        image_model={"enabled": "rgb" in modalities},
        fusion_model={"mode": mode, "missing_embeddings": missing, "modality_dropout": 0.3},
    )
    if "skeleton" not in modalities:
        cfg["pose_model"] = {"enabled": False}
    if "imu" in modalities:
        cfg["imu_model"] = {
            "rate": RATE,
            "hidden_dim": 16,
            "layers": 1,
            "heads": 2,
            "mean": [0.0, 0, 1, 0, 0, 0],
            "std": [0.5, 0.5, 0.5, 90, 90, 90],
        }
    cfg["preprocessing"] = {
        "layout": "coco17",
        "clips": 3,
        "clip_len": 6,
        "window_seconds": 2.4,
        "stride_seconds": 0.8,
        "image_size": 32,
    }
    return cfg


def _model(*args, **kwargs) -> UniHAR:
    return randomize_(build_model(_config(*args, **kwargs), labels=[f"a{i}" for i in range(7)])).eval()


def _poses(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(50, 200, size=(1, 17, 2)) + np.cumsum(rng.normal(0, 3, size=(n, 17, 2)), axis=0)
    return np.concatenate([xy, rng.uniform(0.2, 1.0, size=(n, 17, 1))], -1).astype(np.float32)


def _recording(seconds: float, rate: float = 50.0, seed: int = 0, start: float = 0.0) -> SignalRecording:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    acc = np.stack([np.sin(2 * np.pi * 1.3 * t), np.cos(2 * np.pi * 0.7 * t), 1 + 0.1 * np.sin(5 * t)], 1)
    gyro = 100 * np.stack([np.sin(3 * t + k) for k in range(3)], 1)
    samples = np.concatenate([acc, gyro], 1) + rng.normal(0, 0.01, size=(len(t), 6))
    return SignalRecording(samples, rate, IMU_CHANNELS, start=start, source="test recording")


def _window_inputs(model: UniHAR, kpts: np.ndarray, recording: SignalRecording, start: int, end: int) -> dict:
    preprocessing = model.preprocessing
    pose = torch.from_numpy(pose_window(kpts[start:end], preprocessing))[None]
    imu = signal_clips(
        recording, clip_spans(start, end, preprocessing.clips, FPS), preprocessing, model.config.imu_model
    )
    return {"pose": pose, "imu": torch.from_numpy(imu)[None]}


# ---------------------------------------------------------------------------- the model
def test_sensor_branch_adds_its_own_keys_and_leaves_the_published_ones() -> None:
    pose_only = build_model(_config(("skeleton",))).state_dict()
    fused = build_model(_config()).state_dict()
    assert {k: v.shape for k, v in fused.items() if k in pose_only} == {k: v.shape for k, v in pose_only.items()}
    new = sorted({k.split(".")[0] for k in fused} - {k.split(".")[0] for k in pose_only})
    assert new == ["classifier_imu", "fusion", "imu_encoder"]
    assert {"fusion.missing_pose", "fusion.missing_imu"} <= set(fused)
    assert "fusion.missing_pose" not in build_model(_config(missing=False)).state_dict()
    imu_only = build_model(_config(("imu",))).state_dict()
    assert not any(k.startswith(("short_seq_model", "classifier_pose", "fusion")) for k in imu_only)
    assert tuple(imu_only["classifier_imu.weight"].shape) == (7, 16)


def test_config_round_trip_and_modalities() -> None:
    cfg = ModelConfig.from_dict(_config(("skeleton", "rgb", "imu")))
    assert cfg.modalities == ["skeleton", "rgb", "imu"]
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.imu_model.channels == IMU_CHANNELS
    assert ModelConfig.from_dict(small_config()).imu_model is None  # absent section: no sensor branch


@pytest.mark.parametrize(
    "change,pattern",
    [
        ({"channels": ["acc_x", "acc_x"]}, "imu_model.channels"),
        ({"rate": 0}, "imu_model.rate"),
        ({"mean": [0.0] * 5}, r"imu_model.mean' must be 6 numbers"),
        ({"std": [1, 1, 1, 1, 1, 0]}, "imu_model.std"),
        ({"hidden_dim": 15}, "divisible"),
        ({"kernel_size": 4}, "odd"),
        ({"layers": "2"}, "imu_model.layers"),
    ],
)
def test_bad_imu_config_is_named(change: dict, pattern: str) -> None:
    cfg = _config()
    cfg["imu_model"].update(change)
    with pytest.raises(ConfigError, match=pattern):
        build_model(cfg)


def test_config_needs_a_modality_and_a_fusion() -> None:
    cfg = _config(("skeleton",))
    cfg["pose_model"] = {"enabled": False}
    with pytest.raises(ConfigError, match="no modality"):
        build_model(cfg)
    cfg = _config()
    del cfg["fusion_model"]
    with pytest.raises(ConfigError, match="fusion_model.mode"):
        build_model(cfg)


@pytest.mark.parametrize("mode", ["concat", "xattn"])
def test_forward_is_the_head_over_cached_features(mode: str) -> None:
    model = _model(mode=mode)
    kpts, recording = _poses(24), _recording(2.4)
    inputs = _window_inputs(model, kpts, recording, 0, 24)
    with torch.no_grad():
        direct = model(**inputs)
        features = model.forward_features(**inputs)
        assert set(features.tokens) == {"skeleton", "imu"}
        assert tuple(features.tokens["imu"].shape) == (1, 3, 5, 16)  # 20 samples per clip, halved twice
        torch.testing.assert_close(model.forward_head(features), direct)
        pose_alone = model(inputs["pose"])
    assert not torch.allclose(direct, pose_alone, atol=1e-4)  # the sensor changes the answer


@pytest.mark.parametrize("mode", ["concat", "xattn"])
def test_a_missing_sensor_uses_its_learned_stand_in(mode: str) -> None:
    model = _model(mode=mode)
    pose = torch.randn(2, 3, 6, 17, 3)
    imu = torch.randn(2, 3, 20, 6)
    with torch.no_grad():
        fused = model(pose, imu=imu)
        without = model(pose)
        # the stand-in is a parameter: changing it changes the answer without the sensor, and only then
        model.fusion.missing_imu.add_(1.0)
        assert not torch.allclose(model(pose), without, atol=1e-5)
        torch.testing.assert_close(model(pose, imu=imu), fused)
        imu_alone = model(imu=imu)
    assert imu_alone.shape == (2, 7) and torch.isfinite(imu_alone).all()


def test_without_stand_ins_only_a_modality_with_its_own_classifier_answers_alone() -> None:
    cfg = _config(missing=False)
    model = randomize_(build_model(cfg)).eval()
    pose = torch.randn(1, 3, 6, 17, 3)
    with torch.no_grad():  # the skeleton alone: classifier_pose, as the published pose + image model does
        torch.testing.assert_close(model(pose), reference_logits(model.state_dict(), cfg, pose), rtol=1e-4, atol=1e-4)
    imu = torch.randn(1, 3, 20, 6)
    with torch.no_grad():  # the sensor alone: its own classifier on its own feature
        torch.testing.assert_close(
            model(imu=imu), model.classifier_imu(model.forward_features(imu=imu).tokens["imu"].mean(dim=(1, 2)))
        )
    image_model = _model(("skeleton", "rgb"), missing=False)  # the published image branch has no classifier of its own
    with pytest.raises(InputError, match=r"cannot answer without \['skeleton'\]"):
        image_model(images=torch.randn(1, 3, 2, 3, 32, 32))


def test_training_also_asks_each_modality_alone() -> None:
    model = _model()
    pose, imu = torch.randn(2, 3, 6, 17, 3), torch.randn(2, 3, 20, 6)
    with torch.no_grad():
        logits, auxiliary = model(pose, imu=imu, return_auxiliary=True)
        torch.testing.assert_close(logits, model(pose, imu=imu))
        assert sorted(auxiliary) == ["imu", "skeleton"]
        without_stand_ins = _model(missing=False)
        without_stand_ins.load_state_dict({k: v for k, v in model.state_dict().items() if "missing" not in k})
        torch.testing.assert_close(auxiliary["skeleton"], without_stand_ins(pose))  # = classifier_pose's answer
        torch.testing.assert_close(auxiliary["imu"], without_stand_ins(imu=imu))
        assert _model(("imu",))(imu=imu, return_auxiliary=True)[1] == {}  # one modality: nothing extra


@pytest.mark.parametrize("mode", ["concat", "xattn"])
def test_product_answer_multiplies_each_modality_s_own_classifier_over_any_subset(mode: str) -> None:
    cfg = _config(mode=mode)
    cfg["fusion_model"]["answer"] = "product"
    model = randomize_(build_model(cfg)).eval()
    head = _model(mode=mode)  # the same weights answering with the learned head
    head.load_state_dict(model.state_dict())
    pose, imu = torch.randn(2, 3, 6, 17, 3), torch.randn(2, 3, 20, 6)
    with torch.no_grad():
        answer = model(pose, imu=imu)
        learned, own = model(pose, imu=imu, return_auxiliary=True)  # training: the heads that have a loss
        torch.testing.assert_close(learned, head(pose, imu=imu))
        torch.testing.assert_close(answer, own["skeleton"].log_softmax(-1) + own["imu"].log_softmax(-1))
        assert not torch.allclose(answer.softmax(-1), learned.softmax(-1), atol=1e-3)
        # a sensor that dropped out leaves the product: the skeleton's own probabilities, and the other way round
        torch.testing.assert_close(model(pose).softmax(-1), own["skeleton"].softmax(-1))
        torch.testing.assert_close(model(imu=imu).softmax(-1), own["imu"].softmax(-1))
        torch.testing.assert_close(model.forward_head(model.forward_features(pose, imu=imu)), answer)
    cfg = _config(("skeleton", "rgb"))
    cfg["fusion_model"]["answer"] = "product"
    with pytest.raises(ConfigError, match="image branch has none"):
        build_model(cfg)
    cfg["fusion_model"]["answer"] = "vote"
    with pytest.raises(ConfigError, match=r"fusion_model.answer' must be one of \['head', 'product'\]"):
        build_model(cfg)


def test_published_pose_image_model_without_images_keeps_classifier_pose() -> None:
    cfg = _config(("skeleton", "rgb"), missing=False)
    model = randomize_(build_model(cfg)).eval()
    pose = torch.randn(2, 3, 6, 17, 3)
    with torch.no_grad():
        torch.testing.assert_close(model(pose), reference_logits(model.state_dict(), cfg, pose), rtol=1e-4, atol=1e-4)


def test_three_modalities_answer_from_any_subset() -> None:
    model = _model(("skeleton", "rgb", "imu"))
    pose, images, imu = torch.randn(1, 3, 6, 17, 3), torch.randn(1, 3, 2, 3, 32, 32), torch.randn(1, 3, 20, 6)
    outputs = []
    with torch.no_grad():
        for given in (
            {"pose": pose, "images": images, "imu": imu},
            {"pose": pose, "imu": imu},
            {"pose": pose, "images": images},
            {"pose": pose},
            {"imu": imu},
        ):
            outputs.append(model(**given))
    assert all(o.shape == (1, 7) for o in outputs)
    assert len({tuple(o.flatten().round(decimals=5).tolist()) for o in outputs}) == len(outputs)


@pytest.mark.parametrize("mode", ["concat", "xattn"])
def test_segment_mask_ignores_padded_clips_of_every_modality(mode: str) -> None:
    model = _model(mode=mode)
    pose, imu = torch.randn(1, 2, 6, 17, 3), torch.randn(1, 2, 20, 6)
    padded_pose = torch.cat([pose, torch.randn(1, 1, 6, 17, 3) * 50], dim=1)
    padded_imu = torch.cat([imu, torch.randn(1, 1, 20, 6) * 50], dim=1)
    mask = torch.tensor([[True, True, False]])
    with torch.no_grad():
        torch.testing.assert_close(
            model(padded_pose, imu=padded_imu, segment_mask=mask), model(pose, imu=imu), rtol=1e-4, atol=1e-5
        )


def test_modality_dropout_trains_on_subsets_never_on_nothing() -> None:
    model = _model()
    present = list(model._modalities.values())
    model.config.fusion_model.modality_dropout = 0.9
    model.train()
    keep = model._modality_dropout(present, torch.zeros(4000))
    kept = torch.stack([keep["pose"], keep["imu"]], dim=1)
    assert bool(kept.any(dim=1).all())  # every sample keeps at least one modality
    # kept with probability 0.1, plus the rescue of one of the two when both were dropped (0.81 / 2)
    assert float(kept.float().mean()) == pytest.approx(0.1 + 0.81 / 2, abs=0.02)
    model.eval()
    assert model._modality_dropout(present, torch.zeros(4)) is None  # never at inference


BAD_IMU = {
    "rank": (torch.zeros(1, 3, 20), r"4-D tensor \(B, L, S, C\)"),
    "channels": (torch.zeros(1, 3, 20, 5), r"C=6 channels.*\(1, 3, 20, 5\)"),
    "samples": (torch.zeros(1, 3, 19, 6), r"S=20 samples per clip \(25 Hz\).*\(1, 3, 19, 6\)"),
    "clips": (torch.zeros(1, 2, 20, 6), r"B=1, L=3.*\(1, 2, 20, 6\)"),
    "nan": (torch.full((1, 3, 20, 6), float("nan")), "finite"),
    "integer": (torch.zeros(1, 3, 20, 6, dtype=torch.int64), "floating-point"),
}


@pytest.mark.parametrize("case", sorted(BAD_IMU))
def test_bad_sensor_tensors_are_named(case: str) -> None:
    model = _model()
    imu, pattern = BAD_IMU[case]
    with pytest.raises(InputError, match=pattern):
        model(torch.zeros(1, 3, 6, 17, 3), imu=imu)


def test_a_modality_the_model_does_not_have_is_refused() -> None:
    pose_only = _model(("skeleton",))
    with pytest.raises(InputError, match=r"no 'imu' modality .*remove the 'imu' input"):
        pose_only(torch.zeros(1, 3, 6, 17, 3), imu=torch.zeros(1, 3, 20, 6))
    with pytest.raises(InputError, match="unknown input 'depth'"):
        pose_only(torch.zeros(1, 3, 6, 17, 3), depth=torch.zeros(1))
    with pytest.raises(InputError, match="no 'imu' modality"):
        pose_only.encode("imu", torch.zeros(1, 20, 6))
    with pytest.raises(InputError, match=r"no 'skeleton' modality"):
        _model(("imu",))(torch.zeros(1, 3, 6, 17, 3), imu=torch.zeros(1, 3, 20, 6))
    with pytest.raises(InputError, match="sensor modality"):
        WindowEngine(pose_only, FPS).attach_signal(0, "imu", _recording(3.0))
    with pytest.raises(InputError, match="no input given"):
        _model()()


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    model = _model(("skeleton", "imu"), mode="xattn")
    model.save_pretrained(tmp_path / "m")
    loaded = UniHAR.from_pretrained(tmp_path / "m")
    assert loaded.modalities == ["skeleton", "imu"] and loaded.config == model.config
    pose, imu = torch.randn(2, 3, 6, 17, 3), torch.randn(2, 3, 20, 6)
    with torch.no_grad():
        torch.testing.assert_close(loaded(pose, imu=imu), model(pose, imu=imu))


# ---------------------------------------------------------------------------- the engine
@pytest.mark.parametrize("mode", ["concat", "xattn"])
def test_engine_windows_equal_the_model_on_those_frames_and_samples(mode: str) -> None:
    model = _model(mode=mode)
    kpts = _poses(60)
    recording = _recording(6.0, rate=50.0, start=0.0)
    engine = WindowEngine(model, FPS, stride=4)
    engine.attach_signal(0, "imu", recording)
    results = [r for i in range(60) for r in engine.push(i, {0: kpts[i]})] + engine.finish()
    full = [r for r in results if r.end_frame - r.start_frame == 24]
    assert len(full) == 10 and all(r.modalities == ("skeleton", "imu") for r in results)
    for r in full:
        inputs = _window_inputs(model, kpts, recording, r.start_frame, r.end_frame)
        with torch.no_grad():
            expected = model.probabilities(model(**inputs))[0].numpy()
        np.testing.assert_allclose(r.probs, expected, atol=1e-5)
    # 60 frames = 7.5 clips of 8: each clip span is encoded once, although windows overlap by 5 of 6 clips
    assert engine.signal_clips_encoded == engine.clips_encoded


def test_engine_without_sensor_coverage_answers_from_the_skeleton() -> None:
    model = _model()
    kpts = _poses(48)
    engine = WindowEngine(model, FPS)
    engine.attach_signal(0, "imu", _recording(2.6, start=0.0))  # covers the first window only
    results = engine.add_sequence(0, kpts) + engine.finish()
    by_modalities = [r.modalities for r in results]
    assert by_modalities[0] == ("skeleton", "imu") and ("skeleton",) in by_modalities
    assert engine.windows_without["imu"] == by_modalities.count(("skeleton",)) > 0
    # the uncovered windows are what the model answers from the skeleton alone
    uncovered = next(r for r in results if r.modalities == ("skeleton",))
    pose = torch.from_numpy(pose_window(kpts[uncovered.start_frame : uncovered.end_frame], model.preprocessing))[None]
    with torch.no_grad():
        np.testing.assert_allclose(uncovered.probs, model.probabilities(model(pose))[0].numpy(), atol=1e-5)


def test_sensor_only_model_needs_its_recording() -> None:
    model = _model(("imu",))
    kpts = _poses(30)
    with pytest.raises(InputError, match=r"reads only \['imu'\].*attach_signal"):
        WindowEngine(model, FPS).add_sequence(0, kpts)
    windows = run_sequences(model, [kpts], FPS, signals={"imu": [_recording(3.0)]})
    assert windows[0] and all(w.modalities == ("imu",) for w in windows[0])


def test_attach_signal_checks_channels_rate_and_timeline() -> None:
    model = _model()
    engine = WindowEngine(model, FPS)
    with pytest.raises(InputError, match=r"has 5 channels.*missing \['gyro_z'\]"):
        engine.attach_signal(0, "imu", np.zeros((100, 5)), 50.0, channels=IMU_CHANNELS[:5])
    with pytest.raises(InputError, match=r"10 Hz.*at least 12.5 Hz"):
        engine.attach_signal(0, "imu", np.zeros((100, 6)), 10.0)
    with pytest.raises(InputError, match="rate"):
        engine.attach_signal(0, "imu", np.zeros((100, 6)))
    with pytest.raises(InputError, match="timeline"):
        WindowEngine(model, None).attach_signal(0, "imu", _recording(3.0))


# ---------------------------------------------------------------------------- signals
def test_resampling_is_exact_for_lines_and_averages_away_what_it_cannot_represent() -> None:
    t = np.arange(400) / 200.0
    line = SignalRecording(np.stack([3 + 2 * t] * 6, 1), 200.0, IMU_CHANNELS)
    bins = resample_bins(line, 0.5, 1.5, 10)
    centres = 0.5 + 0.05 + 0.1 * np.arange(10)
    np.testing.assert_allclose(bins[:, 0], 3 + 2 * centres, atol=1e-5)
    # a 50 Hz vibration read at 50 Hz: one full period per bin, so bin means are ~0 instead of an alias
    t = np.arange(2000) / 1000.0
    buzz = SignalRecording(np.stack([np.sin(2 * np.pi * 50 * t + 0.3)] * 6, 1), 1000.0, IMU_CHANNELS)
    assert np.abs(resample_bins(buzz, 0.2, 1.8, 80)).max() < 0.02
    # outside the recording the first / last sample is held
    np.testing.assert_allclose(resample_bins(line, -1.0, -0.5, 2)[:, 0], 3.0, atol=1e-6)


def test_clip_inputs_are_standardised_in_the_model_channel_order() -> None:
    model = _model()
    imu = model.config.imu_model
    recording = _recording(3.0)
    shuffled = SignalRecording(recording.samples[:, ::-1], 50.0, IMU_CHANNELS[::-1])
    spans = clip_spans(0, 24, 3, FPS)
    a, b = (
        signal_clips(recording, spans, model.preprocessing, imu),
        signal_clips(shuffled, spans, model.preprocessing, imu),
    )
    assert a.shape == (3, samples_per_clip(model.preprocessing, imu), 6)
    np.testing.assert_allclose(a, b, atol=1e-6)
    raw = resample_bins(recording, *spans[0], 20)
    np.testing.assert_allclose(a[0], (raw - np.array(imu.mean)) / np.array(imu.std), atol=1e-5)


def _write_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def test_sensor_files_npz_and_csv(tmp_path: Path) -> None:
    recording = _recording(3.0)
    in_si = np.concatenate([recording.samples[:, :3] * 9.80665, np.deg2rad(recording.samples[:, 3:])], 1)
    npz = _write_npz(
        tmp_path / "watch.npz",
        samples=in_si,
        rate=50,
        channels=np.array(IMU_CHANNELS),
        start=0.25,
        units=np.array(["m/s^2"] * 3 + ["rad/s"] * 3),
    )
    read = read_signal_file(npz)
    assert read.rate == 50.0 and read.start == 0.25 and read.channels == IMU_CHANNELS
    np.testing.assert_allclose(read.samples, recording.samples, rtol=1e-5, atol=1e-5)  # converted to g and deg/s
    # a phone's CSV: jittery timestamps, units in the header
    rng = np.random.default_rng(0)
    time = 1.0 + np.arange(150) / 50 + rng.uniform(-0.002, 0.002, 150)
    header = "time," + ",".join(f"{c}[m/s^2]" if c.startswith("acc") else c for c in IMU_CHANNELS)
    values = np.concatenate([time[:, None], recording.samples * ([9.80665] * 3 + [1] * 3)], 1)
    np.savetxt(tmp_path / "phone.csv", values, delimiter=",", header=header, comments="")
    phone = read_signal_file(tmp_path / "phone.csv")
    assert phone.start == pytest.approx(time[0]) and phone.rate == pytest.approx(50, rel=0.01)
    assert phone.samples[:, 2].mean() == pytest.approx(recording.samples[:, 2].mean(), rel=0.02)


BAD_FILES = {
    "channel count": (
        dict(samples=np.zeros((100, 5)), rate=50, channels=np.array(IMU_CHANNELS)),
        r"'samples' must be \(N, 6\)",
    ),
    "rate zero": (dict(samples=np.zeros((100, 6)), rate=0, channels=np.array(IMU_CHANNELS)), "positive number of Hz"),
    "rate text": (
        dict(samples=np.zeros((100, 6)), rate=np.array("fast"), channels=np.array(IMU_CHANNELS)),
        "'rate' must be one number",
    ),
    "no rate": (dict(samples=np.zeros((100, 6)), channels=np.array(IMU_CHANNELS)), r"lacks \['rate'\]"),
    "unit": (
        dict(samples=np.zeros((100, 6)), rate=50, channels=np.array(IMU_CHANNELS), units=np.array(["ft/s^2"] * 6)),
        r"unknown unit 'ft/s\^2'",
    ),
    "nan": (dict(samples=np.full((100, 6), np.nan), rate=50, channels=np.array(IMU_CHANNELS)), "NaN"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_sensor_files_are_one_clear_error(tmp_path: Path, case: str) -> None:
    arrays, pattern = BAD_FILES[case]
    path = _write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(InputError, match=pattern) as info:
        read_signal_file(path)
    assert str(path) in str(info.value)


def test_bad_csv_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "no_time.csv").write_text("acc_x,acc_y\n1,2\n3,4\n")
    with pytest.raises(InputError, match="'time' first"):
        read_signal_file(tmp_path / "no_time.csv")
    (tmp_path / "back.csv").write_text("time,acc_x\n0.0,1\n0.02,1\n0.01,1\n")
    with pytest.raises(InputError, match="must increase"):
        read_signal_file(tmp_path / "back.csv")
    with pytest.raises(InputError, match="not found"):
        read_signal_file(tmp_path / "absent.npz")
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(InputError, match=".npz or .csv"):
        read_signal_file(tmp_path / "x.txt")


def test_a_recording_must_fit_the_model() -> None:
    model = _model()
    imu, preprocessing = model.config.imu_model, model.preprocessing
    with pytest.raises(InputError, match=r"last 2.00 s, shorter than one window of the model \(2.4 s\)"):
        check_recording(_recording(2.0), preprocessing, imu)
    with pytest.raises(InputError, match=r"sampled at 10 Hz.*at least 12.5 Hz"):
        check_recording(_recording(5.0, rate=10.0), preprocessing, imu)
    renamed = SignalRecording(_recording(3.0).samples, 50, ("ax", "ay", "az", "gx", "gy", "gz"), source="w.npz")
    with pytest.raises(InputError, match=r"w.npz: has 6 channels.*missing \['acc_x'"):
        check_recording(renamed, preprocessing, imu)
    assert check_recording(_recording(2.4), preprocessing, imu).channels == IMU_CHANNELS


def test_signal_augmentation_turns_the_sensor_not_the_physics() -> None:
    recording = _recording(3.0)
    rng = np.random.default_rng(0)
    turned = SignalAugment(SignalAugmentConfig(rotation_deg=30, gain=0, noise=0, shift_seconds=0))(recording, rng)
    norms = lambda r, s: np.linalg.norm(r.samples[:, s], axis=1)  # noqa: E731
    np.testing.assert_allclose(norms(turned, slice(0, 3)), norms(recording, slice(0, 3)), rtol=1e-5)  # |gravity| kept
    np.testing.assert_allclose(norms(turned, slice(3, 6)), norms(recording, slice(3, 6)), rtol=1e-5)
    assert not np.allclose(turned.samples, recording.samples)
    same = SignalAugment(SignalAugmentConfig.off())(recording, rng)
    np.testing.assert_array_equal(same.samples, recording.samples)
    assert same.start == recording.start


# ---------------------------------------------------------------------------- pipeline and command line
def _sequence(n: int = 40) -> PoseSequence:
    return PoseSequence(_poses(n), get_layout("coco17"), (320, 240))


def test_pipeline_classifies_keypoints_with_a_recording() -> None:
    pipeline = VideoPipeline(_model(), pose_backend="array")
    with_sensor = pipeline.classify(_sequence(), FPS, topk=3, signals={"imu": _recording(4.0)})
    without = pipeline.classify(_sequence(), FPS, topk=3)
    assert [w.modalities for w in with_sensor.windows] == [("skeleton", "imu")] * len(with_sensor.windows)
    assert all(w.modalities == ("skeleton",) for w in without.windows)
    assert not np.allclose(with_sensor.probs, without.probs)
    data = with_sensor.to_dict()
    assert data["windows"][0]["modalities"] == ["skeleton", "imu"]
    pose_only = VideoPipeline(_model(("skeleton",)), pose_backend="array").classify(_sequence(), FPS)
    assert "modalities" not in pose_only.to_dict()["windows"][0]  # the published JSON, unchanged
    with pytest.raises(InputError, match="no 'imu' sensor modality"):
        VideoPipeline(_model(("skeleton",)), pose_backend="array").classify(
            _sequence(), FPS, signals={"imu": _recording(4.0)}
        )


@pytest.fixture(scope="module")
def fused_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fused")
    _model().save_pretrained(folder)
    return folder


def _cli(capfd: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    return run_cli(capfd, "predict", *args)


def test_cli_predict_with_imu(tmp_path: Path, fused_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "poses.npy", _poses(40))
    recording = _recording(4.0)
    np.savez(tmp_path / "imu.npz", samples=recording.samples, rate=50.0, channels=np.array(IMU_CHANNELS))
    code, out, err = _cli(
        capfd,
        tmp_path / "poses.npy",
        "--pose-backend",
        "array",
        "--fps",
        FPS,
        "-w",
        fused_dir,
        "--imu",
        tmp_path / "imu.npz",
        "--json",
    )
    assert code == 0, err
    assert {tuple(w["modalities"]) for w in json.loads(out)["windows"]} == {("skeleton", "imu")}
    code, out, err = _cli(capfd, tmp_path / "poses.npy", "--pose-backend", "array", "--fps", FPS, "-w", fused_dir)
    assert code == 0 and "windows of person 0 had no imu data" in err


@pytest.mark.parametrize("case", ["too short", "channels", "no imu branch", "wearer"])
def test_cli_bad_sensor_input_is_one_error_line(
    tmp_path: Path, fused_dir: Path, capfd: pytest.CaptureFixture[str], case: str
) -> None:
    np.save(tmp_path / "poses.npy", _poses(40))
    recording = _recording(1.0 if case == "too short" else 4.0)
    samples = recording.samples[:, :5] if case == "channels" else recording.samples
    channels = IMU_CHANNELS[:5] if case == "channels" else IMU_CHANNELS
    np.savez(tmp_path / "imu.npz", samples=samples, rate=50.0, channels=np.array(channels))
    weights = fused_dir
    extra: list = []
    if case == "no imu branch":
        weights = tmp_path / "pose_only"
        _model(("skeleton",)).save_pretrained(weights)
    if case == "wearer":
        extra = ["--wearer", 3]
    code, out, err = _cli(
        capfd,
        tmp_path / "poses.npy",
        "--pose-backend",
        "array",
        "--fps",
        FPS,
        "-w",
        weights,
        "--imu",
        tmp_path / "imu.npz",
        *extra,
    )
    expected = {
        "too short": "shorter than one window",
        "channels": "missing ['gyro_z']",
        "no imu branch": "no 'imu' sensor modality",
        "wearer": "wearer 3 does not exist",
    }[case]
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err


class _TwoPeople:
    """A pose backend that 'detects' two people: person A at x ~ 100, person B at x ~ 300 (B is larger)."""

    name = "two-people"
    needs_video = True
    layout = get_layout("coco17")

    def __init__(self, frames: int) -> None:
        self.a, self.b = _poses(frames, seed=1), _poses(frames, seed=2)
        self.b[..., :2] = self.b[..., :2] * 1.5 + 200
        self.i = 0

    def frame_estimator(self):
        import contextlib

        @contextlib.contextmanager
        def opened():
            def estimate(frame: np.ndarray) -> np.ndarray:
                people = np.stack([self.a[self.i], self.b[self.i]])
                self.i += 1
                return people

            yield estimate

        return opened()


def _video_info(frames: int):
    from unihar.data.video import VideoInfo

    return VideoInfo(source="synthetic", width=64, height=48, fps=FPS, num_frames=frames)


def test_video_recording_goes_to_the_wearer() -> None:
    frames = [np.zeros((48, 64, 3), np.uint8)] * 40
    recording = _recording(4.0)
    # without --wearer: one person is followed (the largest, B) and wears the sensor
    pipeline = VideoPipeline(_model(), pose_backend=_TwoPeople(40), max_people=6)
    alone = pipeline.predict_frames(iter(frames), _video_info(40), signals={"imu": recording})
    assert [p.id for p in alone.people] == [0]
    assert {w.modalities for w in alone.windows} == {("skeleton", "imu")}
    # with a wearer among several people: only that track reads the sensor
    pipeline = VideoPipeline(_model(), pose_backend=_TwoPeople(40), max_people=6)
    both = pipeline.predict_frames(iter(frames), _video_info(40), signals={"imu": recording}, wearer=1)
    modalities = {p.id: {w.modalities for w in p.windows} for p in both.people}
    assert modalities == {0: {("skeleton",)}, 1: {("skeleton", "imu")}}
    with pytest.raises(InputError, match="max_people=1"):
        VideoPipeline(_model(), pose_backend=_TwoPeople(40), max_people=1).predict_frames(
            iter(frames), _video_info(40), signals={"imu": recording}, wearer=2
        )
