"""How fast is the network, against the published implementation, and what does each option buy?

1. Side by side with the published code (m97j/har-safety-ai, given with --published-code DIR), in one
   process, with the same weights (our state dict loaded into its modules: the key layout is the
   same by design), at the published sizes (D=128, 4 layers, 8 heads, Tm=30, long-term encoder on,
   J=17, ResNet-18, concat fusion): a pose-only window (1, 4, 30, 17, 3) at batch 1 and at batch 32,
   and the direct multimodal window (+ (1, 4, 30, 3, 224, 224) frames). Ours runs as it ships
   (PyTorch eager), and optionally with torch.compile (--compile) and onnxruntime, float and int8
   (--onnx). The rounds alternate between the implementations, so they share the machine's load;
   the outputs are checked to agree.
2. (--onnx) What a part of the exported graph costs: one clip through the clip encoder, in a
   session of its own (what OnnxModel runs) and through the whole graph with every other input at its
   smallest (onnxruntime runs every node whatever outputs are asked for).
3. (--int8-data PENN_ACTION_DIR) What int8 does to a trained model: the bundled model (Penn Action,
   pose-only) over every window of the official test split, float PyTorch against int8 onnxruntime
   (and float onnxruntime): probability change, top-1 agreement and accuracy.
4. Factorized (temporal then spatial) vs joint space-time attention at the same width and depth,
   for T=30 with J=17 and J=25: FLOPs counted by torch.utils.flop_counter (attention core = the
   batched matmuls QK^T and AV; total = everything) and wall time of one window. The "joint" encoder
   keeps every weight of the factorized one (2 blocks per layer) but each block attends over all
   T*J tokens of the clip, as a plain space-time ViT would.

5. The pose encoder's linear layers alone: PyTorch's default float32 GEMM (MKL) against oneDNN's,
   which the model's CPU inference path uses (GFLOP per CPU-second: exact with --threads 1).

Usage:  python benchmarks/model_speed.py --published-code ../har-safety-ai [--threads 2] [--repeats 20]
            [--compile] [--onnx] [--int8-data ../shared/data/penn-action-labels] [--skip-attention] [--json]
Timings are medians; compare them as ratios within one run, and report the machine's load beside them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from unihar import build_model
from unihar.config import default_config
from unihar.models.network import PoseFormerFactorized

SHAPES = {  # name -> (batch, with images)
    "pose-only window, batch 1": (1, False),
    "pose-only window, batch 32": (32, False),
    "multimodal window (120 frames 224 px)": (1, True),
}


# ---------------------------------------------------------------------------------------- the published code
def published_model(code_dir: Path, config: dict) -> nn.Module:
    """The published implementation at ``config``'s sizes, built from its own modules.

    Its ``MultiScaleTemporalModel`` asks torchvision for ImageNet weights when it builds the image
    branch; to stay offline the branch is built without them (the weights are loaded afterwards anyway).
    """
    sys.path[:0] = [str(code_dir), str(code_dir / "models")]  # its modules import each other both ways
    multiscale = importlib.import_module("models.multiscale_model")
    pose_module = importlib.import_module("models.pose.poseformer_factorized")
    vision = importlib.import_module("models.vision.image_encoder")
    concat = importlib.import_module("models.fusion.concat_ln")
    pose_cfg, lt, img = config["pose_model"], config["long_term_model"], config["image_model"]
    pose = pose_module.PoseFormerFactorized(
        joints=pose_cfg["joints"],
        in_ch=3,
        dim=pose_cfg["hidden_dim"],
        layers=pose_cfg["layers"],
        heads=pose_cfg["heads"],
        max_T=pose_cfg["max_seq_len"],
        drop=config["regularization"]["short_term_dropout"],
    )
    model = multiscale.MultiScaleTemporalModel(
        pose,
        config["classifier"]["num_classes"],
        enable_long_term=lt["enabled"],
        long_heads=lt["heads"],
        long_layers=lt["layers"],
        drop=lt["dropout"],
        multimodal=False,
    )
    if img["enabled"]:
        model.image_encoder = vision.ImageEncoder(img["feature_dim"], pretrained=False, backbone=img["backbone"])
        model.fusion = concat.MMFusionConcatLN(
            pose_cfg["hidden_dim"],
            img["feature_dim"],
            config["fusion_model"]["output_dim"],
            config["classifier"]["num_classes"],
        )
        model.multimodal, model.fusion_mode = True, "concat"
    return model


# ---------------------------------------------------------------------------------------- timing
def interleaved_medians(
    runs: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, dict[str, float]]:
    """Median seconds of each run, wall clock and CPU time of this process (all its threads); every
    round runs each once, in an order that rotates, so that all of them see the same load.

    On a machine shared with other jobs the wall clock measures the queue as much as the code; the CPU
    time measures the work (with 1 thread exactly; with more it also counts threads spinning at barriers)."""
    for fn in runs.values():
        for _ in range(warmup):
            fn()
    names = list(runs)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            start, start_cpu = time.perf_counter(), time.process_time()
            runs[name]()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {name: {"wall": statistics.median(wall[name]), "cpu": statistics.median(cpu[name])} for name in names}


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ---------------------------------------------------------------------------------------- 1. side by side
def side_by_side(args: argparse.Namespace) -> list[dict]:
    torch.manual_seed(0)
    config = default_config(num_classes=500, joints=17, image=True)
    ours = build_model(config).eval()
    theirs = published_model(args.published_code, config).eval() if args.published_code else None
    if theirs is not None:
        theirs.load_state_dict(ours.state_dict(), strict=True)
    compiled = None
    if args.compile:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True  # constant weights: prepacked for oneDNN, folded where possible
        compiled = torch.compile(ours, dynamic=False)
    onnx_models = {with_images: onnx_runtimes(ours, with_images) if args.onnx else {} for with_images in (False, True)}

    rows = []
    for shape, (batch, with_images) in SHAPES.items():
        pose = torch.randn(batch, 4, 30, 17, 3)
        images = torch.randn(batch, 4, 30, 3, 224, 224) if with_images else None
        runs: dict[str, Callable[[], Tensor]] = {"ours (PyTorch)": lambda: ours(pose, images)}
        if theirs is not None:
            runs["published"] = lambda: theirs(pose, images)
        if compiled is not None:
            runs["ours (torch.compile)"] = lambda: compiled(pose, images)
        for name, runtime in onnx_models[with_images].items():
            runs[name] = lambda runtime=runtime: runtime(pose, images)
        with torch.inference_mode():
            reference = ours(pose, images)
            agreement = {name: float((fn() - reference).abs().max()) for name, fn in runs.items()}
            start = time.perf_counter()
            repeats = args.repeats if not with_images and batch == 1 else max(3, args.repeats // 4)
            medians = interleaved_medians(runs, repeats)
        rows.append(
            {
                "shape": shape,
                "batch": batch,
                "repeats": repeats,
                "ms_per_window": {name: 1000 * m["wall"] / batch for name, m in medians.items()},
                "cpu_ms_per_window": {name: 1000 * m["cpu"] / batch for name, m in medians.items()},
                "max_abs_logit_diff_vs_ours": agreement,
                "seconds": time.perf_counter() - start,
                "load": load_average(),
            }
        )
        print_row(rows[-1])
    return rows


def onnx_runtimes(model: nn.Module, with_images: bool) -> dict[str, object]:
    """The model exported (with its image branch, or its pose path only), float and int8, run by onnxruntime."""
    from unihar.inference.onnx_backend import OnnxModel, export_onnx

    folder = Path(tempfile.mkdtemp(prefix="unihar-speed-"))
    out = {}
    for name, quantize in (("ours (onnxruntime)", False), ("ours (onnxruntime int8)", True)):
        path = export_onnx(
            model, folder / f"images{with_images}-int8{quantize}.onnx", with_images=with_images, quantize=quantize
        )
        out[name] = OnnxModel(path, threads=torch.get_num_threads())
    return out


def print_row(row: dict) -> None:
    cells = []
    for name in row["ms_per_window"]:
        cells.append(f"{name} {row['ms_per_window'][name]:.1f} ms (CPU {row['cpu_ms_per_window'][name]:.1f} ms)")
    print(f"{row['shape']}: " + "; ".join(cells) + f"  [load {row['load']}]", flush=True)


# ---------------------------------------------------------------------------------------- 2. ONNX parts
def onnx_part_costs(args: argparse.Namespace) -> dict:
    """One clip through the clip encoder: in its own session (what OnnxModel runs), and through the
    whole exported graph with every other input at its smallest (what a single session would cost)."""
    import onnxruntime as ort

    from unihar.inference.onnx_backend import OnnxModel, export_onnx

    torch.manual_seed(0)
    model = build_model(default_config(num_classes=500, joints=17, image=True)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / "m.onnx")
        runtime = OnnxModel(path, threads=torch.get_num_threads())
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.log_severity_level = torch.get_num_threads(), 3
        whole = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        clip = torch.randn(1, 30, 17, 3)
        smallest = {"pose": np.zeros((1, 1, 1, 17, 3), np.float32), "images": np.zeros((1, 1, 1, 3, 1, 1), np.float32)}
        medians = interleaved_medians(
            {
                "own session: one clip": lambda: runtime.encode_clips(clip),
                "own session: a clip of one frame": lambda: runtime.encode_clips(clip[:, :1]),
                "whole graph: one clip": lambda: whole.run(
                    ["skeleton_tokens"], {**smallest, "skeleton_units": clip.numpy()}
                ),
                "whole graph: a clip of one frame": lambda: whole.run(
                    ["skeleton_tokens"], {**smallest, "skeleton_units": clip[:, :1].numpy()}
                ),
            },
            args.repeats,
        )
        with torch.inference_mode():
            medians.update(interleaved_medians({"PyTorch: one clip": lambda: model.encode_clips(clip)}, args.repeats))
    result = {name: 1000 * m["wall"] for name, m in medians.items()}
    result.update({f"{name} (CPU)": 1000 * m["cpu"] for name, m in medians.items()})
    result["load"] = load_average()
    print(
        "clip encoder of the exported multimodal model (ms): "
        + ", ".join(f"{k} {v:.2f}" for k, v in result.items() if k != "load"),
        flush=True,
    )
    return result


# ---------------------------------------------------------------------------------------- 3. int8 on a trained model
def int8_accuracy(data: Path) -> dict:
    """The bundled model over the Penn Action test split: float PyTorch vs onnxruntime float and int8."""
    from unihar.data.datasets.penn_action import load_penn_action
    from unihar.inference.engine import run_sequences
    from unihar.inference.onnx_backend import OnnxModel, export_onnx
    from unihar.loading import load_model

    dataset = load_penn_action(data, "test")
    model = load_model()
    with tempfile.TemporaryDirectory() as tmp:
        threads = torch.get_num_threads()
        runtimes = {
            "onnxruntime float": OnnxModel(export_onnx(model, Path(tmp) / "f.onnx"), threads=threads),
            "onnxruntime int8": OnnxModel(export_onnx(model, Path(tmp) / "q.onnx", quantize=True), threads=threads),
        }
        args = dict(fps=dataset.fps, pose_layout=dataset.layout)
        start = time.perf_counter()
        reference = run_sequences(model, dataset.sequences, **args)
        seconds = {"PyTorch": time.perf_counter() - start}
        windows = {}
        for name, runtime in runtimes.items():
            start = time.perf_counter()
            windows[name] = run_sequences(runtime, dataset.sequences, **args)
            seconds[name] = time.perf_counter() - start
    ref_probs = np.stack([w.probs for seq in reference for w in seq])
    result = {
        "videos": len(dataset.sequences),
        "windows": len(ref_probs),
        "seconds": seconds,
        "top1_video_accuracy": {"PyTorch": video_accuracy(reference, dataset.labels)},
    }
    for name, per_sequence in windows.items():
        probs = np.stack([w.probs for seq in per_sequence for w in seq])
        diff = np.abs(probs - ref_probs).max(axis=1)
        result[name] = {
            "max_abs_prob_diff": float(diff.max()),
            "mean_max_abs_prob_diff": float(diff.mean()),
            "p99_max_abs_prob_diff": float(np.quantile(diff, 0.99)),
            "window_top1_agreement": float((probs.argmax(1) == ref_probs.argmax(1)).mean()),
        }
        result["top1_video_accuracy"][name] = video_accuracy(per_sequence, dataset.labels)
    print("int8 on the bundled model (Penn Action test): " + json.dumps(result), flush=True)
    return result


def video_accuracy(per_sequence: list, labels: np.ndarray) -> float:
    """Top-1 of the mean of each video's window probabilities (how ``unihar eval`` scores a video)."""
    predicted = [np.mean([w.probs for w in windows], axis=0).argmax() for windows in per_sequence]
    return float(np.mean(np.asarray(predicted) == labels))


# ---------------------------------------------------------------------------------------- 4. factorized vs joint
class JointSpaceTimeEncoder(PoseFormerFactorized):
    """The same weights as :class:`PoseFormerFactorized`, but every block attends over all T*J tokens."""

    def encode(self, x: Tensor) -> Tensor:
        n, t, j, _ = x.shape
        tokens = self.embed(self.prepare_input(x)) + self.joint_type_emb.weight + self.position_embedding(t)
        grid = tokens.reshape(n, 1, t * j, -1)  # one "frame" holding every token: attention over all of them
        for first, second in self.blocks:
            grid = second(first(grid, across_frames=False), across_frames=False)
        return grid.reshape(n, t, j, -1)


def count_flops(module: nn.Module, x: Tensor) -> tuple[int, int]:
    """(attention-core FLOPs, total FLOPs) of one forward, counted op by op."""
    counter = FlopCounterMode(display=False)
    # The math backend spells attention out as batched matmuls (QK^T and AV), which the counter sees.
    with sdpa_kernel(SDPBackend.MATH), counter:
        module(x)
    per_op = counter.get_flop_counts()["Global"]
    attention = sum(n for op, n in per_op.items() if "bmm" in str(op))
    return attention, counter.get_total_flops()


def attention_table(args: argparse.Namespace) -> list[dict]:
    rows = []
    cfg = default_config()["pose_model"]
    for joints in (17, 25):
        kwargs = dict(
            joints=joints, hidden_dim=cfg["hidden_dim"], layers=cfg["layers"], heads=cfg["heads"], max_seq_len=30
        )
        factorized = PoseFormerFactorized(**kwargs).eval()
        joint = JointSpaceTimeEncoder(**kwargs).eval()
        joint.load_state_dict(factorized.state_dict())
        clips = torch.randn(4, 30, joints, 3)  # one window = 4 clips folded into the batch, as the model does
        f_attn, f_total = count_flops(factorized, clips)
        j_attn, j_total = count_flops(joint, clips)
        with torch.inference_mode():
            medians = interleaved_medians(
                {"factorized": lambda: factorized(clips), "joint": lambda: joint(clips)}, args.repeats
            )
        f_ms, j_ms = 1000 * medians["factorized"]["wall"], 1000 * medians["joint"]["wall"]
        rows.append(
            {
                "T": 30,
                "J": joints,
                "factorized_attention_gflops": f_attn / 1e9,
                "joint_attention_gflops": j_attn / 1e9,
                "attention_flops_ratio": j_attn / f_attn,
                "factorized_total_gflops": f_total / 1e9,
                "joint_total_gflops": j_total / 1e9,
                "total_flops_ratio": j_total / f_total,
                "factorized_ms": f_ms,
                "joint_ms": j_ms,
                "time_ratio": j_ms / f_ms,
            }
        )
    print(
        "\n| T | J | attention GFLOPs factorized / joint (ratio) | total GFLOPs factorized / joint (ratio) | ms "
        "factorized / joint (ratio) |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['T']} | {r['J']} | {r['factorized_attention_gflops']:.4f} / {r['joint_attention_gflops']:.4f} "
            f"({r['attention_flops_ratio']:.1f}x) | {r['factorized_total_gflops']:.3f} / {r['joint_total_gflops']:.3f} "
            f"({r['total_flops_ratio']:.2f}x) | {r['factorized_ms']:.1f} / {r['joint_ms']:.1f} "
            f"({r['time_ratio']:.2f}x) |"
        )
    return rows


def linear_layers(args: argparse.Namespace) -> list[dict]:
    """The pose encoder's linear layers alone (4096 tokens, D=128, MLP 512): PyTorch's default GEMM
    (MKL's sgemm) against oneDNN's, which the model's CPU inference path calls."""
    from unihar.models.network import _ONEDNN_LINEAR, _onednn_linear

    if _ONEDNN_LINEAR is None:
        print("this PyTorch has no oneDNN linear: skipped")
        return []
    rows = []
    for n_in, n_out in ((128, 128), (128, 512), (512, 128)):
        x, w, b = torch.randn(4096, n_in), torch.randn(n_out, n_in), torch.randn(n_out)
        with torch.inference_mode():
            medians = interleaved_medians(
                {"mkl": lambda: torch.nn.functional.linear(x, w, b), "onednn": lambda: _onednn_linear(x, w, b)},
                args.repeats * 5,
            )
        flops = 2 * x.shape[0] * n_in * n_out
        rows.append(
            {
                "shape": f"(4096, {n_in}) x ({n_in}, {n_out})",
                **{f"{k}_gflops_per_cpu_second": flops / m["cpu"] / 1e9 for k, m in medians.items()},
            }
        )
        print(
            f"linear {rows[-1]['shape']}, GFLOP per CPU-second: PyTorch default "
            f"{rows[-1]['mkl_gflops_per_cpu_second']:.0f}, "
            f"oneDNN {rows[-1]['onednn_gflops_per_cpu_second']:.0f}"
        )
    return rows


def markdown_table(rows: list[dict], key: str) -> str:
    """One row per shape, one column per implementation: ms per window (speed-up over the published code)."""
    names = list(rows[0][key])
    lines = ["| shape | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for row in rows:
        times = row[key]
        published = times.get("published")
        cells = [
            f"{times[n]:.1f}" + (f" ({published / times[n]:.2f}x)" if published and n != "published" else "")
            for n in names
        ]
        lines.append(f"| {row['shape']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--published-code", type=Path, default=None, help="a checkout of github.com/m97j/har-safety-ai")
    parser.add_argument("--threads", type=int, default=2, help="torch (and onnxruntime) threads")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--compile", action="store_true", help="also time torch.compile (minutes to compile on 2 cores)"
    )
    parser.add_argument("--onnx", action="store_true", help="also time onnxruntime, float and int8 (exports the model)")
    parser.add_argument(
        "--int8-data", type=Path, default=None, help="Penn Action labels folder: int8 on the bundled model"
    )
    parser.add_argument("--skip-attention", action="store_true", help="skip the factorized vs joint attention table")
    parser.add_argument("--json", type=Path, default=None, help="also write every number to this JSON file")
    args = parser.parse_args()
    if args.published_code is not None and not (args.published_code / "models" / "multiscale_model.py").is_file():
        parser.error(f"--published-code: {args.published_code} has no models/multiscale_model.py")
    torch.set_num_threads(args.threads)
    results: dict[str, object] = {
        "machine": f"{cpu_name()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "load_before": load_average(),
    }
    print(f"machine: {results['machine']}; load {results['load_before']}", flush=True)
    results["side_by_side"] = rows = side_by_side(args)
    print("\nwall clock, median ms per window:\n" + markdown_table(rows, "ms_per_window"))
    print("\nCPU time of the process, median ms per window:\n" + markdown_table(rows, "cpu_ms_per_window") + "\n")
    if args.onnx:
        results["onnx_parts"] = onnx_part_costs(args)
    if args.int8_data is not None:
        results["int8_bundled_model"] = int8_accuracy(args.int8_data)
    if not args.skip_attention:
        results["attention"] = attention_table(args)
    results["linear_layers"] = linear_layers(args)
    results["load_after"] = load_average()
    print(f"load after: {results['load_after']}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
