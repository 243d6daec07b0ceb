r"""The one SVI loop of the zoo: :func:`fit`.

Every pair trains here. One step evaluates a Monte Carlo estimate of the negative ELBO on a
minibatch :math:`\mathcal D_i` of size B out of N,

.. math:: \hat{\mathcal L}_i = M\pi_i\,\mathrm{KL}[q\,\|\,p]
          - \frac{N}{B}\sum_{n \in \mathcal D_i} \mathbb E_q[\log p(y_n \mid x_n, \cdot)],

(:mod:`~experiments.engine.kl_schedule` gives :math:`\pi_i`), differentiates it with PyTorch and
steps a ``torch.optim`` optimiser over the parameters *owned by the model and guide modules*
(``pyro.settings.set(module_local_params=True)``: nothing lives in Pyro's global param store).
The whole training state — modules, optimiser, scheduler, counters, history, random streams — is
the :class:`TrainState`, which is also what a checkpoint holds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import pyro
import torch
from torch.utils.data import TensorDataset

from guides.base import elbo_context, natural_gradient_parameters
from models.base import module_device

from . import distributed, health
from .elbo import make_elbo
from .loader import as_dataset, float_dtype, make_loader, resolve_device, to_device, validate_whole
from .loop import EpochLoop
from .optim import make_optimizer, make_scheduler, warn_implausible
from .seeding import seed_everything
from .settings import FitConfig, RunOptions
from .signals import StopSignals
from .state import TrainState
from .step import step_mode

__all__ = ["FitConfig", "RunOptions", "TrainState", "fit", "setup"]

log = logging.getLogger(__name__)


def setup(model, guide, data, config: FitConfig | None = None,
          run: RunOptions | None = None) -> TrainState:
    """Seed from ``run.seed``, move to ``run.device``, run the guide once (autoguides create their
    parameters lazily), and build the optimiser and scheduler: the :class:`TrainState` before the
    first step.

    :param config: a :class:`FitConfig` (``None``: the defaults); a dict of its fields goes
        through :meth:`FitConfig.from_dict`, which names unknown keys.
    :param run: the :class:`RunOptions` (``None``: the defaults; a dict:
        :meth:`RunOptions.from_dict`).
    :raises TypeError: for a config that is not a :class:`FitConfig`, or a run that is not a
        :class:`RunOptions`.
    """
    cfg = FitConfig() if config is None else config
    if not isinstance(cfg, FitConfig):
        raise TypeError(f"config must be a FitConfig, got {type(config).__name__}; for a dict of "
                        "its fields use FitConfig.from_dict(...)")
    run = RunOptions() if run is None else run
    if not isinstance(run, RunOptions):
        raise TypeError(f"run must be a RunOptions, got {type(run).__name__}; for a dict of its "
                        "fields use RunOptions.from_dict(...)")
    if not pyro.settings.get("module_local_params"):
        raise RuntimeError(
            "fit() needs pyro.settings.set(module_local_params=True) before the model and guide "
            "are created (importing the zoo's `models` package does it)")
    generator = seed_everything(run.seed)  # the one place a fit seeds (see RunOptions.seed)
    device = distributed.local_device(resolve_device(run.device))  # [distributed] cuda:LOCAL_RANK
    dataset = as_dataset(data)
    if len(dataset) == 0:
        raise ValueError("the training data is empty")
    if getattr(model, "num_data", None) not in (None, len(dataset)):
        raise ValueError(f"model.num_data={model.num_data} but the training data has "
                         f"{len(dataset)} rows; create the model with num_data=None or the "
                         "training-set size")
    model.num_data = len(dataset)
    validated = validate_whole(model, dataset)  # every row, once, before anything trains
    model.to(device)
    guide.to(device)
    elbo = make_elbo(cfg.elbo, cfg.num_particles)
    loss_fn = elbo(model, guide)
    dtype = float_dtype(model)
    if isinstance(dataset, TensorDataset):
        other = sorted({str(t.dtype) for t in dataset.tensors
                        if t.is_floating_point() and t.dtype != dtype})
        if dtype is not None and other:
            log.info("casting %s data to the model's %s, batch by batch (create the model in %s "
                     "to train in it)", "/".join(other), dtype, "/".join(other))
    first = to_device(dataset[list(range(min(cfg.batch_size, len(dataset))))], device, dtype)
    with pyro.validation_enabled(True), elbo_context(guide, cfg.elbo == "meanfield"):
        loss_fn(*first)  # creates lazily-initialised guide parameters (on the right device)
    guide.to(device)
    warn_implausible(cfg)
    natural_params = natural_gradient_parameters(guide)
    natural_ids = {id(p) for p in natural_params}
    optimizer = make_optimizer(cfg, [p for p in loss_fn.parameters() if id(p) not in natural_ids],
                               device, model, guide)
    natural = None
    if natural_params:
        # plain SGD on the natural parameters is natural-gradient descent (guides.svgp); fused,
        # so that the FiniteGate skips its step on the device too. Without momentum it has no
        # state, and its constant lr is baked into a CUDA graph (GraphedStep captures it too)
        natural = torch.optim.SGD(natural_params, lr=float(guide.ngd_lr), fused=True)
    return TrainState(model=model, guide=guide, loss_fn=loss_fn, optimizer=optimizer,
                      scheduler=make_scheduler(cfg, optimizer), config=cfg, generator=generator,
                      natural=natural, data_validated=validated, run=run)


def fit(model, guide, data, config: FitConfig | None = None, run: RunOptions | None = None,
        eval_fn: Callable[[Any, Any], dict[str, float]] | None = None,
        state: TrainState | None = None) -> TrainState:
    """Train ``guide`` (and the model's point parameters) by SVI; return the :class:`TrainState`.

    :param model: a zoo model (``forward(x, y=None)`` is the Pyro model).
    :param guide: a guide built for it (``create_guide(name, model)``).
    :param data: a ``Dataset`` or a tuple of tensors ``(x, y)`` (the training set).
    :param config: a :class:`FitConfig` (``None``: the defaults; a dict: ``FitConfig.from_dict``).
    :param run: the :class:`RunOptions` (seed, device, out_dir, progress, desc; ``None``: defaults).
    :param eval_fn: ``eval_fn(model, guide) -> {"name": value}`` validation metrics, run every
        ``eval_every`` epochs (in ``torch.no_grad``) and stored in the history as ``val_<name>``.
    :param state: continue from an existing state (a restored one), with its ``config`` and ``run``.
    :returns: the final state; ``state.history`` is one dict per epoch with ``loss`` (the mean
        minibatch estimate of the full-data negative ELBO), ``elbo``, ``log_likelihood`` and
        ``kl`` (``elbo = log_likelihood - kl``), ``lr``, ``seconds`` and the validation metrics.
    :raises FloatingPointError: on a non-finite loss or gradient, at the next read of the
        :class:`FiniteGate` (every ``log_every`` steps and at the end of each epoch), naming the
        epoch and the first bad step; no update from that step on was applied.

    With ``run.out_dir``, any exception first writes the history and, when the state is good,
    ``checkpoint.pt`` (:func:`~experiments.engine.loop.save_on_failure`); a bad epoch never
    overwrites it. SIGINT, SIGTERM and SIGHUP stop after the step in progress, at a checkpoint
    from which a resume continues exactly (:class:`~experiments.engine.loop.EpochLoop`), and
    raise :class:`~experiments.engine.signals.Stopped`.

    Under ``torch.distributed`` (``torchrun``, or a process group the caller initialised) the fit
    is data-parallel: each rank steps on ``batch_size`` rows of its shard, gradients are averaged
    by DDP, and rank 0 alone evaluates and writes (:mod:`experiments.engine.distributed`).
    """
    dataset = as_dataset(data)
    if state is None:
        state = setup(model, guide, dataset, config, run)
        validated = state.data_validated
    else:  # (a restored state: its data may be another dataset object)
        validated = validate_whole(state.model, dataset)
    cfg, run, device, dtype = state.config, state.run, module_device(state.loss_fn), float_dtype(state.model)
    # [distributed] shard the data, wrap the ELBO module in DDP; rank 0 alone evaluates and writes
    parallel = distributed.active()
    loader = make_loader(dataset, cfg.batch_size, state.generator, shard=parallel, seed=run.seed)
    if parallel and state.ddp is None:
        data_parallel(state, to_device(next(iter(loader)), device, dtype), device)
    stops = StopSignals(what=run.desc)  # SIGINT/SIGTERM/SIGHUP: a clean stop after a step
    loop = EpochLoop(state, loader, device, eval_fn, stops)
    try:
        with stops, pyro.validation_enabled(_validation(cfg)), \
                step_mode(state.model, device.type != "cuda", validated):
            for epoch in loop.bar:
                loop.run_epoch(epoch)
    except BaseException as exc:
        loop.save_on_failure(exc)
        _raise_invalid_parameters(state, exc)
        raise
    finally:
        loop.close()
    if parallel:  # [distributed] every rank returns rank 0's history (with its evaluations)
        state.history = distributed.broadcast_object(state.history)
    loop.log_done()
    return state


def _raise_invalid_parameters(state: TrainState, exc: BaseException) -> None:
    """Raise a FloatingPointError from ``exc`` when it is Pyro's argument validation finding a
    parameter gone NaN or out of its support (a ``ValueError`` "Expected parameter ...")."""
    if isinstance(exc, ValueError) and "Expected parameter" in str(exc):
        cfg = state.config
        raise FloatingPointError(
            f"{state.run.desc}: non-finite or invalid parameters at epoch {state.epoch + 1}, step "
            f"{state.step + 1} ({str(exc).splitlines()[0][:160]}); "
            f"{health.advice(state.model, state.guide, cfg)}") from exc


def _validation(cfg: FitConfig) -> bool:
    """Pyro's argument validation during training: ``cfg.validate``, or by default the
    environment's ``VBZOO_PYRO_VALIDATION=1`` (the test suite sets it)."""
    if cfg.validate is None:
        return os.environ.get("VBZOO_PYRO_VALIDATION", "0") == "1"
    return cfg.validate


def data_parallel(state: TrainState, first_batch, device: torch.device) -> None:
    """Make a set-up state data-parallel (:mod:`experiments.engine.distributed`): check that every
    rank holds the same parameters, wrap ``state.loss_fn`` in DDP as ``state.ddp`` (told of the
    parameters that one loss on ``first_batch``, on ``device``, leaves without a gradient on any
    rank), make the non-finite gate all-reduce its flag, and reseed each rank's Monte Carlo noise
    (the same initialisation on every rank, setup's seed; independent noise per rank from here
    on; a resumed state, step > 0, gets fresh per-rank streams). Every rank calls it at the same
    point."""
    cfg = state.config
    if cfg.cuda_graph is True and device.type == "cuda":  # ("auto" runs data-parallel eagerly)
        raise ValueError(f"{state.run.desc}: cuda_graph=True under torch.distributed is not supported "
                         "(a captured step with DDP's gradient all-reduce is not verified here); "
                         "train data-parallel with cuda_graph=false, or one process with it")
    distributed.check_identical(list(state.loss_fn.named_parameters()))
    with elbo_context(state.guide, cfg.elbo == "meanfield"):
        loss = state.loss_fn(*first_batch)
    state.ddp = distributed.wrap(state.loss_fn, loss, device)
    state.gate.sync = True
    # a second seeding, kept: each rank's own Monte Carlo stream from here on (setup's seed gave
    # every rank the same initialisation), derived from run.seed
    seed_everything(state.run.seed + distributed.rank() + distributed.world_size() * state.step)
