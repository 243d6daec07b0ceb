r"""Data-parallel SVI across processes: ``torch.distributed`` and ``DistributedDataParallel``.

:func:`~experiments.engine.training.fit` runs data-parallel when the default process group is
initialised: by the caller (``torch.distributed.init_process_group``), or by :func:`init_from_env`
when ``torchrun`` launched the process (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` in the
environment; the CLI calls it). Backends: ``gloo`` for a run on the CPU (a CPU-only machine, or
``--device cpu`` on a CUDA one), ``cpu:gloo,cuda:nccl`` for a run on CUDA (the tensors' device
picks the backend), each rank on ``cuda:LOCAL_RANK``; a CUDA run with more processes per node than
GPUs is refused with what to do.
Communication is torch's: DDP's bucketed gradient all-reduce, and ``all_reduce`` /
``all_gather`` / ``broadcast_object_list`` for the few scalars below. Nothing here sends data
by other means.

**Why averaging is the right scaling.** With R ranks, each holding a minibatch
:math:`\mathcal D_r` of b rows out of N (the model's plate gets the *global* ``num_data`` N and
the local batch as its subsample, so Pyro scales the local log-likelihood by N/b), rank r's loss is

.. math:: \hat{\mathcal L}_r = \mathrm{KL} - \frac{N}{b}\sum_{n\in\mathcal D_r} \ell_n ,
   \qquad
   \frac1R\sum_r \hat{\mathcal L}_r = \mathrm{KL} - \frac{N}{Rb}\sum_{n\in\cup_r\mathcal D_r}\ell_n ,

the single-process loss on the union batch of R·b rows, with the KL counted once. DDP averages
gradients over ranks, so every rank steps along the gradient of that union-batch loss
(``tests/test_distributed.py`` checks it to float tolerance for a BNN, an SVGP and a VAE).
Local latents (a VAE's z) sit inside the plate and are scaled like the log-likelihood.

This module depends on torch only. What :func:`~experiments.engine.training.fit` does with it to
a set-up state (``experiments.engine.training.data_parallel``): checks that every rank holds the
same parameters (:func:`check_identical`; a seeding bug otherwise), wraps the ELBO module in DDP
(:func:`wrap`, told of the parameters that one step leaves without a gradient), makes the
non-finite gate all-reduce its flag every step (:func:`all_reduce_max_`: one rank's non-finite
step stops every rank at the same step, parameters identical), and reseeds each rank's Monte Carlo
noise with ``seed + rank`` (``+ world_size * step`` on a resume).
"""

from __future__ import annotations

import datetime
import gc
import os
import tempfile
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler

#: the environment variables torchrun sets for every worker
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def launched_by_torchrun() -> bool:
    """Whether this process is a worker started by ``torchrun`` / the elastic launcher."""
    return all(k in os.environ for k in TORCHRUN_ENV)


def active() -> bool:
    """Whether the default process group is initialised (``fit`` then runs data-parallel)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", rank() if active() else 0))


def is_main() -> bool:
    """Rank 0 (or no process group): the process that evaluates and writes files."""
    return rank() == 0


def default_backend(device: str | torch.device | None = None) -> str:
    """``gloo`` for a run on the CPU (see :func:`runs_on_cuda`); ``cpu:gloo,cuda:nccl`` for one
    on CUDA (CUDA tensors over NCCL, CPU ones over gloo). ``$VBZOO_DIST_BACKEND`` overrides."""
    env = os.environ.get("VBZOO_DIST_BACKEND")
    if env:
        return env
    return "cpu:gloo,cuda:nccl" if runs_on_cuda(device) else "gloo"


def runs_on_cuda(device: str | torch.device | None) -> bool:
    """Whether a run asked to go on ``device`` (``None`` or ``"auto"``: CUDA when present, as
    ``fit`` resolves it) uses CUDA."""
    if device is None or str(device) == "auto":
        return torch.cuda.is_available()
    return torch.device(device).type == "cuda"


def backend() -> str | None:
    """The backend of the default group (``None``: not distributed)."""
    return str(dist.get_backend()) if active() else None


def init_from_env(device: str | torch.device | None = None) -> bool:
    """Initialise the default process group from torchrun's environment (``env://``) unless it
    already is, for a run on ``device`` (``None``/``"auto"``: CUDA when present). On CUDA it
    also makes ``cuda:LOCAL_RANK`` the current device, so that ``"cuda"`` and ``"auto"`` mean
    this rank's GPU; a run on the CPU touches no GPU and uses gloo, whatever the machine has.
    Returns whether the process is now distributed.

    :raises ValueError: a CUDA run whose rank has no GPU of its own (more processes per node
        than GPUs), before any process group forms.
    """
    if active():
        return True
    if not launched_by_torchrun():
        return False
    cuda = runs_on_cuda(device)
    if cuda:
        gpus = torch.cuda.device_count()
        if local_rank() >= gpus:
            per_node = os.environ.get("LOCAL_WORLD_SIZE", f"more than {gpus}")
            raise ValueError(
                f"process {local_rank()} of this node has no GPU: torchrun started {per_node} "
                f"processes per node on a machine with {gpus} GPU(s), and a run on CUDA puts "
                f"one process on each. Start at most {gpus} (--nproc / --nproc_per_node), or "
                "run on the CPU with --device cpu")
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=default_backend("cuda" if cuda else "cpu"))
    return True


def shutdown() -> None:
    """Destroy the default process group and free what still refers to it before the process
    exits (:func:`_release_group`)."""
    if active():
        _release_group()


def _release_group() -> None:
    """``destroy_process_group``, then a garbage collection. DDP's reducer sits in reference
    cycles that hold the group; left to the collection at interpreter exit, gloo's worker
    threads could still be freeing the tensors of a finished collective (``all_gather_object``)
    when Python is torn down, and the process aborts ("terminate called without an active
    exception", SIGABRT) after its work is done: about 1 run in 10 of
    ``tests/test_distributed.py``'s two-process fit. Collected here, the group's destructor
    joins those threads while the interpreter is alive."""
    dist.destroy_process_group()
    gc.collect()


def local_device(device: torch.device) -> torch.device:
    """``cuda`` without an index is this rank's GPU (``cuda:LOCAL_RANK``) when distributed."""
    if active() and device.type == "cuda" and device.index is None:
        return torch.device("cuda", local_rank())
    return device


def describe() -> dict[str, Any]:
    """What results and the report record: processes and backend (1 and ``None`` when not
    distributed)."""
    return {"processes": world_size(), "backend": backend()}


# ------------------------------------------------------------------------------------------------
# collectives (thin wrappers over torch.distributed)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (pickled; small objects only)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    if not active():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_mean_(t: torch.Tensor) -> torch.Tensor:
    """Average ``t`` over ranks, in place (on the device; no host read)."""
    if active():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t.div_(world_size())
    return t


def all_reduce_max_(t: torch.Tensor) -> torch.Tensor:
    """The elementwise maximum of ``t`` over ranks, in place (a flag set on any rank is set on
    every rank)."""
    if active():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


def parameter_checksums(params: list[torch.Tensor]) -> torch.Tensor:
    """Per parameter: the float64 sum and sum of squares of its values, (P, 2) on the CPU."""
    if not params:
        return torch.zeros(0, 2, dtype=torch.float64)
    with torch.no_grad():
        return torch.stack([torch.stack((p.detach().double().sum(), p.detach().double().square()
                                         .sum())) for p in params]).cpu()


def check_identical(named: list[tuple[str, torch.Tensor]], what: str = "parameters") -> None:
    """Raise on every rank unless all ranks hold the same values of ``named`` (compared by
    :func:`parameter_checksums`, exactly): a model initialised differently on two ranks would
    train R different models under one averaged gradient."""
    if not active():
        return
    sums = parameter_checksums([p for _, p in named])
    every = all_gather_object(sums)
    bad = sorted({named[i][0] for other in every[1:]
                  for i in torch.nonzero((other != every[0]).any(-1)).flatten().tolist()})
    if bad:
        raise RuntimeError(f"data-parallel fit: the {what} differ between ranks after setup "
                           f"({', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''}); every rank "
                           "must build the pair from the same seed (fit's seed, train_pair's "
                           "seeding) before the first step")


# ------------------------------------------------------------------------------------------------
# what fit calls


def sampler(dataset: Dataset, shuffle: bool, seed: int) -> DistributedSampler:
    """This rank's shard of ``dataset``: a fresh permutation each epoch (``set_epoch``) from
    ``seed``, the same on every rank, split into ``world_size`` disjoint parts. With N not a
    multiple of R, the last few indices are repeated to give every rank the same number of rows
    (and of steps: DDP needs every rank to take each step)."""
    return DistributedSampler(dataset, num_replicas=world_size(), rank=rank(), shuffle=shuffle,
                              seed=seed, drop_last=False)


def set_epoch(loader, epoch: int) -> None:
    """Call ``set_epoch`` on a loader's DistributedSampler (nothing for other samplers)."""
    outer = loader.batch_sampler or loader.sampler  # make_loader's BatchSampler is .sampler
    inner = getattr(outer, "sampler", None)
    if isinstance(inner, DistributedSampler):
        inner.set_epoch(epoch)


def unused_parameters(module: torch.nn.Module, loss: torch.Tensor) -> list[str]:
    """Names of ``module``'s trainable parameters that ``loss`` (one loss evaluation of it) leaves
    without a gradient on any rank (DDP must then look for unused parameters every step). Every
    rank must call it at the same point."""
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    unused = [n for (n, _), g in zip(named, grads) if g is None]
    return sorted(set().union(*all_gather_object(unused)))


def wrap(module: torch.nn.Module, loss: torch.Tensor, device: torch.device
         ) -> torch.nn.parallel.DistributedDataParallel:
    """``module`` (the ELBO module) in ``DistributedDataParallel`` on ``device``, told to find
    unused parameters when ``loss`` (one loss of ``module`` on a first batch) leaves some without
    a gradient (:func:`unused_parameters`). Every rank must call it at the same point."""
    unused = unused_parameters(module, loss)
    kwargs = {"device_ids": [device.index]} if device.type == "cuda" else {}
    return torch.nn.parallel.DistributedDataParallel(module, find_unused_parameters=bool(unused),
                                                     **kwargs)


def reduce_epoch_sums_(sums: torch.Tensor) -> torch.Tensor:
    """The epoch's (loss, log-likelihood) sums averaged over ranks: each rank's is a minibatch
    estimate of the full-data loss, their mean the union batch's."""
    return all_reduce_mean_(sums)


# ------------------------------------------------------------------------------------------------
# launching local workers (tests, benchmarks): torch.multiprocessing.spawn + a file rendezvous


def _worker(rank_: int, world: int, store: str, fn: Callable, args: tuple, threads: int,
            timeout_s: float) -> None:
    torch.set_num_threads(threads)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank_,
                            world_size=world, timeout=datetime.timedelta(seconds=timeout_s))
    try:
        fn(rank_, world, *args)
    finally:
        _release_group()


def spawn_gloo(fn: Callable, world: int, *args, threads: int = 1, timeout_s: float = 300) -> None:
    """Run ``fn(rank, world, *args)`` in ``world`` fresh CPU processes joined in a gloo group
    (``torch.multiprocessing.spawn``; ``fn`` must be importable). Raises if any worker fails; a
    collective that waits longer than ``timeout_s`` (a rank that left) fails instead of hanging.

    The ranks meet through a file in a fresh temporary folder (``file://`` rendezvous), not a TCP
    port picked beforehand, which another process can take before rank 0 binds it (a parallel
    CI run once lost a rank with SIGABRT while the group formed; this rules that race out)."""
    with tempfile.TemporaryDirectory(prefix="vbzoo-gloo-") as d:
        torch.multiprocessing.spawn(_worker, args=(world, os.path.join(d, "store"), fn, args,
                                                   threads, timeout_s), nprocs=world, join=True)
