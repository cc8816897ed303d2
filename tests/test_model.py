"""The network against the published checkpoint layout and forward pass (docs/checkpoint-format.md)."""

from __future__ import annotations

import math
import re
import socket

import pytest
import torch

from conftest import TEST_DATA, randomize_, small_config
from reference_forward import reference_logits
from unihar import build_model
from unihar.config import default_config
from unihar.errors import ConfigError, InputError
from unihar.models import network as network_module


def _published_keys(variant: str | None = None) -> dict[str, tuple[int, ...]]:
    """Key -> shape from tests/data/checkpoint-keys.txt (a copy of the published key list)."""
    base: dict[str, tuple[int, ...]] = {}
    xattn: dict[str, tuple[int, ...]] = {}
    target = base
    for line in (TEST_DATA / "checkpoint-keys.txt").read_text().splitlines():
        if line.startswith('# VARIANT fusion_model.mode="xattn"'):
            target = xattn
        if not line.strip() or line.startswith("#"):
            continue
        key, rest = line.split(" ", 1)
        shape = rest.rsplit(" ", 1)[0].strip("()").replace(" ", "")
        target[key] = tuple(int(s) for s in shape.split(",") if s)
    if variant == "xattn":
        return {**{k: v for k, v in base.items() if not k.startswith("fusion.")}, **xattn}
    return base


# Entries of the key list that are buffers, not parameters (BatchNorm statistics, the fixed sin/cos table).
BUFFERS = ("running_mean", "running_var", "num_batches_tracked", "temporal_pe.pe")
# Each published part and the prefix of its keys.
PARTS = {
    "pose encoder": "short_seq_model.",
    "long-term": "long_term.",
    "classifier_pose": "classifier_pose.",
    "image encoder": "image_encoder.",
    "fusion": "fusion.",
}


def _published_parameters(keys: dict[str, tuple[int, ...]], prefix: str = "") -> int:
    """Parameters in the published key list (from its shapes), of the keys starting with ``prefix``."""
    return sum(math.prod(shape) for key, shape in keys.items() if key.startswith(prefix) and not key.endswith(BUFFERS))


def _stated_counts() -> dict[str, int]:
    """The parameter counts the key list states in its comments: total, per part, and the xattn total."""
    lines = (TEST_DATA / "checkpoint-keys.txt").read_text().splitlines()
    comments = " ".join(line.lstrip("# ") for line in lines if line.startswith("#"))
    total, parts = re.search(r"([\d,]+) parameters \(([^)]*)\)", comments).groups()
    counts = {"total": total, "xattn total": re.search(r"([\d,]+) params\)", comments).group(1)}
    for part in parts.split(";"):
        name, number = part.strip().rsplit(" ", 1)
        counts[name] = number
    return {name: int(number.replace(",", "")) for name, number in counts.items()}


def test_published_key_list_is_consistent_with_its_stated_counts() -> None:
    """The counts the key list states are the sums of its shapes: two published facts agree, so the
    shape-derived counts the model is checked against below are the published ones."""
    keys = _published_keys()
    derived = {name: _published_parameters(keys, prefix) for name, prefix in PARTS.items()}
    derived["total"] = _published_parameters(keys)
    derived["xattn total"] = _published_parameters(_published_keys("xattn"))
    assert _stated_counts() == derived


@pytest.mark.parametrize("mode", ["concat", "xattn"])
def test_state_dict_and_parameter_counts_match_published_layout(mode: str) -> None:
    cfg = default_config()
    cfg["fusion_model"]["mode"] = mode
    model = build_model(cfg)
    published = _published_keys(mode if mode == "xattn" else None)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == published
    assert sum(p.numel() for p in model.parameters()) == _published_parameters(published)
    for name, prefix in PARTS.items():
        part = getattr(model, prefix.rstrip("."))
        assert sum(p.numel() for p in part.parameters()) == _published_parameters(published, prefix), name


def test_variants_change_the_layout_as_documented() -> None:
    pose_only = build_model(default_config(image=False)).state_dict()
    assert not any(k.startswith(("image_encoder.", "fusion.")) for k in pose_only)
    cfg = default_config()
    cfg["long_term_model"]["enabled"] = False
    cfg["pose_model"]["use_sinusoidal_pe"] = True
    cfg["pose_model"]["enable_temporal_attention"] = False
    sd = build_model(cfg).state_dict()
    assert not any(k.startswith("long_term.") for k in sd)
    assert "short_seq_model.temporal_pe_param" not in sd
    assert tuple(sd["short_seq_model.temporal_pe.pe"].shape) == (30, 1, 128)
    assert "short_seq_model.blocks.0.0.attn.in_proj_weight" in sd  # temporal blocks kept when switched off
    cfg = default_config()
    cfg["image_model"]["backbone"] = "resnet50"
    sd = build_model(cfg).state_dict()
    assert sum(k.startswith("image_encoder.backbone.") for k in sd) == 320 - 2  # + fc.weight, fc.bias = 320
    assert tuple(sd["image_encoder.fc.weight"].shape) == (128, 2048)


CASES = {
    "published-layout": {},
    "pose-only-25-joints-no-long-term": {
        "pose_model": {"joints": 25},
        "long_term_model": {"enabled": False},
        "image_model": {"enabled": False},
    },
    "sinusoidal-pe": {"pose_model": {"use_sinusoidal_pe": True}},
    "xattn": {"fusion_model": {"mode": "xattn"}},
    "no-temporal-attention": {"pose_model": {"enable_temporal_attention": False}},
    "resnet50": {"image_model": {"backbone": "resnet50"}},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_matches_the_spec(case: str) -> None:
    torch.manual_seed(0)
    cfg = small_config(**CASES[case])
    model = randomize_(build_model(cfg)).eval()
    sd = model.state_dict()
    j = cfg["pose_model"]["joints"]
    pose = torch.randn(2, 3, 7, j, 3)
    images = torch.randn(2, 3, 2, 3, 32, 32) if cfg["image_model"]["enabled"] else None
    with torch.no_grad():
        ours = model(pose, images)
        ref = reference_logits(sd, model.config.to_dict(), pose, images)
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(ours.softmax(-1), ref.softmax(-1), rtol=0, atol=1e-5)
        if images is not None:  # the pose-only path of a multimodal model uses classifier_pose
            torch.testing.assert_close(
                model(pose), reference_logits(sd, model.config.to_dict(), pose), rtol=1e-4, atol=1e-4
            )


def test_cpu_inference_path_equals_the_plain_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without autograd on the CPU, the encoders take a tuned path (oneDNN linear layers with the GELU
    fused, clips and frames in cache-sized chunks, channels-last ResNet); with autograd they run the
    plain modules, the path the spec test above never sees. Both give the same numbers."""
    calls = []
    original = network_module._onednn_linear
    monkeypatch.setattr(network_module, "_onednn_linear", lambda *a, **k: calls.append(1) or original(*a, **k))
    model = randomize_(build_model(small_config())).eval()
    pose = torch.randn(4, 6, 12, 17, 3)  # 24 clips of 12 x 17 tokens: more than one chunk
    images = torch.randn(4, 6, 3, 3, 32, 32)  # 72 frames: several ResNet batches
    with torch.inference_mode():
        tuned = model(pose, images)
        tuned_frames = model.encode_frames(images.flatten(0, 2))
    assert calls or network_module._ONEDNN_LINEAR is None  # the tuned path ran (where PyTorch has oneDNN)
    calls.clear()
    plain = model(pose, images)  # autograd on: the plain path
    assert plain.requires_grad and not calls
    torch.testing.assert_close(tuned, plain.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tuned_frames, model.encode_frames(images.flatten(0, 2)).detach(), rtol=1e-5, atol=1e-5)


def test_input_channels_two_and_more_than_three() -> None:
    model = randomize_(build_model(small_config(image_model={"enabled": False}))).eval()
    xy = torch.randn(1, 2, 5, 17, 2)
    with torch.no_grad():
        zero_conf = torch.cat([xy, torch.zeros(1, 2, 5, 17, 1)], -1)
        torch.testing.assert_close(model(xy), model(zero_conf))
        extra = torch.cat([zero_conf, torch.randn(1, 2, 5, 17, 2)], -1)
        torch.testing.assert_close(model(extra), model(zero_conf))


def test_segment_mask_ignores_padded_clips() -> None:
    for mode in ("concat", "xattn"):
        model = randomize_(build_model(small_config(fusion_model={"mode": mode}))).eval()
        pose, images = torch.randn(1, 2, 6, 17, 3), torch.randn(1, 2, 2, 3, 32, 32)
        padded_pose = torch.cat([pose, torch.randn(1, 1, 6, 17, 3) * 50], dim=1)
        padded_images = torch.cat([images, torch.randn(1, 1, 2, 3, 32, 32) * 50], dim=1)
        mask = torch.tensor([[True, True, False]])
        with torch.no_grad():
            torch.testing.assert_close(
                model(padded_pose, padded_images, mask), model(pose, images), rtol=1e-4, atol=1e-5
            )
            assert not torch.allclose(model(padded_pose, padded_images), model(pose, images), atol=1e-3)


def test_building_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("network access while building a model")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    build_model(default_config())


@pytest.mark.parametrize(
    "section,key",
    [
        ("pose_model", "hidden_dim"),
        ("pose_model", "joints"),
        ("classifier", "num_classes"),
        ("regularization", "short_term_dropout"),
        ("long_term_model", "layers"),
        ("image_model", "feature_dim"),
        ("fusion_model", "mode"),
    ],
)
def test_config_missing_key_is_named(section: str, key: str) -> None:
    cfg = default_config()
    del cfg[section][key]
    with pytest.raises(ConfigError, match=f"{section}.{key}"):
        build_model(cfg)


def test_config_invalid_values_are_named() -> None:
    with pytest.raises(ConfigError, match="fusion_model.mode"):
        build_model(small_config(fusion_model={"mode": "sum"}))
    with pytest.raises(ConfigError, match="heads"):
        build_model(small_config(pose_model={"heads": 5}))
    with pytest.raises(ConfigError, match="image_model.backbone"):
        build_model(small_config(image_model={"backbone": "vgg16"}))
    with pytest.raises(ConfigError, match="pose_model.layers"):
        build_model(small_config(pose_model={"layers": "4"}))
    with pytest.raises(ConfigError, match="missing the section 'classifier'"):
        cfg = small_config()
        del cfg["classifier"]
        build_model(cfg)


BAD_INPUTS = {
    "rank 4": (torch.zeros(1, 6, 17, 3), None, "5-D"),
    "joints": (torch.zeros(1, 2, 6, 25, 3), None, r"J=17.*\(1, 2, 6, 25, 3\)"),
    "too long": (torch.zeros(1, 2, 13, 17, 3), None, r"T <= 12.*\(1, 2, 13, 17, 3\)"),
    "one channel": (torch.zeros(1, 2, 6, 17, 1), None, "C >= 2"),
    "integer": (torch.zeros(1, 2, 6, 17, 3, dtype=torch.int64), None, "floating-point"),
    "nan": (torch.full((1, 2, 6, 17, 3), float("nan")), None, "finite"),
    "not a tensor": ([[0.0]], None, "torch.Tensor"),
    "image batch": (torch.zeros(2, 2, 6, 17, 3), torch.zeros(1, 2, 3, 3, 32, 32), r"B=2, L=2.*\(1, 2, 3, 3, 32, 32\)"),
    "image clips": (torch.zeros(1, 2, 6, 17, 3), torch.zeros(1, 3, 3, 3, 32, 32), r"L=2.*\(1, 3, 3, 3, 32, 32\)"),
    "image rank": (torch.zeros(1, 2, 6, 17, 3), torch.zeros(1, 2, 3, 32, 32), "6-D"),
    "image channels": (torch.zeros(1, 2, 6, 17, 3), torch.zeros(1, 2, 3, 1, 32, 32), "3, H, W"),
    "image inf": (torch.zeros(1, 2, 6, 17, 3), torch.full((1, 2, 1, 3, 8, 8), float("inf")), "finite"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_inputs_raise_value_error_naming_shapes(case: str) -> None:
    model = build_model(small_config()).eval()
    pose, images, pattern = BAD_INPUTS[case]
    with pytest.raises(ValueError, match=pattern) as info:
        model(pose, images)
    assert isinstance(info.value, InputError)


def test_bad_segment_mask() -> None:
    model = build_model(small_config()).eval()
    pose = torch.zeros(1, 2, 6, 17, 3)
    with pytest.raises(ValueError, match=r"\(1, 2\)"):
        model(pose, segment_mask=torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one valid clip"):
        model(pose, segment_mask=torch.zeros(1, 2, dtype=torch.bool))
