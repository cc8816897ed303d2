"""The training loop, top to bottom: data -> vocabulary -> model -> optimiser -> epochs -> calibration ->
a ``save_pretrained`` folder.

Data: one dataset or a mixture (``--data A:PATH --data B:PATH``, or the ``data`` list of a recipe). One
dataset keeps its own class names; a mixture is relabelled through the taxonomy
(:mod:`unihar.data.taxonomy`) into one vocabulary, shared actions merged. Samples are drawn balanced
across datasets and classes and cut into augmented windows (:mod:`unihar.training.data`); 3D datasets
are seen through a random virtual camera per sample in training and through their recording camera
(frontal) in evaluation. A slice of every training dataset is held out (``train.calibration_split``)
to fit the softmax temperature at the end (:mod:`unihar.training.calibration`).

Stage 1 (pose only) trains a model from scratch. Stage 2 starts from a stage-1 folder (``init``): it
keeps its preprocessing and pose encoder, adds the image encoder and fusion when the run config enables
``image_model``, and can freeze the pose encoder (``train.freeze_pose``).

Run it on one process (``unihar train``) or many (``torchrun --nproc_per_node N -m unihar.training``):
with ``WORLD_SIZE > 1`` the model is wrapped in DistributedDataParallel (gloo on CPU, NCCL on GPUs),
each rank sees its share of every epoch's draws, and rank 0 evaluates, calibrates and writes the files.

Everything random derives from ``train.seed`` (per epoch, per sample), so the same command gives the
same weights, and a run resumed from ``checkpoint.pt`` continues as if it had never stopped.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, get_args

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from pydantic import Field

from unihar.config import (
    ClassifierConfig,
    FusionConfig,
    ImageModelConfig,
    ImuModelConfig,
    LongTermConfig,
    ModelConfig,
    PoseModelConfig,
    PreprocessConfig,
    RegularizationConfig,
    default_config,
)
from unihar.data.datasets import SkeletonDataset, check_split, load_dataset, parse_data_spec, split_variant
from unihar.data.layouts import LAYOUTS, get_layout
from unihar.data.taxonomy import Taxonomy, dataset_key, load_taxonomy
from unihar.errors import ConfigError, InputError
from unihar.inference.device import default_device
from unihar.jsonfile import read_json
from unihar.models import UniHAR, build_model
from unihar.schema import Bool, Bounds, ConfigBase, Int, Number, Str, build, config_dataclass
from unihar.training import defaults
from unihar.training.augment import AugmentConfig, SkeletonAugment
from unihar.training.calibration import MIN_SEQUENCES, fit_temperature
from unihar.training.data import BalancedSampler, WindowDataset, hold_out, relabel
from unihar.training.evaluation import (
    EvalResult,
    eval_view,
    evaluate,
    expected_calibration_error,
    mean_probabilities,
    window_logits,
)
from unihar.training.modalities import apply_modalities, augment_for, check_signals, parse_modalities
from unihar.training.signal_augment import SignalAugment

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["TrainConfig", "RunConfig", "Vocabulary", "build_vocabulary", "train", "RECIPES_DIR", "resolve_recipe"]

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.csv"
RECIPE_NAME = "training_args.json"
EVAL_NAME = "eval_results.json"
RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
MIXTURE_LAYOUT = "penn13"  # the 13 body joints every skeleton dataset and pose estimator has
AmpMode = Literal["auto", "off", "bf16", "fp16"]
AMP_MODES: tuple[AmpMode, ...] = get_args(AmpMode)


Count = Annotated[Int, Field(ge=1)]
Naturals = Annotated[Int, Field(ge=0)]  # 0 has a meaning: see the field
AnyNumber = Annotated[Number, Bounds()]
Positive = Annotated[Number, Bounds(gt=0)]
NonNegative = Annotated[Number, Bounds(ge=0)]
Fraction = Annotated[Number, Bounds(ge=0, le=1)]
BelowOne = Annotated[Number, Bounds(ge=0, lt=1)]
BelowHalf = Annotated[Number, Bounds(ge=0, lt=0.5)]


@config_dataclass
class TrainConfig(ConfigBase):
    """Optimisation, sampling and evaluation settings (the ``train`` section of a run config).

    ``None`` means: chosen from the data (:mod:`unihar.training.defaults`). Numbers are kept as written.
    """

    SECTION: ClassVar[str] = "train"
    epochs: Count | None = None
    batch_size: Count = 32
    lr: Positive = 4e-3
    weight_decay: NonNegative = 0.05
    warmup_epochs: NonNegative | None = None  # linear warm-up, then cosine decay to lr * min_lr_ratio
    min_lr_ratio: Fraction = 0.01
    label_smoothing: BelowOne = 0.1
    grad_clip: NonNegative = 1.0  # 0 = no clipping
    seed: Int = 0
    amp: AmpMode = "auto"  # auto: bf16/fp16 on CUDA, off on CPU; or "off", "bf16", "fp16"
    num_threads: Naturals = 0  # torch CPU threads per process; 0 = torch's default
    workers: Naturals | None = None  # DataLoader processes; None: 0 for poses, 2 when decoding video
    epoch_size: Naturals = 0  # samples drawn per epoch; 0 = the number of training sequences
    dataset_balance: Fraction = 0.5  # dataset d drawn with probability ~ n_d ** dataset_balance
    class_balance: Fraction = 0.5  # class c of d drawn with probability ~ n_dc ** class_balance
    dataset_weights: dict[str, AnyNumber] = field(default_factory=dict)  # {"ur-fall": 3}: that dataset's share x 3
    vocabulary: Literal["auto", "dataset", "taxonomy"] = "auto"  # dataset names, taxonomy names, or auto
    taxonomy: Str | None = None  # a taxonomy.json of your own; None: the packaged one
    calibration_split: BelowHalf = 0.1  # share of each class held out to fit the temperature
    eval_every: Count | None = None  # evaluate every N epochs (and always after the last)
    eval_split: Str | None = None  # None: "val" if the dataset has one, else "test"; "" = no evaluation
    eval_batch_size: Count = 256
    freeze_pose: Bool = False  # stage 2: keep the pose encoder fixed
    keep_checkpoint: Bool = False  # keep checkpoint.pt after a finished run

    def check_rules(self) -> None:
        if not all(v > 0 for v in self.dataset_weights.values()):
            raise ConfigError(
                f"train.dataset_weights must map dataset names to numbers > 0, got {self.dataset_weights!r}"
            )

    def weights_for(self, names: Sequence[str]) -> list[float]:
        """One sampling weight per dataset of the run (named as in its log: the format, numbered when repeated)."""
        unknown = sorted(set(self.dataset_weights) - set(names))
        if unknown:
            raise ConfigError(
                f"train.dataset_weights names {unknown}, which this run does not train on; "
                f"its datasets are {list(names)}"
            )
        return [float(self.dataset_weights.get(n, 1.0)) for n in names]


@config_dataclass
class RunConfig(ConfigBase):
    """Everything a run needs: the data (a recipe names its mixture), model overrides, preprocessing,
    optimisation and augmentation.

    ``model`` holds overrides of the model config (published schema, checked as a
    :class:`~unihar.config.ModelConfig`); ``preprocessing`` the keys of
    :class:`~unihar.config.PreprocessConfig` to fix. Keys left out are chosen from the data.
    """

    data: list[str] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    SECTIONS = ("data", "model", "preprocessing", "train", "augment")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "run config") -> RunConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object with sections {list(cls.SECTIONS)}")
        unknown = set(data) - set(cls.SECTIONS) - {"about"}
        if unknown:
            raise ConfigError(f"{source}: unknown sections {sorted(unknown)}; expected {list(cls.SECTIONS)}")
        specs = data.get("data", [])
        if not isinstance(specs, list) or not all(isinstance(s, str) for s in specs):
            raise ConfigError(f"{source}: 'data' must be a list of FORMAT:PATH strings, got {specs!r}")
        train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
        bad = set(data.get("train", {})) - train_keys if isinstance(data.get("train"), dict) else set()
        if bad:
            raise ConfigError(f"{source}: unknown train keys {sorted(bad)}; expected a subset of {sorted(train_keys)}")
        sections = {
            "data": list(specs),
            "model": copy.deepcopy(data.get("model", {})),
            "preprocessing": copy.deepcopy(data.get("preprocessing", {})),
            "train": build(TrainConfig, data.get("train", {}), source),
            "augment": AugmentConfig.from_dict(data.get("augment", {}), source),
        }
        run = build(cls, sections, source)
        run.check(source)
        return run

    @classmethod
    def from_file(cls, path: str | Path) -> RunConfig:
        """A run config / recipe file (JSON); a bare name is a recipe shipped with the package."""
        path = resolve_recipe(path)
        return cls.from_dict(read_json(path, "run config file", ConfigError), source=f"run config {path}")

    def check(self, source: str | None = None) -> None:
        """Every section checked now, by the classes that will use it, not halfway through a run."""
        self.train.check(source)
        self.augment.check(source)
        if self.preprocessing:
            PreprocessConfig.from_dict(self.preprocessing)
        _check_model_overrides(self.model)

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": list(self.data),
            "model": self.model,
            "preprocessing": self.preprocessing,
            "train": asdict(self.train),
            "augment": self.augment.to_dict(),
        }


def resolve_recipe(path: str | Path) -> Path:
    """``path`` itself, or for a bare name such as ``universal`` the recipe shipped in the package."""
    candidate = Path(path)
    if candidate.is_file() or candidate.suffix or len(candidate.parts) > 1:
        return candidate
    packaged = RECIPES_DIR / f"{candidate}.json"
    if packaged.is_file():
        return packaged
    known = sorted(p.stem for p in RECIPES_DIR.glob("*.json"))
    raise ConfigError(f"run config {path!r} is neither a file nor a packaged recipe ({known})")


MODEL_SECTIONS = {
    kind.SECTION: kind
    for kind in (
        PoseModelConfig,
        ClassifierConfig,
        RegularizationConfig,
        LongTermConfig,
        ImageModelConfig,
        FusionConfig,
        ImuModelConfig,
    )
}


def _check_model_overrides(overrides: dict[str, Any]) -> None:
    """Unknown sections or keys are refused; values are checked as the model config will check them."""
    for name, values in overrides.items():
        if name not in MODEL_SECTIONS:
            raise ConfigError(f"run config: unknown model section {name!r}; expected one of {sorted(MODEL_SECTIONS)}")
        if not isinstance(values, dict):
            raise ConfigError(f"run config: model.{name} must be an object, got {values!r}")
        keys = {f.name for f in dataclasses.fields(MODEL_SECTIONS[name])}
        unknown = set(values) - keys
        if unknown:
            raise ConfigError(
                f"run config: unknown keys {sorted(unknown)} in model.{name}; expected a subset of {sorted(keys)}"
            )
    ModelConfig.from_dict(_merge(default_config(num_classes=2), overrides))


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = (
            _merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else copy.deepcopy(value)
        )
    return out


# ---------------------------------------------------------------------------- vocabulary
@dataclass
class Vocabulary:
    """The run's classes: ``names`` (what the model predicts), then ``negatives`` (labels that only rule
    classes out, e.g. ``not_fall``); ``ruled_out[j]`` are the class indices negative ``j`` excludes."""

    names: list[str]
    negatives: list[str] = field(default_factory=list)
    ruled_out: list[list[int]] = field(default_factory=list)

    @property
    def all(self) -> list[str]:
        return self.names + self.negatives


def _class_maps(datasets: Sequence[SkeletonDataset], mode: str, taxonomy: Taxonomy) -> list[dict[str, str]]:
    """Per dataset, its class name -> the run's name for it."""
    maps = []
    for data in datasets:
        key = dataset_key(data)
        if mode == "taxonomy" and key in taxonomy.datasets:
            maps.append({c: taxonomy.canonical(key, c) for c in data.classes})
        else:
            if mode == "taxonomy":
                warnings.warn(f"{data.name}: not in the taxonomy; its class names are used as they are", stacklevel=3)
            maps.append({c: c for c in data.classes})
    return maps


def build_vocabulary(
    datasets: Sequence[SkeletonDataset], mode: str = "auto", taxonomy: Taxonomy | None = None
) -> tuple[Vocabulary, list[dict[str, str]]]:
    """The run's vocabulary and each dataset's class map (see :class:`TrainConfig` ``vocabulary``).

    ``dataset`` keeps the datasets' class names (merging equal names); ``taxonomy`` maps them to canonical
    names and keeps the classes that have training data, in the taxonomy's order (other names after, in
    the order they first appear); ``auto`` is ``taxonomy`` for a mixture, ``dataset`` for one dataset.
    """
    taxonomy = taxonomy or load_taxonomy()
    if mode == "auto":
        mode = "taxonomy" if len(datasets) > 1 else "dataset"
    maps = _class_maps(datasets, mode, taxonomy)
    if mode == "dataset":  # every class the datasets declare, as they order them
        used = list(dict.fromkeys(m[c] for m, d in zip(maps, datasets) for c in d.classes))
    else:  # the classes that have training data
        used = list(dict.fromkeys(m[d.classes[i]] for m, d in zip(maps, datasets) for i in np.unique(d.labels)))
    negatives = [n for n in used if mode == "taxonomy" and taxonomy.negated(n)]
    names = [n for n in used if n not in negatives]
    if mode == "taxonomy":
        order = {name: i for i, name in enumerate(taxonomy.classes)}
        names.sort(key=lambda n: order.get(n, len(order)))
    kept_negatives, ruled_out = [], []
    for negative in negatives:
        excluded = [names.index(c) for c in taxonomy.negated(negative) if c in names]
        if excluded:
            kept_negatives.append(negative)
            ruled_out.append(excluded)
        else:
            warnings.warn(
                f"negative label {negative!r} rules out {taxonomy.negated(negative)}, none of which is "
                "trained: its sequences are left out",
                stacklevel=2,
            )
    return Vocabulary(names, kept_negatives, ruled_out), maps


def _relabel(data: SkeletonDataset, mapping: dict[str, str], vocabulary: Vocabulary) -> SkeletonDataset:
    return relabel(data, {c: n for c, n in mapping.items() if n in vocabulary.all}, vocabulary.all)


# ---------------------------------------------------------------------------- distributed helpers
def _setup_distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device) from torchrun's environment; a plain run is rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = default_device(local_rank)  # the one default of unihar.inference.device
    use_cuda = device.type == "cuda"
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


def _broadcast(value: Any) -> Any:
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# ---------------------------------------------------------------------------- small pieces of the run
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
    if mode not in AMP_MODES:
        raise ConfigError(f"train.amp must be one of {list(AMP_MODES)}, got {mode!r}")
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if mode == "bf16" else torch.float16


def _scheduler(
    optimizer: torch.optim.Optimizer, warmup: int, total: int, min_ratio: float
) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``lr * min_ratio`` at step ``total``."""
    base = optimizer.param_groups[0]["lr"]
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(1, total - warmup), eta_min=base * min_ratio
    )
    if warmup <= 0:
        return cosine
    ramp = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=1.0 / (warmup + 1), end_factor=1.0, total_iters=warmup
    )
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [ramp, cosine], milestones=[warmup])


def _loss(logits: torch.Tensor, labels: torch.Tensor, ruled_out: list[torch.Tensor], smoothing: float) -> torch.Tensor:
    """Cross-entropy for labels of the model's classes; for a negative label (``>= K``), ``-log(1 - p)``
    with ``p`` the probability of the classes it rules out."""
    k = logits.shape[1]
    positive = labels < k
    total = logits.new_zeros(())
    if positive.any():
        total = total + F.cross_entropy(logits[positive], labels[positive], label_smoothing=smoothing, reduction="sum")
    if not positive.all():
        log_probs = F.log_softmax(logits[~positive], dim=-1)
        for row, label in zip(log_probs, labels[~positive].tolist()):
            log_p = torch.logsumexp(row[ruled_out[label - k]], dim=0).clamp(max=-1e-6)
            total = total - torch.log(-torch.expm1(log_p))
    return total / len(labels)


def _log(rank: int, message: str) -> None:
    if rank == 0:
        print(message, file=sys.stderr, flush=True)


# DataLoader workers start from a clean process, never a fork of this one: a fork copies the state of
# threads it does not copy (PyAV's decoder threads, torch's pools), and a worker that inherits a held lock
# waits forever. "forkserver" forks them from a small server started before any such thread exists.
WORKER_START = "forkserver"


def _one_thread(_worker: int) -> None:
    """DataLoader workers: one torch thread each, so they do not fight the training process for cores."""
    torch.set_num_threads(1)


def _default_eval_split(spec: str) -> str:
    fmt = split_variant(parse_data_spec(spec)[0])[0]
    return "val" if fmt == "haa500" else "test"


def _data_layout(data: SkeletonDataset) -> str | list[str]:
    """The dataset's own layout as a preprocessing value: a known name, or the list of joint names."""
    return data.layout.name if data.layout.name in LAYOUTS else list(data.layout.joints)


def _resolve_specs(specs: Sequence[str], root: str | Path | None) -> list[str]:
    """``FORMAT:PATH`` with a relative ``PATH`` taken from ``root`` (a recipe's ``--data-root``)."""
    out = []
    for spec in specs:
        fmt, path = parse_data_spec(spec)
        if root is not None and not path.is_absolute():
            path = Path(root) / path
        out.append(f"{fmt}:{path}")
    return out


def _names(datasets: Sequence[SkeletonDataset]) -> list[str]:
    """A short, unique name per dataset of the run (its format, numbered when repeated)."""
    keys = [dataset_key(d) for d in datasets]
    return [k if keys.count(k) == 1 else f"{k}{keys[:i].count(k) + 1}" for i, k in enumerate(keys)]


# ---------------------------------------------------------------------------- the run
def train(
    data: str | Sequence[str] | None,
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
    data_root: str | Path | None = None,
    skip_failed_videos: bool = False,
    modalities: str | Sequence[str] | None = None,
) -> dict[str, Any]:
    """Train on ``data`` (``FORMAT:PATH``, several for a mixture; None: the run config's ``data``) and
    write a ``save_pretrained`` folder to ``out``.

    ``data_root``: where relative dataset paths (a recipe's) are found. ``pose_workers``: processes that
    extract poses from videos not yet cached (haa500, video-folder); ``skip_failed_videos``: leave out
    (and report) videos where pose extraction fails instead of stopping. ``modalities``: the branches
    the model has (``"skeleton,imu"``, ``["imu"]``...; see :mod:`unihar.training.modalities`); None keeps
    the model config's (the skeleton alone, unless the run config or ``init`` says otherwise).
    Returns the final evaluation metrics: of the one dataset, or ``{name: metrics}`` for a mixture
    (empty without an evaluation split).
    """
    run = _with_overrides(run, epochs, batch_size)
    cfg = run.train
    modalities = parse_modalities(modalities) if modalities is not None else None
    specs = _data_specs(data, run, data_root)
    out = Path(out)
    rank, world, device = _setup_distributed()
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    resuming = _agree_on_out_dir(out, resume, overwrite, rank, world)

    # ---- data: every training set, one vocabulary, a calibration slice held out
    options = {"workers": pose_workers, **({"skip_failed": True} if skip_failed_videos else {})}
    datasets, init_model = _load_data(specs, cfg, init, options, rank, world)

    # ---- preprocessing and model config: from the stage-1 folder (init), or chosen from the data, then the run's own
    summary = defaults.summarize(datasets.train_sets, len(datasets.vocabulary.names))
    preprocessing, model_config, chosen = _model_config(run, datasets, summary, init_model, modalities)
    check_signals(datasets.train_sets + datasets.eval_sets, model_config.signal_modalities)
    _choose_schedule(cfg, summary, model_config, chosen)
    assert cfg.epochs is not None and cfg.eval_every is not None  # filled in by _choose_schedule
    datasets.view_for_evaluation(preprocessing.layout)

    # ---- the model, the batches it learns from, and how it learns
    model = _build_model(model_config, datasets.vocabulary, init_model, cfg, rank, device)
    del init_model
    windows, sampler, loader = _training_loader(
        run, datasets, preprocessing, model_config, model.has_image_branch, rank, world, device
    )
    steps_per_epoch = len(loader)
    optimiser = _Optimiser.create(model, cfg, steps_per_epoch, device)
    loop = _Loop(model, _distributed(model, world, device), optimiser, model_config, datasets.vocabulary, cfg, device)
    config_record = model_config.to_dict()
    start_epoch = _resume(out / CHECKPOINT_NAME, model, optimiser, config_record, device, rank) if resuming else 0

    # ---- the output folder: the logs, and how the run was made
    eval_names = datasets.eval_names()
    if rank == 0:
        _start_output(out, resuming)
        _log_run(
            rank, datasets, len(windows), model, model_config, preprocessing, world, device, cfg.epochs, steps_per_epoch
        )
        _write_recipe(out / RECIPE_NAME, specs, init, world, command, run, chosen)
    writer = _tensorboard(out) if rank == 0 else None
    columns = ["epoch", "lr", "train_loss", "train_acc"] + _eval_columns(eval_names) + ["epoch_seconds"]
    results: dict[str, EvalResult] = {}

    # ---- epochs
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed * 1000 + epoch)  # dropout: same numbers whether or not we resumed
        sampler.set_epoch(epoch)
        bar = _progress_bar(rank, progress, steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}")
        train_loss, train_acc = loop.epoch(loader, bar)
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": optimiser.lr, "train_loss": train_loss, "train_acc": train_acc}
        last = epoch + 1 == cfg.epochs
        if last and rank == 0:
            model.config.classifier.temperature = _calibrate(
                model, datasets.held_sets, cfg.eval_batch_size, device, rank
            )
        if rank == 0 and datasets.eval_sets and ((epoch + 1) % cfg.eval_every == 0 or last):
            results = _evaluate_all(model, eval_names, datasets.eval_sets, preprocessing, cfg.eval_batch_size, device)
            row.update(_eval_row(results))
        row["epoch_seconds"] = time.perf_counter() - t0
        if rank == 0:
            _record_epoch(out, row, columns, writer, rank)
            _save_checkpoint(out, model, optimiser, epoch, config_record)
        if world > 1:
            dist.barrier()
    if start_epoch >= cfg.epochs and rank == 0:  # resumed after the last epoch: only calibration was left
        model.config.classifier.temperature = _calibrate(model, datasets.held_sets, cfg.eval_batch_size, device, rank)
        results = _evaluate_all(model, eval_names, datasets.eval_sets, preprocessing, cfg.eval_batch_size, device)

    # ---- the result: a save_pretrained folder
    metrics: dict[str, Any] = {}
    if rank == 0:
        metrics = _save_results(out, model, results, datasets.eval_split, cfg.keep_checkpoint, writer, rank)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return metrics


# ---------------------------------------------------------------------------- setup
def _with_overrides(run: RunConfig | None, epochs: int | None, batch_size: int | None) -> RunConfig:
    """A checked copy of the run config with the command line's epochs and batch size (the caller's is left alone)."""
    run = copy.deepcopy(run) if run is not None else RunConfig()
    if epochs is not None:
        run.train.epochs = epochs
    if batch_size is not None:
        run.train.batch_size = batch_size
    run.check()
    return run


def _data_specs(data: str | Sequence[str] | None, run: RunConfig, root: str | Path | None) -> list[str]:
    """The datasets to train on, their paths resolved; the evaluation split is checked before any data is
    read (a video dataset extracts its poses first)."""
    specs = [data] if isinstance(data, str) else list(data or run.data)
    if not specs:
        raise ConfigError("no training data: pass --data FORMAT:PATH (or a run config with a 'data' list)")
    specs = _resolve_specs(specs, root)
    if run.train.eval_split:
        for spec in specs:
            check_split(spec, run.train.eval_split)
    return specs


def _agree_on_out_dir(out: Path, resume: bool, overwrite: bool, rank: int, world: int) -> bool:
    """Whether to resume, decided by rank 0 and told to every rank, so all of them go on or all stop."""
    resuming: bool = False
    problem: str | None = None
    if rank == 0:
        try:
            resuming = _check_out_dir(out, resume, overwrite)
        except InputError as err:
            problem = str(err)
    resuming, problem = _broadcast((resuming, problem))
    if problem:
        if world > 1:
            dist.destroy_process_group()
        raise InputError(problem)
    return resuming


# ---------------------------------------------------------------------------- data
@dataclass
class _Data:
    """The run's datasets, relabelled into its vocabulary."""

    vocabulary: Vocabulary
    names: list[str]  # one per training dataset (its format, numbered when repeated)
    dataset_weights: list[float]  # the sampling weight of each training dataset
    train_sets: list[SkeletonDataset]
    held_sets: list[SkeletonDataset]  # held out of training to fit the temperature
    eval_split: str
    eval_sets: list[SkeletonDataset]  # read on rank 0 only

    def view_for_evaluation(self, layout: str | list[str]) -> None:
        """The held-out and evaluation sets as the model sees them at inference (2D, its layout), once."""
        with warnings.catch_warnings():  # what the conversion drops was said for the training split already
            warnings.simplefilter("ignore")
            self.eval_sets = [eval_view(d, layout) for d in self.eval_sets]
            self.held_sets = [eval_view(d, layout) for d in self.held_sets]

    def eval_names(self) -> list[str]:
        """A name per evaluation set for the metrics' columns: the split alone for one dataset."""
        if len(self.eval_sets) > 1:
            return _names(self.eval_sets)
        return [self.eval_split] if self.eval_sets else []


def _load_data(
    specs: list[str], cfg: TrainConfig, init: str | Path | None, options: dict[str, Any], rank: int, world: int
) -> tuple[_Data, UniHAR | None]:
    """Read the training sets, the taxonomy and the stage-1 model (``init``), build the vocabulary and hold
    out each dataset's calibration slice; rank 0 also reads the evaluation sets.

    With several processes rank 0 reads first (extracting any missing video poses), the others then read
    its cache.
    """
    if world > 1 and rank != 0:
        dist.barrier()
    loaded = [load_dataset(spec, "train", **_loader_options(spec, options)) for spec in specs]
    taxonomy = load_taxonomy(cfg.taxonomy)
    init_model = UniHAR.from_pretrained(str(init)) if init is not None else None
    vocabulary, class_maps = build_vocabulary(loaded, cfg.vocabulary, taxonomy)
    names = _names(loaded)
    dataset_weights = cfg.weights_for(names)
    train_sets, held_sets = [], []
    for d, mapping in zip(loaded, class_maps):
        kept, held = hold_out(_relabel(d, mapping, vocabulary), cfg.calibration_split, cfg.seed)
        train_sets.append(kept)
        if held is not None:
            held_sets.append(held)
    eval_split = cfg.eval_split if cfg.eval_split is not None else _default_eval_split(specs[0])
    eval_sets: list[SkeletonDataset] = []
    if eval_split and rank == 0:
        for spec, mapping in zip(specs, class_maps):
            eval_sets.append(
                _relabel(load_dataset(spec, eval_split, **_loader_options(spec, options)), mapping, vocabulary)
            )
    if world > 1 and rank == 0:
        dist.barrier()
    data = _Data(vocabulary, names, dataset_weights, train_sets, held_sets, eval_split, eval_sets)
    return data, init_model


def _training_loader(
    run: RunConfig,
    data: _Data,
    preprocessing: PreprocessConfig,
    model_config: ModelConfig,
    use_images: bool,
    rank: int,
    world: int,
    device: torch.device,
) -> tuple[WindowDataset, BalancedSampler, torch.utils.data.DataLoader[tuple[Any, ...]]]:
    """Augmented windows of the training sets, drawn balanced across datasets and classes (this rank's share)."""
    cfg = run.train
    assert cfg.workers is not None  # filled in by _choose_schedule
    augments = [
        SkeletonAugment(
            get_layout(preprocessing.layout),
            augment_for(run.augment, d),
            binary_confidence=preprocessing.binarize_confidence,
        )
        for d in data.train_sets
    ]  # per dataset: one with a body-worn sensor is never mirrored, the others are
    dataset = WindowDataset(
        data.train_sets,
        preprocessing,
        augments,
        speed=run.augment.speed,
        min_crop=run.augment.min_crop,
        seed=cfg.seed,
        images=use_images,  # stage 2: the RGB frames behind each window, too
        camera_ranges=run.augment.camera_ranges(),
        signals={name: model_config.modality_config(name) for name in model_config.signal_modalities},
        signal_augment=SignalAugment(run.augment.imu),
    )
    sampler = BalancedSampler(
        dataset.datasets,
        cfg.epoch_size,
        cfg.dataset_balance,
        cfg.class_balance,
        cfg.seed,
        rank,
        world,
        dataset_weights=data.dataset_weights,
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.workers,
        persistent_workers=cfg.workers > 0,
        pin_memory=device.type == "cuda",
        worker_init_fn=_one_thread,
        generator=torch.Generator(),  # its seed draws must not move the global generator dropout uses
        multiprocessing_context=WORKER_START if cfg.workers > 0 else None,
    )
    return dataset, sampler, loader


# ---------------------------------------------------------------------------- the model
def _model_config(
    run: RunConfig,
    data: _Data,
    summary: defaults.DataSummary,
    init_model: UniHAR | None,
    modalities: list[str] | None,
) -> tuple[PreprocessConfig, ModelConfig, dict[str, Any]]:
    """Preprocessing and model config, and what of them was chosen from the data (for the recipe file)."""
    chosen: dict[str, Any] = {}
    num_classes = len(data.vocabulary.names)
    if init_model is not None:
        base = init_model.config.to_dict()
        preprocessing = PreprocessConfig.from_dict({**init_model.preprocessing.to_dict(), **run.preprocessing})
    else:
        train_sets = data.train_sets
        layout = _data_layout(train_sets[0]) if len({d.layout.joints for d in train_sets}) == 1 else MIXTURE_LAYOUT
        chosen["preprocessing"] = {"layout": layout, **defaults.default_preprocessing(summary)}
        preprocessing = PreprocessConfig.from_dict({**chosen["preprocessing"], **run.preprocessing})
        chosen["model"] = defaults.default_model(summary, preprocessing.clip_len, preprocessing.clips)
        base = _merge(
            default_config(num_classes=num_classes, joints=get_layout(preprocessing.layout).num_joints, image=False),
            chosen["model"],
        )
    model_dict = _merge(base, run.model)
    model_dict["classifier"] = {**model_dict["classifier"], "num_classes": num_classes, "temperature": 1.0}
    model_dict["pose_model"]["joints"] = get_layout(preprocessing.layout).num_joints
    model_dict["preprocessing"] = preprocessing.to_dict()
    if modalities is not None:
        chosen["modalities"] = modalities
        model_dict = apply_modalities(model_dict, modalities, run.model, data.train_sets)
    return preprocessing, ModelConfig.from_dict(model_dict), chosen


def _choose_schedule(
    cfg: TrainConfig, summary: defaults.DataSummary, model_config: ModelConfig, chosen: dict[str, Any]
) -> None:
    """Fill in the train settings left to the data (None), noting each in ``chosen``."""
    for key, value in defaults.default_schedule(summary).items():
        if getattr(cfg, key) is None:
            setattr(cfg, key, value)
            chosen.setdefault("train", {})[key] = value
    if cfg.workers is None:
        cfg.workers = 2 if model_config.has_image_branch else 0
        chosen.setdefault("train", {})["workers"] = cfg.workers


def _frozen_parts(model: UniHAR) -> list[torch.nn.Module]:
    """What ``train.freeze_pose`` keeps fixed: the pose encoder and its long-term part."""
    return [module for module in (model.short_seq_model, model.long_term) if module is not None]


def _build_model(
    model_config: ModelConfig,
    vocabulary: Vocabulary,
    init_model: UniHAR | None,
    cfg: TrainConfig,
    rank: int,
    device: torch.device,
) -> UniHAR:
    """A fresh model (seeded), with the stage-1 weights that fit it; on ``device``."""
    torch.manual_seed(cfg.seed)
    model = build_model(model_config, labels=list(vocabulary.names))
    if init_model is not None:
        _load_init_weights(model, init_model.state_dict(), rank)
    if cfg.freeze_pose:
        for module in _frozen_parts(model):
            module.requires_grad_(False)
    model.to(device)
    return model


def _distributed(model: UniHAR, world: int, device: torch.device) -> torch.nn.Module:
    """What the training steps call: the model, or with several processes its DistributedDataParallel wrapper."""
    if world <= 1:
        return model
    # find_unused_parameters: the pose encoder's auxiliary head (and an image branch fed no
    # images) take no part in the loss.
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
    )


# ---------------------------------------------------------------------------- the loop
@dataclass
class _Optimiser:
    """AdamW on a warm-up + cosine schedule, with mixed precision (and fp16's loss scaler)."""

    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler
    grad_clip: float

    @classmethod
    def create(cls, model: UniHAR, cfg: TrainConfig, steps_per_epoch: int, device: torch.device) -> _Optimiser:
        """No weight decay on biases, norms and embeddings' 1-D params; frozen parameters are left out."""
        assert cfg.epochs is not None and cfg.warmup_epochs is not None  # filled in by _choose_schedule
        total_steps = steps_per_epoch * cfg.epochs
        warmup_steps = int(round(cfg.warmup_epochs * steps_per_epoch))
        params = [p for p in model.parameters() if p.requires_grad]
        groups: list[dict[str, Any]] = [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999), fused=device.type == "cuda")
        scheduler = _scheduler(optimizer, warmup_steps, total_steps, cfg.min_lr_ratio)
        amp_dtype = _amp_dtype(cfg.amp, device)
        scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        return cls(params, optimizer, scheduler, amp_dtype, scaler, cfg.grad_clip)

    @property
    def lr(self) -> float:
        lr: float = self.optimizer.param_groups[0]["lr"]
        return lr

    def step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])


class _Loop:
    """The training steps: each batch to the device, forward under autocast, the loss of the fused head
    and of each modality's own head, one optimiser step."""

    def __init__(
        self,
        model: UniHAR,
        forward: torch.nn.Module,
        optimiser: _Optimiser,
        model_config: ModelConfig,
        vocabulary: Vocabulary,
        cfg: TrainConfig,
        device: torch.device,
    ) -> None:
        self.model = model
        self.forward = forward  # the model, or its DistributedDataParallel wrapper
        self.optimiser = optimiser
        self.device = device
        self.uses_pose = "skeleton" in model_config.modalities
        self.use_images = model.has_image_branch
        self.sensors = model_config.signal_modalities  # recordings worn by the person, read beside the skeleton
        self.ruled_out = [torch.tensor(r, device=device) for r in vocabulary.ruled_out]
        self.label_smoothing = cfg.label_smoothing
        self.freeze_pose = cfg.freeze_pose

    def epoch(self, loader: torch.utils.data.DataLoader[tuple[Any, ...]], bar: _Bar | None) -> tuple[float, float]:
        """One pass over ``loader``: the mean loss and the accuracy (labels of the model's classes), over every rank."""
        self.model.train()
        if self.freeze_pose:  # frozen parts keep dropout off
            for module in _frozen_parts(self.model):
                module.eval()
        loss_sum, correct, seen, positives = 0.0, 0.0, 0.0, 0.0
        for step, batch in enumerate(loader):
            loss, logits, y = self.step(batch)
            loss_sum += loss.item() * len(y)
            positive = y < logits.shape[1]  # negative labels have no class to be right about
            correct += (logits.argmax(-1)[positive] == y[positive]).sum().item()
            seen += len(y)
            positives += positive.sum().item()
            if bar is not None:
                bar.update(step + 1, f"loss {loss_sum / seen:.3f}")
        if bar is not None:
            bar.close()
        loss_sum, correct, seen, positives = _all_reduce_sum([loss_sum, correct, seen, positives], self.device)
        return loss_sum / max(seen, 1), correct / max(positives, 1)

    def step(self, batch: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One optimiser step on ``batch``: (loss, logits, labels)."""
        device = self.device
        x = batch[0].to(device, non_blocking=True)
        images = batch[1].to(device, non_blocking=True) if self.use_images else None
        signals = {name: v.to(device, non_blocking=True) for name, v in batch[-2].items()} if self.sensors else {}
        y = batch[-1].to(device, non_blocking=True)
        amp_dtype = self.optimiser.amp_dtype
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits, auxiliary = self.forward(
                x if self.uses_pose else None, images=images, return_auxiliary=True, **signals
            )
            loss = _loss(logits.float(), y, self.ruled_out, self.label_smoothing)
            for own in auxiliary.values():  # several modalities: each also learns alone (UniHAR.auxiliary_logits)
                loss = loss + _loss(own.float(), y, self.ruled_out, self.label_smoothing)
        self.optimiser.step(loss)
        return loss, logits, y


def _resume(
    path: Path, model: UniHAR, optimiser: _Optimiser, config_record: dict[str, Any], device: torch.device, rank: int
) -> int:
    """Load the checkpoint of an interrupted run into the model and the optimiser: the epoch to go on from."""
    state = torch.load(path, map_location=device, weights_only=False)
    if state["model_config"] != config_record:
        raise InputError(
            f"{path} was written by a run with a different model config; start a new output folder or pass --overwrite"
        )
    model.load_state_dict(state["model"])
    optimiser.load_state_dict(state)
    start_epoch: int = state["epoch"] + 1
    _log(rank, f"resuming from {path} at epoch {start_epoch + 1}")
    return start_epoch


def _save_checkpoint(
    out: Path, model: UniHAR, optimiser: _Optimiser, epoch: int, config_record: dict[str, Any]
) -> None:
    """Written aside, then renamed over the last one: a run stopped while writing keeps a whole checkpoint."""
    torch.save(
        {"model": model.state_dict(), **optimiser.state_dict(), "epoch": epoch, "model_config": config_record},
        out / (CHECKPOINT_NAME + ".tmp"),
    )
    os.replace(out / (CHECKPOINT_NAME + ".tmp"), out / CHECKPOINT_NAME)


# ---------------------------------------------------------------------------- evaluation and logs
METRIC_KEYS = ("top1", "top5", "mean_class_acc", "ece")  # the metrics of each evaluation set in metrics.csv


def _evaluate_all(
    model: UniHAR,
    names: list[str],
    eval_sets: list[SkeletonDataset],
    preprocessing: PreprocessConfig,
    batch_size: int,
    device: torch.device,
) -> dict[str, EvalResult]:
    return {n: evaluate(model, d, preprocessing, batch_size, device) for n, d in zip(names, eval_sets)}


def _eval_columns(names: list[str]) -> list[str]:
    return [f"{n}_{k}" for n in names for k in METRIC_KEYS]


def _eval_row(results: dict[str, EvalResult]) -> dict[str, float]:
    return {f"{n}_{k}": v for n, result in results.items() for k, v in result.metrics().items() if k in METRIC_KEYS}


def _start_output(out: Path, resuming: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if not resuming:  # --overwrite: a fresh run replaces the previous run's logs, it does not append
        for name in (METRICS_NAME, CHECKPOINT_NAME, EVAL_NAME):
            (out / name).unlink(missing_ok=True)


def _log_run(
    rank: int,
    data: _Data,
    sequences: int,
    model: UniHAR,
    model_config: ModelConfig,
    preprocessing: PreprocessConfig,
    world: int,
    device: torch.device,
    epochs: int,
    steps_per_epoch: int,
) -> None:
    """The line that opens the log: the data, the model and how it is trained."""
    vocabulary = data.vocabulary
    n_params = sum(p.numel() for p in model.parameters())
    sizes = ", ".join(f"{n} {len(d)}" for n, d in zip(data.names, data.train_sets))
    _log(
        rank,
        f"train: {sequences} sequences ({sizes}), {len(vocabulary.names)} classes"
        f"{f' + negatives {vocabulary.negatives}' if vocabulary.negatives else ''}, layout "
        f"{get_layout(preprocessing.layout).name}; held out for calibration: "
        f"{sum(len(h) for h in data.held_sets)}; eval: "
        f"{data.eval_split or 'none'} ({sum(len(e) for e in data.eval_sets)}); model {n_params / 1e6:.2f} M "
        f"parameters; modalities {model_config.modalities}; {world} process(es) on {device}; {epochs} epochs x "
        f"{steps_per_epoch} steps",
    )


def _write_recipe(
    path: Path,
    specs: list[str],
    init: str | Path | None,
    world: int,
    command: str | None,
    run: RunConfig,
    chosen: dict[str, Any],
) -> None:
    """How the run was made: enough to make it again."""
    recipe = {
        "data": specs,
        "init": str(init) if init else None,
        "world_size": world,
        "command": command,
        "run_config": run.to_dict(),
        "chosen_from_data": chosen,
    }
    path.write_text(json.dumps(recipe, indent=2) + "\n", encoding="utf-8")


def _record_epoch(out: Path, row: dict[str, Any], columns: list[str], writer: Any, rank: int) -> None:
    """An epoch's row in metrics.csv, TensorBoard and the log."""
    _append_csv(out / METRICS_NAME, row, columns)
    if writer is not None:
        for key, value in row.items():
            if key != "epoch":
                writer.add_scalar(key, value, row["epoch"])
    _log(rank, "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))


# ---------------------------------------------------------------------------- the result
def _save_results(
    out: Path,
    model: UniHAR,
    results: dict[str, EvalResult],
    eval_split: str,
    keep_checkpoint: bool,
    writer: Any,
    rank: int,
) -> dict[str, Any]:
    """The save_pretrained folder and its eval_results.json; the final metrics (see :func:`train`)."""
    model.cpu().save_pretrained(out, overwrite=True)
    per_dataset = {n: r.metrics() for n, r in results.items()}
    metrics: dict[str, Any]
    summary_json: dict[str, Any]
    if len(per_dataset) == 1:
        metrics = next(iter(per_dataset.values()))
        summary_json = {"split": eval_split, **metrics}
    else:
        metrics = per_dataset
        summary_json = {"split": eval_split, "datasets": per_dataset}
    if per_dataset:
        summary_json["temperature"] = model.config.classifier.temperature
        (out / EVAL_NAME).write_text(json.dumps(summary_json, indent=2) + "\n")
    if not keep_checkpoint:
        (out / CHECKPOINT_NAME).unlink(missing_ok=True)
    if writer is not None:
        writer.close()
    _log(rank, f"saved {out}")
    return metrics


def _loader_options(spec: str, options: dict[str, Any]) -> dict[str, Any]:
    """Loader options only for the loaders that read videos."""
    fmt = split_variant(parse_data_spec(spec)[0])[0]
    return options if fmt in ("haa500", "video-folder") else {}


def _calibrate(
    model: UniHAR, held: Sequence[SkeletonDataset], batch_size: int, device: torch.device | str, rank: int
) -> float:
    """Fit the softmax temperature on the held-out sequences (2D, model layout; 1.0 when too few)."""
    logits: list[np.ndarray] = []
    label_parts: list[np.ndarray] = []
    for view in held:
        keep = np.flatnonzero(view.labels < model.num_classes)  # negatives have no class to be calibrated to
        seq_logits = window_logits(model, view, batch_size, device)
        logits += [seq_logits[i] for i in keep]
        label_parts.append(view.labels[keep])
    if len(logits) < MIN_SEQUENCES:
        _log(
            rank,
            f"calibration: {len(logits)} held-out sequences, fewer than {MIN_SEQUENCES} "
            "(train.calibration_split = 0, or little data): temperature 1.0",
        )
        return 1.0
    labels = np.concatenate(label_parts)
    temperature = fit_temperature(logits, labels)
    before = expected_calibration_error(mean_probabilities(logits, 1.0), labels)
    after = expected_calibration_error(mean_probabilities(logits, temperature), labels)
    _log(
        rank,
        f"calibration on {len(labels)} held-out sequences: temperature {temperature:.3f}, "
        f"ECE {before:.3f} -> {after:.3f}",
    )
    return temperature


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
    _log(
        rank,
        f"init: loaded {len(usable)} tensors; {len(new)} new (e.g. {new[:3]}); {len(skipped)} skipped {skipped[:3]}",
    )


def _append_csv(path: Path, row: dict[str, Any], columns: list[str]) -> None:
    """One row per epoch; columns fixed up front so evaluated and non-evaluated epochs line up."""
    exists = path.is_file() and path.stat().st_size > 0
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, restval="", extrasaction="raise")
        if not exists:
            w.writeheader()
        w.writerow(row)


def _tensorboard(out: Path) -> SummaryWriter | None:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(out / "tensorboard"))


class _Bar:
    """A rich progress bar for one epoch (rank 0 only)."""

    def __init__(self, total: int, description: str):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            transient=True,
        )
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
