"""Experiment registry: every experiment module registers its ``run`` with
:func:`register_experiment` and is found by the CLI without an import list."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from models.registry import Registry, import_submodules

EXPERIMENTS = Registry("experiment")


@dataclass(frozen=True)
class Experiment:
    """What the CLI knows of an experiment.

    :ivar name: CLI name (``python -m experiments run NAME``).
    :ivar paper: the publication it reproduces.
    :ivar figure: figure/table it reproduces.
    :ivar data: datasets it needs (keys of :data:`experiments.data.DATASETS`, or
        ``"synthetic"``).
    :ivar get_config: ``get_config(smoke: bool) -> config``, a dataclass whose arms are
        :class:`~experiments.harness.spec.PairSpec` s (``--set`` overrides are parsed against its
        declared types, and the whole of it is validated before the run starts).
    :ivar run: ``run(config, ctx: RunContext) -> metrics``; the
        :class:`~experiments.harness.spec.RunContext` holds the seed, device, run folder, data
        folder and progress flag.
    :ivar paper_numbers: the published values its metrics are compared with (metric -> value or
        text), shown beside ours by ``reproduce``.
    :ivar not_distributed: why the experiment cannot run data-parallel (``torchrun``, ``--nproc``),
        e.g. a training loop outside ``fit``; ``None``: every fit goes through ``fit`` and it can.
    """

    name: str
    paper: str
    figure: str
    data: tuple[str, ...]
    get_config: Callable[..., dict]
    run: Callable[..., dict]
    paper_numbers: dict[str, Any]
    module: str
    not_distributed: str | None = None


def register_experiment(name: str, *, paper: str, figure: str, data=("synthetic",),
                        get_config: Callable[..., dict], paper_numbers: dict | None = None,
                        not_distributed: str | None = None):
    """Decorator for an experiment's ``run(config, ctx) -> metrics``; ``not_distributed``: the
    reason it cannot run data-parallel (see :class:`Experiment`)."""

    def decorator(run: Callable[..., dict]) -> Callable[..., dict]:
        spec = Experiment(name=name, paper=paper, figure=figure, data=tuple(data),
                          get_config=get_config, run=run, paper_numbers=dict(paper_numbers or {}),
                          module=run.__module__, not_distributed=not_distributed)
        EXPERIMENTS.register(name, lambda: spec)
        return run

    return decorator


def get_experiment(name: str) -> Experiment:
    discover()
    return EXPERIMENTS.get(name)()


def list_experiments() -> list[Experiment]:
    discover()
    return [EXPERIMENTS.get(n)() for n in EXPERIMENTS.names()]


def discover() -> None:
    """Import every experiment module (``experiments/*.py``), and the models and guides."""
    import guides  # noqa: F401  (registers models and guides too)

    import_submodules("experiments")
