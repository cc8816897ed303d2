"""What a user types that is read before anything runs: ``--weights`` (a local path or a Hub repo id),
run-config values (type-checked, one error naming the key), and ``--split`` (only the splits a dataset
format has)."""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants
import huggingface_hub.file_download
import numpy as np
import pytest

from unihar.errors import ConfigError, HubError, InputError
from unihar.hub import load_config, local_reason
from unihar.training.augment import AugmentConfig
from unihar.training.signal_augment import SignalAugmentConfig
from unihar.training.trainer import RECIPES_DIR, RunConfig, TrainConfig, train
from video_helpers import run_cli


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every huggingface_hub download entry point fails the test if called; the calls are recorded."""
    calls: list = []

    def refuse(*args, **kwargs):
        calls.append((args, kwargs))
        raise AssertionError(f"the Hub was asked for {args} {kwargs}")

    for name in ("hf_hub_download", "snapshot_download"):
        monkeypatch.setattr(huggingface_hub, name, refuse)
    monkeypatch.setattr(huggingface_hub.file_download, "hf_hub_download", refuse)
    return calls


# ---------------------------------------------------------------------------------------- --weights
def test_mistyped_relative_path_is_a_missing_folder_not_a_hub_repo(tmp_path, monkeypatch, capfd, no_hub) -> None:
    """``runs/mine`` where ``runs/`` exists is the user's folder, mistyped: exit 2 naming it, no Hub call."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    code, out, err = run_cli(capfd, "labels", "--weights", "runs/mine")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: no such model folder: runs/mine"), err
    assert "runs/ is a folder here" in err
    assert no_hub == []


@pytest.mark.parametrize(
    "text",
    [
        "./mine",
        "../mine",
        "/no/such/unihar-model",
        "~/no-such-unihar-model",
        "a/b/c",
        "checkpoints/best.safetensors",
        "mine.onnx",
        "exported/model.bin",
    ],
)
def test_anything_that_looks_like_a_path_is_read_locally(tmp_path, monkeypatch, no_hub, text: str) -> None:
    monkeypatch.chdir(tmp_path)
    assert local_reason(text) is not None
    with pytest.raises(HubError, match="no such model folder"):
        load_config(text)
    assert no_hub == []


def test_only_what_cannot_be_a_path_goes_to_the_hub(tmp_path, monkeypatch) -> None:
    """``owner/name`` and ``name`` with no such folder here are repo ids; offline with nothing cached the
    error also says there is no local folder of that name."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    for repo_id in ("someone/model", "mine", "org/model-v1.5"):
        assert local_reason(repo_id) is None
        with pytest.raises(HubError, match="not in the local Hugging Face cache") as info:
            load_config(repo_id)
        assert f"there is no local folder '{repo_id}' either" in str(info.value)
    (tmp_path / "someone").mkdir()  # now the first part is a folder here: a local path
    assert local_reason("someone/model") == "someone/ is a folder here"


# ---------------------------------------------------------------------------------------- run configs
def test_train_command_names_a_run_config_value_of_the_wrong_type(tmp_path, capfd) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"train": {"epochs": "100"}}))
    code, _, err = run_cli(
        capfd, "train", "--data", f"skeleton-npz:{tmp_path / 'none'}", "--out", tmp_path / "out", "--config", bad
    )
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: run config ") and str(bad) in err
    assert 'train.epochs must be an integer or null, got "100" (a string)' in err
    assert not (tmp_path / "out").exists()


def test_train_config_types_are_checked() -> None:
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict(
            {"train": {"epochs": "100", "lr": "4e-3", "freeze_pose": "yes", "dataset_weights": {"ur-fall": "3"}}}
        )
    message = str(info.value)
    assert 'train.epochs must be an integer or null, got "100" (a string)' in message
    assert 'train.lr must be a number, got "4e-3" (a string)' in message
    assert 'train.freeze_pose must be true or false, got "yes" (a string)' in message
    assert (
        'train.dataset_weights must be an object mapping names to numbers, got {"ur-fall": "3"} (an object)' in message
    )
    with pytest.raises(ConfigError, match=r"train.batch_size must be an integer, got true \(a boolean\)"):
        RunConfig.from_dict({"train": {"batch_size": True}})
    with pytest.raises(ConfigError, match=r"train.batch_size must be an integer, got 32.0 \(a number\)"):
        TrainConfig(batch_size=32.0).check()  # the Python API is checked too, when a run starts
    with pytest.raises(ConfigError, match=r"train must be an object, got \[\] \(a list\)"):
        RunConfig.from_dict({"train": []})
    with pytest.raises(ConfigError, match=r"model must be an object, got \"pose\" \(a string\)"):
        RunConfig.from_dict({"model": "pose"})
    with pytest.raises(ConfigError, match=r"train.amp must be one of \['auto', 'off', 'bf16', 'fp16'\], got 'fp8'"):
        RunConfig.from_dict({"train": {"amp": "fp8"}})
    assert RunConfig.from_dict({"train": {"warmup_epochs": 2, "epochs": None}}).train.warmup_epochs == 2


def test_augment_config_types_are_checked() -> None:
    with pytest.raises(ConfigError, match=r'augment.flip_prob must be a number, got "0.5" \(a string\)'):
        AugmentConfig.from_dict({"flip_prob": "0.5"})
    with pytest.raises(
        ConfigError, match=r'augment.speed must be a \[low, high\] pair of numbers, got \["1", 2\] \(a list\)'
    ):
        AugmentConfig.from_dict({"speed": ["1", 2]})
    with pytest.raises(
        ConfigError, match=r"augment.camera_yaw must be a \[low, high\] pair of numbers, got \[-90, 0, 90\]"
    ):
        AugmentConfig.from_dict({"camera_yaw": [-90, 0, 90]})
    with pytest.raises(ConfigError, match=r"augment.imu must be an object, got 0.1 \(a number\)"):
        AugmentConfig.from_dict({"imu": 0.1})


def test_signal_augment_config_is_read_from_the_run_config() -> None:
    with pytest.raises(ConfigError, match=r'augment.imu.gain must be a number, got "0.2" \(a string\)'):
        SignalAugmentConfig.from_dict({"gain": "0.2"})
    with pytest.raises(ConfigError, match=r"augment.imu: unknown keys \['gian'\]"):
        RunConfig.from_dict({"augment": {"imu": {"gian": 0.2}}})
    with pytest.raises(ConfigError, match=r"augment.imu: strengths must be >= 0"):
        RunConfig.from_dict({"augment": {"imu": {"noise": -0.1}}})
    run = RunConfig.from_dict({"augment": {"flip_prob": 0, "imu": {"gain": 0.3, "shift_seconds": 0}}})
    assert run.augment.imu == SignalAugmentConfig(gain=0.3, shift_seconds=0)
    assert run.to_dict()["augment"]["imu"] == {"rotation_deg": 15.0, "gain": 0.3, "noise": 0.02, "shift_seconds": 0}
    assert RunConfig.from_dict(run.to_dict()) == run  # what training_args.json records reads back the same


def test_packaged_recipes_read_back_unchanged() -> None:
    """Values stay as written (an integer is not turned into a float), so a recipe recorded in
    training_args.json is the recipe."""
    for name in ("universal", "penn_action"):
        written = json.loads((RECIPES_DIR / f"{name}.json").read_text())
        recorded = RunConfig.from_file(name).to_dict()
        for section in ("train", "augment"):
            for key, value in written.get(section, {}).items():
                assert recorded[section][key] == value and type(recorded[section][key]) is type(value), (name, key)


def _skeleton_npz(root: Path) -> Path:
    """Two classes of 6 short sequences, enough for a run to get as far as its training windows."""
    rng = np.random.default_rng(0)
    (root / "train").mkdir(parents=True)
    joints = ["head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist"]
    (root / "dataset.json").write_text(json.dumps({"joints": joints, "classes": ["a", "b"], "fps": 10}))
    for i in range(12):
        kpts = np.concatenate([rng.normal(100, 20, (20, 7, 2)), np.ones((20, 7, 1))], axis=-1).astype(np.float32)
        np.savez(root / "train" / f"{i:02d}.npz", keypoints=kpts, label=np.int64(i % 2))
    return root


def test_training_uses_the_run_configs_signal_augmentation(tmp_path, monkeypatch) -> None:
    """The configured strengths reach the sensor augmentation of the training windows."""
    from unihar.training import trainer

    class Reached(Exception):
        pass

    seen = []

    def window_dataset(*args, **kwargs):
        seen.append(kwargs["signal_augment"].cfg)
        raise Reached

    monkeypatch.setattr(trainer, "WindowDataset", window_dataset)
    run = RunConfig.from_dict(
        {"train": {"epochs": 1, "eval_split": ""}, "augment": {"imu": {"rotation_deg": 0, "gain": 0.25}}}
    )
    with pytest.raises(Reached):
        train(f"skeleton-npz:{_skeleton_npz(tmp_path / 'data')}", tmp_path / "out", run, progress=False)
    assert seen == [SignalAugmentConfig(rotation_deg=0, gain=0.25)]


# ---------------------------------------------------------------------------------------- --split
def test_eval_offers_only_the_splits_the_format_has(tmp_path, capfd, monkeypatch) -> None:
    """``--split val`` on a format without one is refused before the model loads, listing its splits."""
    import unihar.loading

    def no_model(*args, **kwargs):
        raise InputError("the model was loaded")

    monkeypatch.setattr(unihar.loading, "load_model", no_model)
    code, _, err = run_cli(capfd, "eval", "--data", f"ut-kinect:{tmp_path}", "--split", "val", "--json")
    assert code == 2 and err == "error: ut-kinect: split must be one of ['train', 'test'], got 'val'\n", err
    code, _, err = run_cli(capfd, "eval", "--data", f"haa500:{tmp_path}", "--split", "dev", "--json")
    assert code == 2 and err == "error: haa500: split must be one of ['train', 'val', 'test'], got 'dev'\n", err
    code, _, err = run_cli(capfd, "eval", "--data", f"skeleton-npz:{tmp_path}", "--split", "val", "--json")
    assert code == 2 and "the model was loaded" in err  # val is a split of skeleton-npz: it gets as far as the model


def test_every_format_declares_its_splits_and_load_dataset_keeps_to_them(tmp_path) -> None:
    from unihar.data.datasets import FORMATS, SPLITS, load_dataset

    assert set(SPLITS) == set(FORMATS) and all({"train", "test"} <= set(s) for s in SPLITS.values())
    for name, splits in SPLITS.items():
        if "val" not in splits:
            with pytest.raises(InputError, match=rf"{name}: split must be one of \['train', 'test'\], got 'val'"):
                load_dataset(f"{name}:{tmp_path}", "val")


def test_a_runs_eval_split_is_checked_before_any_data_is_read(tmp_path) -> None:
    run = RunConfig.from_dict({"train": {"eval_split": "val"}})
    with pytest.raises(InputError, match=r"ut-kinect: split must be one of \['train', 'test'\], got 'val'"):
        train(f"ut-kinect:{tmp_path / 'not-there'}", tmp_path / "out", run, progress=False)
