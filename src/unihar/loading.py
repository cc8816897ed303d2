"""Loading a model to run: the one place that resolves weights and picks the backend.

    model = load_model()                                   # the bundled default model (PyTorch)
    model = load_model("m97j/uni-har")                     # a Hub repo, or a save_pretrained folder
    model = load_model("model.onnx", backend="onnxruntime")
    model = load_model(backend="onnxruntime")              # the default model, exported once and cached

Every command and the server load through :func:`load_model`, and get a :class:`~unihar.models.HARModel`
whichever backend runs it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from unihar import assets, hub
from unihar.cache import cache_dir
from unihar.errors import CheckpointError, InputError
from unihar.inference.onnx_backend import EXPORT_VERSION, OnnxModel, export_onnx
from unihar.models import HARModel, UniHAR

__all__ = ["BACKENDS", "check_backend", "from_pretrained", "load_model", "onnx_cache_path"]

BACKENDS = ("torch", "onnxruntime")


def check_backend(backend: str, weights: str | Path | None = None) -> str:
    """``--backend`` in lower case, checked against ``--weights`` before a command loads or reads
    anything: an ``.onnx`` file runs only with onnxruntime (what :func:`load_model` would refuse later)."""
    backend = backend.strip().lower()
    if backend not in BACKENDS:
        raise InputError(f"--backend: expected one of {list(BACKENDS)}, got {backend!r}")
    if backend == "torch" and weights is not None and str(weights).lower().endswith(".onnx"):
        raise InputError(f"{weights} is an ONNX file: run it with --backend onnxruntime")
    return backend


def from_pretrained(repo_or_path: str | Path | None = None, revision: str | None = None) -> UniHAR:
    """A PyTorch model from a ``save_pretrained`` folder, the published repo layout, or a Hub repo id
    (default: the published ``m97j/uni-har``); see :meth:`UniHAR.from_pretrained`."""
    return UniHAR.from_pretrained(repo_or_path, revision=revision)


def _torch_weights(weights: str | Path | None) -> str | Path:
    if weights is not None:
        return weights
    folder = assets.default_model_dir()
    if not (folder / hub.CONFIG_NAME).is_file():
        raise CheckpointError(
            f"the bundled default model is not installed ({folder} has no {hub.CONFIG_NAME}); "
            f"pass --weights with a model folder or a Hub id such as {hub.DEFAULT_REPO_ID}"
        )
    return folder


def onnx_cache_path(model_dir: str | Path, revision: str | None = None) -> Path:
    """Where the ONNX export of a model folder / Hub repo is cached: named by a hash of its files, so a
    changed model (or a new export format) is exported again and an unchanged one never is."""
    digest = hashlib.sha256(f"unihar-onnx-{EXPORT_VERSION}".encode())
    for name in (hub.CONFIG_NAME, *hub.WEIGHTS_NAMES):
        path = hub.find_first((name,), model_dir, revision)
        if path is not None:
            digest.update(name.encode())
            digest.update(Path(path).read_bytes())
    return cache_dir("onnx", f"{digest.hexdigest()[:20]}.onnx")


def load_model(weights: str | Path | None = None, backend: str = "torch", revision: str | None = None) -> HARModel:
    """The model to run.

    ``weights``: a ``save_pretrained`` folder or Hub repo id, or with ``backend="onnxruntime"`` an
    ``.onnx`` file from ``unihar export``; None: the model bundled with the package. Anything that
    looks like a path (:func:`unihar.hub.local_reason`: ``runs/mine`` when ``runs/`` exists) is read
    from disk and, when missing, is an error, never a Hub look-up. With
    ``backend="onnxruntime"`` and a PyTorch model, the model is exported once to the cache
    (``$UNIHAR_CACHE/onnx``) and the export is reused afterwards.
    """
    backend = backend.strip().lower()
    if backend not in BACKENDS:
        raise InputError(f"backend: expected one of {list(BACKENDS)}, got {backend!r}")
    if backend == "torch":
        if weights is not None and str(weights).lower().endswith(".onnx"):
            raise InputError(f"{weights} is an ONNX file: run it with --backend onnxruntime")
        return from_pretrained(_torch_weights(weights), revision=revision)
    if weights is not None and str(weights).lower().endswith(".onnx"):
        return OnnxModel(weights)
    source = _torch_weights(weights)
    cached = onnx_cache_path(source, revision)
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".partial.onnx")
        export_onnx(from_pretrained(source, revision=revision), partial, overwrite=True)
        partial.replace(cached)  # atomic: a killed export never leaves a broken cache entry
    return OnnxModel(cached)
