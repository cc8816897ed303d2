"""The training loop and the train / eval commands, end to end on a small learnable skeleton-npz set."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from unihar.errors import InputError
from unihar.training.trainer import RunConfig, train

REPO_ROOT = Path(__file__).resolve().parents[1]
JOINTS = ["head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist"]


def make_dataset(root: Path, per_class: int = 12, seed: int = 0) -> Path:
    """Two actions: waving with the hands above the head vs. swinging them below the hips."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps({"joints": JOINTS, "classes": ["wave", "swing"], "fps": 10}))
    rest = np.array([[0, -2], [-1, -1], [1, -1], [-1.5, 0], [1.5, 0], [-2, 1], [2, 1]], dtype=np.float32)
    for split, n in (("train", per_class), ("test", per_class // 2)):
        (root / split).mkdir()
        for i in range(2 * n):
            label = i % 2
            frames = int(rng.integers(15, 30))
            t = np.arange(frames) / 10.0
            phase = np.sin(2 * np.pi * rng.uniform(0.8, 1.2) * t + rng.uniform(0, 6))[:, None]
            xy = np.repeat(rest[None], frames, axis=0)
            xy[:, 3:7, 1] += -3.0 if label == 0 else 1.0  # elbows and wrists up (wave) or down (swing)
            xy[:, 5:7, 0] += 0.7 * phase
            xy = xy * rng.uniform(20, 60) + rng.uniform(50, 300, size=2) + rng.normal(0, 0.5, xy.shape)
            kpts = np.concatenate([xy, np.ones((frames, len(JOINTS), 1))], axis=-1).astype(np.float32)
            np.savez(root / split / f"{i:03d}.npz", keypoints=kpts, label=np.int64(label))
    return root


def tiny_run(epochs: int = 10, **train_overrides) -> RunConfig:
    return RunConfig.from_dict({
        "model": {"pose_model": {"hidden_dim": 16, "layers": 1, "heads": 2}},
        "preprocessing": {"clips": 1, "clip_len": 8, "window_seconds": 1.5, "stride_seconds": 0.5},
        "train": {"epochs": epochs, "batch_size": 8, "lr": 0.01, "warmup_epochs": 1, "num_threads": 1,
                  "label_smoothing": 0.0, **train_overrides},
    })


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("npz") / "waves")


def weights_of(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_train_writes_a_pretrained_folder_that_learns(data_dir, tmp_path):
    from unihar.loading import from_pretrained

    out = tmp_path / "run"
    metrics = train(f"skeleton-npz:{data_dir}", out, tiny_run(), progress=False)
    for name in ("config.json", "model.safetensors", "class_label.json", "metrics.csv", "training_args.json",
                 "eval_results.json"):
        assert (out / name).is_file(), name
    assert not (out / "checkpoint.pt").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["preprocessing"]["layout"] == JOINTS and config["preprocessing"]["clip_len"] == 8
    assert config["pose_model"]["joints"] == 7 and config["classifier"]["num_classes"] == 2
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 11))
    assert list(rows[0]) == ["epoch", "lr", "train_loss", "train_acc", "test_top1", "test_top5",
                             "test_mean_class_acc", "epoch_seconds"]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert metrics["n"] == 12 and metrics["top1"] >= 0.9  # the two motions are easy to tell apart
    model = from_pretrained(out)
    assert model.labels == ["wave", "swing"]


def test_same_seed_same_weights_and_resume_matches(data_dir, tmp_path, monkeypatch):
    import unihar.training.trainer as trainer

    run = tiny_run(epochs=3, eval_every=2)
    train(f"skeleton-npz:{data_dir}", tmp_path / "a", run, progress=False)
    train(f"skeleton-npz:{data_dir}", tmp_path / "b", run, progress=False)
    a, b = weights_of(tmp_path / "a"), weights_of(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)

    # Interrupt after epoch 2 (its checkpoint is on disk), then resume: same weights as uninterrupted.
    real_append = trainer._append_csv

    def crash_at_epoch_3(path, row, columns):
        if row["epoch"] == 3:
            raise KeyboardInterrupt
        real_append(path, row, columns)

    monkeypatch.setattr(trainer, "_append_csv", crash_at_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train(f"skeleton-npz:{data_dir}", tmp_path / "c", run, progress=False)
    assert (tmp_path / "c" / "checkpoint.pt").is_file()
    monkeypatch.setattr(trainer, "_append_csv", real_append)
    train(f"skeleton-npz:{data_dir}", tmp_path / "c", run, resume=True, progress=False)
    c = weights_of(tmp_path / "c")
    assert all(torch.equal(a[k], c[k]) for k in a)
    rows = list(csv.DictReader((tmp_path / "c" / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [r["test_top1"] != "" for r in rows] == [False, True, True]  # evaluated at epoch 2 and the last


def test_refuses_to_overwrite_and_init_fine_tunes(data_dir, tmp_path):
    out = tmp_path / "s1"
    train(f"skeleton-npz:{data_dir}", out, tiny_run(epochs=1), progress=False)
    with pytest.raises(InputError, match="not empty"):
        train(f"skeleton-npz:{data_dir}", out, tiny_run(epochs=1), progress=False)
    (out / "notes.txt").write_text("mine")
    train(f"skeleton-npz:{data_dir}", out, tiny_run(epochs=2), overwrite=True, progress=False)
    assert len(list(csv.DictReader((out / "metrics.csv").open()))) == 2  # replaced, not appended to
    assert (out / "notes.txt").read_text() == "mine"  # files the run does not write are left alone
    # --init with a frozen pose encoder: only the classifier moves.
    train(f"skeleton-npz:{data_dir}", tmp_path / "ft", tiny_run(epochs=1, freeze_pose=True), init=out, progress=False)
    s1, ft = weights_of(out), weights_of(tmp_path / "ft")
    assert all(torch.equal(s1[k], ft[k]) for k in s1 if k.startswith("short_seq_model."))
    assert not torch.equal(s1["classifier_pose.weight"], ft["classifier_pose.weight"])
    # An image branch needs video data: a clear error, not a crash.
    run = tiny_run(epochs=1)
    run.model = {"image_model": {"enabled": True, "feature_dim": 8, "backbone": "resnet18"},
                 "fusion_model": {"mode": "concat", "output_dim": 8}}
    with pytest.raises(InputError, match="needs video data"):
        train(f"skeleton-npz:{data_dir}", tmp_path / "s2", run, init=out, progress=False)


def _cli() -> typer.Typer:
    from unihar.cli import evaluate, train as train_cli

    app = typer.Typer()
    train_cli.register(app)
    evaluate.register(app)
    return app


def test_cli_train_then_eval_json(data_dir, tmp_path):
    runner = CliRunner()
    config = tmp_path / "run.json"
    config.write_text(json.dumps(tiny_run().to_dict()))
    out = tmp_path / "cli"
    result = runner.invoke(_cli(), ["train", "--data", f"skeleton-npz:{data_dir}", "--out", str(out),
                                    "--config", str(config), "--epochs", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert len(list(csv.DictReader((out / "metrics.csv").open()))) == 2
    result = runner.invoke(_cli(), ["eval", "--data", f"skeleton-npz:{data_dir}", "--weights", str(out), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {"n", "top1", "top5", "mean_class_acc"} and payload["n"] == 12
    assert all(0.0 <= payload[k] <= 1.0 for k in ("top1", "top5", "mean_class_acc")) and payload["top5"] == 1.0
    png = tmp_path / "cm.png"
    result = runner.invoke(_cli(), ["eval", "--data", f"skeleton-npz:{data_dir}", "--weights", str(out),
                                    "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert "wave" in result.stdout and "mean class accuracy" in result.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = runner.invoke(_cli(), ["eval", "--data", f"skeleton-npz:{data_dir}", "--weights", str(out),
                                    "--plot", str(png)])
    assert isinstance(result.exception, InputError) and "already exists" in str(result.exception)


@pytest.mark.slow
def test_module_entry_reports_bad_input_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "unihar.train", "--data", "penn-action:/no/such/dir",
                           "--out", str(tmp_path / "x")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
