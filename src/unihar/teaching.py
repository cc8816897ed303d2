"""Teaching a pose model new actions from a few labelled clips, without changing what it already knows.

The pose encoder and the old rows of ``classifier_pose`` stay frozen. Every window of every example is
cut by the windowing engine (the path ``unihar predict`` takes), and its pooled pose feature, the input
of ``classifier_pose``, is computed once. Each new class gets one output row appended:

1. *Imprinting*: the row starts as the class's mean feature, scaled to the mean norm of the old rows,
   and its bias so that the mean example scores as high as the best old class does on it (a fair start:
   neither winning by default nor lost).
2. *Fitting*: only the new rows and biases are fitted with L-BFGS to a cross-entropy over old and new
   classes (the old logits are constants), with a penalty pulling rows and biases back to their imprint.
   The base model's training data is not at hand, so the old classes are represented by stand-ins
   (:func:`_replay`): the examples' own features, nudged until the frozen old head reads each as one old
   class. Without them a new row learns "this camera" rather than "this action" and claims every input
   (measured on KARD: every held-out clip of an old class, and every Penn Action test clip, went to a
   new class); with them Penn Action and NW-UCLA keep their top-1 within a point.

Old rows are never touched, so the old classes' logits, and their order, are exactly what they were;
what can change is only whether a new class outscores them. Examples of a class the model already
knows are left out (with a warning): its row is not refitted here.

Augmenting the few examples (``mirror``: every clip mirrored where the layout pairs left and right
joints; ``shift_frames``: windows every few frames instead of the model's stride) is off by default: on
KARD (6 new actions, 1 and 5 examples each) neither changed held-out top-1 beyond a clip or two either way.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from unihar.data.datasets import SkeletonDataset, load_dataset, parse_data_spec, split_variant
from unihar.data.datasets.readers import resample_uniform
from unihar.data.layouts import get_layout
from unihar.data.taxonomy import dataset_key, load_taxonomy
from unihar.errors import InputError
from unihar.inference.engine import WindowEngine
from unihar.models import HARModel, UniHAR
from unihar.models.base import UniHARFeatures

__all__ = ["TeachReport", "teach_model", "load_teaching_data", "check_teach_out", "write_taught_card"]

STEPS = 300  # L-BFGS iterations over the new rows
ROW_PENALTY = 0.05  # weight of ||row - imprint||^2 against the cross-entropy
REPLAY_PER_CLASS = 16  # stand-in features per old class
REPLAY_STEPS = 100  # Adam steps that make them
MIN_CONFIDENT = 0.5  # a usable frame has at least this share of the model's joints confidently seen
CARD_NAME = "MODEL_CARD.md"


@dataclass
class TeachReport:
    """What one teaching run did: the classes added (with their clip and window counts), the classes
    left out because the model knows them, and the time it took."""

    base: str
    added: dict[str, int] = field(default_factory=dict)  # new class -> examples (clips)
    windows: dict[str, int] = field(default_factory=dict)  # new class -> teaching windows (with augmentation)
    known: dict[str, int] = field(default_factory=dict)  # known class -> examples left out
    seconds: float = 0.0
    mirrored: bool = False

    def summary(self) -> str:
        parts = [f"{name} ({n} example{'s' if n != 1 else ''})" for name, n in self.added.items()]
        line = f"taught {len(self.added)} new action(s) to {self.base}: {', '.join(parts)} in {self.seconds:.1f} s"
        if self.known:
            line += f"; left out {sum(self.known.values())} example(s) of known classes {sorted(self.known)}"
        return line


class _PooledFeature(torch.nn.Module):
    """The model, answering its pooled pose feature (the input of ``classifier_pose``) where it would
    answer probabilities: the engine hands back whatever ``probabilities`` returns."""

    def __init__(self, model: UniHAR) -> None:
        super().__init__()
        self.inner = model

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["inner"], name)

    def forward_head(self, features: UniHARFeatures) -> torch.Tensor:
        model = self.inner
        skeleton = model._modality("skeleton")
        tokens = features.tokens["skeleton"]
        pooled: torch.Tensor = skeleton.pool(model, tokens, features.segment_mask)
        return pooled

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float()


def check_teachable(model: HARModel) -> UniHAR:
    """Teaching appends rows to ``classifier_pose``: only a PyTorch model that answers through it."""
    if not isinstance(model, UniHAR):
        raise InputError(
            "teaching needs the PyTorch model (a save_pretrained folder or the bundled model), "
            f"not an {type(model).__name__}; load it with backend='torch'"
        )
    if model.modalities != ["skeleton"] or model.classifier_pose is None:
        raise InputError(
            f"teaching works on pose-only models for now; this model reads {model.modalities} "
            "(train a pose-only model, or use `unihar train --init` for a multimodal one)"
        )
    return model


def check_teach_out(out: str | Path, overwrite: bool, base: str | Path | None = None) -> Path:
    """Where a taught model goes: a new or empty folder, or an existing one only with ``overwrite``,
    and never the base model's own folder."""
    from unihar import assets

    path = Path(out)
    if path.exists() and not path.is_dir():
        raise InputError(f"--out: expected a folder for the taught model, got the file {path}")
    base_dir = Path(base) if base is not None else assets.default_model_dir()
    if base_dir.is_dir() and path.exists() and path.resolve() == base_dir.resolve():
        raise InputError(f"--out: {path} is the base model's folder; write the taught model somewhere else")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise InputError(f"{path} already exists and is not empty; pass --overwrite to replace its model files")
    return path


def _load_all(spec: str, **options: Any) -> SkeletonDataset:
    """Every example a teaching spec holds: its training split, and for a plain folder of videos per class
    (no train/ and test/ folders) also the fifth of the videos the loader would hold out for testing."""
    fmt, path = parse_data_spec(spec)
    name = split_variant(fmt)[0]
    data = load_dataset(spec, "train", **options)  # formats that extract no poses ignore the options
    if name == "video-folder" and not ((path / "train").is_dir() and (path / "test").is_dir()):
        try:
            rest = load_dataset(spec, "test", **options)
        except InputError as err:
            if "no videos found" not in str(err):  # classes of fewer than five videos hold none out
                raise
        else:
            data = _concat([data, rest], data.layout.name)
    return data


def _concat(parts: Sequence[SkeletonDataset], layout: str) -> SkeletonDataset:
    """Datasets in 2D and one layout, classes merged by name, in order of first appearance."""
    classes: list[str] = []
    sequences: list[np.ndarray] = []
    labels: list[int] = []
    names: list[str] = []
    fps = parts[0].fps
    for part in parts:
        part = part.projected().to_layout(layout)
        if part.fps != fps:
            # one time base: resample every part to the first one's rate (None: each clip is one window)
            if fps is None or part.fps is None:
                raise InputError(
                    f"teaching data mixes a frame rate ({fps or part.fps}) with data that has none ({part.name})"
                )
            part = replace(part, sequences=[_resample(s, part.fps, fps) for s in part.sequences], fps=fps)
        for name in part.classes:
            if name not in classes:
                classes.append(name)
        sequences += part.sequences
        labels += [classes.index(part.classes[int(i)]) for i in part.labels]
        names += [f"{part.name}:{n}" for n in part.names]
    return SkeletonDataset(
        sequences, np.asarray(labels), classes, get_layout(layout), fps=fps, names=names, name="teaching data"
    )


def _resample(sequence: np.ndarray, source: float, target: float) -> np.ndarray:
    """A sequence at ``source`` fps -> at ``target`` fps, joints interpolated only between their detections."""
    count = max(1, int(round(len(sequence) * target / source)))
    return resample_uniform(np.arange(len(sequence)) / source, sequence, np.arange(count) / target)


def load_teaching_data(data: str | Sequence[str] | SkeletonDataset, layout: str, **options: Any) -> SkeletonDataset:
    """One or more ``FORMAT:PATH`` specs (or a loaded dataset) as one 2D dataset in ``layout``."""
    if isinstance(data, SkeletonDataset):
        return _concat([data], layout)
    specs = [data] if isinstance(data, str) else list(data)
    if not specs:
        raise InputError("teach: expected at least one --data FORMAT:PATH, got none")
    loaded = []
    for spec in specs:
        if not isinstance(spec, str):
            raise InputError(f"teach: expected FORMAT:PATH strings or a SkeletonDataset, got {type(spec).__name__}")
        loaded.append(_load_all(spec, **options))
    if len(loaded) == 1:
        return _concat(loaded, layout)
    # several datasets: their class names merged through the taxonomy where it knows them
    return _concat([_canonical(part) for part in loaded], layout)


def _canonical(data: SkeletonDataset) -> SkeletonDataset:
    taxonomy = load_taxonomy()
    key = dataset_key(data)
    if key not in taxonomy.datasets:
        return data
    names = [taxonomy.canonical(key, n) if n in taxonomy.datasets[key] else n for n in data.classes]
    merged = list(dict.fromkeys(names))
    return replace(data, labels=np.asarray([merged.index(names[i]) for i in data.labels]), classes=merged)


def _known_name(name: str, labels: list[str], data: SkeletonDataset) -> str | None:
    """The model's class that ``name`` (a class of ``data``) is, by name or through the taxonomy."""
    if name in labels:
        return name
    taxonomy = load_taxonomy()
    key = dataset_key(data)
    if key in taxonomy.datasets and name in taxonomy.datasets[key]:
        canonical = taxonomy.canonical(key, name)
        if canonical in labels:
            return canonical
    return None


def _check_label(name: str) -> None:
    if not name.strip() or name != name.strip() or any(not c.isprintable() for c in name):
        raise InputError(
            f"teach: {name!r} is not a valid action name; expected printable text without leading or trailing spaces"
        )


def _usable(sequence: np.ndarray, min_confidence: float) -> bool:
    """A clip is usable when some frame shows most of the model's joints."""
    seen = (sequence[..., 2] >= min_confidence).mean(axis=1)
    return bool((seen >= MIN_CONFIDENT).any())


def _mirrored(sequence: np.ndarray, flip: tuple[int, ...]) -> np.ndarray:
    """The clip seen in a mirror: x reflected about the clip's centre and left/right joints swapped."""
    out = sequence[:, list(flip)].copy()
    seen = out[..., 2] > 0
    if seen.any():
        centre = float(np.median(out[..., 0][seen]))
        out[..., 0] = np.where(seen, 2 * centre - out[..., 0], out[..., 0])
    return out


@torch.no_grad()
def window_features(
    model: UniHAR, sequences: Sequence[np.ndarray], fps: float | None, stride: int | None = None
) -> list[np.ndarray]:
    """The pooled pose feature ``(W_i, D)`` of every engine window of each sequence (model layout, 2D)."""
    engine = WindowEngine(_PooledFeature(model.eval()), fps, stride=stride, batch_windows=256, min_seconds=0.0)
    found: dict[int, list[Any]] = {i: [] for i in range(len(sequences))}
    for index, sequence in enumerate(sequences):
        for result in engine.add_sequence(index, sequence):
            found[result.track].append(result)
    for result in engine.finish():
        found[result.track].append(result)
    dim = int(model.config.pose_model.hidden_dim or 0)
    return [
        np.stack([r.probs for r in sorted(found[i], key=lambda r: r.end_frame)])
        if found[i]
        else np.zeros((0, dim), np.float32)
        for i in range(len(sequences))
    ]


def _replay(
    weight: torch.Tensor, bias: torch.Tensor, features: torch.Tensor, per_class: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stand-ins for the old classes' data, which teaching does not have: for each old class, examples'
    features nudged (as little as it takes) until the frozen old head reads them as that class. They
    live where the user's clips do (same camera, same people), so a new row fitted against them learns
    what sets its action apart from the old ones there, not what sets the user's camera apart."""
    generator = torch.Generator().manual_seed(seed)
    classes = weight.shape[0]
    start = features[torch.randint(len(features), (classes * per_class,), generator=generator)]
    targets = torch.arange(classes).repeat_interleave(per_class)
    scale = features.norm(dim=1).mean()
    delta = torch.zeros_like(start, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=0.05 * float(scale))
    with torch.enable_grad():
        for _ in range(REPLAY_STEPS):
            optimizer.zero_grad()
            x = start + delta
            loss = F.cross_entropy(x @ weight.T + bias, targets) + ((delta / scale) ** 2).sum(dim=1).mean()
            loss.backward()
            optimizer.step()
    return (start + delta).detach(), targets


def _fit_rows(
    weight: torch.Tensor,
    bias: torch.Tensor,
    features: torch.Tensor,
    targets: torch.Tensor,
    prototypes: torch.Tensor,
    steps: int,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Imprint, then fit, the new rows; ``targets`` index the new classes (0..n-1)."""
    old_logits = features @ weight.T + bias  # constants: the old rows are frozen
    norm = weight.norm(dim=1).mean()
    rows0 = F.normalize(prototypes, dim=1) * norm
    # the bias that makes each class's mean example score like the best old class on it
    best_old = torch.stack([old_logits[targets == c].max(dim=1).values.mean() for c in range(len(prototypes))])
    bias0 = best_old - (prototypes * rows0).sum(dim=1)
    stand_ins, stand_in_targets = _replay(weight, bias, features, REPLAY_PER_CLASS, seed)
    x = torch.cat([features, stand_ins])
    old = torch.cat([old_logits, stand_ins @ weight.T + bias])
    labels = torch.cat([targets + weight.shape[0], stand_in_targets])
    # the user's examples and the stand-ins weigh the same in total
    weights = torch.cat(
        [torch.full((len(features),), 0.5 / len(features)), torch.full((len(stand_ins),), 0.5 / len(stand_ins))]
    )
    rows = rows0.clone().requires_grad_(True)
    new_bias = bias0.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([rows, new_bias], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = torch.cat([old, x @ rows.T + new_bias], dim=1)
        loss = (F.cross_entropy(logits, labels, reduction="none") * weights).sum()
        loss = loss + ROW_PENALTY * (
            ((rows - rows0) ** 2).sum(dim=1).mean() / norm**2 + ((new_bias - bias0) ** 2).mean() / norm**2
        )
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return rows.detach(), new_bias.detach()


def teach_model(
    model: HARModel,
    data: str | Sequence[str] | SkeletonDataset,
    *,
    base: str = "the bundled model",
    mirror: bool = False,
    shift_frames: int | None = None,
    steps: int = STEPS,
    **options: Any,
) -> tuple[UniHAR, TeachReport]:
    """A copy of ``model`` that also knows every class of ``data`` it did not know (see the module).

    ``options`` reach the loaders that extract poses from video (``workers``, ``skip_failed``).
    """
    start = time.perf_counter()
    model = check_teachable(model)
    layout = get_layout(model.preprocessing.layout)
    dataset = load_teaching_data(data, layout.name, **options)
    report = TeachReport(base=base)
    min_confidence = float(model.preprocessing.min_confidence)
    new_classes: list[str] = []
    clips: dict[str, list[np.ndarray]] = {}
    for c, name in enumerate(dataset.classes):
        members = [dataset.sequences[i] for i in np.flatnonzero(dataset.labels == c)]
        if not members:
            continue
        known = _known_name(name, model.labels, dataset)
        if known is not None:
            report.known[known] = report.known.get(known, 0) + len(members)
            continue
        _check_label(name)
        usable = [s for s in members if _usable(s, min_confidence)]
        if not usable:
            raise InputError(
                f"teach: class {name!r} has no usable clip: in none of its {len(members)} clip(s) is anyone "
                f"seen (at least {MIN_CONFIDENT:.0%} of the joints with confidence >= {min_confidence})"
            )
        new_classes.append(name)
        clips[name] = usable
    if report.known:
        warnings.warn(
            f"teach: the model already knows {sorted(report.known)}; their examples are left out "
            "(teaching refits only new actions)",
            stacklevel=2,
        )
    if not new_classes:
        raise InputError(
            f"teach: nothing to teach: every class of the data ({dataset.classes}) is one the model knows already"
        )
    few = [name for name in new_classes if len(clips[name]) == 1]
    if few:
        warnings.warn(f"teach: {few} taught from a single example; more examples give better answers", stacklevel=2)
    mirror = mirror and any(i != j for i, j in enumerate(layout.flip_index))
    report.mirrored = mirror
    stride = shift_frames if dataset.fps is not None else None
    sequences: list[np.ndarray] = []
    owner: list[int] = []
    for k, name in enumerate(new_classes):
        report.added[name] = len(clips[name])
        for sequence in clips[name]:
            variants = [sequence, _mirrored(sequence, layout.flip_index)] if mirror else [sequence]
            sequences += variants
            owner += [k] * len(variants)
    features = window_features(model, sequences, dataset.fps, stride)
    rows_x = [f for f in features if len(f)]
    rows_y = [np.full(len(f), owner[i]) for i, f in enumerate(features) if len(f)]
    x = torch.from_numpy(np.concatenate(rows_x)).float()
    y = torch.from_numpy(np.concatenate(rows_y)).long()
    for k, name in enumerate(new_classes):
        report.windows[name] = int((y == k).sum())
        if not report.windows[name]:
            raise InputError(f"teach: class {name!r} has no usable clip: none of its clips gives a model window")
    prototypes = torch.stack([x[y == k].mean(dim=0) for k in range(len(new_classes))])
    classifier = model.classifier_pose
    assert classifier is not None  # check_teachable
    weight, bias = classifier.weight.detach().float().cpu(), classifier.bias.detach().float().cpu()
    rows, new_bias = _fit_rows(weight, bias, x, y, prototypes, steps)
    taught = _grown(model, torch.cat([weight, rows]), torch.cat([bias, new_bias]), model.labels + new_classes)
    report.seconds = time.perf_counter() - start
    return taught, report


def _grown(model: UniHAR, weight: torch.Tensor, bias: torch.Tensor, labels: list[str]) -> UniHAR:
    """A new model: ``model``'s config and weights with ``classifier_pose`` replaced (more classes)."""
    config = model.config.to_dict()
    config["classifier"]["num_classes"] = len(labels)
    taught = UniHAR(config, labels=labels)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    state["classifier_pose.weight"], state["classifier_pose.bias"] = weight, bias
    taught.load_state_dict(state, strict=True)
    return taught.eval()


def write_taught_card(out: Path, report: TeachReport, base_dir: Path | None) -> Path:
    """The base model's card (when it has one) with a section saying what was taught on top of it."""
    card = out / CARD_NAME
    text = ""
    if base_dir is not None and (base_dir / CARD_NAME).is_file():
        text = (base_dir / CARD_NAME).read_text(encoding="utf-8").rstrip() + "\n\n"
    mirrored = " and mirrored" if report.mirrored else ""
    rows = "\n".join(f"| `{name}` | {count} | {report.windows.get(name, 0)} |" for name, count in report.added.items())
    text += (
        "## Taught actions\n\n"
        f"Taught with `unihar teach` on top of {report.base} ({time.strftime('%Y-%m-%d')}): the pose encoder "
        "and the old classes' rows are unchanged, one row per new action was fitted on its examples' pooled "
        "pose features (imprinted at the class mean, then L-BFGS over the new rows only). "
        f"Examples were cut into windows as `unihar predict` cuts a video{mirrored}.\n\n"
        "| action | examples (clips) | teaching windows |\n|---|---:|---:|\n"
        f"{rows}\n"
    )
    if report.known:
        text += (
            f"\nLeft out (the base model knows them): {', '.join(f'`{k}` ({n})' for k, n in report.known.items())}.\n"
        )
    card.write_text(text, encoding="utf-8")
    return card
