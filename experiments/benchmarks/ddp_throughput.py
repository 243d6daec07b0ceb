r"""Data-parallel throughput: training samples per second of ``fit`` against the number of processes.

Two workloads, each an epoch of the same N rows trained by :func:`experiments.engine.training.fit`
(the zoo's loop, unchanged), in 1 process (no ``torch.distributed``) and in R processes joined by
``torch.distributed`` (DDP, each rank ``batch_size`` rows per step, so the global batch is
R x ``batch_size`` and an epoch has 1/R of the steps):

* ``bnn-mnist``: the ``bnn`` + ``mean-field`` pair (784-400-400-10, classification, local
  reparameterisation, ``elbo="meanfield"``) on N random MNIST-shaped rows, b = 128 per rank;
* ``svgp-kin40k``: ``svgp`` + ``cholesky`` (RBF-ARD, M = 500, Gaussian) on kin40k fold 0 (36 000
  rows, D = 8; ``--synthetic``: random rows of that shape), b = 1024 per rank.

Throughput = N / (wall seconds of an epoch), the median over the epochs after the first (the
first pays for allocations and warm-up); efficiency(R) = throughput(R) / (R x throughput(1)).
Each process uses ``--threads`` torch threads (default 1). Workers are started by
:func:`experiments.engine.distributed.spawn_gloo` (``torch.multiprocessing.spawn``, gloo), on the
CPU only: on GPUs, time ``torchrun --nproc_per_node=R -m experiments run ...`` instead.

What limits it on one CPU box: R processes share the same cores, so at best the throughput stays
constant (efficiency 1/R) while every step adds DDP's gradient all-reduce (the parameters' size,
through gloo over loopback), the non-finite flag's all-reduce and the buffer broadcast; the
overhead is what the table measures. A gain needs a core (or a GPU) per process.

Run: ``python -m experiments.benchmarks.ddp_throughput [--processes 1 2] [--epochs 3]
[--rows-bnn 10240] [--rows-svgp 36000] [--synthetic] [--threads 1]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import torch

import guides
import models
from experiments.engine import distributed
from experiments.engine.settings import FitConfig, RunOptions
from experiments.engine.training import fit

WORKLOADS = ("bnn-mnist", "svgp-kin40k")


def _bnn(rows: int):
    model = models.create_model("bnn", in_features=784, widths=[400, 400], out_features=10,
                                task="classification", prior={"kind": "gaussian", "sigma": 1.0})
    guide = guides.create_guide("mean-field", model, init_scale=1e-2, local_reparam=True)
    g = torch.Generator().manual_seed(1)
    data = (torch.rand(rows, 784, generator=g), torch.randint(10, (rows,), generator=g))
    return model, guide, data, {"batch_size": 128, "lr": 1e-3, "elbo": "meanfield"}


def _svgp(rows: int, synthetic: bool):
    from experiments.benchmarks.svgp_step import load_data

    x, y = load_data(rows if synthetic else None)
    x, y = x[:rows], y[:rows]
    model = models.create_model("svgp", input_dim=x.shape[1], num_inducing=500,
                                kernel={"type": "rbf", "ard": True, "lengthscale": 1.0,
                                        "outputscale": 1.0}, likelihood="gaussian", noise_std=0.3)
    g = torch.Generator().manual_seed(0)
    model.inducing_points.data.copy_(x[torch.randperm(len(x), generator=g)[:500]])
    guide = guides.create_guide("cholesky", model)
    return model, guide, (x, y), {"batch_size": 1024, "lr": 0.01, "elbo": "meanfield"}


def build(workload: str, rows: int, synthetic: bool):
    torch.manual_seed(0)
    return _bnn(rows) if workload == "bnn-mnist" else _svgp(rows, synthetic)


def epoch_seconds(workload: str, rows: int, epochs: int, synthetic: bool, device: str
                  ) -> list[float]:
    """Seconds of each epoch of ``fit`` (rank 0's clock; the ranks step in lock-step)."""
    model, guide, data, cfg = build(workload, rows, synthetic)
    state = fit(model, guide, data, FitConfig.from_dict({**cfg, "epochs": epochs, "validate": False}),
                                    RunOptions(progress=False, device=device, seed=0))
    return [row["seconds"] for row in state.history]


def _worker(rank, world, workload, rows, epochs, synthetic, device, out):
    seconds = epoch_seconds(workload, rows, epochs, synthetic, device)
    if rank == 0:
        with open(out, "w") as f:
            json.dump(seconds, f)


def measure(workload: str, processes: int, rows: int, epochs: int, synthetic: bool,
            threads: int, device: str = "cpu") -> float:
    """Samples per second of ``workload`` in ``processes`` processes."""
    if processes == 1:
        torch.set_num_threads(threads)
        seconds = epoch_seconds(workload, rows, epochs, synthetic, device)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "seconds.json")
            distributed.spawn_gloo(_worker, processes, workload, rows, epochs, synthetic, device,
                                   out, threads=threads)
            with open(out) as f:
                seconds = json.load(f)
    return rows / statistics.median(seconds[1:] or seconds)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    p.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    p.add_argument("--epochs", type=int, default=3, help="epochs per measurement (>= 2)")
    p.add_argument("--rows-bnn", type=int, default=10240)
    p.add_argument("--rows-svgp", type=int, default=36000)
    p.add_argument("--synthetic", action="store_true", help="random rows instead of kin40k")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    args = p.parse_args(argv)
    if args.processes[0] != 1:
        p.error("--processes must start with 1 (the reference of the efficiency)")
    load = os.getloadavg()[0]
    results = []
    for workload in args.workloads:
        rows = args.rows_bnn if workload == "bnn-mnist" else args.rows_svgp
        base = None
        for r in args.processes:
            t0 = time.perf_counter()
            rate = measure(workload, r, rows, args.epochs, args.synthetic, args.threads)
            base = rate if base is None else base
            results.append({"workload": workload, "processes": r, "rows": rows,
                            "samples_per_s": rate, "efficiency": rate / (r * base),
                            "wall_s": time.perf_counter() - t0})
    print(f"load average (1 min) at start: {load:.2f}; after: {os.getloadavg()[0]:.2f}; "
          f"{os.cpu_count()} cores, {args.threads} thread(s) per process, torch {torch.__version__}")
    print("| workload | processes | samples/s | efficiency |")
    print("|---|---|---|---|")
    for row in results:
        print(f"| {row['workload']} | {row['processes']} | {row['samples_per_s']:.0f} | "
              f"{row['efficiency']:.2f} |")
    return results


if __name__ == "__main__":
    main()
