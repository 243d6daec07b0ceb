"""The zoo's experiments, the SVI loop and everything around it; the CLI is
``python -m experiments`` (or the ``vbzoo`` command).

The zoo's top-level packages are named ``models``, ``guides`` and ``experiments``. A user's own
``models.py`` or ``guides.py`` in the folder a command runs from would come first on ``sys.path``
(``python -m`` puts the current folder there) and shadow them. Importing this package therefore
puts the folder that holds the zoo first whenever an earlier ``sys.path`` entry holds a
``models``/``guides`` module of its own, and refuses, with an error that says what to do, a
foreign ``models``/``guides`` module that was imported before the zoo.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
_NAMES = ("models", "guides")


def _own_module(path: Path, name: str) -> bool:
    return (path / f"{name}.py").is_file() or (path / name / "__init__.py").is_file()


def _zoo_first() -> None:
    for name in _NAMES:
        mod = sys.modules.get(name)
        origin = getattr(mod, "__file__", None) if mod is not None else None
        if origin and _ROOT not in Path(origin).resolve().parents:
            raise ImportError(
                f"a module named {name!r} ({origin}) was imported before the zoo, whose own "
                f"package is named {name!r}; rename your module, or import the zoo first, or use "
                "the command line (python -m experiments / vbzoo)")
    for entry in list(sys.path):
        path = Path(entry or ".").resolve()
        if path == _ROOT:
            return
        if any(_own_module(path, name) for name in _NAMES):
            sys.path.insert(0, str(_ROOT))
            return


_zoo_first()


# ------------------------------------------------------------------------------------------------
# the public API: what a user calls, importable as ``from experiments import fit, predict, ...``
# (loaded on first use, PEP 562, so that ``python -m experiments list`` stays light and no
# module of the engine is imported before the zoo's path is set above)

_PUBLIC = {
    # training
    "fit": ("experiments.engine.training", "fit"),
    "FitConfig": ("experiments.engine.settings", "FitConfig"),
    "RunOptions": ("experiments.engine.settings", "RunOptions"),
    "TrainState": ("experiments.engine.state", "TrainState"),
    "ImplausibleFitError": ("experiments.engine.health", "ImplausibleFitError"),
    # prediction and scores
    "predict": ("experiments.engine.predict", "predict"),
    "Prediction": ("experiments.engine.predict", "Prediction"),
    "metrics": ("experiments.engine.metrics", None),
    # deep ensembles
    "Ensemble": ("experiments.engine.ensemble", "Ensemble"),
    "ensemble": ("experiments.engine.ensemble", "ensemble"),
    # your own table, and runs written by `python -m experiments fit`
    "load_run": ("experiments.harness.userpredict", "load_run"),
    "load_table": ("experiments.data.tabular", "load_table"),
    # trained posteriors that ship with the zoo
    "load_pretrained": ("experiments.harness.pretrained", "load_pretrained"),
    # registries
    "create_model": ("models", "create_model"),
    "create_guide": ("guides", "create_guide"),
    "list_pairs": ("guides", "list_pairs"),
    "list_experiments": ("experiments.registry", "list_experiments"),
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'experiments' has no attribute {name!r}")
    import importlib

    module, attr = _PUBLIC[name]
    value = importlib.import_module(module)
    value = value if attr is None else getattr(value, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
