"""Checkpoint files (published .bin, our .safetensors), strict matching, and the Hub helpers offline."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch

from conftest import REPO_ROOT, TEST_DATA, randomize_, small_config
from reference_forward import reference_logits
from unihar import HARPredictor, build_model, download_model, from_pretrained, load_config, load_labels, save_pretrained
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


# The published checkpoint's config.json, as docs/checkpoint-format.md and the key list's header state it.
PUBLISHED_CONFIG = {
    "pose_model": {"joints": 17, "in_channels": 3, "hidden_dim": 128, "layers": 4, "heads": 8, "max_seq_len": 30},
    "classifier": {"num_classes": 500},
    "regularization": {"short_term_dropout": 0.1},
    "long_term_model": {"enabled": True, "heads": 8, "layers": 2, "dropout": 0.1},
    "image_model": {"enabled": True, "feature_dim": 128, "backbone": "resnet18"},
    "fusion_model": {"mode": "concat", "output_dim": 128},
}


def _published_entries() -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    """(key, shape, dtype) of every state-dict entry of the published layout, from
    tests/data/checkpoint-keys.txt (the entries before its variants)."""
    entries = []
    for line in (TEST_DATA / "checkpoint-keys.txt").read_text().splitlines():
        if line.startswith("# VARIANT"):
            break
        if not line.strip() or line.startswith("#"):
            continue
        key, rest = line.split(" ", 1)
        shape, dtype = rest.rsplit(" ", 1)
        entries.append(
            (key, tuple(int(n) for n in shape.strip("()").replace(" ", "").split(",") if n), getattr(torch, dtype))
        )
    return entries


def _known_state_dict(seed: int = 1) -> dict[str, torch.Tensor]:
    """Every entry of the published layout filled from one seeded generator (integers: known constants),
    at scales that keep activations of order one all the way through, so a tensor loaded wrongly or
    not at all changes the output: norm scales near 1, running variances in [0.5, 1.5], matrices
    ~ 1 / sqrt(fan-in), biases, means and embeddings ~ 0.1."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for i, (key, shape, dtype) in enumerate(_published_entries()):
        if not dtype.is_floating_point:
            state[key] = torch.full(shape, 1000 + i, dtype=dtype)
            continue
        noise = torch.randn(shape, generator=gen, dtype=dtype)
        if key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=gen, dtype=dtype)
        elif len(shape) == 1 and key.endswith(".weight"):
            state[key] = 1.0 + 0.1 * noise
        elif len(shape) >= 2 and not key.endswith(("temporal_pe_param", "joint_type_emb.weight")):
            state[key] = noise / math.sqrt(math.prod(shape[1:]))
        else:
            state[key] = 0.1 * noise
    return state


@pytest.mark.slow
def test_published_checkpoint_loads_number_for_number(tmp_path: Path) -> None:
    """The README's claim, without the real weights: a checkpoint written in the published format
    (pytorch_model.bin of the published keys and shapes, config.json, class_label.json; every value
    known here) loads through the public API with every tensor exactly as written, and answers what
    the spec's forward pass (tests/reference_forward.py) computes from those weights."""
    written = _known_state_dict()
    assert len(written) == 258  # the count the key list states
    torch.save(written, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps(PUBLISHED_CONFIG))
    (tmp_path / "class_label.json").write_text(json.dumps({str(i): f"class_{i}" for i in range(500)}))

    model = from_pretrained(str(tmp_path))
    predictor = HARPredictor(weight_path=download_model(str(tmp_path)), config=load_config(str(tmp_path)), device="cpu")
    for loaded in (model, predictor.model):
        state = loaded.state_dict()
        assert list(state) == list(written)  # the same keys, in the published order
        for key, value in written.items():
            assert state[key].dtype == value.dtype and torch.equal(state[key], value), key
    assert model.labels[:2] == ["class_0", "class_1"] and len(model.labels) == 500

    gen = torch.Generator().manual_seed(2)
    pose = torch.randn(1, 2, 4, 17, 3, generator=gen)  # two segments: the long-term encoder has work to do
    images = torch.randn(1, 2, 2, 3, 64, 64, generator=gen)
    with torch.no_grad():
        expected = reference_logits(written, PUBLISHED_CONFIG, pose, images)
        assert expected.std() > 0.1  # logits that differ between classes: a comparison that can fail
        torch.testing.assert_close(model(pose, images), expected, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(model(pose), reference_logits(written, PUBLISHED_CONFIG, pose), rtol=1e-4, atol=1e-4)
    ids, probs = predictor.topk(pose, images, k=5)
    reference_probs, reference_ids = expected.softmax(-1).topk(5)
    assert torch.equal(ids, reference_ids)
    torch.testing.assert_close(probs, reference_probs, rtol=0, atol=1e-5)


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
    assert (
        "unexpected keys" in message and "image_encoder.fc.* (2 keys)" in message and "fusion.ln.* (2 keys)" in message
    )
    assert (
        "shape mismatches" in message
        and "short_seq_model.temporal_pe_param: checkpoint (1, 12, 1, 32) vs model (1, 12, 1, 64)" in message
    )
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
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "class_label.json",
        "config.json",
        "model.safetensors",
    ]
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
    with pytest.raises(HubError, match="no such model folder"):
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
        assert "there is no local folder 'someone/other-model' either" in message
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
    result = subprocess.run(
        [sys.executable, "-c", _readme_example()], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "Top-k Predictions:"
    assert len(lines) == 6
    probs = [float(line.rsplit(" ", 1)[1]) for line in lines[1:]]
    assert all(line.startswith("action_") for line in lines[1:])
    assert probs == sorted(probs, reverse=True) and all(0 < p <= 1 for p in probs)
