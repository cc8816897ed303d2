"""Teaching new actions from a few clips: how well they are recognised, what the old ones keep, how long.

KARD (../shared/data/kard, 18 actions, 10 subjects x 3 takes, the Kinect's own 2D screen projection)
holds actions the bundled model does not know. Six of them are taught from the first K takes of subjects
s01-s04; every take of subjects s05-s10 is held out (18 per action). Reported per K:

- top-1 of the held-out clips of the taught actions, over all of the taught model's classes;
- of the held-out clips of KARD's other actions: how many keep their top answer among the old classes,
  and how many a new action now claims;
- Penn Action test and NW-UCLA (view 3) top-1 before and after (the bundled model's benchmarks);
- the wall time of teaching (pose extraction excluded: KARD comes as keypoints).

Usage:  python benchmarks/teach.py [--examples 1 5 10] [--data-root ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from unihar.data.datasets import load_dataset
from unihar.loading import load_model
from unihar.teaching import teach_model
from unihar.training.evaluation import evaluate, predict_sequences

REPO = Path(__file__).resolve().parents[1]
KARD_ACTIONS = [
    "horizontal_arm_wave", "high_arm_wave", "two_hand_wave", "catch_cap", "high_throw", "draw_x", "draw_tick",
    "toss_paper", "forward_kick", "side_kick", "take_umbrella", "bend", "clap", "walk", "phone_call", "drink",
    "sit_down", "stand_up",
]  # fmt: skip
TAUGHT = ["two_hand_wave", "toss_paper", "forward_kick", "side_kick", "take_umbrella", "drink"]
# KARD's 15 joints in file order (hand -> wrist, foot -> ankle, as its README advises); the torso point is dropped
KARD_JOINTS = [
    "head", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "torso", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
]  # fmt: skip
KEPT = [i for i, name in enumerate(KARD_JOINTS) if name != "torso"]
TEACH_SUBJECTS, HELD_SUBJECTS = range(1, 5), range(5, 11)


def kard_folders(kard: Path, examples: int, out: Path) -> tuple[Path, Path]:
    """skeleton-npz folders: ``teach`` (``examples`` takes of each taught action) and ``held`` (the rest)."""
    for name, classes in (("teach", TAUGHT), ("held", KARD_ACTIONS)):
        (out / name / "train").mkdir(parents=True)
        meta = {"joints": [KARD_JOINTS[i] for i in KEPT], "classes": classes, "fps": 30}
        (out / name / "dataset.json").write_text(json.dumps(meta))
    for action, label in enumerate(KARD_ACTIONS, start=1):
        taken = 0
        for path in sorted((kard / "kard_screen").glob(f"a{action:02d}_*_screen.txt")):
            subject = int(path.stem.split("_")[1][1:])
            uv = np.loadtxt(path).reshape(-1, 15, 3)[:, KEPT, :2]
            keypoints = np.concatenate([uv, np.ones_like(uv[..., :1])], axis=-1).astype(np.float32)
            if label in TAUGHT and subject in TEACH_SUBJECTS and taken < examples:
                np.savez(out / "teach" / "train" / path.stem, keypoints=keypoints, label=TAUGHT.index(label))
                taken += 1
            elif subject in HELD_SUBJECTS:
                np.savez(out / "held" / "train" / path.stem, keypoints=keypoints, label=action - 1)
    return out / "teach", out / "held"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # joint-layout notices of the datasets, printed once per load
    base = load_model()
    benchmarks = {
        "Penn Action test": load_dataset(f"penn-action:{args.data_root / 'penn-action-labels'}", "test"),
        "NW-UCLA view 3": load_dataset(f"nw-ucla:{args.data_root / 'nw-ucla'}", "test"),
    }
    before = {name: evaluate(base, data).metrics()["top1"] for name, data in benchmarks.items()}
    print(
        "| examples per action | taught actions, held-out top-1 | old actions: top answer kept / claimed by a "
        "new one | " + " | ".join(f"{n} (base {v:.4f})" for n, v in before.items()) + " | teaching wall time |"
    )
    print("|---:|---:|---:|" + "---:|" * len(before) + "---:|")
    for examples in args.examples:
        with tempfile.TemporaryDirectory() as tmp:
            teach, held = kard_folders(args.data_root / "kard", examples, Path(tmp))
            started = time.perf_counter()
            taught, report = teach_model(base, f"skeleton-npz:{teach}")
            seconds = time.perf_counter() - started
            data = load_dataset(f"skeleton-npz:{held}").to_layout(base.preprocessing.layout)
        truth = [data.classes[label] for label in data.labels]
        after, old = predict_sequences(taught, data), predict_sequences(base, data)
        answers = [taught.labels[i] for i in after.argmax(1)]
        new = np.array([name in report.added for name in truth])
        top1 = np.mean([a == t for a, t, n in zip(answers, truth, new) if n])
        kept = (after[~new, : base.num_classes].argmax(1) == old[~new].argmax(1)).mean()
        claimed = np.mean([answers[i] in report.added for i in np.flatnonzero(~new)])
        scores = " | ".join(f"{evaluate(taught, d).metrics()['top1']:.4f}" for d in benchmarks.values())
        print(
            f"| {examples} | {top1:.3f} ({new.sum()} clips) | {kept:.3f} / {claimed:.3f} ({(~new).sum()} clips) | "
            f"{scores} | {seconds:.1f} s |"
        )


if __name__ == "__main__":
    main()
