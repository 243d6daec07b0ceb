"""Typed configuration: dataclasses with ``from_dict`` that refuse unknown keys, and the
``--set key=value`` overrides of the CLI."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any


def dataclass_from_dict(cls, values: dict[str, Any] | None):
    """Build dataclass ``cls`` from ``values``, naming unknown keys and the valid ones."""
    values = dict(values or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} key(s) {unknown}; valid keys: {', '.join(sorted(names))}"
        )
    return cls(**values)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
        if low in ("none", "null"):
            return None
        return text  # a bare string such as adam or cuda


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of the nested dict ``config`` with ``a.b.c=value`` overrides applied.

    Values are parsed as JSON (``3``, ``1e-3``, ``[50, 50]``, ``true``), else kept as strings.
    A key that does not exist in ``config`` is an error listing the keys at that level, so that a
    typo cannot silently run the default experiment.
    """
    config = copy.deepcopy(config)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value (e.g. fit.epochs=5)")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        node = config
        for depth, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                level = ".".join(parts[:depth]) or "<top level>"
                keys = sorted(node) if isinstance(node, dict) else []
                raise KeyError(f"unknown config key {key!r}: {part!r} is not in {level} "
                               f"(keys there: {', '.join(keys)})")
            if depth == len(parts) - 1:
                node[part] = _parse_value(text)
            else:
                node = node[part]
    return config
