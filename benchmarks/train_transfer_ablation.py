"""Does normalisation / augmentation make Penn Action -> MediaPipe transfer work? Train variants, measure.

Each variant is the Penn-Action-only recipe (``src/unihar/training/recipes/penn_action.json``)
with one thing changed, trained with ``unihar train`` for ``--epochs`` epochs, then measured with
``benchmarks/train_default_model.py``: Penn Action official test top-1 (annotated joints) and the
MediaPipe ``clean_and_jerk.mp4`` prediction.

    python benchmarks/train_transfer_ablation.py --epochs 15 --out /tmp/unihar-ablation
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "src" / "unihar" / "training" / "recipes" / "penn_action.json"
PENN = REPO.parent / "shared" / "data" / "penn-action-labels"

OFF = {
    "scale": [1.0, 1.0],
    "aspect": 0.0,
    "rotation_deg": 0.0,
    "shift": 0.0,
    "flip_prob": 0.0,
    "swap_sides_prob": 0.0,
    "joint_dropout": 0.0,
    "frame_dropout": 0.0,
    "noise_std": 0.0,
    "confidence_jitter": 0.0,
    "speed": [1.0, 1.0],
    "min_crop": 1.0,
}
VARIANTS = {
    "recipe": {},
    "no_swap_sides": {"augment": {"swap_sides_prob": 0.0}},
    "no_augment": {"augment": OFF},
    "no_normalization": {"preprocessing": {"normalization": "none"}},
}


def merged(base: dict, change: dict) -> dict:
    out = copy.deepcopy(base)
    for section, values in change.items():
        out.setdefault(section, {}).update(values)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path("/tmp/unihar-ablation"))
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    base = json.loads(RECIPE.read_text())
    results = {}
    for name in args.variants:
        run = merged(base, VARIANTS[name])
        run["train"].update(epochs=args.epochs, num_threads=args.threads, eval_every=args.epochs)
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        (args.out / f"{name}.json").write_text(json.dumps(run, indent=2))
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "unihar.training",
                "--data",
                f"penn-action:{PENN}",
                "--out",
                str(folder),
                "--config",
                str(args.out / f"{name}.json"),
                "--overwrite",
                "--no-progress",
            ],
            check=True,
        )
        seconds = time.perf_counter() - t0
        report = args.out / f"{name}.report.json"
        subprocess.run(
            [
                sys.executable,
                str(REPO / "benchmarks" / "train_default_model.py"),
                "--weights",
                str(folder),
                "--recipe",
                "penn_action",
                "--json",
                str(report),
                "--threads",
                str(args.threads),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        results[name] = {"train_seconds": round(seconds), **json.loads(report.read_text())}
        print(name, json.dumps(results[name]), flush=True)
    (args.out / "ablation.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
