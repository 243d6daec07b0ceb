"""The guards of a fit while it trains: :class:`FiniteGate` (a non-finite loss or gradient stops
the updates on the device), :func:`check_finite` (its one host read), and :class:`EpochGuard`
(each epoch judged good or bad, so that ``checkpoint.pt`` only ever holds a good state)."""

from __future__ import annotations

import logging
import math
import warnings

import torch

from guides.base import ImplausibleSettingWarning

from . import distributed, health
from .settings import FitConfig

log = logging.getLogger("experiments.engine.training")  # fit's one log: users filter on its name

#: consecutive epochs of a growing loss after which fit warns
GROWING_LOSS_EPOCHS = 10


class FiniteGate:
    """The non-finite guard of :func:`~experiments.engine.step.train_step`, on the device.

    After each backward, one multi-tensor kernel (``torch._amp_foreach_non_finite_check_and_unscale_``,
    GradScaler's; on the CPU the sum of every gradient's sum) sets the flag ``found`` if the loss
    or any gradient is not finite. The flag is
    sticky and is the fused optimiser's ``found_inf``: from the first bad step on, every update
    is skipped on the device (parameters and optimiser state alike; Adam's step count is
    rolled back), so parameters never take a non-finite update and stay those before the bad
    step. ``ok`` counts the steps taken before it. :func:`check_finite` reads both (the only host
    read) and raises, naming the step. Optimisers without a device-side skip (see
    :data:`~experiments.engine.optim.DEVICE_GATED`) read the flag every step instead.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, device: torch.device, step: int = 0):
        self.device_side = all(g.get("fused") for g in optimizer.param_groups)
        self.found = torch.zeros(1, dtype=torch.float32, device=device)
        self.ok = torch.zeros(1, dtype=torch.float32, device=device)
        self._one = torch.ones(1, dtype=torch.float32, device=device)
        self.start = step  # state.step at the last read
        #: [distributed] all-reduce the flag every step, so that a non-finite loss on one rank
        #: skips that step's update on every rank (fit sets it: training.data_parallel)
        self.sync = False

    def reset(self, step: int) -> None:
        self.found.zero_()
        self.ok.zero_()
        self.start = step

    def gate(self, optimizers: list[torch.optim.Optimizer], loss: torch.Tensor, params) -> bool:
        """Flag a non-finite ``loss`` or gradient of ``params``; ``False`` when the optimisers
        must not step (host-gated optimisers only)."""
        grads = [p.grad for p in params if p.grad is not None]
        if self.found.device.type == "cuda":  # one multi-tensor kernel per dtype
            tensors = grads + [loss.detach().reshape(1).clone()]
            for group in _by_device_and_dtype(tensors):
                torch._amp_foreach_non_finite_check_and_unscale_(group, self.found, self._one)
        else:  # on the CPU a sum per tensor (one read; the amp kernel also writes each gradient,
            # 2.5x slower here), stacked and summed: a NaN or inf anywhere makes it non-finite
            total = torch.stack([loss.detach().reshape(()), *(g.sum() for g in grads)]).sum()
            torch.maximum(self.found, (~torch.isfinite(total)).float(), out=self.found)
        if self.sync:  # [distributed] (on the device: no host read)
            distributed.all_reduce_max_(self.found)
        self.ok.add_(self._one - self.found)
        if self.device_side:
            for optimizer in optimizers:
                optimizer.found_inf = self.found.view(())  # the fused kernels take a 0-d flag
            return True
        return not bool(self.found)


def _by_device_and_dtype(tensors: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    groups: dict[tuple, list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype), []).append(t)
    return list(groups.values())


def check_finite(state) -> None:
    """Read the :class:`FiniteGate` of ``state`` (a :class:`~experiments.engine.state.TrainState`;
    one host read) and raise if a step was not finite.

    :raises FloatingPointError: naming the epoch and the first bad step; ``state.step`` is set
        to the steps whose updates were applied, so a checkpoint of ``state`` holds the
        parameters before the bad step.
    """
    gate = state.gate
    found, ok = torch.cat((gate.found, gate.ok)).tolist()
    if found:
        state.step = gate.start + int(ok)
        raise FloatingPointError(
            f"non-finite loss or gradient at epoch {state.epoch + 1}, step {state.step + 1}; "
            "parameters were not updated from that step on; "
            f"{health.advice(state.model, state.guide, state.config)}")
    gate.reset(state.step)


def _all_finite(params: list[torch.Tensor]) -> bool:
    return not params or bool(torch.stack([torch.isfinite(p).all() for p in params]).all())


class EpochGuard:
    """Judges each epoch of :func:`~experiments.engine.training.fit` good or bad, so that ``checkpoint.pt``
    only ever holds a good state. Bad: a non-finite epoch loss or parameter, or (once KL warm-up is over) an
    epoch loss above ``best + divergence_factor * max(|best|, 1)``, best being the lowest epoch loss so
    far (the restored history's included)."""

    def __init__(self, cfg: FitConfig, state, params: list[torch.Tensor],
                 sums: torch.Tensor):
        self.cfg, self.state, self.params, self.sums = cfg, state, params, sums
        self.start_step = state.step
        self.best = min((r["loss"] for r in state.history
                         if math.isfinite(r.get("loss", math.nan)) and r.get("kl_beta", 1.0) >= 1),
                        default=math.inf)
        self.last_bad: str | None = None  # the last completed epoch's verdict (this call)
        self.warned = False
        self.previous, self.growing, self.growth_warned = math.inf, 0, False
        self.beta = 1.0
        self.epoch_start: int | None = None  # state.step when the epoch in progress started

    @property
    def n(self) -> int:
        """Steps of the epoch in progress whose updates were applied (0 between epochs)."""
        return 0 if self.epoch_start is None else self.state.step - self.epoch_start

    @property
    def tot_loss(self) -> float:
        """The loss summed over those steps (a host read)."""
        return float(self.sums[0]) if self.n else 0.0

    def start_epoch(self) -> None:
        self.sums.zero_()
        self.epoch_start = self.state.step

    def verdict(self) -> str | None:
        """Why the state now is bad (None: good), from the loss of the epoch (so far)."""
        mean = self.tot_loss / self.n if self.n else self.best
        if self.n and not math.isfinite(mean):
            return f"has a non-finite loss {mean}"
        if not _all_finite(self.params):
            return "has non-finite parameters"
        limit = self.best + self.cfg.divergence_factor * max(abs(self.best), 1.0)
        if self.n and self.beta >= 1 and mean > limit:
            return (f"diverged: loss {mean:.4g} > best {self.best:.4g} + divergence_factor "
                    f"{self.cfg.divergence_factor:g} x max(|best|, 1)")
        return None

    def end_epoch(self) -> str | None:
        tot = self.tot_loss
        mean = tot / self.n if self.n else math.nan
        self.growing = self.growing + 1 if mean > self.previous and self.beta >= 1 else 0
        self.previous = mean
        if self.growing >= GROWING_LOSS_EPOCHS and not self.growth_warned:
            warnings.warn(f"{self.state.run.desc}: the loss has grown for {self.growing} epochs in a "
                          f"row (now {mean:.4g} at epoch {self.state.epoch + 1}); the lr "
                          f"({self.state.optimizer.param_groups[0]['lr']:g}) may be too large",
                          ImplausibleSettingWarning, stacklevel=4)
            self.growth_warned = True
        self.last_bad = self.verdict()
        if self.last_bad is None:
            self.warned = False
            if self.beta >= 1:
                self.best = min(self.best, mean)
        self.epoch_start = None  # no partial epoch until the next one starts
        return self.last_bad

    def warn_not_saved(self, why: str) -> None:
        if not self.warned:  # once per bad stretch, not once per epoch
            log.warning("%s: %s; checkpoint.pt is not overwritten and keeps the last good state",
                        self.state.run.desc, why)
        self.warned = True
