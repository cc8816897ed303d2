"""The Hugging Face Hub side: fetch the published files, and the ``save_pretrained`` folder convention.

The published model repo holds ``pytorch_model.bin``, ``config.json`` and ``class_label.json``. Every
function here takes either a Hub repo id or a local folder, so the same code works offline from a
folder the user copied. Hub look-ups go through ``huggingface_hub`` and so follow its cache and its
offline switch (``HF_HUB_OFFLINE=1``); nothing here is called unless the user asks for the Hub.

Our own folders follow the ``transformers`` layout: ``config.json`` + ``model.safetensors`` (+
``class_label.json``), written by :func:`save_pretrained` and read back by :func:`from_pretrained`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from unihar.errors import CheckpointError, ConfigError, HubError, UniHARError

DEFAULT_REPO_ID = "m97j/uni-har"
CONFIG_NAME = "config.json"
LABELS_NAME = "class_label.json"
SAFETENSORS_NAME = "model.safetensors"
PYTORCH_WEIGHTS_NAME = "pytorch_model.bin"
WEIGHTS_NAMES = (SAFETENSORS_NAME, PYTORCH_WEIGHTS_NAME)


class HubFileMissingError(HubError, FileNotFoundError):
    """The folder or repo was reached, but it does not hold the requested file."""


class HubOfflineError(HubError):
    """The file is not in the local cache and the Hub cannot be reached."""


def _is_local(repo_or_path: str | Path) -> bool:
    path = Path(repo_or_path).expanduser()
    return path.exists() or str(repo_or_path).startswith((".", "/", "~")) or str(repo_or_path).count("/") > 1


def resolve_file(filename: str, repo_or_path: str | Path | None = None, revision: str | None = None) -> str:
    """Local path of ``filename`` from a local folder, or from a Hub repo (downloaded or from the cache)."""
    repo_or_path = DEFAULT_REPO_ID if repo_or_path is None else repo_or_path
    if _is_local(repo_or_path):
        folder = Path(repo_or_path).expanduser()
        if not folder.is_dir():
            raise HubError(f"model folder not found: {folder} (expected a folder holding {filename}, or a Hub repo id like '{DEFAULT_REPO_ID}')")
        path = folder / filename
        if not path.is_file():
            present = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
            raise HubFileMissingError(f"{filename} not found in {folder} (it holds: {present})")
        return str(path)

    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo_id = str(repo_or_path)
    where = f"'{repo_id}'" + (f" at revision '{revision}'" if revision else "")
    try:
        return hf_hub_download(repo_id=repo_id, filename=filename, revision=revision, repo_type="model")
    except LocalEntryNotFoundError:
        raise HubOfflineError(
            f"{filename} of {where} is not in the local Hugging Face cache and the Hub cannot be reached "
            "(offline, or HF_HUB_OFFLINE=1). Either pass a local folder that holds the files, "
            "or connect once so the files are cached, then work offline."
        ) from None
    except HFValidationError as err:
        raise HubError(f"'{repo_id}' is neither an existing local folder nor a valid Hub repo id: {err}") from None
    except GatedRepoError:
        raise HubError(f"{where} is gated on the Hub: log in with `hf auth login` after accepting its terms") from None
    except RepositoryNotFoundError:
        raise HubError(f"Hub repo {where} not found (or private: log in with `hf auth login`)") from None
    except RevisionNotFoundError:
        raise HubError(f"revision '{revision}' not found in Hub repo '{repo_id}'") from None
    except EntryNotFoundError:
        raise HubFileMissingError(f"{filename} not found in Hub repo {where}") from None
    except (OSError, ValueError) as err:  # network errors, including httpx / requests ones
        raise HubError(f"could not fetch {filename} from Hub repo {where}: {str(err).splitlines()[0]}") from None


def _first_present(names: tuple[str, ...], repo_or_path: str | Path | None, revision: str | None) -> str | None:
    """Path of the first of ``names`` the folder or repo holds, or None if it holds none of them.

    Offline, a file missing from the cache may still exist on the Hub: that is only an error when
    none of the candidates is cached.
    """
    offline: HubOfflineError | None = None
    for name in names:
        try:
            return resolve_file(name, repo_or_path, revision)
        except HubFileMissingError:
            continue
        except HubOfflineError as err:
            offline = offline or err
    if offline is not None:
        raise offline
    return None


def download_model(repo_or_path: str | Path | None = None, revision: str | None = None) -> str:
    """Path of the published weights (``pytorch_model.bin``; ``model.safetensors`` in our folders)."""
    path = _first_present((PYTORCH_WEIGHTS_NAME, SAFETENSORS_NAME), repo_or_path, revision)
    if path is None:
        raise HubFileMissingError(f"no weights ({' or '.join(WEIGHTS_NAMES)}) found in {repo_or_path or DEFAULT_REPO_ID}")
    return path


def _read_json(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise HubError(f"{what} {path} is not valid JSON: {err}") from None


def load_config(repo_or_path: str | Path | None = None, revision: str | None = None) -> dict[str, Any]:
    """The model's ``config.json`` as a dict (validated when the model is built)."""
    config = _read_json(resolve_file(CONFIG_NAME, repo_or_path, revision), "config")
    if not isinstance(config, dict):
        raise ConfigError(f"config.json must hold a JSON object, got {type(config).__name__}")
    return config


def load_labels(repo_or_path: str | Path | None = None, revision: str | None = None) -> dict[str, str]:
    """``class_label.json``: ``{"0": name, "1": ...}``, looked up as ``labels[str(class_id)]``."""
    labels = _read_json(resolve_file(LABELS_NAME, repo_or_path, revision), "labels file")
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise HubError('class_label.json must map class ids to names: {"0": "name", ...}')
    return labels


def labels_to_list(labels: dict[str, str], num_classes: int) -> list[str]:
    """``{"0": name, ...}`` -> a list indexed by class id; ids must be exactly 0..K-1."""
    expected = {str(i) for i in range(num_classes)}
    if set(labels) != expected:
        missing = sorted(expected - set(labels), key=int)[:5]
        extra = sorted(set(labels) - expected)[:5]
        raise HubError(
            f"class_label.json must have the keys '0'..'{num_classes - 1}' for {num_classes} classes; "
            f"missing {missing}, unexpected {extra}"
        )
    return [labels[str(i)] for i in range(num_classes)]


def save_pretrained(model: Any, save_directory: str | Path, overwrite: bool = False) -> Path:
    """Write ``config.json``, ``model.safetensors`` and (if the model has labels) ``class_label.json``.

    Refuses to replace existing files unless ``overwrite=True``.
    """
    from safetensors.torch import save_file

    out = Path(save_directory)
    targets = [out / CONFIG_NAME, out / SAFETENSORS_NAME] + ([out / LABELS_NAME] if model.labels else [])
    existing = [p.name for p in targets if p.exists()]
    if existing and not overwrite:
        raise UniHARError(f"{out} already holds {', '.join(existing)}; pass overwrite=True (or --overwrite) to replace them")
    out.mkdir(parents=True, exist_ok=True)
    # safetensors refuses shared or non-contiguous storage: give each tensor its own contiguous copy.
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(tensors, str(out / SAFETENSORS_NAME), metadata={"format": "pt"})
    _readable_like_the_config(out / SAFETENSORS_NAME)
    (out / CONFIG_NAME).write_text(json.dumps(model.config, indent=2) + "\n", encoding="utf-8")
    if model.labels:
        labels = {str(i): name for i, name in enumerate(model.labels)}
        (out / LABELS_NAME).write_text(json.dumps(labels, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def _readable_like_the_config(path: Path) -> None:
    """safetensors writes its file owner-only (0600); give it the permissions an ordinary file gets (umask)."""
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)


def from_pretrained(repo_or_path: str | Path | None = None, revision: str | None = None) -> Any:
    """Build and load a model from a ``save_pretrained`` folder, the published repo layout, or a Hub repo.

    Weights: ``model.safetensors`` if present, else ``pytorch_model.bin``. Labels are optional.
    The model is returned in eval mode, on the CPU.
    """
    from unihar.models import build_model, load_checkpoint

    config = load_config(repo_or_path, revision)
    labels_path = _first_present((LABELS_NAME,), repo_or_path, revision)
    labels = None
    if labels_path is not None:
        labels = labels_to_list(load_labels(Path(labels_path).parent), int(config.get("classifier", {}).get("num_classes", -1)))
    weights = _first_present(WEIGHTS_NAMES, repo_or_path, revision)
    if weights is None:
        raise CheckpointError(f"no weights ({' or '.join(WEIGHTS_NAMES)}) found in {repo_or_path or DEFAULT_REPO_ID}")
    model = build_model(config, labels=labels)
    load_checkpoint(model, weights)
    return model.eval()


BACKENDS = ("torch", "onnxruntime")


def load_model(weights: str | Path | None = None, backend: str = "torch", revision: str | None = None) -> Any:
    """The model the command line and the server run.

    ``weights``: a ``save_pretrained`` folder or Hub repo id (``backend="torch"``), or an ``.onnx`` file
    from ``unihar export`` (``backend="onnxruntime"``); None: the model bundled with the package.
    """
    from unihar import assets

    backend = backend.strip().lower()
    if backend not in BACKENDS:
        raise UniHARError(f"backend: expected one of {list(BACKENDS)}, got {backend!r}")
    if backend == "onnxruntime":
        if weights is None or not str(weights).lower().endswith(".onnx"):
            raise UniHARError(f"the onnxruntime backend needs weights pointing to an .onnx file (from `unihar export`), got {weights!r}")
        from unihar.inference.onnx_backend import OnnxModel

        return OnnxModel(weights)
    if weights is None:
        weights = assets.default_model_dir()
        if not (weights / CONFIG_NAME).is_file():
            raise CheckpointError(
                f"the bundled default model is not installed ({weights} has no {CONFIG_NAME}); "
                f"pass --weights with a model folder or a Hub id such as {DEFAULT_REPO_ID}"
            )
    return from_pretrained(weights, revision=revision)
