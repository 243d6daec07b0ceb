"""Deprecated: ``experiments.common`` was split into :mod:`experiments.engine` (the SVI loop,
prediction, metrics), :mod:`experiments.data` (the data layer) and :mod:`experiments.harness`
(the command-line harness). Old import paths keep working for one release, with a
``DeprecationWarning`` that names the new module; public names are importable from
:mod:`experiments` itself.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

_ENGINE = ("checkpoint", "config", "distributed", "elbo", "ensemble", "health", "iwae",
           "kl_schedule", "metrics", "mixture", "predict", "prediction", "predictive", "seeding",
           "training")
_HARNESS = ("compare", "leaderboard", "plotting", "report", "runner", "spec", "table_cli",
            "userfit", "vae")
_PREFIX = __name__ + "."


def new_name(old: str) -> str | None:
    """Where the module ``experiments.common.X[.Y]`` lives now, or None for an unknown name."""
    head, _, tail = old[len(_PREFIX):].partition(".")
    if head == "data":
        return "experiments.data" + (f".{tail}" if tail else "")
    package = "engine" if head in _ENGINE else "harness" if head in _HARNESS else None
    return None if package is None or tail else f"experiments.{package}.{head}"


class _Redirect(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``experiments.common.X`` as the module's new home, with a warning."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith(_PREFIX) and new_name(fullname) is not None:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        new = new_name(module.__name__)
        warnings.warn(f"{module.__name__} moved to {new}; import it from there (or the public "
                      "names from experiments); the old path goes in the next release",
                      DeprecationWarning, stacklevel=2)
        sys.modules[module.__name__] = importlib.import_module(new)


if not any(isinstance(f, _Redirect) for f in sys.meta_path):
    sys.meta_path.insert(0, _Redirect())
