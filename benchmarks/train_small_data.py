"""Training on small data with no run config: how close do the defaults come to the best tuned settings?

Trains one dataset (default UT-Kinect, cross-subject split 1) with ``unihar train``'s defaults (no
``--config``: sizes, clip length and schedule chosen from the data, see ``unihar.training.defaults``),
then with hand-tuned variants, and reports the test top-1 and the wall time of each. The numbers are
quoted in docs/training.md.

    python benchmarks/train_small_data.py [--data ut-kinect:../shared/data/ut-kinect] [--variants defaults yaw45 ...]
        [--threads 1] [--out /tmp/unihar-small-data] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

# Each variant: run-config sections laid over the defaults (an empty dict *is* the defaults).
VARIANTS: dict[str, dict] = {
    "defaults": {},
    "yaw45": {"augment": {"camera_yaw": [-45, 45]}},
    "yaw90": {"augment": {"camera_yaw": [-90, 90]}},
    "yaw0": {"augment": {"camera_yaw": [0, 0], "camera_pitch": [0, 0], "camera_roll": [0, 0]}},
    "lr4e-3": {"train": {"lr": 0.004}},
    "samples2x": {"train": {"epochs": "2x"}},
    "samples0.5x": {"train": {"epochs": "0.5x"}},
    "wide": {"model": {"pose_model": {"hidden_dim": 128, "layers": 3, "heads": 8}}},
    "no_augment": {
        "augment": {
            "scale": [1, 1],
            "aspect": 0,
            "rotation_deg": 0,
            "shift": 0,
            "flip_prob": 0,
            "swap_sides_prob": 0,
            "joint_dropout": 0,
            "frame_dropout": 0,
            "noise_std": 0,
            "speed": [1, 1],
            "min_crop": 1,
        }
    },
    "clips2": {"preprocessing": {"clips": 2, "clip_len": 12}},
    "dropout": {"model": {"regularization": {"short_term_dropout": 0.1}}},
    "no_swap": {"augment": {"swap_sides_prob": 0.0}},
    "lr4e-3_samples2x": {"train": {"lr": 0.004, "epochs": "2x"}},
    "lr8e-3": {"train": {"lr": 0.008}},
    "deep3": {"model": {"pose_model": {"layers": 3}}},
    "hidden96": {"model": {"pose_model": {"hidden_dim": 96}}},
    "yaw45_no_swap": {"augment": {"camera_yaw": [-45, 45], "swap_sides_prob": 0.0}},
    # What `unihar train` did with no config before the defaults were chosen from the data (issue 11: 20
    # minutes for 433 clips): 4 clips x 30 frames per 4 s window, long-term encoder, dropout 0.1, raw
    # confidences, lr 1e-3, warm-up 2 epochs, 30 epochs, an evaluation after every epoch.
    "old_defaults": {
        "model": {
            "pose_model": {"hidden_dim": 64, "layers": 2, "heads": 4, "max_seq_len": 30},
            "regularization": {"short_term_dropout": 0.1},
            "long_term_model": {"enabled": True, "heads": 4, "layers": 1, "dropout": 0.1},
        },
        "preprocessing": {
            "clips": 4,
            "clip_len": 30,
            "window_seconds": 4.0,
            "stride_seconds": 1.0,
            "min_confidence": 0.0,
            "binarize_confidence": False,
        },
        "train": {"epochs": 30, "lr": 0.001, "warmup_epochs": 2, "eval_every": 1, "calibration_split": 0.0},
    },
}


def run_variant(data: str, name: str, overrides: dict, out: Path, threads: int) -> dict:
    from unihar.data.datasets import load_dataset
    from unihar.training import defaults
    from unihar.training.trainer import RunConfig, train

    sections = json.loads(json.dumps(overrides))
    train_section = sections.setdefault("train", {})
    factor = train_section.pop("epochs", None)
    if isinstance(factor, int):
        train_section["epochs"] = factor
    elif factor is not None:  # "2x": a multiple of the epochs the defaults choose
        summary = defaults.summarize([load_dataset(data, "train")], 0)
        train_section["epochs"] = max(1, int(round(defaults.default_schedule(summary)["epochs"] * float(factor[:-1]))))
    if threads:
        train_section["num_threads"] = threads
    run = RunConfig.from_dict(sections)
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    metrics = train(data, out / name, run, overwrite=True, progress=False)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
    chosen = json.loads((out / name / "training_args.json").read_text())
    return {
        "data": data.partition(":")[0],
        "variant": name,
        "overrides": overrides,
        "top1": metrics.get("top1"),
        "mean_class_acc": metrics.get("mean_class_acc"),
        "ece": metrics.get("ece"),
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "epochs": chosen["run_config"]["train"]["epochs"] or chosen["chosen_from_data"]["train"]["epochs"],
        "load": os.getloadavg()[0],
    }


def _cpu_seconds() -> float:
    """CPU time of this process (user + system): what a run costs whatever else shares the machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=f"ut-kinect:{SHARED / 'ut-kinect'}")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/unihar-small-data"))
    parser.add_argument("--json", type=Path, help="append each result to this JSON-lines file")
    args = parser.parse_args()
    for name in args.variants:
        result = run_variant(args.data, name, VARIANTS[name], args.out, args.threads)
        line = json.dumps(result)
        print(line, flush=True)
        if args.json:
            with args.json.open("a") as f:
                f.write(line + "\n")


if __name__ == "__main__":
    main()
