"""The settings of :func:`~experiments.engine.training.fit`, one of each kind: :class:`FitConfig`
(what the optimisation computes, and how it is checked and saved) and :class:`RunOptions` (where
and how one run happens: its seed, device, output folder, progress and name)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

import torch

from .config import dataclass_from_dict
from .elbo import ELBOS

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
              "adagrad": torch.optim.Adagrad, "rmsprop": torch.optim.RMSprop}
LR_SCHEDULES = ("constant", "cosine", "step", "exponential")



def _optimisation(default):
    """A field that changes what the optimisation computes: a checkpoint resumes only under the
    same value (:data:`RESUME_KEYS`)."""
    return field(default=default, metadata={"resume": True})


def _run(default, set_by: str):
    """A field of :class:`RunOptions`: ``set_by`` (the CLI option, or what else) sets it, and an
    arm's ``--set ARM.fit.KEY`` refuses it (:data:`experiments.harness.spec.RUN_KEYS`)."""
    return field(default=default, metadata={"run": set_by})


@dataclass
class RunOptions:
    """Where and how one :func:`~experiments.engine.training.fit` runs (all have defaults; unknown
    keys are refused by ``from_dict``). None of them changes what the optimisation computes but
    the seed, which a checkpoint records beside its :class:`FitConfig` (a resume under another
    seed is refused).

    :ivar seed: the seed of every random stream: :func:`~experiments.engine.training.setup` seeds
        python, numpy, torch and Pyro from it, and the minibatch order draws from it.
    :ivar device: ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda[:i]"``.
    :ivar out_dir: where history.json/.csv, checkpoint.pt and TensorBoard scalars go (optional).
    :ivar progress: show a progress bar (tqdm) on a terminal or in a notebook. Whenever no bar is
        shown (``progress=False``, or stderr not a terminal: a redirected run), ``fit`` logs
        lines instead: one after the first epoch, then at most one every
        :data:`~experiments.engine.loop.PROGRESS_LOG_EVERY_S` seconds (at an epoch's end, or ``epoch E: step
        s/S`` within an epoch that has run that long), and one at the end. A bar or not, the last line
        (``done after epoch ...``) is always logged.
    :ivar desc: the name of this fit in its progress bar and log lines; ``train_pair`` sets it
        to the arm's name and the fit's index in the run, e.g. ``"bbb #1"``.
    """

    seed: int = _run(0, "--seed")
    device: str = _run("auto", "--device")
    out_dir: str | None = _run(None, "--out")
    progress: bool = _run(True, "--no-progress")
    desc: str = _run("fit", "the arm's name (train_pair names each fit after its arm)")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> RunOptions:
        return dataclass_from_dict(cls, values)


#: the names of :class:`RunOptions`' fields, which :meth:`FitConfig.from_dict` refuses
RUN_FIELDS = tuple(f.name for f in fields(RunOptions))


@dataclass
class FitConfig:
    """The optimisation settings of :func:`~experiments.engine.training.fit` (all have defaults; unknown keys
    are refused by ``from_dict``, and so are the run's, which are :class:`RunOptions`).

    :ivar elbo: ``"trace"`` (:class:`~pyro.infer.Trace_ELBO`, Monte Carlo KL) or ``"meanfield"``
        (:class:`~experiments.engine.elbo.MeanFieldELBO`, Pyro's
        :class:`~pyro.infer.TraceMeanField_ELBO` made cheaper: closed-form KL where the guide and
        prior sites admit it, e.g. the ``mean-field`` guide with a Gaussian prior).
    :ivar num_particles: ELBO samples per step, vectorised over a particle plate.
    :ivar kl_schedule: ``"uniform"`` or ``"blundell"`` minibatch KL weighting.
    :ivar lr_schedule: ``"constant"``, ``"cosine"`` (to 0 over the run), ``"step"`` (× lr_gamma
        every lr_step_epochs) or ``"exponential"`` (× lr_gamma per epoch).
    :ivar clip_norm: clip the global gradient norm to this value (``None``: no clipping).
    :ivar validate: Pyro's distribution-argument validation during training. ``None`` (default):
        off for speed unless the environment variable ``VBZOO_PYRO_VALIDATION=1`` is set, which
        the test suite does so that tests keep it on.
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
        (see :class:`~experiments.engine.guards.FiniteGate`): between reads the loss and log-likelihood
        accumulate on the device, so a GPU's queue never drains. A non-finite step is caught on the device and
        stops the updates at once; the error, naming the step, comes at the next read.
    :ivar cuda_graph: on CUDA, capture the whole step (the guide's ``elbo_context``, the KL
        weight, the loss, backward, clipping, the non-finite gate and the fused, capturable
        optimiser with its lr as a device tensor) in a ``torch.cuda.CUDAGraph`` for the batch
        shape of the first full batch, after warm-up steps on a side stream, and replay it
        (:class:`~experiments.engine.cuda_graph.GraphedStep`). A batch of another shape (the last, short batch
        of an epoch) runs eagerly. Supported: the pairs of :data:`~experiments.engine.cuda_graph.GRAPH_PAIRS`
        with ``optimizer`` adam or adamw, in one process. ``"auto"`` (default): on CUDA, graphed wherever that
        holds (:func:`~experiments.engine.cuda_graph.graph_blockers` is empty), otherwise eager with one log
        line saying why; on the CPU nothing changes and nothing is logged. ``True``: graphed, and a pair that
        cannot be is refused with the list; on the CPU ignored with one warning. ``False``: eager.
    :ivar fused: the fused implementation of adam, adamw or adagrad, which the non-finite gate
        stops on the device (:class:`~experiments.engine.guards.FiniteGate`). ``None`` (default): on CUDA
        only. On the CPU a host read costs nothing, and Adam/AdamW take torch's ``foreach`` implementation,
        which keeps the numbers of runs made before the gate existed bit for bit (fused kernels round
        differently); ``True`` uses the fused one there too.
    """

    epochs: int = 10
    batch_size: int = _optimisation(128)
    lr: float = _optimisation(1e-3)
    optimizer: str = _optimisation("adam")
    weight_decay: float = _optimisation(0.0)
    momentum: float = _optimisation(0.0)
    lr_schedule: str = _optimisation("constant")
    lr_gamma: float = _optimisation(0.1)
    lr_step_epochs: int = _optimisation(10)
    clip_norm: float | None = _optimisation(None)
    elbo: str = _optimisation("trace")
    num_particles: int = _optimisation(1)
    kl_schedule: str = _optimisation("uniform")
    validate: bool | None = None
    eval_every: int = 1
    checkpoint: bool = True
    checkpoint_every_s: float | None = None
    checkpoint_overhead: float = 0.02
    tensorboard: bool = True
    kl_warmup_epochs: float = _optimisation(0)
    divergence_factor: float = 1e3
    log_every: int = 50
    cuda_graph: bool | Literal["auto"] = "auto"
    fused: bool | None = None

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> FitConfig:
        """Build from a dict of its fields; a run option (a field of :class:`RunOptions`: seed,
        device, out_dir, progress, desc) is refused in one line that says where it goes."""
        run = [k for k in (values or {}) if k in RUN_FIELDS]
        if run:
            raise ValueError(f"{run[0]} is a run option: pass RunOptions({run[0]}="
                             f"{values[run[0]]!r}) (FitConfig holds the optimisation settings)")
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


#: The keys of a checkpoint's recorded config that change what the optimisation computes: the
#: FitConfig fields declared with ``_optimisation``, and the :class:`RunOptions`' seed, which the
#: checkpoint records beside them. A checkpoint resumes only under the same values. ``epochs`` may
#: change (see :func:`~experiments.engine.state.restore`); the other keys (eval_every, tensorboard,
#: checkpoint, checkpoint_every_s, validate, divergence_factor, ...; the run's device, out_dir,
#: progress, desc) only change how a run is run or reported.
RESUME_KEYS = tuple(f.name for f in fields(FitConfig) if f.metadata.get("resume")) + ("seed",)
