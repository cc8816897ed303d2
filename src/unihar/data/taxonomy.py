"""One action vocabulary across datasets.

Every dataset names its classes its own way ("walk around", "walkingSlow", "approaching" seen from the
mover...). ``taxonomy.json`` (shipped in the package) maps each dataset's class names, as its loader
reports them, to canonical lower_snake_case names, merging the same action from several datasets into
one class (``walk`` gathers NW-UCLA, UT-Kinect, mall CCTV, SBU, UTD-MHAD and MPOSE). Its sections:

- ``classes``: the canonical names, each with a one-line description;
- ``datasets``: per dataset (the ``FORMAT`` of ``FORMAT:PATH``), ``{dataset class name: canonical name}``;
- ``negatives``: labels that only say what a sample is *not*: UR Fall's ``not_fall`` sequences are
  activities of daily living (walking, sitting down, lying down, picking things up...) without a
  per-sequence action, so they map to ``not_fall``, declared as "none of ``fall``". A trainer can use it
  as an ordinary class or, better, as a negative for ``fall`` only (see :meth:`Taxonomy.negated`), so the
  everyday classes those sequences contain are not taught a conflicting name.

:func:`apply_taxonomy` relabels a :class:`~unihar.data.datasets.SkeletonDataset` with canonical names.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from unihar.data.datasets.base import SkeletonDataset
from unihar.errors import InputError

__all__ = ["Taxonomy", "TAXONOMY_FILE", "load_taxonomy", "apply_taxonomy", "dataset_key"]

TAXONOMY_FILE = Path(__file__).with_name("taxonomy.json")
_CANONICAL = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


@dataclass(frozen=True)
class Taxonomy:
    """Canonical classes (name -> description), per-dataset maps and negative labels; see the module."""

    classes: dict[str, str]
    datasets: dict[str, dict[str, str]]
    negatives: dict[str, tuple[str, ...]]
    source: str = "taxonomy"

    def __post_init__(self) -> None:
        bad = [name for name in self.classes if not _CANONICAL.match(name)]
        if bad:
            raise InputError(f"{self.source}: canonical class names must be lower_snake_case, got {bad}")
        for dataset, mapping in self.datasets.items():
            unknown = sorted({c for c in mapping.values() if c not in self.classes})
            if unknown:
                raise InputError(f"{self.source}: dataset {dataset!r} maps to {unknown}, which are not in 'classes'")
        for negative, excluded in self.negatives.items():
            unknown = [c for c in (negative, *excluded) if c not in self.classes]
            if unknown:
                raise InputError(f"{self.source}: negative {negative!r} names {unknown}, which are not in 'classes'")

    def mapping(self, dataset: str) -> dict[str, str]:
        """``{dataset class name: canonical name}`` of one dataset."""
        if dataset not in self.datasets:
            raise InputError(f"{self.source}: unknown dataset {dataset!r}; the taxonomy covers {sorted(self.datasets)}")
        return self.datasets[dataset]

    def canonical(self, dataset: str, class_name: str) -> str:
        """The canonical name of ``class_name`` of ``dataset``."""
        mapping = self.mapping(dataset)
        if class_name not in mapping:
            raise InputError(
                f"{self.source}: dataset {dataset!r} has no entry for class {class_name!r}; its classes are "
                f"{sorted(mapping)}"
            )
        return mapping[class_name]

    def negated(self, name: str) -> tuple[str, ...]:
        """The classes a negative label rules out (``("fall",)`` for ``not_fall``); empty for an ordinary class."""
        return self.negatives.get(name, ())


def _read(path: Path) -> Taxonomy:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"taxonomy file not found: {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"taxonomy {path} is not valid JSON: {err}") from None
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("classes"), dict)
        or not isinstance(raw.get("datasets"), dict)
    ):
        raise InputError(
            f"taxonomy {path}: expected an object with 'classes' {{name: description}} and "
            "'datasets' {dataset: {class: name}}"
        )
    datasets = raw["datasets"]
    if not all(isinstance(m, dict) and all(isinstance(v, str) for v in m.values()) for m in datasets.values()):
        raise InputError(f"taxonomy {path}: every 'datasets' entry must map class names to canonical names (strings)")
    negatives = raw.get("negatives", {})
    if not isinstance(negatives, dict) or not all(
        isinstance(v, list) and all(isinstance(c, str) for c in v) for v in negatives.values()
    ):
        raise InputError(f"taxonomy {path}: 'negatives' must map a class name to the list of classes it rules out")
    negatives = {name: tuple(excluded) for name, excluded in negatives.items()}
    return Taxonomy(
        dict(raw["classes"]), {k: dict(v) for k, v in datasets.items()}, negatives, source=f"taxonomy {path}"
    )


@lru_cache(maxsize=8)
def _cached(path: str) -> Taxonomy:
    return _read(Path(path))


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """The taxonomy in ``path``, by default the one shipped with the package (read once)."""
    return _cached(str(Path(path) if path is not None else TAXONOMY_FILE))


def dataset_key(data: SkeletonDataset) -> str:
    """The taxonomy key of a loaded dataset: its format name (``"nw-ucla/train"`` -> ``"nw-ucla"``)."""
    return data.name.split("/", 1)[0].split("@", 1)[0]


def apply_taxonomy(
    data: SkeletonDataset, dataset: str | None = None, taxonomy: Taxonomy | None = None
) -> SkeletonDataset:
    """``data`` with canonical class names: merged classes share one label, classes are listed in the order
    they first appear in ``data.classes``. ``dataset`` defaults to :func:`dataset_key`."""
    taxonomy = taxonomy or load_taxonomy()
    key = dataset or dataset_key(data)
    names = [taxonomy.canonical(key, c) for c in data.classes]
    classes = list(dict.fromkeys(names))
    remap = np.asarray([classes.index(n) for n in names], dtype=np.int64)
    return replace(data, labels=remap[data.labels], classes=classes)
