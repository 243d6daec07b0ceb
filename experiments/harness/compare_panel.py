"""The panel of ``python -m experiments compare`` (:mod:`experiments.harness.compare`): its
methods (:class:`Method`, :data:`DEFAULT_PANEL`, ``--pairs``), the split of ``--set`` overrides
between every method and one method, and the epochs a time budget allows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .spec import ConfigError
from .userfit import check_pair

#: dropout rate of the default panel's MC dropout (the UCI benchmark's default rate)
MC_DROPOUT_RATE = 0.1
DEFAULT_BUDGET_S = 60.0
DEFAULT_ENSEMBLE_SIZE = 5
#: at most this many test rows in the intervals figure
ENSEMBLE_PREFIX = "ensemble:"
#: the heads of a ``--set`` key that applies to every method
GLOBAL_HEADS = ("model_cfg", "guide_cfg", "fit", "num_samples")


@dataclass(frozen=True)
class Method:
    """One row of the leaderboard.

    :ivar name: the row's name, also the ``--set NAME.KEY=VALUE`` prefix.
    :ivar label: what it is, for people (``"MC dropout"``).
    :ivar overrides: the method's own ``--set`` entries, applied before the user's.
    :ivar ensemble: K members of a deep ensemble of the pair; 0 for a single fit.
    """

    name: str
    model: str
    guide: str
    label: str
    overrides: tuple[str, ...] = ()
    ensemble: int = 0

    @property
    def pair(self) -> str:
        return f"{self.model}/{self.guide}"

    @property
    def slug(self) -> str:
        """The method's folder name under ``methods/``."""
        return self.name.replace(":", "-").replace("/", "-")


def default_panel(ensemble_size: int = DEFAULT_ENSEMBLE_SIZE) -> list[Method]:
    """The default panel (module docstring), the deep ensemble with ``ensemble_size`` members."""
    return [
        Method("plain", "mlp", "deterministic", "plain net"),
        Method("mc-dropout", "mlp", "deterministic", "MC dropout",
               (f"model_cfg.dropout={MC_DROPOUT_RATE}",)),
        Method("bbb", "bnn", "mean-field", "Bayes by Backprop"),
        Method("ensemble", "mlp", "deterministic", f"deep ensemble of {ensemble_size}",
               ensemble=ensemble_size),
        Method("svgp", "svgp", "cholesky", "sparse variational GP"),
    ]


#: names of the default panel's methods (also accepted by ``--pairs``)
DEFAULT_PANEL = tuple(m.name for m in default_panel())


def parse_pairs(spec: str | None, task: str, ensemble_size: int) -> list[Method]:
    """The panel of ``--pairs`` (module docstring); ``None``: the default panel. Every pair is
    checked to fit a ``task`` table (a one-line error otherwise)."""
    panel = {m.name: m for m in default_panel(ensemble_size)}
    if spec is None:
        methods = list(panel.values())
    else:
        entries = [e.strip() for e in spec.split(",")]
        if not entries or any(not e for e in entries):
            raise ConfigError(f"--pairs {spec!r}: expected comma-separated entries, each "
                              f"model/guide, ensemble:model/guide or one of "
                              f"{', '.join(DEFAULT_PANEL)}")
        methods = []
        for entry in entries:
            if entry in panel:
                methods.append(panel[entry])
                continue
            ensemble = entry.startswith(ENSEMBLE_PREFIX)
            pair = entry[len(ENSEMBLE_PREFIX):] if ensemble else entry
            if pair.count("/") != 1 or not all(pair.split("/")):
                raise ConfigError(f"--pairs entry {entry!r}: expected model/guide (e.g. "
                                  "bnn/mean-field), ensemble:model/guide or one of "
                                  f"{', '.join(DEFAULT_PANEL)}")
            model, guide = pair.split("/")
            label = f"deep ensemble of {ensemble_size} {pair}" if ensemble else pair
            methods.append(Method(entry, model, guide, label,
                                  ensemble=ensemble_size if ensemble else 0))
        names = [m.name for m in methods]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"--pairs names {', '.join(twice)} more than once; list each "
                              "method once")
    for m in methods:
        check_pair(m.model, m.guide, task)
    return methods


def split_overrides(overrides: Sequence[str], methods: Sequence[Method]) -> dict[str, list[str]]:
    """Each method's ``--set`` entries: its own (``METHOD.KEY=VALUE``, prefix removed) after the
    ones for every method (``KEY=VALUE``), in the order given. An entry neither for every method
    nor for a method of the panel is a one-line error."""
    names = sorted((m.name for m in methods), key=len, reverse=True)  # longest prefix first
    out: dict[str, list[str]] = {m.name: [] for m in methods}
    own: dict[str, list[str]] = {m.name: [] for m in methods}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE or METHOD.KEY=VALUE")
        key = item.split("=", 1)[0].strip()
        owner = next((n for n in names if key.startswith(n + ".")), None)
        if owner is not None:
            own[owner].append(item.strip()[len(owner) + 1:])
        elif key.split(".")[0] in GLOBAL_HEADS:
            for lst in out.values():
                lst.append(item)
        elif key == "ensemble":
            raise ConfigError(f"--set {item}: the deep ensembles' size is --ensemble-size K; "
                              "--set METHOD.ensemble=K makes one method an ensemble of K")
        else:
            raise ConfigError(f"--set {item}: {key.split('.')[0]!r} is neither a key of every "
                              f"method ({', '.join(h + '.*' for h in GLOBAL_HEADS[:3])}, "
                              f"num_samples) nor a method of the panel "
                              f"({', '.join(m.name for m in methods)}); use METHOD.KEY=VALUE for "
                              "one method")
    return {n: out[n] + own[n] for n in out}


def budget_epochs(budget_s: float, epoch_s: float, max_epochs: int, members: int = 1) -> int:
    r""":math:`\mathrm{clamp}(\lfloor B / (K t) \rfloor, 1, E_{\max})` for a budget of B seconds,
    t seconds per epoch and K members trained one after another."""
    if not epoch_s > 0 or not math.isfinite(epoch_s):
        return max_epochs  # an epoch too short to time
    return int(min(max(math.floor(budget_s / (members * epoch_s)), 1), max_epochs))
