"""Every config is checked by one schema (pydantic, :mod:`unihar.schema`): types, ranges and unknown keys
give a ConfigError naming the key, and the documented JSON Schema is the one the code checks with."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from unihar.config import ModelConfig, PoseModelConfig, PreprocessConfig, default_config
from unihar.errors import ConfigError
from unihar.training.augment import AugmentConfig
from unihar.training.trainer import RunConfig, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL_CONFIG = ROOT / "src" / "unihar" / "assets" / "default_model" / "config.json"


def _config(section: str, **changes) -> dict:
    config = default_config(num_classes=3)
    config[section].update(changes)
    return config


def test_the_documented_schema_is_the_one_the_code_checks_with() -> None:
    spec = importlib.util.spec_from_file_location("write_config_schema", ROOT / "tools" / "write_config_schema.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    page = (ROOT / "docs" / "config-schema.md").read_text(encoding="utf-8")
    assert page == tool.render(), "docs/config-schema.md is stale: run python tools/write_config_schema.py"


def test_the_bundled_config_round_trips_byte_for_byte() -> None:
    text = DEFAULT_MODEL_CONFIG.read_text(encoding="utf-8")
    config = ModelConfig.from_dict(json.loads(text))
    assert json.dumps(config.to_dict(), indent=2) + "\n" == text
    assert ModelConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    "section,changes,message",
    [
        # a number written as a string is refused, as before (and true is not a count)
        (
            "pose_model",
            {"layers": "4"},
            "config key 'pose_model.layers' must be an integer or null, got \"4\" (a string)",
        ),
        (
            "pose_model",
            {"heads": True},
            "config key 'pose_model.heads' must be an integer or null, got true (a boolean)",
        ),
        (
            "classifier",
            {"num_classes": 2.0},
            "config key 'classifier.num_classes' must be an integer, got 2.0 (a number)",
        ),
        ("image_model", {"enabled": "yes"}, "config key 'image_model.enabled' must be true or false, got \"yes\""),
        # out of range
        ("pose_model", {"joints": 0}, "config key 'pose_model.joints' must be an integer >= 1 or null, got 0"),
        ("classifier", {"temperature": 0}, "config key 'classifier.temperature' must be a number > 0, got 0"),
        (
            "regularization",
            {"short_term_dropout": 1.0},
            "'regularization.short_term_dropout' must be a number in [0, 1)",
        ),
        ("fusion_model", {"mode": "sum"}, "'fusion_model.mode' must be one of ['concat', 'xattn'] or null, got 'sum'"),
    ],
)
def test_a_bad_model_config_value_names_the_key_the_expected_and_the_given(section, changes, message) -> None:
    with pytest.raises(ConfigError) as info:
        ModelConfig.from_dict(_config(section, **changes))
    assert message in str(info.value)


def test_unknown_keys_are_ignored_in_published_sections_and_refused_in_ours() -> None:
    config = ModelConfig.from_dict(_config("pose_model", dropout=0.3))  # the published format: ignored
    assert "dropout" not in config.to_dict()["pose_model"]
    with pytest.raises(ConfigError, match=r"preprocessing: unknown keys \['clip'\]; expected a subset of \["):
        ModelConfig.from_dict({**default_config(), "preprocessing": {"clip": 4}})
    with pytest.raises(ConfigError, match=r"config key 'preprocessing.image_std' must be 3 numbers > 0"):
        ModelConfig.from_dict({**default_config(), "preprocessing": {"image_std": [0.2, 0.2, 0]}})


def test_integers_become_floats_in_the_model_config_and_stay_as_written_in_the_run_config() -> None:
    config = ModelConfig.from_dict(_config("classifier", temperature=2))
    assert config.classifier.temperature == 2.0 and isinstance(config.classifier.temperature, float)
    run = RunConfig.from_dict({"train": {"lr": 1, "warmup_epochs": 2}, "augment": {"speed": [1, 2]}})
    assert run.to_dict()["train"]["lr"] == 1 and isinstance(run.to_dict()["train"]["lr"], int)
    assert run.to_dict()["augment"]["speed"] == [1, 2]


def test_configs_built_in_python_are_checked_the_same_way() -> None:
    with pytest.raises(ConfigError, match=r"config key 'preprocessing.clips' must be an integer >= 1, got 0"):
        PreprocessConfig(clips=0)
    with pytest.raises(ConfigError, match=r"config is missing the required key 'pose_model.joints'"):
        PoseModelConfig(in_channels=3, hidden_dim=8, layers=1, heads=2, max_seq_len=4)
    with pytest.raises(ConfigError, match=r"train.eval_batch_size must be an integer >= 1, got 0"):
        TrainConfig(eval_batch_size=0)
    augment = AugmentConfig()
    augment.flip_prob = "0.5"  # changed after it was built: check() looks again
    with pytest.raises(ConfigError, match=r'here: augment.flip_prob must be a number, got "0.5" \(a string\)'):
        augment.check("here")
    with pytest.raises(ConfigError, match=r"augment.camera_pitch must be a \[low, high\] pair with low <= high"):
        AugmentConfig(camera_pitch=(10, -10))


def test_reading_a_config_imports_neither_torch_nor_the_data_package() -> None:
    code = "import sys, unihar.config; print(sorted(m for m in ('torch', 'unihar.data') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
