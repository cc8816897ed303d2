"""Checkpoint files (published .bin, our .safetensors), strict matching, and the Hub helpers offline."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch

from conftest import REPO_ROOT, randomize_, small_config
from unihar import build_model, download_model, from_pretrained, load_config, load_labels, save_pretrained
from unihar.errors import CheckpointError, HubError, UniHARError
from unihar.models import load_checkpoint


def _published_folder(folder: Path, cfg: dict, wrap: bool = False, seed: int = 0) -> build_model:
    """Write a checkpoint the way the published repo holds it: pytorch_model.bin, config.json, class_label.json."""
    model = randomize_(build_model(cfg), seed=seed).eval()
    folder.mkdir(parents=True, exist_ok=True)
    sd = model.state_dict()
    torch.save({"state_dict": sd} if wrap else sd, folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps(cfg))
    labels = {str(i): f"action_{i}" for i in range(cfg["classifier"]["num_classes"])}
    (folder / "class_label.json").write_text(json.dumps(labels))
    return model


@pytest.mark.parametrize("wrap", [False, True])
def test_published_bin_loads_strictly_and_gives_the_same_numbers(tmp_path: Path, wrap: bool) -> None:
    cfg = small_config()
    original = _published_folder(tmp_path, cfg, wrap=wrap)
    loaded = load_checkpoint(build_model(load_config(tmp_path)), download_model(tmp_path)).eval()
    pose, images = torch.randn(2, 2, 5, 17, 3), torch.randn(2, 2, 2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(pose, images), original(pose, images), rtol=0, atol=0)


def test_ddp_prefixed_keys_are_mapped(tmp_path: Path) -> None:
    cfg = small_config(image_model={"enabled": False})
    model = randomize_(build_model(cfg))
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "ddp.bin")
    loaded = load_checkpoint(build_model(cfg), tmp_path / "ddp.bin")
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_mismatched_checkpoint_lists_missing_unexpected_and_shapes(tmp_path: Path) -> None:
    trained = small_config(long_term_model={"enabled": False})
    randomize_(build_model(trained))
    torch.save(build_model(trained).state_dict(), tmp_path / "w.bin")
    other = small_config(pose_model={"hidden_dim": 64}, image_model={"enabled": False})
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(build_model(other), tmp_path / "w.bin")
    message = str(info.value)
    assert "does not match its config" in message
    assert "missing keys" in message and "long_term.encoder.layers.0.norm1.weight" in message
    assert "unexpected keys" in message and "image_encoder.fc.* (2 keys)" in message and "fusion.ln.* (2 keys)" in message
    assert "shape mismatches" in message and "short_seq_model.temporal_pe_param: checkpoint (1, 12, 1, 32) vs model (1, 12, 1, 64)" in message
    assert isinstance(info.value, ValueError)


def test_auxiliary_head_takes_the_checkpoint_width(tmp_path: Path) -> None:
    cfg = small_config(image_model={"enabled": False})
    model = build_model(cfg)
    sd = model.state_dict()
    sd["short_seq_model.head.weight"] = torch.randn(9, 32)
    sd["short_seq_model.head.bias"] = torch.randn(9)
    loaded = load_checkpoint(build_model(cfg), sd)
    assert loaded.short_seq_model.head.out_features == 9
    assert loaded.config.pose_model.aux_head_dim == 9


def test_unreadable_checkpoint_is_refused(tmp_path: Path) -> None:
    (tmp_path / "broken.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(build_model(small_config()), tmp_path / "broken.bin")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(build_model(small_config()), tmp_path / "absent.bin")
    torch.save([1, 2, 3], tmp_path / "list.bin")
    with pytest.raises(CheckpointError, match="expected a state dict"):
        load_checkpoint(build_model(small_config()), tmp_path / "list.bin")


def test_save_pretrained_round_trip_is_exact(tmp_path: Path) -> None:
    cfg = small_config(fusion_model={"mode": "xattn"})
    cfg["preprocessing"] = {"layout": "coco17", "clips": 2, "clip_len": 4, "min_confidence": 0.25}
    model = randomize_(build_model(cfg, labels=[f"a{i}" for i in range(7)])).eval()
    save_pretrained(model, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["class_label.json", "config.json", "model.safetensors"]
    again = from_pretrained(tmp_path / "m")
    assert again.labels == model.labels
    assert again.config == model.config  # our own sections (preprocessing) survive
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    pose, images = torch.randn(1, 2, 4, 17, 3), torch.randn(1, 2, 1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(again(pose, images), model(pose, images))


def test_save_pretrained_never_overwrites_unasked(tmp_path: Path) -> None:
    model = build_model(small_config(image_model={"enabled": False}))
    model.save_pretrained(str(tmp_path))
    before = (tmp_path / "model.safetensors").read_bytes()
    with pytest.raises(UniHARError, match="overwrite"):
        model.save_pretrained(str(tmp_path))
    randomize_(model)
    model.save_pretrained(str(tmp_path), overwrite=True)
    assert (tmp_path / "model.safetensors").read_bytes() != before


def test_local_folder_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(HubError, match="model folder not found"):
        load_config(tmp_path / "nope" / "deeper")
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(HubError, match="not valid JSON"):
        load_config(tmp_path)
    with pytest.raises(HubError, match="class_label.json not found"):
        load_labels(tmp_path)
    with pytest.raises(HubError, match="no weights"):
        download_model(tmp_path)


def _warm_cache(cache: Path, repo_id: str, cfg: dict) -> Path:
    """Lay files out as huggingface_hub's cache does: models--org--name/{refs/main, snapshots/<commit>/...}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    _published_folder(repo_dir / "snapshots" / commit, cfg)
    return repo_dir / "snapshots" / commit


def test_hub_functions_offline_with_a_warm_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    cfg = small_config()
    snapshot = _warm_cache(tmp_path, "m97j/uni-har", cfg)
    assert load_config() == cfg
    assert load_labels()["3"] == "action_3"
    assert Path(download_model()).resolve() == (snapshot / "pytorch_model.bin").resolve()
    assert from_pretrained("m97j/uni-har").labels[6] == "action_6"


def test_hub_functions_offline_with_nothing_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    for fn in (download_model, load_config, load_labels):
        with pytest.raises(HubError) as info:
            fn("someone/other-model", revision="v1")
        message = str(info.value)
        assert "not in the local Hugging Face cache" in message and "local folder" in message
        assert "'someone/other-model' at revision 'v1'" in message
        assert info.value.__cause__ is None and info.value.__suppress_context__  # no chained deep traceback


README_EXAMPLE_MARKER = "<!-- readme-example -->"


def _readme_example() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    start = text.index(README_EXAMPLE_MARKER)
    block = text[start:].split("```python", 1)[1].split("```", 1)[0]
    return block


@pytest.mark.slow
def test_readme_example_runs_as_written_offline(tmp_path: Path) -> None:
    """The README's minimal example, run as a user would with HF_HUB_OFFLINE=1 and a warm cache holding
    a checkpoint in the published layout (random weights: 500 classes, the published sizes)."""
    from unihar.config import default_config

    _warm_cache(tmp_path / "cache", "m97j/uni-har", default_config())
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-c", _readme_example()], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "Top-k Predictions:"
    assert len(lines) == 6
    probs = [float(line.rsplit(" ", 1)[1]) for line in lines[1:]]
    assert all(line.startswith("action_") for line in lines[1:])
    assert probs == sorted(probs, reverse=True) and all(0 < p <= 1 for p in probs)
