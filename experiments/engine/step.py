"""One SVI step: :func:`step_loss` (the forward half), :func:`train_step` (loss, backward,
clipping, the non-finite gate, the optimiser step), the epoch sums it adds to, and
:func:`step_mode`, what :func:`~experiments.engine.training.fit` enters around its steps."""

from __future__ import annotations

import contextlib

import torch

from guides.base import elbo_context
from models.base import ZooModel, loss_only, sync_free

from .kl_schedule import KLScale
from .state import TrainState


def step_mode(model, host_reads: bool, data_validated: bool) -> contextlib.ExitStack:
    """What :func:`~experiments.engine.training.fit` enters around its steps: :func:`models.base.sync_free`
    unless ``host_reads`` (fit allows them on the CPU, where a read costs nothing and the SVGP's
    Cholesky may then retry with more jitter) and, when the whole training set was checked
    before training, :meth:`~models.base.ZooModel.data_validated` (no per-batch value checks)."""
    stack = contextlib.ExitStack()
    if not host_reads:
        stack.enter_context(sync_free())
    if data_validated and isinstance(model, ZooModel):
        stack.enter_context(model.data_validated())
    return stack


def _kl_scale(scale):
    """:class:`KLScale` for the minibatch KL weight; nothing when it is exactly 1 (the uniform
    schedule's M * (1/M) usually is: multiplying by 1.0 changes no value, and one handler fewer
    sees every site). A tensor, a graph's static input, always applies."""
    if torch.is_tensor(scale) or scale != 1.0:
        return KLScale(scale)
    return contextlib.nullcontext()


def _warmup(beta):
    """KL warm-up factor on every latent site (local ones too); nothing once it reaches 1 (a
    tensor, a graph's static input, always applies)."""
    if torch.is_tensor(beta) or beta < 1.0:
        return KLScale(beta, include_local=True)
    return contextlib.nullcontext()


def step_loss(state: TrainState, batch, kl_scale: float = 1.0, beta: float = 1.0
              ) -> torch.Tensor:
    """The forward half of :func:`train_step`: the loss of ``batch`` under the guide's
    ``elbo_context``, the KL weight and warm-up factor, and :func:`models.base.loss_only`."""
    closed_form_kl = state.config.elbo == "meanfield"
    # loss_only: the ELBO alone reads these traces, and the optimiser holds the parameters
    with elbo_context(state.guide, closed_form_kl), _kl_scale(kl_scale), _warmup(beta), loss_only():
        return state.loss_module(*batch)  # DDP's wrapper when data-parallel


def train_step(state: TrainState, batch, kl_scale: float = 1.0, beta: float = 1.0,
               params: list | None = None) -> torch.Tensor:
    """One SVI step of :func:`~experiments.engine.training.fit` on ``batch`` (a tuple of tensors on the right
    device): the guide's ``elbo_context``, the KL weight ``kl_scale`` (and warm-up factor ``beta``), the loss
    (under :func:`models.base.loss_only`: no param statements or deterministic records),
    backward, optional clipping, the device-side non-finite gate
    (:class:`~experiments.engine.guards.FiniteGate`) and the optimiser step. It reads nothing to the host
    (``tests/test_no_sync.py``), so on a GPU the step never waits for the device.

    Loops other than ``fit`` (the bandit's, the benchmarks') call this too, so that what they
    train or time is the zoo's step; they call :func:`~experiments.engine.guards.check_finite` when they read
    results. Returns the (graph-carrying) loss.
    """
    loss = step_loss(state, batch, kl_scale, beta)
    params = params if params is not None else list(state.loss_fn.parameters())
    for optimizer in state.optimizers:
        optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if state.config.clip_norm is not None:  # (the configured optimiser's parameters only)
        torch.nn.utils.clip_grad_norm_([p for g in state.optimizer.param_groups
                                        for p in g["params"]], state.config.clip_norm)
    if state.gate.gate(state.optimizers, loss, params):
        for optimizer in state.optimizers:
            optimizer.step()
    state.step += 1
    return loss


def accumulate(sums: torch.Tensor, state: TrainState, loss: torch.Tensor) -> None:
    """Add the step's loss and log-likelihood to the epoch's sums, on the device (a step the gate
    stopped adds nothing: the sums stay those of the good steps). Sums of four entries also take
    the step's KL estimate (loss + log-likelihood) and its square, for the KL check of
    :mod:`~experiments.engine.health`."""
    ll = state.loss_fn.elbo.last_log_likelihood
    values = torch.stack((loss.detach(), ll))
    if sums.shape[0] == 4:  # (in float64: a broken fit's KL of 1e28 squares past float32's range)
        kl = values.to(sums.dtype).sum().reshape(1)
        values = torch.cat((values.to(sums.dtype), kl, kl.square()))
    sums.add_(torch.where(state.gate.found > 0, 0.0, values))
