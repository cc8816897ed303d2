"""How every config is declared and checked: pydantic dataclasses with strict scalars.

A config is JSON written by hand or read from a checkpoint, so a wrong value must stop it when it is
read, with one message naming the key, what it takes and what was given, rather than a ``TypeError``
halfway through a run. The model config (:mod:`unihar.config`) and the run config (``train``,
``augment``) are declared the same way, and the JSON Schema in ``docs/config-schema.md`` is generated
from the same classes, so the documentation cannot disagree with the check.

Scalars are strict: ``"100"`` is not taken for ``100`` (a number written as a string is as likely a
mistake as a mistyped key) and ``true`` is not a count; an integer is a number. Ranges are part of the
field types. Rules that tie several keys together (a width divisible by the head count) are written in
each class's ``check_rules``. Containers are lax, so a JSON list fills a tuple field.

This module imports no torch: configs are read before anything decides to load a model.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeVar, cast, overload

import annotated_types
from pydantic import ConfigDict, Field, Strict, StrictFloat, StrictInt, TypeAdapter, ValidationError, WithJsonSchema
from pydantic.dataclasses import dataclass as pydantic_dataclass
from pydantic.json_schema import GenerateJsonSchema
from typing_extensions import dataclass_transform

from unihar.errors import ConfigError

__all__ = [
    "Bool",
    "Float",
    "Int",
    "Str",
    "Number",
    "Bounds",
    "ConfigBase",
    "config_dataclass",
    "number",
    "build",
    "given",
    "json_schema",
    "object_schema",
]

Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]  # an integer is taken, and stored as a float
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]

_BOUNDS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}
# Errors about a value of the right type but out of range or not among the choices: the value is
# shown as Python writes it ('fp8'); other errors show it as JSON with its kind ("100" (a string)).
_VALUE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "literal_error", "enum"}


# A number kept as written (an integer stays an integer), so a run config written back to
# ``training_args.json`` is unchanged. Declare a field ``Annotated[Number, Bounds(...)]``: the bounds
# (``Bounds()`` for none) also make its JSON Schema one number.
Number = StrictInt | StrictFloat


@dataclasses.dataclass(frozen=True)
class Bounds(annotated_types.GroupedMetadata):
    """The range of a :data:`Number` (pydantic's ``ge`` / ``gt`` / ``le`` / ``lt``), and its JSON Schema:
    ``{"type": "number"}`` with these bounds."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def __iter__(self) -> Iterator[object]:
        yield from Field(ge=self.ge, gt=self.gt, le=self.le, lt=self.lt).metadata
        bounds = {_BOUNDS[k]: v for k, v in dataclasses.asdict(self).items() if v is not None}
        yield WithJsonSchema({"type": "number", **bounds})


def number(**bounds: float) -> Any:
    """``Annotated[Number, Bounds(**bounds)]``, made at run time (a type checker cannot read it: prefer
    that form); ``bounds`` are pydantic's ``ge`` / ``gt`` / ``le`` / ``lt``."""
    return Annotated[Number, Bounds(**bounds)]


class ConfigBase:
    """What every config class shares; declare one with :func:`config_dataclass`.

    ``SECTION`` is the class's place in its file (``pose_model``, ``train``, ``augment.imu``) and starts
    the name of each key in a message. ``QUOTED``: keys are named ``config key 'section.key'`` (the
    model config's messages) or plainly ``section.key`` (the run config's).
    """

    SECTION: ClassVar[str] = ""
    QUOTED: ClassVar[bool] = False

    if TYPE_CHECKING:  # made a dataclass by config_dataclass, which gives it these fields
        __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def __post_init__(self) -> None:
        self.check_rules()

    def check_rules(self) -> None:
        """Rules the field types cannot say, across keys (override); raise :class:`ConfigError`."""

    def check(self, source: str | None = None) -> None:
        """Check the values this object holds now, as if it were being built from them (for objects
        built or changed in Python); ``source`` (e.g. the file) starts the message."""
        build(type(self), {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, source)

    @classmethod
    def key(cls, path: str) -> str:
        """How a message names the key ``path`` of this section."""
        name = ".".join(part for part in (cls.SECTION, path) if part)
        return f"'{name}'" if cls.QUOTED else name


_Config = TypeVar("_Config", bound=ConfigBase)


@overload
def config_dataclass(cls: type[_Config], /) -> type[_Config]: ...


@overload
def config_dataclass(
    *, unknown_keys: Literal["forbid", "ignore"] = "forbid"
) -> Callable[[type[_Config]], type[_Config]]: ...


@dataclass_transform(field_specifiers=(dataclasses.field, Field))
def config_dataclass(
    cls: type[_Config] | None = None, *, unknown_keys: Literal["forbid", "ignore"] = "forbid"
) -> type[_Config] | Callable[[type[_Config]], type[_Config]]:
    """Make ``cls`` (a subclass of :class:`ConfigBase`) a pydantic dataclass whose construction raises
    :class:`ConfigError` naming every bad key. ``unknown_keys``: ``"forbid"`` (refused) or ``"ignore"``
    (the published model config: keys this version does not know are dropped)."""

    def wrap(cls: type[_Config]) -> type[_Config]:
        config = ConfigDict(extra=unknown_keys, revalidate_instances="always")
        # pydantic's stubs say a PydanticDataclass: it is ``cls`` itself, made a dataclass.
        made = cast("type[_Config]", pydantic_dataclass(cls, config=config))
        validated_init = made.__init__

        @functools.wraps(validated_init)
        def __init__(self: _Config, *args: Any, **kwargs: Any) -> None:
            try:
                validated_init(self, *args, **kwargs)
            except ValidationError as err:
                given = {**dict(zip((f.name for f in dataclasses.fields(made)), args)), **kwargs}
                raise ConfigError(_message(type(self), err, given)) from None

        setattr(made, "__init__", __init__)  # noqa: B010 (mypy refuses to assign to a method)
        return made

    return wrap(cls) if cls is not None else wrap


def build(cls: type[_Config], data: Any, source: str | None = None) -> _Config:
    """``cls`` built from ``data`` (a section of a parsed JSON file), or a :class:`ConfigError` that
    ``source`` (e.g. the file) starts."""
    where = f"{source}: " if source else ""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}{cls.SECTION or 'the config'} must be an object, got {given(data)}")
    try:
        return cls(**data)
    except ConfigError as err:
        raise ConfigError(where + str(err)) from None


@functools.cache
def json_schema(cls: type) -> dict[str, Any]:
    """The JSON Schema of a config class: its keys, their types, ranges and defaults."""
    return TypeAdapter(cls).json_schema(schema_generator=_Schema)


class _Schema(GenerateJsonSchema):
    """Keys without pydantic's generated titles ("Hidden Dim"): the key is its own title."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def object_schema(
    title: str, description: str, properties: Mapping[str, Any], required: tuple[str, ...] = (), additional: bool = True
) -> dict[str, Any]:
    """The JSON Schema of a file made of sections: ``properties`` maps each key to a config class or a
    schema. The classes' definitions move up to the top, where their references point."""
    defs: dict[str, Any] = {}
    parts: dict[str, Any] = {}
    for name, part in properties.items():
        part = copy.deepcopy(json_schema(part) if isinstance(part, type) else part)
        defs.update(part.pop("$defs", {}))
        parts[name] = part
    out = {
        "title": title,
        "description": description,
        "type": "object",
        "properties": parts,
        "required": list(required),
        "additionalProperties": additional,
    }
    return {**out, "$defs": defs} if defs else out


def given(value: Any) -> str:
    """The value as it was written, and its JSON kind: ``"100" (a string)``."""
    kinds: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a number"),
        (str, "a string"),
        ((list, tuple), "a list"),
        (Mapping, "an object"),
        (type(None), "null"),
    ]
    kind = next((name for types, name in kinds if isinstance(value, types)), type(value).__name__)
    try:
        shown = json.dumps(value)
    except (TypeError, ValueError):
        shown = repr(value)
    return f"{shown} ({kind})"


def _message(cls: type[ConfigBase], err: ValidationError, data: Mapping[str, Any]) -> str:
    """One line per problem of ``err`` (validating ``data`` as ``cls``), each key named once."""
    # typeshed types a cached function's arguments as Hashable, and mypy checks a class object against it
    # with its instances' __hash__ (a mypy limitation): a class is hashable.
    schema = json_schema(cls)  # type: ignore[arg-type]
    unknown: list[str] = []
    problems: dict[str, str] = {}
    names = [f.name for f in dataclasses.fields(cls)]
    for error in err.errors():
        loc, kind = error["loc"], error["type"]
        if loc and isinstance(loc[0], int) and loc[0] < len(names):  # a positional argument
            loc = (names[loc[0]], *loc[1:])
        if kind in ("unexpected_keyword_argument", "extra_forbidden") and len(loc) == 1:
            unknown.append(str(loc[0]))
            continue
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, ValueError):  # from check_rules (a ConfigError, or a class it builds)
            problems.setdefault(str(cause), str(cause))
            continue
        path, node, value, inside = _locate(schema, loc, data)
        if path in problems:
            continue
        name = cls.key(path)
        subject = f"config key {name}" if cls.QUOTED else name
        if kind == "missing" and not inside:
            problems[path] = f"config is missing the required key {name}"
        elif kind in _VALUE_ERRORS:
            problems[path] = f"{subject} must be {_describe(node, schema, ranges=True)}, got {value!r}"
        else:
            problems[path] = f"{subject} must be {_describe(node, schema)}, got {given(value)}"
    lines = list(problems.values())
    if unknown:
        known = sorted(names)
        section = f"{cls.SECTION}: " if cls.SECTION else ""
        lines.insert(0, f"{section}unknown keys {sorted(unknown)}; expected a subset of {known}")
    return "; ".join(lines)


def _locate(schema: dict[str, Any], loc: tuple[int | str, ...], data: Any) -> tuple[str, dict[str, Any], Any, bool]:
    """The key an error is about (``imu.gain``: down through nested sections, not into lists or
    maps), its schema, the value given for it and whether the error is inside that value."""
    node: dict[str, Any] = schema
    parts: list[str] = []
    value = data
    for step in loc:
        properties = _resolve(node, schema).get("properties", {})
        if not isinstance(step, str) or step not in properties:
            break
        parts.append(step)
        node = properties[step]
        value = value.get(step) if isinstance(value, Mapping) else getattr(value, step, None)
    return ".".join(parts), node, value, len(parts) < len(loc)


def _resolve(node: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A ``$ref`` (also one inside ``anyOf``: an optional section) replaced by what it names."""
    refs = [n["$ref"] for n in node.get("anyOf", []) if "$ref" in n]
    ref = node.get("$ref") or (refs[0] if refs else None)
    return schema["$defs"][ref.rsplit("/", 1)[-1]] if ref else node


def _describe(node: dict[str, Any], schema: dict[str, Any], ranges: bool = False) -> str:
    """A schema as someone writing JSON reads it: ``an integer or null``, ``a number in [0, 1)``."""
    if "$ref" in node:
        return "an object"
    if "anyOf" in node:
        return " or ".join(dict.fromkeys(_describe(n, schema, ranges) for n in node["anyOf"]))
    if "enum" in node:
        return f"one of {node['enum']}"
    kind = node.get("type")
    if kind == "array":
        items = node.get("prefixItems")
        if items and len(items) == 2 and node.get("minItems") == 2 and items[0] == items[1]:
            return f"a [low, high] pair of {_plural(items[0], schema, ranges)}"
        if items and node.get("minItems") == len(items):
            return f"{len(items)} {_plural(items[0], schema, ranges)}"
        return f"a list of {_plural(node['items'], schema, ranges)}" if "items" in node else "a list"
    if kind == "object":
        values = node.get("additionalProperties")
        return (
            f"an object mapping names to {_plural(values, schema, ranges)}" if isinstance(values, dict) else "an object"
        )
    nouns: dict[str | None, str] = {
        "boolean": "true or false",
        "null": "null",
        "integer": "an integer",
        "number": "a number",
    }
    if kind == "string":
        return "a non-empty string" if node.get("minLength") else "a string"
    return nouns.get(kind, str(kind)) + (_range(node) if ranges else "")


def _plural(node: dict[str, Any], schema: dict[str, Any], ranges: bool) -> str:
    """Many of ``node``: ``numbers > 0``, ``non-empty strings``."""
    kind = node.get("type")
    if kind == "string":
        return "non-empty strings" if node.get("minLength") else "strings"
    if kind in ("integer", "number", "boolean"):
        return f"{kind}s" + (_range(node) if ranges else "")
    return _describe(node, schema, ranges)


def _range(node: dict[str, Any]) -> str:
    low = ("[", node["minimum"]) if "minimum" in node else ("(", node.get("exclusiveMinimum"))
    high = ("]", node["maximum"]) if "maximum" in node else (")", node.get("exclusiveMaximum"))
    if low[1] is not None and high[1] is not None:
        return f" in {low[0]}{low[1]:g}, {high[1]:g}{high[0]}"
    if low[1] is not None:
        return f" {'>=' if low[0] == '[' else '>'} {low[1]:g}"
    if high[1] is not None:
        return f" {'<=' if high[0] == ']' else '<'} {high[1]:g}"
    return ""
