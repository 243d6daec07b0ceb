"""Dataclasses from dicts that refuse unknown keys (``FitConfig.from_dict``); the CLI's typed
``--set`` overrides live in :mod:`experiments.harness.spec`."""

from __future__ import annotations

import dataclasses
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
