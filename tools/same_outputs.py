"""Record, or compare against a record, what `unihar predict --json` prints for every committed clip.

A refactoring that should not change behaviour is checked by recording before and comparing after:

    python tools/same_outputs.py record /tmp/before      # on the old commit
    python tools/same_outputs.py check /tmp/before       # on the new one: exit 1 unless byte-identical

Each clip runs in its own `unihar predict` process, exactly as a user runs it.
"""

from __future__ import annotations

import argparse
import difflib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIPS = sorted(p for p in (ROOT / "tests" / "data" / "videos").iterdir() if p.suffix in {".mp4", ".avi"})


def predict_json(clip: Path) -> bytes:
    command = [
        str(Path(sys.executable).parent / "unihar"),
        "predict",
        str(clip.relative_to(ROOT)),
        "--json",
        "--topk",
        "5",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{clip.name}: unihar predict exited {done.returncode}: {done.stderr.decode()[-2000:]}")
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["record", "check"])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    different = 0
    for clip in CLIPS:
        output = predict_json(clip)
        recorded = args.folder / f"{clip.name}.json"
        if args.action == "record":
            recorded.write_bytes(output)
            print(f"{clip.name}: recorded {len(output)} bytes")
        elif recorded.read_bytes() == output:
            print(f"{clip.name}: identical ({len(output)} bytes)")
        else:
            different += 1
            before, after = recorded.read_text().splitlines(), output.decode().splitlines()
            print(f"{clip.name}: DIFFERENT")
            print("\n".join(list(difflib.unified_diff(before, after, "recorded", "now", lineterm=""))[:20]))
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
