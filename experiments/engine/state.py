"""The training state and its checkpoints: :class:`TrainState` (everything training changes),
:func:`save_checkpoint`, and :func:`restore` with the rules of what may change on a resume."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from models.base import module_device

from .checkpoint import CheckpointError, load_checkpoint, save_zoo_file
from .guards import FiniteGate
from .seeding import rng_state, set_rng_state
from .settings import RESUME_KEYS, FitConfig, RunOptions

log = logging.getLogger("experiments.engine.training")  # fit's one log: users filter on its name


@dataclass
class TrainState:
    """Everything training changes, in one place (and in one checkpoint)."""

    model: torch.nn.Module
    guide: torch.nn.Module
    loss_fn: torch.nn.Module  # pyro ELBOModule: .parameters() = model's + guide's
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    config: FitConfig
    generator: torch.Generator
    epoch: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    #: the device-side non-finite guard (made here unless given; not part of a checkpoint)
    gate: FiniteGate | None = None
    #: the whole training set was checked by setup (the model may skip per-batch value checks)
    data_validated: bool = False
    #: the second optimiser, over the guide's natural_gradient_parameters() (None: there are none)
    natural: torch.optim.Optimizer | None = None
    #: where and how this fit runs (seed, device, out_dir, progress, desc); its seed is recorded
    #: in a checkpoint's config beside the FitConfig's fields
    run: RunOptions = field(default_factory=RunOptions)
    #: [distributed] loss_fn wrapped in DistributedDataParallel (fit sets it under
    #: torch.distributed; not part of a checkpoint)
    ddp: torch.nn.Module | None = None
    #: seconds fit spent writing history and checkpoints (this process; not checkpointed)
    save_seconds: float = 0.0
    #: where in the epoch in progress a mid-epoch checkpoint was taken (None: between epochs):
    #: ``steps`` done in it, ``order`` (the data generator's state when the epoch began, which
    #: draws its permutation) and ``sums`` (its loss sums so far). A resume continues from there,
    #: as if never stopped; see :class:`~experiments.engine.loop.EpochLoop`
    position: dict[str, Any] | None = None

    def __post_init__(self):
        if self.gate is None:
            self.gate = FiniteGate(self.optimizer, module_device(self.loss_fn), self.step)

    @property
    def loss_module(self) -> torch.nn.Module:
        """What a step calls for the loss: the DDP wrapper when data-parallel, else loss_fn."""
        return self.ddp if self.ddp is not None else self.loss_fn

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        """Every optimiser of the step: the configured one, then the natural-gradient one."""
        return [self.optimizer] + ([self.natural] if self.natural is not None else [])

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "guide": self.guide.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            **({"natural_optimizer": self.natural.state_dict()} if self.natural else {}),
            "scheduler": self.scheduler.state_dict(),
            # the seed beside the optimisation settings: a resume under another seed is refused,
            # and checkpoints written when FitConfig held the seed still resume
            "config": {**asdict(self.config), "seed": self.run.seed},
            "epoch": self.epoch,
            "step": self.step,
            "history": self.history,
            "rng": rng_state(self.generator),
            **({"position": self.position} if self.position is not None else {}),
        }


def save_checkpoint(state: TrainState, path, meta: dict | None = None) -> Path:
    """Write ``state`` atomically to ``path`` as a zoo file of kind ``"checkpoint"`` (see
    :mod:`experiments.engine.checkpoint`)."""
    return save_zoo_file(path, "checkpoint", state.state_dict(),
                         {"epoch": state.epoch, "step": state.step, **(meta or {})})


#: RESUME_KEYS a resume may change when the user asks for it explicitly (``restore(...,
#: allow=...)``, ``run NAME --resume RUN_DIR --set ARM.fit.lr=...``): a smaller lr after a NaN
#: stop, a clip_norm, more epochs of a cosine schedule
RESUME_OVERRIDABLE = ("lr", "clip_norm", "epochs")


def config_differences(saved: dict[str, Any], config: FitConfig, epoch: int,
                       allow: tuple[str, ...] | frozenset = (), seed: int = 0) -> list[str]:
    """What keeps a checkpoint of ``saved`` config (at ``epoch``) from resuming under ``config``
    and the run's ``seed``:
    one ``"key: checkpoint A, now B"`` per key of :data:`~experiments.engine.settings.RESUME_KEYS` that
    differs and is not in ``allow`` (a key the checkpoint lacks counts as its default), and a changed
    ``epochs`` when it would break the run: fewer than the epochs already done, or a change of a cosine
    schedule unless ``"epochs"`` is allowed (its T_max is ``epochs``; :func:`restore` then recomputes the
    schedule over the new epochs)."""
    defaults = {**asdict(FitConfig()), "seed": RunOptions().seed}
    now = {**asdict(config), "seed": seed}
    diffs = [f"{k}: checkpoint {saved.get(k, defaults[k])!r}, now {now[k]!r}" for k in RESUME_KEYS
             if saved.get(k, defaults[k]) != now[k] and k not in allow]
    old_epochs = saved.get("epochs", config.epochs)
    if config.epochs < epoch:
        diffs.append(f"epochs: the checkpoint has {epoch} epochs done, now epochs={config.epochs}")
    elif old_epochs != config.epochs and config.lr_schedule == "cosine" and "epochs" not in allow:
        diffs.append(f"epochs: checkpoint {old_epochs}, now {config.epochs} with lr_schedule "
                     f"'cosine', whose lr anneals to 0 over exactly epochs={old_epochs}; resume "
                     "with the same epochs, or allow the change explicitly (--set "
                     "ARM.fit.epochs=... on --resume) to recompute the schedule over the new epochs")
    return diffs


def restore(state: TrainState, path, allow: tuple[str, ...] | frozenset = ()) -> TrainState:
    """Load a checkpoint into an already set-up ``state`` (same model/guide configuration).

    The checkpoint's fit config must match ``state.config`` and ``state.run.seed`` in every key
    that changes the optimisation (:data:`~experiments.engine.settings.RESUME_KEYS`), except the
    keys in ``allow`` (a subset of
    :data:`RESUME_OVERRIDABLE`, the changes the user asked for); ``epochs`` may grow (except
    under a cosine schedule, unless allowed, see :func:`config_differences`). A checkpoint
    written at a step boundary within an epoch (a signal's clean stop, or a periodic save of a long
    epoch) holds the position in that epoch, and the resume continues from it exactly; one written
    when an exception stopped a step resumes by running that epoch again from its saved
    parameters.

    Allowed changes take effect from the resumed epoch on: a new ``lr`` rescales the schedule
    (the lr at epoch t is the new lr times the schedule's factor at t, e.g. a NaN stop resumed
    at a tenth of the lr), a new ``epochs`` under a cosine schedule recomputes the cosine over
    the new epochs at the epochs already done, a new ``clip_norm`` clips the next steps.

    :raises CheckpointError: naming the file and every difference, before anything in ``state``
        is touched.
    :raises ValueError: for an ``allow`` key outside :data:`RESUME_OVERRIDABLE`.
    """
    bad = sorted(set(allow) - set(RESUME_OVERRIDABLE))
    if bad:
        raise ValueError(f"restore: {bad} cannot change on resume; only {RESUME_OVERRIDABLE} can")
    ckpt = load_checkpoint(path)
    saved = ckpt.get("config") or {}
    diffs = config_differences(saved, state.config, ckpt.get("epoch", 0), frozenset(allow),
                               state.run.seed)
    if diffs:
        raise CheckpointError(f"{path} was written under another fit config; it cannot resume "
                              f"this run: {'; '.join(diffs)}")
    state.model.load_state_dict(ckpt["model"])
    state.guide.load_state_dict(ckpt["guide"])
    if (state.natural is None) != ("natural_optimizer" not in ckpt):
        raise CheckpointError(f"{path}: the checkpoint was written by a fit "
                              f"{'with' if 'natural_optimizer' in ckpt else 'without'} natural "
                              "gradients on q(u), this one is set up "
                              f"{'with' if state.natural is not None else 'without'}; use the "
                              "guide's natural_gradient setting of the run that wrote it")
    state.optimizer.load_state_dict(_same_implementation(ckpt["optimizer"], state.optimizer))
    if state.natural is not None:
        state.natural.load_state_dict(_same_implementation(ckpt["natural_optimizer"],
                                                           state.natural))
    state.scheduler.load_state_dict(ckpt["scheduler"])
    state.epoch, state.step, state.history = ckpt["epoch"], ckpt["step"], ckpt["history"]
    state.position = ckpt.get("position")
    set_rng_state(ckpt["rng"], state.generator)
    _apply_schedule_changes(state, saved)
    return state


def _apply_schedule_changes(state: TrainState, saved: dict[str, Any]) -> None:
    """After loading a checkpoint written under ``saved``: carry an allowed change of ``lr`` or of
    a cosine schedule's ``epochs`` into the optimiser and scheduler just loaded."""
    cfg, sched = state.config, state.scheduler
    old_lr = saved.get("lr", cfg.lr)
    if old_lr != cfg.lr:
        factor = cfg.lr / old_lr
        sched.base_lrs = [b * factor for b in sched.base_lrs]
        sched._last_lr = [lr * factor for lr in sched._last_lr]
        for group in state.optimizer.param_groups:
            _set_lr(group, float(group["lr"]) * factor)
        log.info("%s: resumed with lr %g (the checkpoint's was %g): the schedule is rescaled",
                 state.run.desc, cfg.lr, old_lr)
    if isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR) and sched.T_max != cfg.epochs:
        sched.T_max = cfg.epochs
        t = sched.last_epoch
        lrs = [sched.eta_min + (b - sched.eta_min) * (1 + math.cos(math.pi * t / cfg.epochs)) / 2
               for b in sched.base_lrs]
        for group, lr in zip(state.optimizer.param_groups, lrs):
            _set_lr(group, lr)
        sched._last_lr = lrs
        log.info("%s: cosine schedule recomputed over %d epochs (lr now %.3g at epoch %d)",
                 state.run.desc, cfg.epochs, lrs[0], t)


def _set_lr(group: dict[str, Any], lr: float) -> None:
    if torch.is_tensor(group["lr"]):
        group["lr"].fill_(lr)
    else:
        group["lr"] = lr


def _same_implementation(saved: dict[str, Any], optimizer) -> dict[str, Any]:
    """``saved`` (an optimiser state dict) with the implementation flags (``fused``, ``foreach``,
    ``capturable``) of ``optimizer``'s groups: they say how the update is computed, not what it
    is, and a checkpoint written by another implementation (or an older zoo) resumes in this one."""
    groups = []
    for group, now in zip(saved["param_groups"], optimizer.param_groups):
        group = dict(group)
        for key in ("fused", "foreach", "capturable"):
            if key in now:
                group[key] = now[key]
        if torch.is_tensor(now["lr"]):  # a graphed run's lr lives on the device
            group["lr"] = torch.as_tensor(group["lr"], dtype=now["lr"].dtype,
                                          device=now["lr"].device).clone()
        groups.append(group)
    return {**saved, "param_groups": groups}
