"""The optimiser and the learning-rate schedule of a fit: :func:`make_optimizer` (which
implementation: fused, multi-tensor, capturable), :func:`make_scheduler`, and the warning for an
implausible learning rate."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from guides.base import ImplausibleSettingWarning

from .cuda_graph import uses_cuda_graph
from .settings import OPTIMIZERS, FitConfig

#: optimisers whose fused implementation skips a step on the device when told that a gradient is
#: not finite (``found_inf``, the flag GradScaler uses): :class:`~experiments.engine.guards.FiniteGate` gates
#: them without a host read (fused on CUDA; on the CPU with ``FitConfig.fused``). SGD's fused CPU kernel
#: mishandles a skipped step with momentum (torch 2.13), so SGD and RMSprop (no fused kernel),
#: and the plain implementations, are gated by a host read of the flag every step.
DEVICE_GATED = ("adam", "adamw", "adagrad")


def make_optimizer(cfg: FitConfig, params, device: torch.device, model=None, guide=None
                   ) -> torch.optim.Optimizer:
    """The optimiser of ``cfg`` over ``params``: the fused implementation for
    :data:`DEVICE_GATED` optimisers (one kernel per step, gated on the device) on CUDA, or
    wherever ``cfg.fused``; for a CUDA graph also capturable, with the lr a device tensor that
    the scheduler updates in place. Adam and AdamW otherwise take torch's multi-tensor
    (``foreach``) implementation, which on the CPU computes what torch's default there does."""
    kwargs: dict[str, Any] = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    if uses_cuda_graph(cfg, device, model, guide):
        kwargs.update(lr=torch.tensor(cfg.lr, dtype=torch.float32, device=device),
                      capturable=True)
    if cfg.optimizer in ("sgd", "rmsprop"):
        kwargs["momentum"] = cfg.momentum
    fused = cfg.fused if cfg.fused is not None else device.type == "cuda"
    if fused and cfg.optimizer in DEVICE_GATED and (cfg.optimizer != "adagrad"
                                                    or device.type == "cpu"):
        kwargs["fused"] = True  # (fused Adagrad is CPU-only in older torch releases)
    elif cfg.optimizer in ("adam", "adamw"):  # one multi-tensor op per stage instead of a
        # Python loop over the parameters: the same numbers as torch's CPU default, the
        # single-tensor loop, bit for bit (tests/test_training.py), 0.1 ms less per VAE step
        kwargs["foreach"] = True
    return OPTIMIZERS[cfg.optimizer](params, **kwargs)


def make_scheduler(cfg: FitConfig, optimizer):
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    if cfg.lr_schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, cfg.lr_step_epochs, cfg.lr_gamma)
    if cfg.lr_schedule == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, cfg.lr_gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


#: learning rates above these train, to nonsense (Adam at lr=1e4 ended at loss 2.3e7, silently)
PLAUSIBLE_LR = {"adam": 0.1, "adamw": 0.1, "rmsprop": 0.1, "adagrad": 1.0, "sgd": 1.0}


def warn_implausible(cfg: FitConfig) -> None:
    if cfg.lr > PLAUSIBLE_LR[cfg.optimizer]:
        warnings.warn(f"lr={cfg.lr:g} is above the plausible range for {cfg.optimizer} (<= "
                      f"{PLAUSIBLE_LR[cfg.optimizer]:g}); the fit will likely diverge or end far "
                      "off. Usual values: 1e-4 to 1e-2", ImplausibleSettingWarning, stacklevel=3)
