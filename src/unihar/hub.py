"""Finding a model's files: in a local folder, or on the Hugging Face Hub (downloaded once, then cached).

The published model repo holds ``pytorch_model.bin``, ``config.json`` and ``class_label.json``; our
own folders follow the ``transformers`` layout (``config.json`` + ``model.safetensors`` +
``class_label.json``). Every function here takes either a Hub repo id or a local folder, so the same
code works offline from a folder the user copied. Hub look-ups go through ``huggingface_hub`` and so
follow its cache and its offline switch (``HF_HUB_OFFLINE=1``); nothing here is called unless the user
asks for the Hub. This module only resolves and reads files: building and loading models is
:mod:`unihar.loading`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from unihar.errors import HubError
from unihar.jsonfile import read_json

__all__ = [
    "DEFAULT_REPO_ID",
    "CONFIG_NAME",
    "LABELS_NAME",
    "SAFETENSORS_NAME",
    "PYTORCH_WEIGHTS_NAME",
    "WEIGHTS_NAMES",
    "HubFileMissingError",
    "HubOfflineError",
    "FILE_SUFFIXES",
    "local_reason",
    "resolve_file",
    "find_first",
    "download_model",
    "load_config",
    "load_labels",
    "labels_to_list",
]

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


# Suffixes of model files: "model.onnx" or "runs/best.bin" is a file the user meant, never a Hub repo
# (repo names may hold dots, e.g. "org/model-v1.5", so not every suffix counts).
FILE_SUFFIXES = (".onnx", ".bin", ".safetensors", ".pt", ".pth", ".ckpt", ".json")


def local_reason(repo_or_path: str | Path) -> str | None:
    """Why ``repo_or_path`` is a local path, or None when it can only be a Hub repo id.

    A ``Path``, a path that exists, one that starts with ``.``, ``/`` or ``~``, holds a backslash or more
    than one slash, ends in a model-file suffix, or whose first part is a folder here (``runs/mine`` when
    ``runs/`` exists) is local: a mistyped local path must be reported as missing, not sent to the Hub.
    What is left (``name`` or ``owner/name``) is a repo id.
    """
    if isinstance(repo_or_path, Path):
        return "it was given as a Path"
    text = str(repo_or_path)
    first = text.split("/", 1)[0]
    if Path(text).expanduser().exists():
        return "it exists"
    if text.startswith((".", "/", "~")) or "\\" in text or text.count("/") > 1:
        return "it is written as a path"
    if text.lower().endswith(FILE_SUFFIXES):
        return f"it ends in {Path(text).suffix}"
    if "/" in text and first and Path(first).is_dir():
        return f"{first}/ is a folder here"
    return None


def _no_such_folder(folder: Path, reason: str, filename: str) -> HubError:
    """The error for a local path that is not a folder, saying why it was read as a path."""
    if folder.exists():
        return HubError(f"{folder} is a file, not a model folder (expected a folder holding {filename})")
    return HubError(
        f"no such model folder: {folder} (read as a local path because {reason}; expected a folder holding "
        f"{filename}, or a Hub repo id like '{DEFAULT_REPO_ID}')"
    )


def resolve_file(filename: str, repo_or_path: str | Path | None = None, revision: str | None = None) -> str:
    """Local path of ``filename`` from a local folder, or from a Hub repo (downloaded or from the cache)."""
    repo_or_path = DEFAULT_REPO_ID if repo_or_path is None else repo_or_path
    reason = local_reason(repo_or_path)
    if reason is not None:
        folder = Path(repo_or_path).expanduser()
        if not folder.is_dir():
            raise _no_such_folder(folder, reason, filename)
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
    no_folder = f"there is no local folder '{repo_id}' either (in {Path.cwd()})"
    try:
        return hf_hub_download(repo_id=repo_id, filename=filename, revision=revision, repo_type="model")
    except LocalEntryNotFoundError:
        raise HubOfflineError(
            f"{filename} of {where} is not in the local Hugging Face cache and the Hub cannot be reached "
            f"(offline, or HF_HUB_OFFLINE=1), and {no_folder}. Either pass a local folder that holds the files, "
            "or connect once so the files are cached, then work offline."
        ) from None
    except HFValidationError as err:
        reason = str(err).splitlines()[0]
        raise HubError(f"'{repo_id}' is neither an existing local folder nor a valid Hub repo id: {reason}") from None
    except GatedRepoError:
        raise HubError(f"{where} is gated on the Hub: log in with `hf auth login` after accepting its terms") from None
    except RepositoryNotFoundError:
        raise HubError(
            f"Hub repo {where} not found (or private: log in with `hf auth login`), and {no_folder}"
        ) from None
    except RevisionNotFoundError:
        raise HubError(f"revision '{revision}' not found in Hub repo '{repo_id}'") from None
    except EntryNotFoundError:
        raise HubFileMissingError(f"{filename} not found in Hub repo {where}") from None
    except (OSError, ValueError) as err:  # network errors, including httpx / requests ones
        raise HubError(f"could not fetch {filename} from Hub repo {where}: {str(err).splitlines()[0]}") from None


def find_first(names: tuple[str, ...], repo_or_path: str | Path | None, revision: str | None) -> str | None:
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
    path = find_first((PYTORCH_WEIGHTS_NAME, SAFETENSORS_NAME), repo_or_path, revision)
    if path is None:
        raise HubFileMissingError(
            f"no weights ({' or '.join(WEIGHTS_NAMES)}) found in {repo_or_path or DEFAULT_REPO_ID}"
        )
    return path


def load_config(repo_or_path: str | Path | None = None, revision: str | None = None) -> dict[str, Any]:
    """The model's ``config.json`` as a dict (validated when the model is built)."""
    config: dict[str, Any] = read_json(resolve_file(CONFIG_NAME, repo_or_path, revision), "config", HubError)
    return config


def load_labels(repo_or_path: str | Path | None = None, revision: str | None = None) -> dict[str, str]:
    """``class_label.json``: ``{"0": name, "1": ...}``, looked up as ``labels[str(class_id)]``."""
    labels: dict[str, object] = read_json(resolve_file(LABELS_NAME, repo_or_path, revision), "labels file", HubError)
    if not all(isinstance(v, str) for v in labels.values()):
        raise HubError('class_label.json must map class ids to names: {"0": "name", ...}')
    return cast("dict[str, str]", labels)  # every value checked above


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
