"""The training loop and the train / eval / labels commands, end to end on small learnable skeleton sets
written here in the skeleton-npz format."""

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from unihar.data.taxonomy import load_taxonomy
from unihar.errors import ConfigError, InputError
from unihar.training.trainer import RunConfig, build_vocabulary, train

REPO_ROOT = Path(__file__).resolve().parents[1]
JOINTS = ["head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist"]
# Where each class holds its arms: (elbow dx, elbow dy, wrist dx, wrist dy) away from the shoulders, in
# shoulder widths; the wrists swing left and right around it.
ARMS = {
    "wave": (0.0, -2.0, 0.0, -3.0),
    "swing": (0.0, 1.0, 0.0, 1.5),
    "clap": (0.5, 0.5, 1.5, 0.0),
    "spread": (-1.5, 0.0, -3.0, 0.0),
    "cross": (1.0, 0.0, 3.5, -0.5),
    "arms_up_out": (-1.0, -1.0, -2.5, -2.5),
}
REST = np.array([[0, -2], [-1, -1], [1, -1], [-1.5, 0], [1.5, 0], [-2, 1], [2, 1]], dtype=np.float32)


def make_dataset(root: Path, per_class: int = 12, seed: int = 0, classes=("wave", "swing"), fps: float = 10) -> Path:
    """``per_class`` train and ``per_class // 2`` test sequences of each class, 15-30 frames each."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps({"joints": JOINTS, "classes": list(classes), "fps": fps}))
    for split, n in (("train", per_class), ("test", per_class // 2)):
        (root / split).mkdir()
        for i in range(len(classes) * n):
            label = i % len(classes)
            frames = int(rng.integers(15, 30))
            t = np.arange(frames) / fps
            phase = np.sin(2 * np.pi * rng.uniform(0.8, 1.2) * t + rng.uniform(0, 6))[:, None]
            xy = np.repeat(REST[None], frames, axis=0)
            edx, edy, wdx, wdy = ARMS[classes[label]]
            xy[:, 3, 0] -= edx
            xy[:, 4, 0] += edx
            xy[:, 3:5, 1] += edy
            xy[:, 5, 0] -= wdx
            xy[:, 6, 0] += wdx
            xy[:, 5:7, 1] += wdy
            xy[:, 5:7, 0] += 0.7 * phase
            xy = xy * rng.uniform(20, 60) + rng.uniform(50, 300, size=2) + rng.normal(0, 0.5, xy.shape)
            kpts = np.concatenate([xy, np.ones((frames, len(JOINTS), 1))], axis=-1).astype(np.float32)
            np.savez(root / split / f"{i:03d}.npz", keypoints=kpts, label=np.int64(label))
    return root


def tiny_run(epochs: int = 10, **train_overrides) -> RunConfig:
    return RunConfig.from_dict(
        {
            "model": {"pose_model": {"hidden_dim": 16, "layers": 1, "heads": 2}},
            "preprocessing": {"clips": 1, "clip_len": 8, "window_seconds": 1.5, "stride_seconds": 0.5},
            "train": {
                "epochs": epochs,
                "batch_size": 8,
                "lr": 0.02,
                "warmup_epochs": 1,
                "num_threads": 1,
                "label_smoothing": 0.0,
                "eval_every": 1,
                **train_overrides,
            },
        }
    )


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
    for name in (
        "config.json",
        "model.safetensors",
        "class_label.json",
        "metrics.csv",
        "training_args.json",
        "eval_results.json",
    ):
        assert (out / name).is_file(), name
    assert not (out / "checkpoint.pt").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["preprocessing"]["layout"] == JOINTS and config["preprocessing"]["clip_len"] == 8
    # keys the run config leaves out are chosen from the data, and recorded
    assert config["preprocessing"]["binarize_confidence"] is True and config["preprocessing"]["min_confidence"] == 0.3
    recipe = json.loads((out / "training_args.json").read_text())
    assert recipe["chosen_from_data"]["preprocessing"]["binarize_confidence"] is True
    assert config["pose_model"]["joints"] == 7 and config["classifier"]["num_classes"] == 2
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 11))
    assert list(rows[0]) == [
        "epoch",
        "lr",
        "train_loss",
        "train_acc",
        "test_top1",
        "test_top5",
        "test_mean_class_acc",
        "test_ece",
        "epoch_seconds",
    ]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert metrics["n"] == 12 and metrics["top1"] >= 0.9  # the two motions are easy to tell apart
    model = from_pretrained(out)
    assert model.labels == ["wave", "swing"]


def test_same_weights_with_any_number_of_workers_and_after_resume(data_dir, tmp_path, monkeypatch):
    import unihar.training.trainer as trainer

    run = tiny_run(epochs=3, eval_every=2)
    train(f"skeleton-npz:{data_dir}", tmp_path / "a", run, progress=False)
    two_workers = tiny_run(epochs=3, eval_every=2, workers=2)
    train(f"skeleton-npz:{data_dir}", tmp_path / "b", two_workers, progress=False)
    a, b = weights_of(tmp_path / "a"), weights_of(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    other_seed = tiny_run(epochs=3, eval_every=2, seed=1)
    train(f"skeleton-npz:{data_dir}", tmp_path / "s", other_seed, progress=False)
    assert not torch.equal(a["classifier_pose.weight"], weights_of(tmp_path / "s")["classifier_pose.weight"])

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
    run.model = {
        "image_model": {"enabled": True, "feature_dim": 8, "backbone": "resnet18"},
        "fusion_model": {"mode": "concat", "output_dim": 8},
    }
    with pytest.raises(InputError, match="needs video data"):
        train(f"skeleton-npz:{data_dir}", tmp_path / "s2", run, init=out, progress=False)


def _cli() -> typer.Typer:
    from unihar.cli import evaluate, labels
    from unihar.cli import train as train_cli

    app = typer.Typer()
    for module in (train_cli, evaluate, labels):
        module.register(app)
    return app


def test_cli_train_eval_json_and_labels(tmp_path):
    six = make_dataset(tmp_path / "six", per_class=8, classes=tuple(ARMS))
    runner = CliRunner()
    config = tmp_path / "run.json"
    run = tiny_run(eval_every=100).to_dict()
    run["model"]["pose_model"].update(hidden_dim=32, heads=4)
    config.write_text(json.dumps(run))
    out = tmp_path / "cli"
    result = runner.invoke(
        _cli(),
        [
            "train",
            "--data",
            f"skeleton-npz:{six}",
            "--out",
            str(out),
            "--config",
            str(config),
            "--epochs",
            "30",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(list(csv.DictReader((out / "metrics.csv").open()))) == 30
    result = runner.invoke(_cli(), ["eval", "--data", f"skeleton-npz:{six}", "--weights", str(out), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {"n", "top1", "top5", "mean_class_acc", "ece"} and payload["n"] == 24
    assert payload["top1"] >= 0.75 and payload["top5"] >= payload["top1"] and 0.0 <= payload["ece"] <= 1.0
    result = runner.invoke(_cli(), ["labels", "--weights", str(out), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout) == list(ARMS)
    result = runner.invoke(_cli(), ["labels", "--weights", str(out)])
    assert result.stdout.splitlines() == list(ARMS)
    png = tmp_path / "cm.png"
    result = runner.invoke(_cli(), ["eval", "--data", f"skeleton-npz:{six}", "--weights", str(out), "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert "wave" in result.stdout and "mean class accuracy" in result.stdout and "ECE" in result.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = runner.invoke(_cli(), ["eval", "--data", f"skeleton-npz:{six}", "--weights", str(out), "--plot", str(png)])
    assert isinstance(result.exception, InputError) and "already exists" in str(result.exception)


def test_mixture_merges_classes_through_the_taxonomy_and_balances_datasets(tmp_path):
    """Two datasets, each with its own names for its classes; a taxonomy maps them to one vocabulary."""
    from unihar.data.datasets import load_dataset
    from unihar.training.data import BalancedSampler, relabel

    first = make_dataset(tmp_path / "first", per_class=20, classes=("wave", "swing"))
    second = make_dataset(tmp_path / "second", per_class=3, classes=("clap", "spread"))
    taxonomy = tmp_path / "taxonomy.json"
    taxonomy.write_text(
        json.dumps(
            {
                "classes": {"wave": "", "swing_arms": "", "clap": "", "spread": ""},
                "datasets": {
                    "skeleton-npz": {"wave": "wave", "swing": "swing_arms", "clap": "clap", "spread": "spread"}
                },
            }
        )
    )
    with pytest.raises(
        ConfigError,
        match=r"names \['ur-fall'\], which this run does not train on; "
        r"its datasets are \['skeleton-npz1', 'skeleton-npz2'\]",
    ):
        train(
            [f"skeleton-npz:{first}", f"skeleton-npz:{second}"],
            tmp_path / "mix",
            tiny_run(epochs=4, taxonomy=str(taxonomy), dataset_weights={"ur-fall": 3}),
            progress=False,
        )
    assert not (tmp_path / "mix").exists()  # refused before anything was written
    run = tiny_run(epochs=4, taxonomy=str(taxonomy), dataset_weights={"skeleton-npz2": 2})
    metrics = train([f"skeleton-npz:{first}", f"skeleton-npz:{second}"], tmp_path / "mix", run, progress=False)
    assert set(metrics) == {"skeleton-npz1", "skeleton-npz2"} and metrics["skeleton-npz2"]["n"] == 2 * 1
    labels = json.loads((tmp_path / "mix" / "class_label.json").read_text())
    assert list(labels.values()) == ["wave", "swing_arms", "clap", "spread"]  # the taxonomy's order
    saved = json.loads((tmp_path / "mix" / "eval_results.json").read_text())
    assert set(saved["datasets"]) == {"skeleton-npz1", "skeleton-npz2"}

    # Sampling: 40 vs 6 sequences. dataset_balance 0 -> each dataset half the draws; 1 -> natural shares.
    loaded = [load_dataset(f"skeleton-npz:{p}", "train") for p in (first, second)]
    vocabulary, maps = build_vocabulary(loaded, "taxonomy", load_taxonomy(taxonomy))
    sets = [relabel(d, m, vocabulary.all) for d, m in zip(loaded, maps)]
    for balance, share in ((0.0, 0.5), (1.0, 6 / 46)):
        sampler = BalancedSampler(sets, epoch_size=4000, dataset_balance=balance, class_balance=1.0, seed=0)
        sources = np.array([key.source for key in sampler])
        assert abs((sources == 1).mean() - share) < 0.03
    plain = BalancedSampler(sets, dataset_balance=1.0, class_balance=1.0, seed=0)
    keys = list(plain)  # natural weights: a permutation, every sequence once
    assert sorted((k.source, k.index) for k in keys) == [(s, i) for s, d in enumerate(sets) for i in range(len(d))]
    halves = [list(BalancedSampler(sets, dataset_balance=0.0, seed=0, rank=r, world=2)) for r in (0, 1)]
    assert len(halves[0]) == len(halves[1]) == 23 and not {k.position for k in halves[0]} & {
        k.position for k in halves[1]
    }


def test_run_config_errors_name_the_key_and_recipes_resolve(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown keys \['hidden'\] in model.pose_model"):
        RunConfig.from_dict({"model": {"pose_model": {"hidden": 8}}})
    with pytest.raises(ConfigError, match="hidden_dim"):
        RunConfig.from_dict({"model": {"pose_model": {"hidden_dim": 30, "heads": 4}}})
    with pytest.raises(ConfigError, match="min_confidence"):
        RunConfig.from_dict({"preprocessing": {"min_confidence": 2.0}})
    with pytest.raises(ConfigError, match="unknown train keys"):
        RunConfig.from_dict({"train": {"epoch": 3}})
    with pytest.raises(ConfigError, match="calibration_split"):
        RunConfig.from_dict({"train": {"calibration_split": 0.7}})
    with pytest.raises(
        ConfigError, match=r"dataset_weights must map dataset names to numbers > 0, got \{'ur-fall': -1\}"
    ):
        RunConfig.from_dict({"train": {"dataset_weights": {"ur-fall": -1}}})
    weighted = RunConfig.from_dict({"train": {"dataset_weights": {"ur-fall": 3}}}).train
    assert weighted.weights_for(["penn-action", "ur-fall"]) == [1.0, 3.0]
    with pytest.raises(
        ConfigError, match=r"names \['nw-ucla'\], which this run does not train on; its datasets are \['penn-action'\]"
    ):
        RunConfig.from_dict({"train": {"dataset_weights": {"nw-ucla": 2}}}).train.weights_for(["penn-action"])
    with pytest.raises(ConfigError, match="augment.speed must be a"):
        RunConfig.from_dict({"augment": {"speed": 1.2}})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        RunConfig.from_file(bad)
    with pytest.raises(ConfigError, match="neither a file nor a packaged recipe"):
        RunConfig.from_file("no_such_recipe")
    universal = RunConfig.from_file("universal")
    assert len(universal.data) == 8 and all(":" in spec for spec in universal.data)
    with pytest.raises(ConfigError, match="no training data"):
        train(None, tmp_path / "x", RunConfig())


def test_recipe_data_paths_are_relative_to_data_root(data_dir, tmp_path):
    recipe = tmp_path / "recipe.json"
    run = tiny_run(epochs=1).to_dict()
    run["data"] = [f"skeleton-npz:{data_dir.name}"]
    recipe.write_text(json.dumps(run))
    metrics = train(None, tmp_path / "out", RunConfig.from_file(recipe), data_root=data_dir.parent, progress=False)
    assert metrics["n"] == 12
    assert json.loads((tmp_path / "out" / "training_args.json").read_text())["data"] == [f"skeleton-npz:{data_dir}"]


def test_no_config_chooses_a_small_model_and_schedule_from_the_data(data_dir, tmp_path):
    """A few dozen clips: hidden 64, 2 layers, one short clip, many epochs (all recorded), not the published size."""
    from unihar.data.datasets import load_dataset
    from unihar.training.defaults import default_schedule, summarize

    train(f"skeleton-npz:{data_dir}", tmp_path / "auto", epochs=1, progress=False)
    config = json.loads((tmp_path / "auto" / "config.json").read_text())
    assert config["pose_model"]["hidden_dim"] == 64 and config["pose_model"]["layers"] == 2
    preprocessing = config["preprocessing"]
    assert (
        preprocessing["clips"] == 1
        and preprocessing["clip_len"] <= 20
        and 1.5 <= preprocessing["window_seconds"] <= 4.0
    )
    weights = weights_of(tmp_path / "auto")
    assert sum(t.numel() for t in weights.values()) < 300_000
    chosen = json.loads((tmp_path / "auto" / "training_args.json").read_text())["chosen_from_data"]
    assert chosen["model"]["pose_model"]["hidden_dim"] == 64 and chosen["train"]["eval_every"] >= 1
    summary = summarize([load_dataset(f"skeleton-npz:{data_dir}", "train")], 2)
    assert default_schedule(summary)["epochs"] == 500  # 22 sequences: the most epochs, ~11 000 samples
    assert default_schedule(dataclasses.replace(summary, sequences=1000))["epochs"] == 50
    assert default_schedule(dataclasses.replace(summary, sequences=5000))["epochs"] == 20


@pytest.mark.slow
def test_module_entry_reports_bad_input_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "unihar.training", "--data", "penn-action:/no/such/dir", "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
