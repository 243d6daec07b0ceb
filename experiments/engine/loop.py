"""The epoch loop of :func:`~experiments.engine.training.fit` (:class:`EpochLoop`): the steps of
an epoch, its history row and health checks, the saves it is due (history, ``checkpoint.pt``),
the progress bar or lines, and the save on the way out when training stops on an exception
(:func:`save_on_failure`). Every clock read of ``fit`` is here (``time.perf_counter``)."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from . import distributed, health
from .cuda_graph import GraphedStep, check_graph_pair, graph_blockers, uses_cuda_graph
from .guards import EpochGuard, check_finite
from .kl_schedule import kl_weights
from .loader import float_dtype, to_device
from .signals import Stopped, StopSignals, signal_name
from .state import TrainState, save_checkpoint
from .step import accumulate, train_step
from .writers import Writers, log_epoch

log = logging.getLogger("experiments.engine.training")  # fit's one log: users filter on its name

#: when no progress bar is shown (``progress=False``, or stderr not a terminal): at most one
#: progress log line per this many seconds of training (besides the first epoch's and the last)
PROGRESS_LOG_EVERY_S = 60.0
#: when no bar is shown, the step loop reads the clock (``time.perf_counter``, never a tensor)
#: every this many steps, to log a line within a long epoch
PROGRESS_CHECK_STEPS = 16
#: a checkpoint within an epoch (at a step boundary, with its position) is written only once the
#: epoch has run this long, when the save policy says one is due (``checkpoint_every_s``: always)
WITHIN_EPOCH_AFTER_S = 30.0


class EpochLoop:
    """The epochs of one :func:`~experiments.engine.training.fit` call on a set-up ``state`` and
    its ``loader``: made before the first epoch (the epoch sums, KL pool, writers, checkpoint
    path, :class:`~experiments.engine.guards.EpochGuard`, the CUDA graph or why not, the bar),
    then :meth:`run_epoch` for each epoch of :attr:`bar`, :meth:`close`, and :meth:`log_done`.

    **Positions within an epoch.** When an epoch begins, the loop keeps the data generator's state
    (it draws the epoch's permutation). A checkpoint written at a step boundary inside the epoch
    (a stop requested by a signal, see ``stops``; or a periodic save within a long epoch, see
    :data:`WITHIN_EPOCH_AFTER_S`) records that state, the steps done and the epoch's loss sums
    (:attr:`TrainState.position`), beside the random streams at that step. A resume from it draws
    the same permutation, skips the steps done, and continues with the same sums and random
    streams: the run goes on as if it had never stopped, bit for bit in one process.

    :param stops: the :class:`~experiments.engine.signals.StopSignals` whose request (SIGINT,
        SIGTERM, SIGHUP) ends training after the step in progress, with a checkpoint there
        (None: no signal handling)."""

    def __init__(self, state: TrainState, loader, device: torch.device,
                 eval_fn: Callable[[Any, Any], dict] | None, stops: StopSignals | None = None):
        self.state, self.loader, self.device, self.eval_fn = state, loader, device, eval_fn
        self.stops = stops
        self.order: torch.Tensor | None = None  # the data generator's state when the epoch began
        cfg, run = self.cfg, self.run = state.config, state.run
        self.dtype = float_dtype(state.model)
        self.parallel, self.main = distributed.active(), distributed.is_main()
        self.weights = kl_weights(len(loader), cfg.kl_schedule)
        self.warmup_steps = cfg.kl_warmup_epochs * len(loader)
        state.gate.reset(state.step)
        # the epoch's loss, log-likelihood, and per-step KL estimates with their squares
        self.sums = torch.zeros(4, dtype=torch.float64, device=device)
        self.kl_pool = health.KLPool(last_sup=health.max_log_density(state.model))
        out_dir = run.out_dir if self.main else None  # [distributed] rank 0 writes
        self.writers = Writers(out_dir, cfg.tensorboard)
        self.ckpt_path = Path(out_dir) / "checkpoint.pt" if out_dir and cfg.checkpoint else None
        self.params = list(state.loss_fn.parameters())
        self.guard = EpochGuard(cfg, state, self.params, self.sums)
        self.graphed = self._graphed_step()
        self.last_save = self.started = time.perf_counter()
        self.save_cost = 0.0  # seconds the last save took (the policy's measure)
        # disable=None: no bar when stderr is not a terminal (a notebook still gets its widget);
        # without a bar (progress off, or a redirected run) the main rank logs a line now and then
        # instead of thousands of carriage returns: after the first epoch, then at most one per
        # PROGRESS_LOG_EVERY_S seconds (within a long epoch too), and at the end
        self.bar = tqdm(range(state.epoch, cfg.epochs), desc=run.desc, unit="epoch",
                        disable=None if run.progress and self.main else True,
                        initial=state.epoch, total=cfg.epochs, dynamic_ncols=True)
        self.lines = bool(self.main and self.bar.disable)
        self.first_epoch = state.epoch  # the first epoch of this call (of a resumed fit too)
        self.last_line = None  # when the last progress line was logged (None: none yet)

    def _graphed_step(self) -> GraphedStep | None:
        """The captured step when the step is graphed (``FitConfig.cuda_graph``), else ``None``
        (with a warning for ``cuda_graph=True`` off CUDA, a log line for ``"auto"`` on CUDA)."""
        cfg, state, device = self.cfg, self.state, self.device
        if cfg.cuda_graph is True and device.type != "cuda":
            warnings.warn(f"{self.run.desc}: cuda_graph=True is ignored on {device} (CUDA graphs need "
                          "a CUDA device); the steps run eagerly", stacklevel=4)
        elif uses_cuda_graph(cfg, device, state.model, state.guide):
            check_graph_pair(state.model, state.guide)
            return GraphedStep(state, self.params, self.sums, device)
        elif device.type == "cuda" and cfg.cuda_graph == "auto" and self.main:
            log.info("%s: the step runs eagerly, not captured in a CUDA graph: %s", self.run.desc,
                     "; ".join(graph_blockers(cfg, state.model, state.guide)))
        return None

    def run_epoch(self, epoch: int) -> None:
        """Epoch ``epoch`` (0-based): its steps, its history row, its checks, its saves."""
        self.state.model.train()
        t0 = time.perf_counter()
        start = self._begin_epoch(epoch)
        nb, beta = self._steps(epoch, t0, start)
        row, bad = self._record(epoch, t0, nb, beta)
        self.writers.add_row(row)
        last = self.state.epoch == self.cfg.epochs
        self._save_if_due(last, bad)
        self.bar.set_postfix(loss=f"{row['loss']:.4g}", kl=f"{row['kl']:.3g}", refresh=False)
        now = time.perf_counter()
        if self.lines and not last and (epoch == self.first_epoch or self.last_line is None
                                        or now - self.last_line >= PROGRESS_LOG_EVERY_S):
            log_epoch(self.run.desc, self.cfg.epochs, row, "epoch", now - self.started)
            self.last_line = now

    def _begin_epoch(self, epoch: int) -> int:
        """Start epoch ``epoch``; returns the steps of it already done (a resumed position's)."""
        state = self.state
        self.guard.start_epoch()
        distributed.set_epoch(self.loader, epoch)  # [distributed] a new permutation
        position, state.position = state.position, None
        if position is None:
            self.order = state.generator.get_state()
            return 0
        self.order = position["order"]
        state.generator.set_state(self.order)  # the permutation this epoch drew when it began
        self.sums.copy_(torch.as_tensor(position["sums"], dtype=self.sums.dtype))
        self.guard.epoch_start = state.step - int(position["steps"])
        log.info("%s: continuing epoch %d at step %d/%d", self.run.desc, epoch + 1,
                 int(position["steps"]) + 1, len(self.loader))
        return int(position["steps"])

    def _batches(self, start: int):
        """The loader's iterator. Making one draws its base seed from torch's global stream; the
        uninterrupted run drew it when the epoch began, before the steps a resumed position has
        already done, so here (``start`` > 0) that draw leaves the restored stream untouched."""
        if not start:
            return iter(self.loader)
        stream = torch.get_rng_state()
        batches = iter(self.loader)
        torch.set_rng_state(stream)
        return batches

    def _position(self, steps: int) -> dict[str, Any]:
        return {"steps": steps, "order": self.order, "sums": self.sums.detach().cpu().clone()}

    def _steps(self, epoch: int, t0: float, start: int = 0) -> tuple[int, float]:
        """The epoch's steps from step ``start`` on; returns their number (all of the epoch's)
        and the last step's warm-up factor."""
        state, cfg, weights, warmup_steps = self.state, self.cfg, self.weights, self.warmup_steps
        check_steps = max(1, int(PROGRESS_CHECK_STEPS))
        beta = min(1.0, state.step / warmup_steps) if warmup_steps else 1.0
        for i, batch in enumerate(self._batches(start)):
            if i < start:  # done before the checkpoint this run resumed from
                continue
            batch = to_device(batch, self.device, self.dtype)
            kl_scale = len(weights) * weights[i]
            beta = min(1.0, (state.step + 1) / warmup_steps) if warmup_steps else 1.0
            if self.graphed is not None and self.graphed.accepts(batch):
                self.graphed(batch, kl_scale, beta)
            else:  # on the device, no host read until the next check
                loss = train_step(state, batch, kl_scale=kl_scale, beta=beta, params=self.params)
                accumulate(self.sums, state, loss)
            self.guard.beta = beta
            if state.step - state.gate.start >= cfg.log_every:
                check_finite(state)
            boundary = (i + 1) % check_steps == 0
            # ([distributed] ranks agree on a stop at each boundary and at the epoch's last step)
            if self._stop_requested(boundary or i + 1 == len(self.loader)):
                self._stop(epoch, i + 1)
            if self.lines and boundary:  # the clock only: no host read
                now = time.perf_counter()
                since = t0 if self.last_line is None else max(t0, self.last_line)
                if now - since >= PROGRESS_LOG_EVERY_S:
                    log.info("%s: epoch %d: step %d/%d (%.1f s)", self.run.desc, epoch + 1,
                             i + 1, len(self.loader), now - self.started)
                    self.last_line = now
            if boundary and i + 1 < len(self.loader):
                self._save_within_epoch(t0, i + 1)
        check_finite(state)
        return len(self.loader), beta

    def _stop_requested(self, boundary: bool) -> bool:
        """Whether a signal asked training to stop (no host read; [distributed] every rank asks
        the others at each progress boundary, so that all stop after the same step)."""
        requested = self.stops is not None and self.stops.requested is not None
        if not self.parallel:
            return requested
        if not boundary:
            return False
        flag = torch.tensor([float(requested)], device=self.sums.device)
        return bool(distributed.all_reduce_max_(flag).item() > 0)

    def _stop(self, epoch: int, steps: int) -> None:
        """End training after step ``steps`` of ``epoch`` on a signal: the state is consistent
        here, and :meth:`save_on_failure` writes it with this position."""
        check_finite(self.state)
        self.state.position = self._position(steps)
        signum = self.stops.requested if self.stops is not None and self.stops.requested else 15
        raise Stopped(signum, f"{self.run.desc}: stopped by {signal_name(signum)} at epoch "
                              f"{epoch + 1}, step {steps}/{len(self.loader)}")

    def _save_within_epoch(self, t0: float, steps: int) -> None:
        """A checkpoint at this step boundary of a long epoch, with its position, when the save
        policy says one is due (one process only: the check reads the device)."""
        cfg, state = self.cfg, self.state
        if self.ckpt_path is None or self.parallel:
            return
        now = time.perf_counter()
        since = now - self.last_save
        if cfg.checkpoint_every_s is not None:
            due = since >= cfg.checkpoint_every_s
        else:
            due = (now - t0 >= WITHIN_EPOCH_AFTER_S
                   and since * cfg.checkpoint_overhead >= self.save_cost)
        if not due:
            return
        check_finite(state)
        if self.guard.verdict() is not None:  # never a checkpoint of a bad state
            return
        state.position = self._position(steps)
        try:
            save_checkpoint(state, self.ckpt_path, {"within_epoch": steps})
        finally:
            state.position = None
        self.last_save = time.perf_counter()
        self.save_cost = self.last_save - now
        state.save_seconds += self.save_cost

    def _record(self, epoch: int, t0: float, nb: int, beta: float
                ) -> tuple[dict[str, Any], str | None]:
        """The epoch's history row, recorded (the scheduler steps), checked
        (:func:`~experiments.engine.health.epoch_problem`) and evaluated; returns it with the
        guard's verdict (``None``: a good epoch)."""
        state, cfg, sums = self.state, self.cfg, self.sums
        if self.parallel:  # [distributed] the union batch's estimates: the mean over ranks
            distributed.reduce_epoch_sums_(sums)
        tot_loss, tot_ll, kl_sum, kl_squares = sums.tolist()
        row = {"epoch": epoch + 1, "loss": tot_loss / nb, "elbo": -tot_loss / nb,
               "log_likelihood": tot_ll / nb, "kl": (tot_ll - (-tot_loss)) / nb,
               "lr": float(state.optimizer.param_groups[0]["lr"]),
               "seconds": time.perf_counter() - t0}
        if self.warmup_steps:
            row["kl_beta"] = beta
        bad = self.guard.end_epoch()
        # the epoch is done (and recorded) before eval_fn runs: a failing eval_fn leaves
        # epoch, scheduler and history consistent for the checkpoint written on failure
        state.scheduler.step()
        state.epoch = epoch + 1
        state.history.append(row)
        problem = health.epoch_problem(state, row, self.kl_pool, nb, (kl_sum, kl_squares)) \
            if self.main else None
        if self.parallel:  # [distributed] every rank stops together
            problem = distributed.broadcast_object(problem)
        if problem is not None:  # never a checkpoint of it; the history shows it
            self.guard.last_bad = problem
            self.writers.write(state.history)
            raise health.ImplausibleFitError(
                f"{self.run.desc}: {problem}; {health.advice(state.model, state.guide, cfg)}")
        if self.eval_fn is not None and self.main and (state.epoch % cfg.eval_every == 0
                                                       or state.epoch == cfg.epochs):
            with torch.no_grad():
                row.update({f"val_{k}": v for k, v in self.eval_fn(state.model,
                                                                   state.guide).items()})
        return row, bad

    def _save_if_due(self, last: bool, bad: str | None) -> None:
        """History and (for a good epoch) ``checkpoint.pt`` after the last epoch, or when the
        policy of ``checkpoint_every_s`` / ``checkpoint_overhead`` says a save is due."""
        cfg, state = self.cfg, self.state
        since = time.perf_counter() - self.last_save
        due = since >= cfg.checkpoint_every_s if cfg.checkpoint_every_s is not None \
            else since * cfg.checkpoint_overhead >= self.save_cost
        if last or due:
            t_save = time.perf_counter()
            self.writers.write(state.history)
            if bad is None:
                if self.ckpt_path is not None:
                    save_checkpoint(state, self.ckpt_path)
                self.last_save = time.perf_counter()
            elif self.ckpt_path is not None:
                self.guard.warn_not_saved(f"epoch {state.epoch} {bad}")
            self.save_cost = time.perf_counter() - t_save
            state.save_seconds += self.save_cost

    def save_on_failure(self, exc: BaseException) -> None:
        save_on_failure(self.state, self.writers, self.ckpt_path, self.guard, exc)

    def close(self) -> None:
        self.writers.close()
        self.bar.close()

    def log_done(self) -> None:
        """The last line (``done after epoch ...``), on the main rank of a fit that has epochs; a
        stop a signal asked for after the last step (the run is complete and saved) is raised
        here, so that the caller stops too."""
        state, cfg = self.state, self.cfg
        if state.history and self.main:
            total = time.perf_counter() - self.started
            log_epoch(self.run.desc, cfg.epochs, state.history[-1], "done after epoch", total)
            if self.writers.out is not None:
                log.debug("%s: saving history and checkpoints took %.2f s (%.1f %% of %.1f s)",
                          self.run.desc, state.save_seconds,
                          100 * state.save_seconds / max(total, 1e-9), total)
        if self.stops is not None and self.stops.requested is not None:
            raise Stopped(self.stops.requested, f"{self.run.desc}: stopped by "
                          f"{signal_name(self.stops.requested)} after its last epoch (complete)")


def save_on_failure(state: TrainState, writers: Writers, ckpt_path: Path | None, guard: EpochGuard,
                     exc: BaseException) -> None:
    """On any exception in :func:`~experiments.engine.training.fit`: write the history, and a checkpoint of
    the state now if it is good. The :class:`~experiments.engine.guards.FiniteGate` skips every update from a
    non-finite step on, so at a NaN stop the parameters are those before the bad step. Stopped mid-epoch, the
    checkpoint holds those parameters with ``epoch`` = the epochs completed (the history has no row for the
    partial one) and ``step`` counting every step taken: resuming runs that epoch again from them. A failure
    of this save is logged and does not hide ``exc``."""
    if writers.out is None:
        return
    cause = signal_name(exc.signum) if isinstance(exc, Stopped) else type(exc).__name__
    what = f"{cause} during epoch {state.epoch + 1}" if guard.n else \
        f"{cause} after epoch {state.epoch}"
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
        if state.position is not None:  # a clean stop at a step boundary
            how = f" (resuming continues epoch {state.epoch + 1} at step {guard.n + 1})"
        else:
            how = f" (resuming runs epoch {state.epoch + 1} again)" if guard.n else ""
        log.warning("%s: stopped by %s (step %d); checkpoint.pt holds the state %s%s",
                    state.run.desc, what, state.step,
                    "at that step" if state.position is not None else "before it", how)
    except Exception as save_exc:  # noqa: BLE001 - never hide the exception that stopped training
        log.error("%s: could not save history/checkpoint after %s: %s", state.run.desc, what,
                  save_exc)
