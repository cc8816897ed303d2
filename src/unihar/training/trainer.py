"""The training loop, top to bottom: data -> model -> optimiser -> epochs -> ``save_pretrained`` folder.

Stage 1 (pose only) trains a model from scratch on skeleton sequences. Stage 2 starts from a stage-1
folder (``init``): it keeps its preprocessing and pose encoder, adds the image encoder and fusion when
the run config enables ``image_model``, and can freeze the pose encoder (``train.freeze_pose``).

Run it on one process (``unihar train``) or many (``torchrun --nproc_per_node N -m unihar.train``):
with ``WORLD_SIZE > 1`` the model is wrapped in DistributedDataParallel (gloo on CPU, NCCL on GPUs), each
rank sees its shard of every epoch, and rank 0 evaluates and writes the files.

Everything random derives from ``train.seed`` (per epoch, per sample), so the same command gives the
same weights, and a run resumed from ``checkpoint.pt`` continues as if it had never stopped.
"""
from __future__ import annotations

import copy
import csv
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from unihar.config import default_config
from unihar.data.datasets import SkeletonDataset, WindowDataset, load_dataset
from unihar.data.layouts import LAYOUTS, get_layout
from unihar.data.preprocess import PreprocessConfig
from unihar.errors import ConfigError, InputError
from unihar.training.augment import AugmentConfig, SkeletonAugment
from unihar.models import UniHAR, build_model
from unihar.training.evaluation import evaluate

__all__ = ["TrainConfig", "RunConfig", "train", "default_model_overrides"]

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.csv"
RECIPE_NAME = "training_args.json"
EVAL_NAME = "eval_results.json"


@dataclass
class TrainConfig:
    """Optimisation settings (the ``train`` section of a run config)."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 2.0
    min_lr_ratio: float = 0.01       # cosine decays to lr * min_lr_ratio
    label_smoothing: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    amp: str = "auto"                # auto: bf16/fp16 on CUDA, off on CPU; or "off", "bf16", "fp16"
    num_threads: int = 0             # torch CPU threads per process; 0 = torch's default
    eval_every: int = 1              # evaluate every N epochs (and always after the last)
    eval_split: str | None = None    # None: "val" if the dataset has one, else "test"; "" = no evaluation
    eval_batch_size: int = 64
    freeze_pose: bool = False        # stage 2: keep the pose encoder fixed
    keep_checkpoint: bool = False    # keep checkpoint.pt after a finished run


@dataclass
class RunConfig:
    """Everything a run needs besides the data: model overrides, preprocessing, optimisation, augmentation.

    A ``--config FILE`` (JSON) holds any of the four sections; missing keys keep their defaults.
    """

    model: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        unknown = set(data) - {"model", "preprocessing", "train", "augment"}
        if unknown:
            raise ConfigError(f"run config: unknown sections {sorted(unknown)}; expected model, preprocessing, train, augment")
        train_keys = set(TrainConfig.__dataclass_fields__)
        bad = set(data.get("train", {})) - train_keys
        if bad:
            raise ConfigError(f"run config: unknown train keys {sorted(bad)}; expected a subset of {sorted(train_keys)}")
        return cls(
            model=dict(data.get("model", {})),
            preprocessing=dict(data.get("preprocessing", {})),
            train=TrainConfig(**data.get("train", {})),
            augment=AugmentConfig.from_dict(data.get("augment", {})),
        )

    @classmethod
    def from_file(cls, path: str | Path) -> "RunConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"run config file not found: {path}")
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as err:
            raise ConfigError(f"run config {path} is not valid JSON: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "preprocessing": self.preprocessing, "train": asdict(self.train),
                "augment": self.augment.to_dict()}


def default_model_overrides(prep: PreprocessConfig) -> dict[str, Any]:
    """A small pose-only network: trains in minutes on a laptop CPU, a few MB on disk."""
    return {
        "pose_model": {"hidden_dim": 64, "layers": 2, "heads": 4, "max_seq_len": prep.clip_len},
        "regularization": {"short_term_dropout": 0.1},
        "long_term_model": {"enabled": prep.clips > 1, "heads": 4, "layers": 1, "dropout": 0.1},
        "image_model": {"enabled": False, "feature_dim": 128, "backbone": "resnet18"},
        "fusion_model": {"mode": "concat", "output_dim": 128},
    }


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# ---------------------------------------------------------------------------- distributed helpers
def _setup_distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device) from torchrun's environment; a plain run is rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, world, device


def _all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    if not dist.is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


# ---------------------------------------------------------------------------- the run
def _check_out_dir(out: Path, resume: bool, overwrite: bool) -> bool:
    """Returns True when a checkpoint to resume from exists. Refuses to clobber a folder it did not ask for."""
    ckpt = out / CHECKPOINT_NAME
    if resume and ckpt.is_file():
        return True
    if out.exists() and any(out.iterdir()) and not overwrite:
        hint = " (no checkpoint.pt to resume from)" if resume else "; pass --resume to continue it"
        raise InputError(f"output folder {out} is not empty{hint}; pass --overwrite to replace its files")
    return False


def _amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    if mode not in ("auto", "off", "bf16", "fp16"):
        raise ConfigError(f"train.amp must be auto, off, bf16 or fp16, got {mode!r}")
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if mode == "bf16" else torch.float16


def _lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up to 1, then cosine decay to ``min_ratio``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _log(rank: int, message: str) -> None:
    if rank == 0:
        print(message, file=sys.stderr, flush=True)


def train(
    data: str,
    out: str | Path,
    run: RunConfig | None = None,
    init: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    epochs: int | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    command: str | None = None,
    pose_workers: int = 1,
) -> dict[str, Any]:
    """Train on ``data`` (``FORMAT:PATH``) and write a ``save_pretrained`` folder to ``out``.

    ``pose_workers``: processes that extract poses from videos not yet cached (haa500, video-folder).
    Returns the final evaluation metrics (empty when there is no evaluation split).
    """
    run = copy.deepcopy(run) if run is not None else RunConfig()
    cfg = run.train
    if epochs is not None:
        cfg.epochs = epochs
    if batch_size is not None:
        cfg.batch_size = batch_size
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise ConfigError(f"epochs and batch size must be >= 1, got {cfg.epochs} and {cfg.batch_size}")
    out = Path(out)
    rank, world, device = _setup_distributed()
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    resuming, problem = False, None
    if rank == 0:
        try:
            resuming = _check_out_dir(out, resume, overwrite)
        except InputError as err:
            problem = str(err)
    if world > 1:  # every rank must agree on whether we resume, or stop together
        shared = [resuming, problem]
        dist.broadcast_object_list(shared, src=0)
        resuming, problem = shared
    if problem:
        if world > 1:
            dist.destroy_process_group()
        raise InputError(problem)

    # ---- data
    if world > 1 and rank != 0:  # rank 0 extracts any missing video poses first; the others then read the cache
        dist.barrier()
    train_set = load_dataset(data, "train", workers=pose_workers)
    eval_split = cfg.eval_split
    if eval_split is None:
        eval_split = _default_eval_split(data)
    eval_set = load_dataset(data, eval_split, workers=pose_workers) if eval_split and rank == 0 else None
    if world > 1 and rank == 0:
        dist.barrier()

    # ---- model config: from the stage-1 folder (init), or fresh defaults, then the run's overrides
    init_state = None
    if init is not None:
        init_model = UniHAR.from_pretrained(str(init))
        base = init_model.config.to_dict()
        prep = init_model.prep
        if run.preprocessing:
            prep = PreprocessConfig.from_dict({**prep.to_dict(), **run.preprocessing})
        init_state = init_model.state_dict()
        del init_model
    else:
        prep_dict = {"layout": _data_layout(train_set), **run.preprocessing}
        prep = PreprocessConfig.from_dict(prep_dict)
        base = _merge(default_config(num_classes=len(train_set.classes), joints=get_layout(prep.layout).num_joints,
                                     image=False), default_model_overrides(prep))
    model_config = _merge(base, run.model)
    model_config["classifier"]["num_classes"] = len(train_set.classes)
    model_config["pose_model"]["joints"] = get_layout(prep.layout).num_joints
    if prep.clip_len > model_config["pose_model"]["max_seq_len"]:
        raise ConfigError(
            f"preprocessing.clip_len ({prep.clip_len}) exceeds pose_model.max_seq_len "
            f"({model_config['pose_model']['max_seq_len']})"
        )
    model_config["preprocessing"] = prep.to_dict()

    torch.manual_seed(cfg.seed)
    model = build_model(model_config, labels=list(train_set.classes))
    if init_state is not None:
        _load_init_weights(model, init_state, rank)
    if cfg.freeze_pose:
        for module in (model.short_seq_model, model.long_term):
            if module is not None:
                module.requires_grad_(False)
    model.to(device)

    use_images = model.has_image_branch  # stage 2: the RGB frames behind each window, too
    dataset = WindowDataset(
        train_set, prep, SkeletonAugment(get_layout(prep.layout), run.augment),
        speed=run.augment.speed, min_crop=run.augment.min_crop, seed=cfg.seed, images=use_images,
    )
    sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True,
                                                  seed=cfg.seed, drop_last=False) if world > 1 else None
    steps_per_epoch = math.ceil(len(dataset) / (cfg.batch_size * world))
    total_steps = steps_per_epoch * cfg.epochs
    warmup_steps = int(round(cfg.warmup_epochs * steps_per_epoch))

    # ---- optimiser: AdamW, no weight decay on biases, norms and embeddings' 1-D params
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999),
                                  fused=device.type == "cuda")
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _lr_factor(step, warmup_steps, total_steps, cfg.min_lr_ratio))
    amp_dtype = _amp_dtype(cfg.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    ddp_model = model
    if world > 1:
        # find_unused_parameters: the pose encoder's auxiliary head (and an image branch fed no
        # images) take no part in the loss.
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)

    start_epoch = 0
    if resuming:
        state = torch.load(out / CHECKPOINT_NAME, map_location=device, weights_only=False)
        if state["model_config"] != model_config:
            raise InputError(f"{out / CHECKPOINT_NAME} was written by a run with a different model config; "
                             "start a new output folder or pass --overwrite")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch = state["epoch"] + 1
        _log(rank, f"resuming from {out / CHECKPOINT_NAME} at epoch {start_epoch + 1}")

    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        if not resuming:  # --overwrite: a fresh run replaces the previous run's logs, it does not append
            for name in (METRICS_NAME, CHECKPOINT_NAME, EVAL_NAME):
                (out / name).unlink(missing_ok=True)
        n_params = sum(p.numel() for p in model.parameters())
        _log(rank, f"train: {len(train_set)} sequences, {len(train_set.classes)} classes, layout "
                   f"{get_layout(prep.layout).name}; eval: {eval_split or 'none'} ({len(eval_set) if eval_set else 0}); "
                   f"model {n_params / 1e6:.2f} M parameters; {world} process(es) on {device}; "
                   f"{cfg.epochs} epochs x {steps_per_epoch} steps")
        (out / RECIPE_NAME).write_text(json.dumps({
            "data": data, "init": str(init) if init else None, "world_size": world,
            "command": command, "run_config": run.to_dict(),
        }, indent=2) + "\n", encoding="utf-8")
    writer = _tensorboard(out) if rank == 0 else None
    columns = ["epoch", "lr", "train_loss", "train_acc"]
    if eval_split:
        columns += [f"{eval_split}_{k}" for k in ("top1", "top5", "mean_class_acc")]
    columns.append("epoch_seconds")
    metrics: dict[str, Any] = {}

    # ---- epochs
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed * 1000 + epoch)  # dropout: same numbers whether or not we resumed
        dataset.set_epoch(epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
            order = list(sampler)
        else:
            order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(cfg.seed + epoch)).tolist()
        model.train()
        if cfg.freeze_pose:  # frozen parts keep dropout off
            for module in (model.short_seq_model, model.long_term):
                if module is not None:
                    module.eval()
        loss_sum, correct, seen = 0.0, 0.0, 0.0
        bar = _progress_bar(rank, progress, steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}")
        for step in range(steps_per_epoch):
            idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            if not idx:
                break
            items = [dataset[i] for i in idx]
            x = torch.stack([it[0] for it in items]).to(device, non_blocking=True)
            images = torch.stack([it[1] for it in items]).to(device, non_blocking=True) if use_images else None
            y = torch.tensor([it[-1] for it in items], device=device)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                logits = ddp_model(x, images=images)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(-1) == y).sum().item()
            seen += len(idx)
            if bar is not None:
                bar.update(step + 1, f"loss {loss_sum / seen:.3f}")
        if bar is not None:
            bar.close()
        loss_sum, correct, seen = _all_reduce_sum([loss_sum, correct, seen], device)

        row: dict[str, Any] = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
                               "train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1)}
        last = epoch + 1 == cfg.epochs
        if rank == 0 and eval_set is not None and ((epoch + 1) % cfg.eval_every == 0 or last):
            result = evaluate(model, eval_set, prep, cfg.eval_batch_size, device)
            metrics = result.metrics()
            row.update({f"{eval_split}_{k}": v for k, v in metrics.items() if k != "n"})
        row["epoch_seconds"] = time.perf_counter() - t0
        if rank == 0:
            _append_csv(out / METRICS_NAME, row, columns)
            if writer is not None:
                for key, value in row.items():
                    if key != "epoch":
                        writer.add_scalar(key, value, epoch + 1)
            _log(rank, "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch,
                        "model_config": model_config}, out / (CHECKPOINT_NAME + ".tmp"))
            os.replace(out / (CHECKPOINT_NAME + ".tmp"), out / CHECKPOINT_NAME)
        if world > 1:
            dist.barrier()

    # ---- the result: a save_pretrained folder
    if rank == 0:
        model.cpu().save_pretrained(out, overwrite=True)
        if metrics:
            (out / EVAL_NAME).write_text(json.dumps({"split": eval_split, **metrics}, indent=2) + "\n")
        if not cfg.keep_checkpoint:
            (out / CHECKPOINT_NAME).unlink(missing_ok=True)
        if writer is not None:
            writer.close()
        _log(rank, f"saved {out}")
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return metrics


# ---------------------------------------------------------------------------- small helpers
def _data_layout(data: SkeletonDataset) -> str | list[str]:
    """The dataset's own layout as a preprocessing value: a known name, or the list of joint names."""
    return data.layout.name if data.layout.name in LAYOUTS else list(data.layout.joints)


def _default_eval_split(spec: str) -> str:
    fmt = spec.partition(":")[0].strip().lower()
    return "val" if fmt == "haa500" else "test"


def _load_init_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], rank: int) -> None:
    """Copy every stage-1 tensor whose name and shape match; new parts (image branch, a resized
    classifier) keep their fresh initialisation."""
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(state) - set(usable))
    model.load_state_dict(usable, strict=False)
    if not usable:
        raise InputError("--init: no weight of the given folder matches this model; is it a Uni-HAR pose model?")
    new = sorted(set(own) - set(usable))
    _log(rank, f"init: loaded {len(usable)} tensors; {len(new)} new (e.g. {new[:3]}); {len(skipped)} skipped {skipped[:3]}")


def _append_csv(path: Path, row: dict[str, Any], columns: list[str]) -> None:
    """One row per epoch; columns fixed up front so evaluated and non-evaluated epochs line up."""
    exists = path.is_file() and path.stat().st_size > 0
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, restval="", extrasaction="raise")
        if not exists:
            w.writeheader()
        w.writerow(row)


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(out / "tensorboard"))


class _Bar:
    """A rich progress bar for one epoch (rank 0 only)."""

    def __init__(self, total: int, description: str):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[info]}"), transient=True)
        self.task = self.progress.add_task(description, total=total, info="")
        self.progress.start()

    def update(self, completed: int, info: str) -> None:
        self.progress.update(self.task, completed=completed, info=info)

    def close(self) -> None:
        self.progress.stop()


def _progress_bar(rank: int, enabled: bool, total: int, description: str) -> _Bar | None:
    if rank != 0 or not enabled or not sys.stderr.isatty():
        return None
    return _Bar(total, description)
