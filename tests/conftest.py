from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from unihar.config import default_config

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = Path(__file__).resolve().parent / "data"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def small_config(**overrides: dict) -> dict:
    """A small model in the published schema: fast on a CPU, every branch present."""
    cfg = default_config(num_classes=7, joints=17, image=True)
    cfg["pose_model"].update(hidden_dim=32, layers=2, heads=4, max_seq_len=12)
    cfg["long_term_model"].update(heads=4, layers=1)
    cfg["image_model"].update(feature_dim=16)
    cfg["fusion_model"].update(output_dim=24)
    for section, values in overrides.items():
        cfg[section].update(values)
    return copy.deepcopy(cfg)


def randomize_(model: torch.nn.Module, seed: int = 0, scale: float = 0.2) -> torch.nn.Module:
    """Perturb every float parameter and buffer, so LayerNorm/BatchNorm are not identities and a
    wiring mistake changes the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point() or name.endswith("temporal_pe.pe"):
                continue
            # relative to the tensor's own spread, so deep stacks (ResNet-50) stay finite
            spread = float(tensor.std()) if tensor.numel() > 1 and float(tensor.std()) > 0 else 1.0
            noise = torch.randn(tensor.shape, generator=gen) * scale * spread
            if name.endswith("running_var"):
                tensor.copy_(tensor.abs() + noise.abs() + 0.5)
            else:
                tensor.add_(noise)
    return model


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present (fresh clone)")
    return SHARED_DATA
