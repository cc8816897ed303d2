"""Skeleton, inertial sensor, and both, on UTD-MHAD: leave-one-subject-out with ``unihar train``'s defaults.

The shared copy of UTD-MHAD holds subjects 1, 3, 5, 7 (the training half of the cross-subject
protocol), so each fold trains on three of them and tests on the fourth (``utd-mhad@S``). Every run is
``unihar train --data utd-mhad@S:PATH --modalities M --out DIR`` with nothing else: sizes, window,
schedule and the sensor's normalisation are chosen from the data. Reports the top-1 of every fold,
the mean, the fused model's top-1 when its sensor is dropped at test time, and the wall and CPU time
of each run with the machine's load. The numbers are quoted in docs/sensors.md.

    python benchmarks/imu_loso.py [--data ../shared/data/utd-mhad-train] [--folds 1 3 5 7]
        [--modalities skeleton,imu skeleton imu] [--threads 1] [--out /tmp/unihar-imu-loso] [--json results.jsonl]
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


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_fold(root: Path, fold: int, modalities: str, out: Path, threads: int) -> dict:
    import numpy as np

    from unihar.data.datasets import load_dataset
    from unihar.inference.engine import run_sequences
    from unihar.loading import load_model
    from unihar.training.evaluation import eval_view
    from unihar.training.trainer import RunConfig, train

    data = f"utd-mhad@{fold}:{root}"
    run = RunConfig.from_dict({"train": {"num_threads": threads}} if threads else {})
    folder = out / f"{modalities.replace(',', '+')}_s{fold}"
    load = os.getloadavg()[0]
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    metrics = train(data, folder, run, modalities=modalities.split(","), overwrite=True, progress=False)
    row = {
        "modalities": modalities,
        "test_subject": fold,
        "top1": metrics["top1"],
        "mean_class_acc": metrics["mean_class_acc"],
        "seconds": round(time.perf_counter() - start, 1),
        "cpu_seconds": round(_cpu_seconds() - cpu_start, 1),
        "load_before": round(load, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }
    model = load_model(folder)
    if len(model.modalities) > 1:  # the same fused model with its sensor dropped at test time
        view = eval_view(load_dataset(data, "test"), model.preprocessing.layout)
        windows = run_sequences(model, view.sequences, view.fps, pose_layout=view.layout)  # no recording attached
        probs = np.stack([np.mean([w.probs for w in seq], axis=0) for seq in windows])
        row["top1_without_imu"] = float((probs.argmax(axis=1) == view.labels).mean())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED / "utd-mhad-train")
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 3, 5, 7])
    parser.add_argument("--modalities", nargs="+", default=["skeleton,imu", "skeleton", "imu"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads per run (0: torch's default)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/unihar-imu-loso"))
    parser.add_argument("--json", type=Path, default=None, help="append one JSON line per run")
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"UTD-MHAD not found at {args.data} (see ../shared/data/utd-mhad-train/README.md)")
    rows = []
    for modalities in args.modalities:
        for fold in args.folds:
            row = run_fold(args.data, fold, modalities, args.out, args.threads)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.json is not None:
                with args.json.open("a") as f:
                    f.write(json.dumps(row) + "\n")
    print(f"\n| modalities | {' | '.join(f'test S{f}' for f in args.folds)} | mean | minutes per run |")
    print("|---|" + "---|" * (len(args.folds) + 2))
    for modalities in args.modalities:
        mine = [r for r in rows if r["modalities"] == modalities]
        mean = sum(r["top1"] for r in mine) / len(mine)
        minutes = sum(r["seconds"] for r in mine) / len(mine) / 60
        cells = " | ".join(f"{r['top1']:.3f}" for r in mine)
        print(f"| {modalities} | {cells} | **{mean:.3f}** | {minutes:.1f} |")
        if all("top1_without_imu" in r for r in mine):
            dropped = [r["top1_without_imu"] for r in mine]
            cells = " | ".join(f"{v:.3f}" for v in dropped)
            print(f"| {modalities}, sensor dropped at test | {cells} | {sum(dropped) / len(dropped):.3f} | |")


if __name__ == "__main__":
    main()
