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
