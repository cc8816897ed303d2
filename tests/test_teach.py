"""Teaching new actions from a few clips: real BlazePose keypoints (tests/data/pose_stage_reference.npz,
four real videos) cut into short clips, two of the motions taught under new names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from unihar import Recognizer
from unihar.data.layouts import get_layout
from unihar.errors import InputError
from unihar.teaching import window_features
from video_helpers import run_cli

REFERENCE = Path(__file__).parent / "data" / "pose_stage_reference.npz"
JOINTS = list(get_layout("mediapipe33").joints)
CLIP = 30  # frames per cut (1 s at 30 fps): each cut is one window
# new names for: the clean-and-jerk's lift, and the forward fall played backwards (getting up off the floor)
NEW = {"lift_bar": 0, "rise_from_floor": 1}
REVERSED = {1}
TEACH_STARTS, HELD_STARTS = (0, 10, 20), (5, 15, 28)


def _real_clip(index: int) -> np.ndarray:
    with np.load(REFERENCE) as z:
        return np.asarray(z[f"clip{index}_keypoints"], dtype=np.float32)


def _cut(keypoints: np.ndarray, start: int, seed: int, reverse: bool = False) -> np.ndarray:
    """A 1 s cut of a real clip, as another recording of it would be: moved and scaled a little."""
    rng = np.random.default_rng(seed)
    cut = keypoints[start : start + CLIP].copy()
    if reverse:
        cut = cut[::-1].copy()
    cut[..., :2] = cut[..., :2] * rng.uniform(0.9, 1.1) + rng.uniform(-20, 20, size=2)
    return cut


def _write_npz(root: Path, classes: list[str], clips: list[tuple[np.ndarray, int]]) -> str:
    (root / "train").mkdir(parents=True)
    (root / "dataset.json").write_text(json.dumps({"joints": JOINTS, "classes": classes, "fps": 30}))
    for i, (keypoints, label) in enumerate(clips):
        np.savez(root / "train" / f"clip{i:03d}.npz", keypoints=keypoints, label=label)
    return f"skeleton-npz:{root}"


def _examples(starts: tuple[int, ...], seed: int) -> list[tuple[np.ndarray, int]]:
    return [
        (_cut(_real_clip(source), start, seed + 10 * source + start, source in REVERSED), label)
        for label, source in enumerate(NEW.values())
        for start in starts
    ]


@pytest.fixture(scope="module")
def base() -> Recognizer:
    return Recognizer(device="cpu")


@pytest.fixture(scope="module")
def taught(base: Recognizer, tmp_path_factory: pytest.TempPathFactory) -> tuple[Recognizer, Path]:
    root = tmp_path_factory.mktemp("teach")
    spec = _write_npz(root / "data", list(NEW), _examples(TEACH_STARTS, seed=0))
    out = root / "taught"
    return base.teach(spec, out=out), out


def _logits(recognizer: Recognizer, clips: list[np.ndarray]) -> torch.Tensor:
    """The head's logits of one window per clip, through the engine's features."""
    model = recognizer.model
    layout = model.preprocessing.layout
    from unihar.data.layouts import convert_keypoints

    sequences = [convert_keypoints(c, get_layout("mediapipe33"), get_layout(layout)) for c in clips]
    features = torch.from_numpy(np.concatenate(window_features(model, sequences, 30.0)))  # type: ignore[arg-type]
    classifier = model.classifier_pose  # type: ignore[attr-defined]
    with torch.no_grad():
        logits: torch.Tensor = classifier(features)
    return logits


def test_new_actions_are_recognised_on_held_out_cuts(taught: tuple[Recognizer, Path]) -> None:
    recognizer, _ = taught
    assert recognizer.labels[-2:] == list(NEW)
    for keypoints, label in _examples(HELD_STARTS, seed=1):
        result = recognizer.predict(keypoints, fps=30)
        assert result.topk[0].label == list(NEW)[label], [s.label for s in result.topk]


def test_old_classes_answers_are_unchanged(base: Recognizer, taught: tuple[Recognizer, Path]) -> None:
    recognizer, _ = taught
    # the walk and the jumping jacks (never taught), and the taught motions themselves
    clips = [_cut(_real_clip(i), s, seed=7) for i in (2, 3, 0, 1) for s in (0, 20)]
    before, after = _logits(base, clips), _logits(recognizer, clips)
    assert after.shape[1] == before.shape[1] + 2
    assert torch.equal(after[:, : before.shape[1]], before)  # exact: the old rows are not touched
    assert torch.equal(after[:, : before.shape[1]].argsort(dim=1), before.argsort(dim=1))


def test_taught_folder_loads_everywhere(
    base: Recognizer, taught: tuple[Recognizer, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    _, out = taught
    again = Recognizer(out, device="cpu")
    assert again.labels == base.labels + list(NEW)
    assert again.config.classifier.temperature == base.config.classifier.temperature
    code, stdout, _ = run_cli(capfd, "labels", "--weights", out)
    assert code == 0 and stdout.split() == base.labels + list(NEW)
    card = (out / "MODEL_CARD.md").read_text()
    assert "## Taught actions" in card and "| `lift_bar` | 3 |" in card and "the bundled model" in card


def test_cli_teach_and_refusals(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    spec = _write_npz(tmp_path / "data", ["lift_bar", "walk"], [(_cut(_real_clip(0), 0, 3), 0), (_real_clip(2), 1)])
    out = tmp_path / "out"
    code, stdout, err = run_cli(capfd, "teach", "--data", spec, "--out", out)
    assert code == 0, err
    assert "lift_bar (1 example)" in stdout
    assert "single example" in err and "already knows ['walk']" in err  # warnings, not errors
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    code, _, err = run_cli(capfd, "teach", "--data", spec, "--out", out)
    assert code == 2 and "pass --overwrite" in err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # nothing written
    code, _, err = run_cli(capfd, "teach", "--data", spec, "--out", out, "--overwrite")
    assert code == 0, err
    code, _, err = run_cli(capfd, "teach", "--data", f"no-such-format:{tmp_path}", "--out", tmp_path / "o2")
    assert code == 2 and err.startswith("error: unknown data format 'no-such-format'")
    assert not (tmp_path / "o2").exists()


def test_nothing_new_to_teach(base: Recognizer, tmp_path: Path) -> None:
    spec = _write_npz(tmp_path / "data", ["walk", "clean_and_jerk"], [(_real_clip(2), 0), (_real_clip(0), 1)])
    with pytest.warns(UserWarning, match="already knows"):
        with pytest.raises(InputError, match="nothing to teach"):
            base.teach(spec, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_class_with_no_usable_clip(base: Recognizer, tmp_path: Path) -> None:
    unseen = _cut(_real_clip(0), 0, 0)
    unseen[..., 2] = 0.0  # nobody found in any frame
    spec = _write_npz(tmp_path / "data", ["lift_bar", "ghost"], [(_cut(_real_clip(0), 0, 1), 0), (unseen, 1)])
    with pytest.raises(InputError, match="class 'ghost' has no usable clip"):
        base.teach(spec, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_onnx_or_multimodal_models_are_refused(tmp_path: Path) -> None:
    from conftest import small_config
    from unihar.models import UniHAR
    from unihar.teaching import check_teachable

    with pytest.raises(InputError, match="pose-only"):
        check_teachable(UniHAR(small_config(image_model={"enabled": True, "feature_dim": 16})))
    with pytest.raises(InputError, match="PyTorch model"):
        check_teachable(object())  # type: ignore[arg-type]
