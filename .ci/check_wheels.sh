#!/usr/bin/env bash
# Prove that unihar[all,ray] with numpy 2 resolves from wheels alone (no source builds) for CPython 3.10 and
# 3.13 on Linux x86_64, as pip would install it there: a dry run, nothing is installed.
set -euo pipefail
pip="${1:-pip}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$pip" wheel --quiet --no-deps . -w "$work/dist"
wheel="$(ls "$work"/dist/unihar-*.whl)"
for version in 3.10 3.13; do
  "$pip" install --dry-run --quiet --ignore-installed --only-binary=:all: \
    --python-version "$version" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux2014_x86_64 \
    --target "$work/target-$version" --report "$work/report-$version.json" \
    "${wheel}[all,ray]" "numpy>=2"
  python3 - "$work/report-$version.json" "$version" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
versions = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in report["install"]}
assert int(versions["numpy"].split(".")[0]) >= 2, versions["numpy"]
shown = ", ".join(f"{name} {versions[name]}" for name in ("numpy", "torch", "ai-edge-litert", "opencv-python-headless", "onnxruntime", "ray") if name in versions)
print(f"CPython {sys.argv[2]}: resolves from wheels ({shown})")
PY
done
