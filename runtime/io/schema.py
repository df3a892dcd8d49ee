"""Typed, bounded reading of the JSON files that come from outside (avatar bundles, model manifests).

Every field is checked against its dataclass annotation and the bounds in its metadata
(`minimum`, `maximum`) before anything uses it, so a tampered or damaged file ends in one line
naming the field, not in a traceback (or a huge allocation) deep in a run."""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from fractions import Fraction
from pathlib import Path

from ..errors import EdgeRetalkError

MAX_JSON_BYTES = 1 << 20
"""Far above any manifest or bundle description we write (the lip-shape manifest, the largest, is 55 kB)."""


def bounded(minimum: float | None = None, maximum: float | None = None, **options) -> dataclasses.Field:
    """A dataclass field whose number must lie in [minimum, maximum]."""
    return dataclasses.field(metadata={"minimum": minimum, "maximum": maximum}, **options)


def read_json(path: Path, what: str) -> object:
    """The parsed JSON of `path`, refused in one line when too large, too deeply nested or not JSON."""
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise EdgeRetalkError(f"{path}: not a valid {what} (over {MAX_JSON_BYTES // 1024} kB)")
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise EdgeRetalkError(f"{path}: not a readable {what} ({reason})") from None


def from_json(cls: type, raw: object, where: str):
    """An instance of dataclass `cls` from parsed JSON: no unknown or missing fields, each of its
    annotated type (nested dataclasses, lists and string-keyed objects included) and in bounds."""
    if not isinstance(raw, dict):
        raise EdgeRetalkError(f"{where}: expected a JSON object, found {type(raw).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    required = {name for name, f in known.items()
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    if not required <= set(raw) <= set(known):
        extra, missing = sorted(set(raw) - set(known)), sorted(required - set(raw))
        raise EdgeRetalkError(f"{where}: unknown fields {extra}, missing fields {missing}")
    hints = typing.get_type_hints(cls)
    return cls(**{name: _value(hints[name], value, f"{where}: {name}", known[name].metadata)
                  for name, value in raw.items()})


def _value(kind, value, where: str, bounds: typing.Mapping):
    origin, arguments = typing.get_origin(kind), typing.get_args(kind)
    if dataclasses.is_dataclass(kind):
        return from_json(kind, value, where)
    if origin in (typing.Union, types.UnionType):
        for option in arguments:
            try:
                return _value(option, value, where, bounds)
            except EdgeRetalkError:
                pass
        raise EdgeRetalkError(f"{where}: expected {' or '.join(_name(a) for a in arguments)}, found {value!r:.40}")
    if kind is list or origin is list:
        if not isinstance(value, list):
            raise EdgeRetalkError(f"{where}: expected a list, found {value!r:.40}")
        return [_value(arguments[0], item, f"{where}[{index}]", {}) for index, item in enumerate(value)] \
            if arguments else value
    if kind is dict or origin is dict:
        if not isinstance(value, dict):
            raise EdgeRetalkError(f"{where}: expected an object, found {value!r:.40}")
        return {key: _value(arguments[1], item, f"{where}.{key}", {}) for key, item in value.items()} \
            if arguments else value
    if kind is str:
        if not isinstance(value, str):
            raise EdgeRetalkError(f"{where}: expected text, found {value!r:.40}")
        return value
    if kind in JSON_FORMS:
        return _number(kind, value, where, bounds)
    raise TypeError(f"{where}: no check for {kind!r}")


JSON_FORMS = {int: (int,), float: (int, float), Fraction: (int, str)}
"""The JSON values each number type is read from (a rate is written as text, "30000/1001")."""


def _number(kind: type, value, where: str, bounds: typing.Mapping):
    try:
        if isinstance(value, bool) or not isinstance(value, JSON_FORMS[kind]):
            raise TypeError
        number = kind(value)
    except (TypeError, ValueError, ZeroDivisionError):
        raise EdgeRetalkError(f"{where}: expected {_name(kind)}, found {value!r:.40}") from None
    if kind is float and not math.isfinite(number):
        raise EdgeRetalkError(f"{where}: expected a finite number, found {value!r:.40}")
    low, high = bounds.get("minimum"), bounds.get("maximum")
    if (low is not None and number < low) or (high is not None and number > high):
        raise EdgeRetalkError(f"{where}: {value!r:.40} is outside {low} to {high}")
    return number


def _name(kind) -> str:
    return {int: "a whole number", float: "a number", Fraction: "a rate such as \"25\" or \"30000/1001\"",
            str: "text", list: "a list", dict: "an object"}.get(kind, getattr(kind, "__name__", str(kind)))
