"""torchrun with 2 CPU processes (gloo): DistributedDataParallel training through ``-m unihar.training``."""

import csv
import json
import os
import subprocess
import sys

import pytest

from test_training import make_dataset, tiny_run


@pytest.mark.slow
def test_torchrun_two_gloo_processes(tmp_path):
    data = make_dataset(tmp_path / "waves")
    config = tmp_path / "run.json"
    run = tiny_run(epochs=10)
    run.train.batch_size = 4  # per process: the same global batch (8) as the single-process tests
    config.write_text(json.dumps(run.to_dict()))
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "unihar.training",
            "--data",
            f"skeleton-npz:{data}",
            "--out",
            str(out),
            "--config",
            str(config),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in proc.stderr
    assert json.loads((out / "training_args.json").read_text())["world_size"] == 2
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 10  # written once (rank 0), not once per process
    result = json.loads((out / "eval_results.json").read_text())
    assert result["n"] == 12 and result["top1"] >= 0.9
    assert proc.stdout.count("top1=") == 1
