"""How fast is the network, and what does the factorized attention buy?

Measures, on this machine, for the published sizes (D=128, 4 layers, 8 heads, Tm=30, long-term on):
  1. pose-only latency of one (1, 4, 30, 17, 3) window, and batch throughput (windows per second);
  2. multimodal latency of one window (pose + (1, 4, 30, 3, 224, 224) frames, ResNet-18, concat fusion);
  3. factorized (temporal then spatial) vs joint space-time attention at the same width and depth, for
     T=30 with J=17 and J=25: FLOPs counted by torch.utils.flop_counter (attention core = the
     batched matmuls QK^T and AV; total = everything) and wall time of one (1, 4, 30, J, 3) window.
The "joint" encoder keeps every weight of the factorized one (2 blocks per layer) but each block attends
over all T*J tokens of the clip, as a plain space-time ViT would.

Usage:  python benchmarks/model_speed.py [--repeats 20] [--threads N] [--json]
Timings are medians over --repeats runs after warm-up; compare them as ratios within one run.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Callable

import torch
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from unihar import build_model
from unihar.config import default_config
from unihar.models.unihar import PoseFormerFactorized


class JointSpaceTimeEncoder(PoseFormerFactorized):
    """The same weights as :class:`PoseFormerFactorized`, but every block attends over all T*J tokens."""

    def forward(self, x: Tensor) -> Tensor:
        n, t, j, _ = x.shape
        tokens = self.embed(self.prepare_input(x)) + self.joint_type_emb.weight + self.position_embedding(t)
        s = tokens.reshape(n, t * j, -1)
        for first, second in self.blocks:
            s = second(first(s))
        return s.reshape(n, t, j, -1)


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def count_flops(module: torch.nn.Module, x: Tensor) -> tuple[int, int]:
    """(attention-core FLOPs, total FLOPs) of one forward, counted op by op."""
    counter = FlopCounterMode(display=False)
    # The math backend spells attention out as batched matmuls (QK^T and AV), which the counter sees.
    with sdpa_kernel(SDPBackend.MATH), counter:
        module(x)
    per_op = counter.get_flop_counts()["Global"]
    attention = sum(n for op, n in per_op.items() if "bmm" in str(op))
    return attention, counter.get_total_flops()


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--batch", type=int, default=64, help="windows per batch for the throughput line")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results: dict[str, object] = {
        "machine": f"{cpu_name()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
    }

    with torch.inference_mode():
        pose_only = build_model(default_config(image=False)).eval()
        window = torch.randn(1, 4, 30, 17, 3)
        results["pose_only_window_ms"] = 1000 * median_seconds(lambda: pose_only(window), args.repeats)
        batch = torch.randn(args.batch, 4, 30, 17, 3)
        seconds = median_seconds(lambda: pose_only(batch), max(3, args.repeats // 4), warmup=1)
        results["pose_only_windows_per_s"] = args.batch / seconds
        results["pose_only_batch"] = args.batch

        multimodal = build_model(default_config(image=True)).eval()
        frames = torch.randn(1, 4, 30, 3, 224, 224)
        results["multimodal_window_ms"] = 1000 * median_seconds(lambda: multimodal(window, frames), 3, warmup=1)

    rows = []
    cfg = default_config()["pose_model"]
    for joints in (17, 25):
        kwargs = dict(joints=joints, hidden_dim=cfg["hidden_dim"], layers=cfg["layers"], heads=cfg["heads"], max_seq_len=30)
        factorized = PoseFormerFactorized(**kwargs).eval()
        joint = JointSpaceTimeEncoder(**kwargs).eval()
        joint.load_state_dict(factorized.state_dict())
        clips = torch.randn(4, 30, joints, 3)  # one window = 4 clips folded into the batch, as the model does
        f_attn, f_total = count_flops(factorized, clips)
        j_attn, j_total = count_flops(joint, clips)
        with torch.inference_mode():
            f_ms = 1000 * median_seconds(lambda: factorized(clips), args.repeats)
            j_ms = 1000 * median_seconds(lambda: joint(clips), args.repeats)
        rows.append({
            "T": 30, "J": joints,
            "factorized_attention_gflops": f_attn / 1e9, "joint_attention_gflops": j_attn / 1e9,
            "attention_flops_ratio": j_attn / f_attn,
            "factorized_total_gflops": f_total / 1e9, "joint_total_gflops": j_total / 1e9,
            "total_flops_ratio": j_total / f_total,
            "factorized_ms": f_ms, "joint_ms": j_ms, "time_ratio": j_ms / f_ms,
        })
    results["attention"] = rows

    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"machine: {results['machine']}")
    print(f"pose-only window (1, 4, 30, 17, 3): {results['pose_only_window_ms']:.1f} ms")
    print(f"pose-only throughput, batch {args.batch}: {results['pose_only_windows_per_s']:.0f} windows/s")
    print(f"multimodal window (+ 120 frames 224x224, ResNet-18): {results['multimodal_window_ms']:.0f} ms")
    print("\n| T | J | attention GFLOPs factorized / joint (ratio) | total GFLOPs factorized / joint (ratio) | ms factorized / joint (ratio) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['T']} | {r['J']} | {r['factorized_attention_gflops']:.4f} / {r['joint_attention_gflops']:.4f} "
            f"({r['attention_flops_ratio']:.1f}x) | {r['factorized_total_gflops']:.3f} / {r['joint_total_gflops']:.3f} "
            f"({r['total_flops_ratio']:.2f}x) | {r['factorized_ms']:.1f} / {r['joint_ms']:.1f} ({r['time_ratio']:.2f}x) |"
        )


if __name__ == "__main__":
    main()
