"""Type checks of the run config's sections (``train``, ``augment``, ``augment.imu``), with pydantic.

A run config is JSON written by hand, so ``"epochs": "100"`` must stop the run when the file is read,
with one message naming the key, the type it takes and the value given, instead of a ``TypeError``
halfway through a run. The check is strict (``"100"`` is not taken for ``100``): a number written as a
string is as likely a mistake as a mistyped key. The values are kept as written (an integer stays an
integer), so a run config read and written back to ``training_args.json`` is unchanged.

pydantic is imported on the first check, not with the training modules.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from typing import Any

from unihar.errors import ConfigError

__all__ = ["checked_fields"]


_NOUNS = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _describe(tp: Any) -> str:
    """A field's type as someone writing JSON reads it: ``int | None`` -> "an integer or null"."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    if origin is tuple and len(args) == 2 and args[0] in _NOUNS:
        return f"a [low, high] pair of {_NOUNS[args[0]]}s"
    if origin is dict and args[1] in _NOUNS:
        return f"an object mapping names to {_NOUNS[args[1]]}s"
    if origin is list and args[0] in _NOUNS:
        return f"a list of {_NOUNS[args[0]]}s"
    if tp is bool:
        return "true or false"
    if tp is type(None):
        return "null"
    if tp in _NOUNS:
        return f"an {_NOUNS[tp]}" if _NOUNS[tp][0] in "aeiou" else f"a {_NOUNS[tp]}"
    return (
        "an object"
        if origin is dict or dataclasses.is_dataclass(tp)
        else "a list"
        if origin in (list, tuple)
        else str(tp)
    )


def _given(value: Any) -> str:
    """The value as it was written, and its JSON kind: ``"100" (a string)``."""
    kinds = [
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a number"),
        (str, "a string"),
        ((list, tuple), "a list"),
        (dict, "an object"),
        (type(None), "null"),
    ]
    kind = next((name for kinds_of, name in kinds if isinstance(value, kinds_of)), type(value).__name__)
    try:
        shown = json.dumps(value)
    except (TypeError, ValueError):
        shown = repr(value)
    return f"{shown} ({kind})"


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def _validator(cls: type):
    """A strict pydantic model with the fields of dataclass ``cls``; a nested dataclass (a subsection)
    is only checked to be an object here: its own class checks its keys."""
    from pydantic import ConfigDict, create_model

    hints = _hints(cls)
    fields = {
        f.name: (dict[str, Any] if dataclasses.is_dataclass(hints[f.name]) else hints[f.name], None)
        for f in dataclasses.fields(cls)
    }
    return create_model(f"{cls.__name__}Check", __config__=ConfigDict(strict=True, extra="forbid"), **fields)


def checked_fields(cls: type, data: Any, section: str | None, source: str | None = None) -> dict[str, Any]:
    """``data`` (the ``section`` of a run config) as keyword arguments of dataclass ``cls``, its JSON
    lists turned into the tuples the fields hold; or one :class:`ConfigError` naming every key whose
    value has the wrong type (the expected type and the value given) or that ``cls`` does not have.
    ``source`` (e.g. the file) starts the message."""
    from pydantic import ValidationError

    where = f"{source}: " if source else ""
    known = sorted(f.name for f in dataclasses.fields(cls))
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where}{section or 'the run config'} must be an object with keys from {known}, got {_given(data)}"
        )
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"{where}{section + ': ' if section else ''}unknown keys {unknown}; expected a subset of {known}"
        )
    hints = _hints(cls)
    values = {
        k: tuple(v) if isinstance(v, list) and typing.get_origin(hints[k]) is tuple else v for k, v in data.items()
    }
    try:
        _validator(cls).model_validate(values)
    except ValidationError as err:
        keys = list(dict.fromkeys(str(e["loc"][0]) for e in err.errors()))
        problems = [
            f"{section + '.' if section else ''}{key} must be {_describe(hints[key])}, got {_given(data[key])}"
            for key in keys
        ]
        raise ConfigError(where + "; ".join(problems)) from None
    return values
