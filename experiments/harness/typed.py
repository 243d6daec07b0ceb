"""Values checked against declared types, for the CLI's ``--set`` and the experiments' configs:
:func:`coerce` (a value as a type, or :class:`Mismatch`), :func:`parse_text` (the command-line
text of a value), the types of a signature (:func:`signature_types`, :func:`check_kwargs`) and
:class:`ConfigError`, the one-line error of a wrong value (:mod:`experiments.harness.spec`)."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal


class ConfigError(ValueError):
    """A configuration value of the wrong type or out of range; the message is one CLI line."""


def type_name(tp) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return "any value"
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin in (typing.Union, types.UnionType):
        return " or ".join("None" if a is type(None) else type_name(a) for a in args)
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        inner = [a for a in args if a is not Ellipsis]
        plural = {int: "integers", float: "numbers", str: "strings", bool: "true/false values"}
        if not inner:
            return "a list"
        return f"a list of {plural.get(inner[0]) or type_name(inner[0])}"
    if origin in (dict, Mapping) or tp is dict:
        return "a JSON object"
    if dataclasses.is_dataclass(tp):
        return f"a {tp.__name__} section"
    return {int: "an integer", float: "a number", bool: "true or false",
            str: "a string"}.get(tp, getattr(tp, "__name__", str(tp)))


class Mismatch(Exception):
    pass


def coerce(value: Any, tp) -> Any:
    """``value`` (a parsed JSON value or a Python default) as type ``tp``; :class:`Mismatch` if
    it is not one. Integers pass as floats; nothing else is converted silently."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is inspect.Parameter.empty:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg)
            except Mismatch:
                pass
        raise Mismatch
    if origin is Literal:
        if value in args:
            return value
        raise Mismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise Mismatch
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise Mismatch
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise Mismatch
        inner = [a for a in args if a is not Ellipsis]
        items = [coerce(v, inner[0]) for v in value] if inner else list(value)
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin in (dict, Mapping) or tp is dict:
        if isinstance(value, Mapping):
            return dict(value)
        raise Mismatch
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        raise Mismatch
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise Mismatch
    return value


def parse_text(text: str, tp) -> Any:
    """The command-line text of a value, read as JSON where it is JSON (``3``, ``1e-3``,
    ``[50, 50]``, ``true``, ``null``), else as a bare string (``adam``, ``scale-mixture``)."""
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    except RecursionError:  # (a value nested thousands of levels deep)
        raise ConfigError(f"{text[:40]}...: nested too deeply to be a setting; give a flat value "
                          "or a short list") from None
    if isinstance(value, float) and not math.isfinite(value):
        return text
    # a string field keeps digits as text ("--set name=1" for a str field)
    if tp is str and not isinstance(value, str):
        return text
    return value


def value_error(key: str, text: str, tp) -> ConfigError:
    return ConfigError(f"--set {key}={text}: expected {type_name(tp)}, got {text!r}")


def type_hints(obj) -> dict[str, Any]:
    try:
        return typing.get_type_hints(obj)
    except Exception:  # an annotation that does not resolve: no type checks for it
        return {}


def signature_types(factory) -> dict[str, Any] | None:
    """Parameter name -> annotated type of a model class's ``__init__`` or a builder function;
    ``None`` if it takes ``**kwargs`` (any key)."""
    target = factory.__init__ if isinstance(factory, type) else factory
    params = inspect.signature(target).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    hints = type_hints(target)
    return {n: hints.get(n, Any) for n, p in params.items() if n != "self"}


def check_kwargs(factory, cfg: dict, where: str, provided: Sequence[str]) -> None:
    allowed = signature_types(factory)
    if allowed is None:
        return
    for key, value in cfg.items():
        if key in provided:
            raise ConfigError(f"{where}.{key} is set by the experiment itself; leave it out")
        if key not in allowed:
            valid = sorted(k for k in allowed if k not in provided)
            raise ConfigError(f"{where}: unknown key {key!r}; valid keys: {', '.join(valid)}")
        try:
            coerce(value, allowed[key])
        except Mismatch:
            raise ConfigError(f"{where}.{key}: expected {type_name(allowed[key])}, got "
                              f"{value!r}") from None
