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

import contextlib
import csv
import io
import itertools
import logging
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyro
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, TensorDataset
from tqdm.auto import tqdm

from experiments.engine import distributed, health
from experiments.harness.runner import write_json
from guides.base import ImplausibleSettingWarning, elbo_context, natural_gradient_parameters
from guides.registry import guide_name_of
from models.base import ZooModel, loss_only, module_device, sync_free
from models.registry import model_name_of

from .checkpoint import CheckpointError, atomic_write_text, load_checkpoint, save_zoo_file
from .config import dataclass_from_dict
from .elbo import ELBOS, make_elbo  # noqa: F401  (make_elbo: re-exported for callers)
from .kl_schedule import KLScale, kl_weights
from .seeding import rng_state, seed_everything, set_rng_state

log = logging.getLogger(__name__)

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
              "adagrad": torch.optim.Adagrad, "rmsprop": torch.optim.RMSprop}
LR_SCHEDULES = ("constant", "cosine", "step", "exponential")
#: when no progress bar is shown (``progress=False``, or stderr not a terminal): at most one
#: progress log line per this many seconds of training (besides the first epoch's and the last)
PROGRESS_LOG_EVERY_S = 60.0
#: when no bar is shown, the step loop reads the clock (``time.perf_counter``, never a tensor)
#: every this many steps, to log a line within a long epoch
PROGRESS_CHECK_STEPS = 16


@dataclass
class FitConfig:
    """Options of :func:`fit` (all have defaults; unknown keys are refused by ``from_dict``).

    :ivar elbo: ``"trace"`` (:class:`~pyro.infer.Trace_ELBO`, Monte Carlo KL) or ``"meanfield"``
        (:class:`~experiments.engine.elbo.MeanFieldELBO`, Pyro's
        :class:`~pyro.infer.TraceMeanField_ELBO` made cheaper: closed-form KL where the guide and
        prior sites admit it, e.g. the ``mean-field`` guide with a Gaussian prior).
    :ivar num_particles: ELBO samples per step, vectorised over a particle plate.
    :ivar kl_schedule: ``"uniform"`` or ``"blundell"`` minibatch KL weighting.
    :ivar lr_schedule: ``"constant"``, ``"cosine"`` (to 0 over the run), ``"step"`` (× lr_gamma
        every lr_step_epochs) or ``"exponential"`` (× lr_gamma per epoch).
    :ivar clip_norm: clip the global gradient norm to this value (``None``: no clipping).
    :ivar device: ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda[:i]"``.
    :ivar validate: Pyro's distribution-argument validation during training. ``None`` (default):
        off for speed unless the environment variable ``VBZOO_PYRO_VALIDATION=1`` is set, which
        the test suite does so that tests keep it on.
    :ivar progress: show a progress bar (tqdm) on a terminal or in a notebook. Whenever no bar is
        shown (``progress=False``, or stderr not a terminal: a redirected run), ``fit`` logs
        lines instead: one after the first epoch, then at most one every
        :data:`PROGRESS_LOG_EVERY_S` seconds (at an epoch's end, or ``epoch E: step s/S`` within
        an epoch that has run that long), and one at the end. A bar or not, the last line
        (``done after epoch ...``) is always logged.
    :ivar desc: the name of this fit in its progress bar and log lines; ``train_pair`` sets it
        to the arm's name and the fit's index in the run, e.g. ``"bbb #1"``.
    :ivar out_dir: where history.json/.csv, checkpoint.pt and TensorBoard scalars go (optional).
    :ivar checkpoint_every_s: ``None`` (default): write history and checkpoint after an epoch
        whenever that keeps the time spent saving within ``checkpoint_overhead`` of the training
        time, i.e. when the time since the last save is at least the last save's duration /
        ``checkpoint_overhead`` (every epoch once epochs are long enough; the first epoch always
        saves, which measures the cost). A number: at most this often, in seconds (0: every
        epoch). Always after the last epoch and when training stops on an exception.
    :ivar checkpoint_overhead: the fraction of training time the default policy may spend saving
        (0.02; measured by ``experiments.benchmarks.checkpoint_overhead``).
    :ivar divergence_factor: an epoch whose mean loss exceeds the best epoch loss so far by more
        than ``divergence_factor x max(|best|, 1)`` has *diverged* (as has one with non-finite
        parameters): it stays in the history but is never written over ``checkpoint.pt``, which
        keeps the last good state (``math.inf``: only non-finite values count as bad).
    :ivar kl_warmup_epochs: KL warm-up (annealing): the log-densities of *every* latent site, local
        ones included, in model and guide are scaled by beta = min(1, t / T) at step t (1-based)
        of T = ``kl_warmup_epochs`` x batches per epoch, so the loss is
        beta KL - E_q[log p(x | z)] (Bowman et al. 2016; Sønderby et al. 2016). 0 (default): no
        warm-up. The history's ``kl_beta`` is beta at the epoch's last step; during warm-up
        ``loss``/``elbo`` are the annealed objective.
    :ivar log_every: read the running loss and the non-finite flag to the host every this many
        steps (and at the end of every epoch). The step itself never reads a tensor to the host
        (see :class:`FiniteGate`): between reads the loss and log-likelihood accumulate on the
        device, so a GPU's queue never drains. A non-finite step is caught on the device and
        stops the updates at once; the error, naming the step, comes at the next read.
    :ivar cuda_graph: on CUDA, capture the whole step (the guide's ``elbo_context``, the KL
        weight, the loss, backward, clipping, the non-finite gate and the fused, capturable
        optimiser with its lr as a device tensor) in a ``torch.cuda.CUDAGraph`` for the batch
        shape of the first full batch, after warm-up steps on a side stream, and replay it
        (:class:`GraphedStep`). A batch of another shape (the last, short batch of an epoch)
        runs eagerly. Supported: the pairs of :data:`GRAPH_PAIRS` with ``optimizer`` adam or
        adamw, in one process. ``"auto"`` (default): on CUDA, graphed wherever that holds
        (:func:`graph_blockers` is empty), otherwise eager with one log line saying why; on the
        CPU nothing changes and nothing is logged. ``True``: graphed, and a pair that cannot be
        is refused with the list; on the CPU ignored with one warning. ``False``: eager.
    :ivar fused: the fused implementation of adam, adamw or adagrad, which the non-finite gate
        stops on the device (:class:`FiniteGate`). ``None`` (default): on CUDA only. On the CPU a
        host read costs nothing, and Adam/AdamW take torch's ``foreach`` implementation, which
        keeps the numbers of runs made before the gate existed bit for bit (fused kernels round
        differently); ``True`` uses the fused one there too.
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.0
    lr_schedule: str = "constant"
    lr_gamma: float = 0.1
    lr_step_epochs: int = 10
    clip_norm: float | None = None
    elbo: str = "trace"
    num_particles: int = 1
    kl_schedule: str = "uniform"
    device: str = "auto"
    seed: int = 0
    validate: bool | None = None
    progress: bool = True
    desc: str = "fit"
    eval_every: int = 1
    out_dir: str | None = None
    checkpoint: bool = True
    checkpoint_every_s: float | None = None
    checkpoint_overhead: float = 0.02
    tensorboard: bool = True
    kl_warmup_epochs: float = 0
    divergence_factor: float = 1e3
    log_every: int = 50
    cuda_graph: bool | Literal["auto"] = "auto"
    fused: bool | None = None

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> FitConfig:
        return dataclass_from_dict(cls, values)

    def __post_init__(self):
        checks = [
            (self.epochs >= 1, "epochs", "an integer >= 1"),
            (self.batch_size >= 1, "batch_size", "an integer >= 1"),
            (self.lr > 0, "lr", "a positive float"),
            (self.optimizer in OPTIMIZERS, "optimizer", f"one of {sorted(OPTIMIZERS)}"),
            (self.elbo in ELBOS, "elbo", f"one of {ELBOS}"),
            (self.num_particles >= 1, "num_particles", "an integer >= 1"),
            (self.lr_schedule in LR_SCHEDULES, "lr_schedule", f"one of {LR_SCHEDULES}"),
            (self.clip_norm is None or self.clip_norm > 0, "clip_norm", "None or > 0"),
            (self.kl_schedule in ("uniform", "blundell"), "kl_schedule", "'uniform' or 'blundell'"),
            (self.eval_every >= 1, "eval_every", "an integer >= 1"),
            (self.kl_warmup_epochs >= 0, "kl_warmup_epochs", "a number >= 0"),
            (self.divergence_factor > 0, "divergence_factor", "a number > 0 (inf: off)"),
            (self.log_every >= 1, "log_every", "an integer >= 1"),
            (self.checkpoint_every_s is None or self.checkpoint_every_s >= 0,
             "checkpoint_every_s", "None (the overhead policy) or a number of seconds >= 0"),
            (0 < self.checkpoint_overhead <= 1, "checkpoint_overhead", "a fraction in (0, 1]"),
            (self.cuda_graph in (True, False, "auto"), "cuda_graph", "true, false or 'auto'"),
            (self.cuda_graph is not True or self.optimizer in ("adam", "adamw"), "optimizer",
             "'adam' or 'adamw' with cuda_graph=True (the capturable fused optimisers)"),
            (self.cuda_graph is not True or self.fused is not False, "fused",
             "None or True with cuda_graph=True (the graph needs the fused optimiser)"),
        ]
        for ok, name, expected in checks:
            if not ok:
                raise ValueError(f"fit config {name}={getattr(self, name)!r} is invalid: expected "
                                 f"{expected}")


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` (CUDA when available, else the CPU), ``"cpu"`` or ``"cuda[:i]"`` as a
    ``torch.device``.

    :raises ValueError: one line naming the value and what to use instead, for a device torch
        does not know (``"tpu"``), one the zoo does not run on (``"mps"``, ``"meta"``), CUDA on a
        machine without it, or a GPU index beyond the GPUs present.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not a torch device; use 'auto' (CUDA when "
                         "available), 'cpu' or 'cuda[:i]'") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r}: the zoo runs on 'cpu' or 'cuda[:i]' ('auto' picks "
                         "CUDA when available)")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else \
                "a CPU-only build"
            raise ValueError(f"device {device!r} requested but CUDA is not available (torch "
                             f"{torch.__version__}, {built}); use device 'cpu' or 'auto'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} requested but only {torch.cuda.device_count()} "
                             "CUDA device(s) are visible; use 'cuda' or 'cuda:0'")
    return dev


def as_dataset(data) -> Dataset:
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (tuple, list)) and all(torch.is_tensor(t) for t in data):
        n = {len(t) for t in data}
        if len(n) != 1:
            raise ValueError(f"data tensors have different lengths {[len(t) for t in data]}; "
                             "x and y must have one row per example")
        for i, t in enumerate(data):
            if t.is_floating_point() and not torch.isfinite(t).all():
                bad = (~torch.isfinite(t)).reshape(len(t), -1).any(-1).nonzero()[:5, 0].tolist()
                raise ValueError(f"data tensor {i} (of {len(data)}: x, y, ...) holds NaN or inf "
                                 f"in rows {bad}...; drop or impute them before fit()")
        return TensorDataset(*data)
    raise TypeError(f"data must be a torch Dataset or a tuple of tensors (x, y), got {type(data)}")


def make_loader(dataset: Dataset, batch_size: int, generator: torch.Generator,
                shuffle: bool = True, shard: bool = False, seed: int = 0) -> DataLoader:
    """Minibatches of whole index lists (one ``dataset[indices]`` per batch, not B item calls:
    TensorDataset supports it and it is much faster for in-memory data). ``shard``
    (data-parallel): this rank's part of each epoch's permutation (a ``DistributedSampler``
    seeded with ``seed``; :func:`fit` calls its ``set_epoch``), ``batch_size`` rows per rank."""
    if shard:  # [distributed]
        sampler = distributed.sampler(dataset, shuffle, seed)
    else:
        sampler = RandomSampler(dataset, generator=generator) if shuffle else range(len(dataset))
    return DataLoader(dataset, sampler=BatchSampler(sampler, batch_size, drop_last=False),
                      batch_size=None)


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
    #: [distributed] loss_fn wrapped in DistributedDataParallel (fit sets it under
    #: torch.distributed; not part of a checkpoint)
    ddp: torch.nn.Module | None = None
    #: seconds fit spent writing history and checkpoints (this process; not checkpointed)
    save_seconds: float = 0.0

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
            "config": asdict(self.config),
            "epoch": self.epoch,
            "step": self.step,
            "history": self.history,
            "rng": rng_state(self.generator),
        }


def save_checkpoint(state: TrainState, path, meta: dict | None = None) -> Path:
    """Write ``state`` atomically to ``path`` as a zoo file of kind ``"checkpoint"`` (see
    :mod:`experiments.engine.checkpoint`)."""
    return save_zoo_file(path, "checkpoint", state.state_dict(),
                         {"epoch": state.epoch, "step": state.step, **(meta or {})})


#: FitConfig keys that change what the optimisation computes: a checkpoint resumes only under the
#: same values. ``epochs`` may change (see :func:`restore`); the other keys (progress, out_dir,
#: device, eval_every, tensorboard, checkpoint, checkpoint_every_s, validate, desc,
#: divergence_factor) only change how a run is run or reported.
RESUME_KEYS = ("lr", "optimizer", "momentum", "weight_decay", "lr_schedule", "lr_gamma",
               "lr_step_epochs", "elbo", "num_particles", "kl_schedule", "batch_size", "clip_norm",
               "kl_warmup_epochs", "seed")


#: RESUME_KEYS a resume may change when the user asks for it explicitly (``restore(...,
#: allow=...)``, ``run NAME --resume RUN_DIR --set ARM.fit.lr=...``): a smaller lr after a NaN
#: stop, a clip_norm, more epochs of a cosine schedule
RESUME_OVERRIDABLE = ("lr", "clip_norm", "epochs")


def config_differences(saved: dict[str, Any], config: FitConfig, epoch: int,
                       allow: tuple[str, ...] | frozenset = ()) -> list[str]:
    """What keeps a checkpoint of ``saved`` config (at ``epoch``) from resuming under ``config``:
    one ``"key: checkpoint A, now B"`` per key of :data:`RESUME_KEYS` that differs and is not in
    ``allow`` (a key the checkpoint lacks counts as its default), and a changed ``epochs`` when
    it would break the run: fewer than the epochs already done, or a change of a cosine schedule
    unless ``"epochs"`` is allowed (its T_max is ``epochs``; :func:`restore` then recomputes the
    schedule over the new epochs)."""
    defaults = asdict(FitConfig())
    now = asdict(config)
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

    The checkpoint's fit config must match ``state.config`` in every key that changes the
    optimisation (:data:`RESUME_KEYS`), except the keys in ``allow`` (a subset of
    :data:`RESUME_OVERRIDABLE`, the changes the user asked for); ``epochs`` may grow (except
    under a cosine schedule, unless allowed, see :func:`config_differences`). A checkpoint
    written when a run stopped mid-epoch (see :func:`fit`) resumes by running that epoch again
    from its saved parameters.

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
    diffs = config_differences(saved, state.config, ckpt.get("epoch", 0), frozenset(allow))
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
                 cfg.desc, cfg.lr, old_lr)
    if isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR) and sched.T_max != cfg.epochs:
        sched.T_max = cfg.epochs
        t = sched.last_epoch
        lrs = [sched.eta_min + (b - sched.eta_min) * (1 + math.cos(math.pi * t / cfg.epochs)) / 2
               for b in sched.base_lrs]
        for group, lr in zip(state.optimizer.param_groups, lrs):
            _set_lr(group, lr)
        sched._last_lr = lrs
        log.info("%s: cosine schedule recomputed over %d epochs (lr now %.3g at epoch %d)",
                 cfg.desc, cfg.epochs, lrs[0], t)


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


#: optimisers whose fused implementation skips a step on the device when told that a gradient is
#: not finite (``found_inf``, the flag GradScaler uses): :class:`FiniteGate` gates them without a
#: host read (fused on CUDA; on the CPU with ``FitConfig.fused``). SGD's fused CPU kernel
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


class FiniteGate:
    """The non-finite guard of :func:`train_step`, on the device.

    After each backward, one multi-tensor kernel (``torch._amp_foreach_non_finite_check_and_unscale_``,
    GradScaler's; on the CPU the sum of every gradient's sum) sets the flag ``found`` if the loss
    or any gradient is not finite. The flag is
    sticky and is the fused optimiser's ``found_inf``: from the first bad step on, every update
    is skipped on the device (parameters and optimiser state alike; Adam's step count is
    rolled back), so parameters never take a non-finite update and stay those before the bad
    step. ``ok`` counts the steps taken before it. :func:`check_finite` reads both (the only host
    read) and raises, naming the step. Optimisers without a device-side skip (see
    :data:`DEVICE_GATED`) read the flag every step instead.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, device: torch.device, step: int = 0):
        self.device_side = all(g.get("fused") for g in optimizer.param_groups)
        self.found = torch.zeros(1, dtype=torch.float32, device=device)
        self.ok = torch.zeros(1, dtype=torch.float32, device=device)
        self._one = torch.ones(1, dtype=torch.float32, device=device)
        self.start = step  # state.step at the last read
        #: [distributed] all-reduce the flag every step, so that a non-finite loss on one rank
        #: skips that step's update on every rank (distributed.prepare sets it)
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


def check_finite(state: TrainState) -> None:
    """Read the :class:`FiniteGate` (one host read) and raise if a step was not finite.

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


def _make_scheduler(cfg: FitConfig, optimizer):
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    if cfg.lr_schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, cfg.lr_step_epochs, cfg.lr_gamma)
    if cfg.lr_schedule == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, cfg.lr_gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


def _to(batch, device, dtype: torch.dtype | None = None):
    """The batch on ``device``; floating tensors also in ``dtype`` (the model's), when given."""
    return tuple(t.to(device, dtype=dtype if dtype is not None and t.is_floating_point()
                      else None, non_blocking=True) for t in batch)


def _float_dtype(model) -> torch.dtype | None:
    """The model's floating dtype (that of its first floating parameter or buffer)."""
    for t in itertools.chain(model.parameters(), model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return None


def validate_whole(model, dataset: Dataset) -> bool:
    """Check the whole training set against ``model`` once (:meth:`models.base.ZooModel.
    validate_data` for a TensorDataset; a Dataset vouches for itself with ``validate_for(model)``,
    e.g. dynamic binarisation). ``True``: the model need not check each batch again."""
    if not isinstance(model, ZooModel):
        return False
    if isinstance(dataset, TensorDataset):
        model.validate_data(*dataset.tensors)
        return True
    validate_for = getattr(dataset, "validate_for", None)
    return bool(validate_for(model)) if callable(validate_for) else False


def step_mode(model, host_reads: bool, data_validated: bool) -> contextlib.ExitStack:
    """What :func:`fit` enters around its steps: :func:`models.base.sync_free` unless
    ``host_reads`` (fit allows them on the CPU, where a read costs nothing and the SVGP's
    Cholesky may then retry with more jitter) and, when the whole training set was checked
    before training, :meth:`~models.base.ZooModel.data_validated` (no per-batch value checks)."""
    stack = contextlib.ExitStack()
    if not host_reads:
        stack.enter_context(sync_free())
    if data_validated and isinstance(model, ZooModel):
        stack.enter_context(model.data_validated())
    return stack


def setup(model, guide, data, config: FitConfig | dict | None = None) -> TrainState:
    """Seed, move to the device, run the guide once (autoguides create their parameters lazily),
    and build the optimiser and scheduler: the :class:`TrainState` before the first step."""
    cfg = config if isinstance(config, FitConfig) else FitConfig.from_dict(config)
    if not pyro.settings.get("module_local_params"):
        raise RuntimeError(
            "fit() needs pyro.settings.set(module_local_params=True) before the model and guide "
            "are created (importing the zoo's `models` package does it)")
    generator = seed_everything(cfg.seed)
    device = distributed.local_device(resolve_device(cfg.device))  # [distributed] cuda:LOCAL_RANK
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
    dtype = _float_dtype(model)
    if isinstance(dataset, TensorDataset):
        other = sorted({str(t.dtype) for t in dataset.tensors
                        if t.is_floating_point() and t.dtype != dtype})
        if dtype is not None and other:
            log.info("casting %s data to the model's %s, batch by batch (create the model in %s "
                     "to train in it)", "/".join(other), dtype, "/".join(other))
    first = _to(dataset[list(range(min(cfg.batch_size, len(dataset))))], device, dtype)
    with pyro.validation_enabled(True), elbo_context(guide, cfg.elbo == "meanfield"):
        loss_fn(*first)  # creates lazily-initialised guide parameters (on the right device)
    guide.to(device)
    _warn_implausible(cfg)
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
                      scheduler=_make_scheduler(cfg, optimizer), config=cfg, generator=generator,
                      natural=natural, data_validated=validated)


#: learning rates above these train, to nonsense (Adam at lr=1e4 ended at loss 2.3e7, silently)
PLAUSIBLE_LR = {"adam": 0.1, "adamw": 0.1, "rmsprop": 0.1, "adagrad": 1.0, "sgd": 1.0}
#: consecutive epochs of a growing loss after which fit warns
GROWING_LOSS_EPOCHS = 10


def _warn_implausible(cfg: FitConfig) -> None:
    if cfg.lr > PLAUSIBLE_LR[cfg.optimizer]:
        warnings.warn(f"lr={cfg.lr:g} is above the plausible range for {cfg.optimizer} (<= "
                      f"{PLAUSIBLE_LR[cfg.optimizer]:g}); the fit will likely diverge or end far "
                      "off. Usual values: 1e-4 to 1e-2", ImplausibleSettingWarning, stacklevel=3)


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


class _Writers:
    """history.json / history.csv, and TensorBoard scalars when tensorboard is installed."""

    def __init__(self, out_dir: str | None, tensorboard: bool):
        self.out = Path(out_dir) if out_dir else None
        self.tb = None
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:  # tensorboard is optional
                    SummaryWriter = None
                if SummaryWriter is not None:
                    self.tb = SummaryWriter(str(self.out / "tensorboard"))

    def add_row(self, row: dict[str, Any]) -> None:
        """TensorBoard scalars for one epoch (buffered by the writer, cheap)."""
        if self.tb is not None:
            for k, v in row.items():
                if k != "epoch" and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, row["epoch"])

    def write(self, history: list[dict[str, Any]]) -> None:
        """history.json and history.csv with every epoch so far."""
        if self.out is None:
            return
        write_json(self.out / "history.json", history, indent=1)
        keys = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(self.out / "history.csv", text.getvalue())
        if self.tb is not None:
            self.tb.flush()

    def close(self):
        if self.tb is not None:
            self.tb.close()


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
    """One SVI step of :func:`fit` on ``batch`` (a tuple of tensors on the right device): the
    guide's ``elbo_context``, the KL weight ``kl_scale`` (and warm-up factor ``beta``), the loss
    (under :func:`models.base.loss_only`: no param statements or deterministic records),
    backward, optional clipping, the device-side non-finite gate (:class:`FiniteGate`) and the
    optimiser step. It reads nothing to the host (``tests/test_no_sync.py``), so on a GPU the
    step never waits for the device.

    Loops other than ``fit`` (the bandit's, the benchmarks') call this too, so that what they
    train or time is the zoo's step; they call :func:`check_finite` when they read results.
    Returns the (graph-carrying) loss.
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


#: (model, guide) pairs whose step FitConfig.cuda_graph captures: their steps read nothing to the
#: host (tests/test_no_sync.py) and were checked captured against eager (tests/test_gpu.py)
GRAPH_PAIRS = (("bnn", "mean-field"), ("vae", "encoder"), ("svgp", "cholesky"),
               ("mlp", "deterministic"))


def graph_blockers(cfg: FitConfig, model, guide) -> list[str]:
    """Why the step of this pair under ``cfg`` is not captured in a CUDA graph (empty: it is,
    on CUDA): a pair outside :data:`GRAPH_PAIRS`, a model configuration that says it cannot be
    (``ZooModel.capture_blockers``), an optimiser without a capturable fused kernel, or a
    data-parallel run."""
    out = []
    if model is None or guide is None:
        return ["the pair is not known"]
    pair = (model_name_of(model), guide_name_of(guide))
    if pair not in GRAPH_PAIRS:
        out.append(f"the {pair[0]} + {pair[1]} pair is not captured")
    if isinstance(model, ZooModel):
        out += model.capture_blockers()
    if cfg.optimizer not in ("adam", "adamw"):
        out.append(f"optimizer {cfg.optimizer!r} has no capturable fused kernel (adam, adamw)")
    if cfg.fused is False:
        out.append("fused=False")
    if distributed.active():
        out.append("data-parallel steps are not captured")
    return out


def uses_cuda_graph(cfg: FitConfig, device: torch.device, model=None, guide=None) -> bool:
    """Whether the step is captured: on CUDA, with ``cuda_graph=True``, or ``"auto"`` and no
    :func:`graph_blockers`."""
    if device.type != "cuda" or cfg.cuda_graph is False:
        return False
    return cfg.cuda_graph is True or not graph_blockers(cfg, model, guide)


def check_graph_pair(model, guide) -> None:
    """Refuse ``cuda_graph=True`` for a pair outside :data:`GRAPH_PAIRS`, listing them, and for a
    model configuration that says it cannot be captured (``ZooModel.capture_blockers``)."""
    pair = (model_name_of(model), guide_name_of(guide))
    if pair not in GRAPH_PAIRS:
        raise ValueError(f"cuda_graph=True: the {pair[0]} + {pair[1]} pair is not captured (its "
                         "step is not checked free of host reads and shape changes); pairs with "
                         f"CUDA-graph support: {', '.join(' + '.join(p) for p in GRAPH_PAIRS)}. "
                         "Train it with cuda_graph=false")
    blockers = model.capture_blockers() if isinstance(model, ZooModel) else []
    if blockers:
        raise ValueError(f"cuda_graph=True for {pair[0]}: {'; '.join(blockers)}. Or train it "
                         "with cuda_graph=false")


class GraphedStep:
    """:func:`train_step` captured in a CUDA graph and replayed (``FitConfig.cuda_graph``).

    Following PyTorch's whole-network capture recipe (``torch.cuda.graphs``): the first
    :attr:`WARMUP` steps run eagerly on a side stream (they are real training steps on real
    batches, and let lazily created state such as Adam's moments and cuBLAS workspaces exist),
    then the next step is captured and every later step of the same batch shape is a copy of
    the batch into the static inputs, two ``fill_`` of the KL weight and warm-up factor, and one
    replay. Inside the graph: the guide's ``elbo_context``, the loss, backward, clipping, the
    :class:`FiniteGate`, the fused capturable optimiser (lr a device tensor, so the scheduler's
    changes reach the replay) and the epoch sums of :func:`fit`. Random draws advance with each
    replay (the graph registers the default CUDA generator). A batch of another shape (the
    epoch's last, short batch) runs eagerly, outside the graph.
    """

    WARMUP = 3

    def __init__(self, state: TrainState, params: list, sums: torch.Tensor,
                 device: torch.device):
        self.state, self.params, self.sums, self.device = state, params, sums, device
        self.kl = torch.ones((), device=device)
        self.beta = torch.ones((), device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: tuple[torch.Tensor, ...] | None = None
        self.loss: torch.Tensor | None = None
        self.warm = 0
        self.side = torch.cuda.Stream(device=device)

    def _step(self, batch, kl, beta) -> torch.Tensor:
        loss = train_step(self.state, batch, kl_scale=kl, beta=beta, params=self.params)
        _accumulate(self.sums, self.state, loss)
        return loss

    def accepts(self, batch) -> bool:
        return self.static is None or all(a.shape == b.shape and a.dtype == b.dtype
                                          for a, b in zip(self.static, batch))

    def __call__(self, batch, kl_scale: float, beta: float) -> torch.Tensor:
        """One step on ``batch`` (accumulated into the sums, as the eager path of fit does)."""
        if self.graph is None and self.warm < self.WARMUP:
            self.static = tuple(t.clone() for t in batch) if self.static is None else self.static
            self.side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self.side):
                loss = self._step(batch, kl_scale, beta)
            torch.cuda.current_stream(self.device).wait_stream(self.side)
            self.warm += 1
            return loss
        if self.graph is None:
            self._capture()
        for static, t in zip(self.static, batch):
            static.copy_(t, non_blocking=True)
        self.kl.fill_(kl_scale)
        self.beta.fill_(beta)
        self.graph.replay()
        self.state.step += 1
        return self.loss

    def _capture(self) -> None:
        torch.cuda.synchronize(self.device)
        for optimizer in self.state.optimizers:
            optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        step = self.state.step
        # Pyro's (and torch's) argument validation reads every check to the host: the eager
        # warm-up steps ran with it when it is on (FitConfig.validate); the captured step has none
        try:
            with pyro.validation_enabled(False), torch.cuda.graph(graph):
                self.loss = self._step(self.static, self.kl, self.beta)
        except RuntimeError as e:  # torch.AcceleratorError is a RuntimeError
            raise RuntimeError(
                f"cuda_graph=True: capturing the {model_name_of(self.state.model)} + "
                f"{guide_name_of(self.state.guide)} step in a CUDA graph failed ({e}). An "
                "operation in the step reads a value to the host or synchronises (the traceback "
                "above names it; torch.cuda.set_sync_debug_mode('error') finds such reads in an "
                "eager step). A failed capture can leave this process's CUDA state unusable: "
                "restart and train with cuda_graph=false") from e
        self.state.step = step  # capture records the step; each replay takes it
        self.graph = graph


def _accumulate(sums: torch.Tensor, state: TrainState, loss: torch.Tensor) -> None:
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


def fit(model, guide, data, config: FitConfig | dict | None = None,
        eval_fn: Callable[[Any, Any], dict[str, float]] | None = None,
        state: TrainState | None = None) -> TrainState:
    """Train ``guide`` (and the model's point parameters) by SVI; return the :class:`TrainState`.

    :param model: a zoo model (``forward(x, y=None)`` is the Pyro model).
    :param guide: a guide built for it (``create_guide(name, model)``).
    :param data: a ``Dataset`` or a tuple of tensors ``(x, y)`` (the training set).
    :param config: a :class:`FitConfig` or a dict of its fields.
    :param eval_fn: ``eval_fn(model, guide) -> {"name": value}`` validation metrics, run every
        ``eval_every`` epochs (in ``torch.no_grad``) and stored in the history as ``val_<name>``.
    :param state: continue from an existing state (e.g. one restored from a checkpoint).
    :returns: the final state; ``state.history`` is one dict per epoch with ``loss`` (the mean
        minibatch estimate of the full-data negative ELBO), ``elbo``, ``log_likelihood`` and
        ``kl`` (``elbo = log_likelihood - kl``), ``lr``, ``seconds`` and the validation metrics.
    :raises FloatingPointError: on a non-finite loss or gradient, at the next read of the
        :class:`FiniteGate` (every ``log_every`` steps and at the end of each epoch), naming the
        epoch and the first bad step; no update from that step on was applied.

    With ``out_dir``, any exception (a NaN stop, Ctrl-C, an error) first writes the history and,
    when the state is good, ``checkpoint.pt`` (see :func:`_save_on_failure`; a mid-epoch stop
    saves the parameters before the failing step and resuming runs that epoch again). A bad
    epoch (non-finite, or diverged: see ``FitConfig.divergence_factor``) never overwrites
    ``checkpoint.pt``.

    Under ``torch.distributed`` (``torchrun``, or a process group the caller initialised) the fit
    is data-parallel: each rank steps on ``batch_size`` rows of its shard, gradients are averaged
    by DDP, and rank 0 alone evaluates and writes (:mod:`experiments.engine.distributed`).
    """
    dataset = as_dataset(data)
    if state is None:
        state = setup(model, guide, dataset, config)
        validated = state.data_validated
    else:  # (a restored state: its data may be another dataset object)
        validated = validate_whole(state.model, dataset)
    cfg = state.config
    device = module_device(state.loss_fn)
    dtype = _float_dtype(state.model)
    # [distributed] under torch.distributed: shard the data, wrap the ELBO module in DDP, and
    # let rank 0 alone evaluate and write (see experiments.engine.distributed)
    parallel, main = distributed.active(), distributed.is_main()
    loader = make_loader(dataset, cfg.batch_size, state.generator, shard=parallel, seed=cfg.seed)
    weights = kl_weights(len(loader), cfg.kl_schedule)
    warmup_steps = cfg.kl_warmup_epochs * len(loader)
    if parallel and state.ddp is None:
        distributed.prepare(state, _to(next(iter(loader)), device, dtype), device)
    state.gate.reset(state.step)
    # the epoch's loss, log-likelihood, and per-step KL estimates with their squares
    sums = torch.zeros(4, dtype=torch.float64, device=device)
    kl_pool = health.KLPool(last_sup=health.max_log_density(state.model))
    out_dir = cfg.out_dir if main else None  # [distributed] rank 0 writes
    writers = _Writers(out_dir, cfg.tensorboard)
    ckpt_path = Path(out_dir) / "checkpoint.pt" if out_dir and cfg.checkpoint else None
    params = list(state.loss_fn.parameters())
    guard = _Guard(cfg, state, params, sums)
    graphed = None
    if cfg.cuda_graph is True and device.type != "cuda":
        warnings.warn(f"{cfg.desc}: cuda_graph=True is ignored on {device} (CUDA graphs need a "
                      "CUDA device); the steps run eagerly", stacklevel=2)
    elif uses_cuda_graph(cfg, device, state.model, state.guide):
        check_graph_pair(state.model, state.guide)
        graphed = GraphedStep(state, params, sums, device)
    elif device.type == "cuda" and cfg.cuda_graph == "auto" and main:
        log.info("%s: the step runs eagerly, not captured in a CUDA graph: %s", cfg.desc,
                 "; ".join(graph_blockers(cfg, state.model, state.guide)))
    last_save = started = time.perf_counter()
    save_cost = 0.0  # seconds the last save took (the policy's measure)
    # disable=None: no bar when stderr is not a terminal (a notebook still gets its widget);
    # without a bar (progress off, or a redirected run) the main rank logs a line now and then
    # instead of thousands of carriage returns: after the first epoch, then at most one per
    # PROGRESS_LOG_EVERY_S seconds (within a long epoch too), and at the end
    bar = tqdm(range(state.epoch, cfg.epochs), desc=cfg.desc, unit="epoch",
               disable=None if cfg.progress and main else True, initial=state.epoch,
               total=cfg.epochs, dynamic_ncols=True)
    lines = bool(main and bar.disable)
    first_epoch = state.epoch  # the first epoch of this call (of a resumed fit too)
    last_line = None  # when the last progress line was logged (None: none yet)
    check_steps = max(1, int(PROGRESS_CHECK_STEPS))
    num_steps = len(loader)
    try:
        validate = cfg.validate
        if validate is None:
            validate = os.environ.get("VBZOO_PYRO_VALIDATION", "0") == "1"
        with pyro.validation_enabled(validate), step_mode(state.model, device.type != "cuda", validated):
            for epoch in bar:
                state.model.train()
                t0 = time.perf_counter()
                guard.start_epoch()
                distributed.set_epoch(loader, epoch)  # [distributed] a new permutation
                for i, batch in enumerate(loader):
                    batch = _to(batch, device, dtype)
                    kl_scale = len(weights) * weights[i]
                    beta = min(1.0, (state.step + 1) / warmup_steps) if warmup_steps else 1.0
                    if graphed is not None and graphed.accepts(batch):
                        graphed(batch, kl_scale, beta)
                    else:  # on the device, no host read until the next check
                        loss = train_step(state, batch, kl_scale=kl_scale, beta=beta,
                                          params=params)
                        _accumulate(sums, state, loss)
                    guard.beta = beta
                    if state.step - state.gate.start >= cfg.log_every:
                        check_finite(state)
                    if lines and (i + 1) % check_steps == 0:  # the clock only: no host read
                        now = time.perf_counter()
                        since = t0 if last_line is None else max(t0, last_line)
                        if now - since >= PROGRESS_LOG_EVERY_S:
                            log.info("%s: epoch %d: step %d/%d (%.1f s)", cfg.desc, epoch + 1,
                                     i + 1, num_steps, now - started)
                            last_line = now
                check_finite(state)
                nb = i + 1
                if parallel:  # [distributed] the union batch's estimates: the mean over ranks
                    distributed.reduce_epoch_sums_(sums)
                tot_loss, tot_ll, kl_sum, kl_squares = sums.tolist()
                row = {"epoch": epoch + 1, "loss": tot_loss / nb, "elbo": -tot_loss / nb,
                       "log_likelihood": tot_ll / nb, "kl": (tot_ll - (-tot_loss)) / nb,
                       "lr": float(state.optimizer.param_groups[0]["lr"]),
                       "seconds": time.perf_counter() - t0}
                if warmup_steps:
                    row["kl_beta"] = beta
                bad = guard.end_epoch()
                # the epoch is done (and recorded) before eval_fn runs: a failing eval_fn leaves
                # epoch, scheduler and history consistent for the checkpoint written on failure
                state.scheduler.step()
                state.epoch = epoch + 1
                state.history.append(row)
                problem = health.epoch_problem(state, row, kl_pool, nb, (kl_sum, kl_squares)) \
                    if main else None
                if parallel:  # [distributed] every rank stops together
                    problem = distributed.broadcast_object(problem)
                if problem is not None:  # never a checkpoint of it; the history shows it
                    guard.last_bad = problem
                    writers.write(state.history)
                    raise health.ImplausibleFitError(
                        f"{cfg.desc}: {problem}; "
                        f"{health.advice(state.model, state.guide, cfg)}")
                if eval_fn is not None and main and (state.epoch % cfg.eval_every == 0
                                                     or state.epoch == cfg.epochs):
                    with torch.no_grad():
                        row.update({f"val_{k}": v for k, v in eval_fn(state.model,
                                                                      state.guide).items()})
                writers.add_row(row)
                last = state.epoch == cfg.epochs
                since = time.perf_counter() - last_save
                due = since >= cfg.checkpoint_every_s if cfg.checkpoint_every_s is not None \
                    else since * cfg.checkpoint_overhead >= save_cost
                if last or due:
                    t_save = time.perf_counter()
                    writers.write(state.history)
                    if bad is None:
                        if ckpt_path is not None:
                            save_checkpoint(state, ckpt_path)
                        last_save = time.perf_counter()
                    elif ckpt_path is not None:
                        guard.warn_not_saved(f"epoch {state.epoch} {bad}")
                    save_cost = time.perf_counter() - t_save
                    state.save_seconds += save_cost
                bar.set_postfix(loss=f"{row['loss']:.4g}", kl=f"{row['kl']:.3g}", refresh=False)
                now = time.perf_counter()
                if lines and not last and (epoch == first_epoch or last_line is None
                                           or now - last_line >= PROGRESS_LOG_EVERY_S):
                    _log_epoch(cfg, row, "epoch", now - started)
                    last_line = now
    except BaseException as exc:
        _save_on_failure(state, writers, ckpt_path, guard, exc)
        if isinstance(exc, ValueError) and "Expected parameter" in str(exc):
            # Pyro's argument validation found a parameter gone NaN or out of its support
            raise FloatingPointError(
                f"{cfg.desc}: non-finite or invalid parameters at epoch {state.epoch + 1}, step "
                f"{state.step + 1} ({str(exc).splitlines()[0][:160]}); "
                f"{health.advice(state.model, state.guide, cfg)}") from exc
        raise
    finally:
        writers.close()
        bar.close()
    if parallel:  # [distributed] every rank returns rank 0's history (with its evaluations)
        state.history = distributed.broadcast_object(state.history)
    if state.history and main:
        total = time.perf_counter() - started
        _log_epoch(cfg, state.history[-1], "done after epoch", total)
        if writers.out is not None:
            log.debug("%s: saving history and checkpoints took %.2f s (%.1f %% of %.1f s)",
                     cfg.desc, state.save_seconds, 100 * state.save_seconds / max(total, 1e-9),
                     total)
    return state


def _all_finite(params: list[torch.Tensor]) -> bool:
    return not params or bool(torch.stack([torch.isfinite(p).all() for p in params]).all())


class _Guard:
    """Judges each epoch of :func:`fit` good or bad, so that ``checkpoint.pt`` only ever holds a
    good state. Bad: a non-finite epoch loss or parameter, or (once KL warm-up is over) an epoch
    loss above ``best + divergence_factor * max(|best|, 1)``, best being the lowest epoch loss so
    far (the restored history's included)."""

    def __init__(self, cfg: FitConfig, state: TrainState, params: list[torch.Tensor],
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
            warnings.warn(f"{self.cfg.desc}: the loss has grown for {self.growing} epochs in a "
                          f"row (now {mean:.4g} at epoch {self.state.epoch + 1}); the lr "
                          f"({self.state.optimizer.param_groups[0]['lr']:g}) may be too large",
                          ImplausibleSettingWarning, stacklevel=2)
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
                        self.cfg.desc, why)
        self.warned = True


def _save_on_failure(state: TrainState, writers: _Writers, ckpt_path: Path | None, guard: _Guard,
                     exc: BaseException) -> None:
    """On any exception in :func:`fit`: write the history, and a checkpoint of the state now if it
    is good. The :class:`FiniteGate` skips every update from a non-finite step on, so at a NaN
    stop the parameters are those before the bad step. Stopped mid-epoch, the checkpoint holds those
    parameters with ``epoch`` = the epochs completed (the history has no row for the partial one)
    and ``step`` counting every step taken: resuming runs that epoch again from them. A failure of
    this save is logged and does not hide ``exc``."""
    if writers.out is None:
        return
    what = f"{type(exc).__name__} during epoch {state.epoch + 1}" if guard.n else \
        f"{type(exc).__name__} after epoch {state.epoch}"
    try:
        writers.write(state.history)
        if ckpt_path is None or state.step == guard.start_step:
            return
        # mid-epoch: the partial epoch's loss and the parameters; between epochs: the last one's
        bad = guard.verdict() if guard.n else guard.last_bad or guard.verdict()
        if bad is not None:
            guard.warn_not_saved(f"stopped by {what}; the state {bad}")
            return
        save_checkpoint(state, ckpt_path, {"stopped_by": type(exc).__name__,
                                           "partial_epoch_steps": guard.n})
        log.warning("%s: stopped by %s (step %d); checkpoint.pt holds the state before it%s",
                    state.config.desc, what, state.step,
                    f" (resuming runs epoch {state.epoch + 1} again)" if guard.n else "")
    except Exception as save_exc:  # noqa: BLE001 - never hide the exception that stopped training
        log.error("%s: could not save history/checkpoint after %s: %s", state.config.desc, what,
                  save_exc)


def _log_epoch(cfg: FitConfig, row: dict[str, Any], what: str, seconds: float) -> None:
    log.info("%s: %s %d/%d, loss %.4g, kl %.3g (%.1f s)", cfg.desc, what, row["epoch"],
             cfg.epochs, row["loss"], row["kl"], seconds)
