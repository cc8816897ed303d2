"""Reading the JSON files a user hands us (configs, labels, dataset descriptions, run recipes).

One helper, so every such file fails the same way: a missing file or invalid JSON is one error naming
the file and what it was supposed to be, of the error class the caller's domain uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from unihar.errors import UniHARError

__all__ = ["read_json"]


def read_json(path: str | Path, what: str, error: type[UniHARError] = UniHARError, kind: type | None = dict) -> Any:
    """Parse the JSON file at ``path`` (``what`` names it in messages, e.g. "config file").

    ``kind``: the JSON type the top level must have (``dict`` by default; None accepts anything).
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise error(f"{what} {path} is not valid JSON: {err}") from None
    if kind is not None and not isinstance(data, kind):
        names: dict[type, str] = {dict: "an object", list: "a list"}
        expected = names.get(kind, kind.__name__)
        raise error(f"{what} {path} must hold {expected}, got {type(data).__name__}")
    return data
