r"""What a deep ensemble costs: K plain nets against one, trained the same way in one process.

The table is synthetic (``--rows`` rows, ``--features`` standard-normal features, a smooth
target :math:`y = \sin(x_1) + \tfrac12 x_2 x_3 + \varepsilon`, :math:`\varepsilon \sim
\mathcal N(0, 0.1^2)`). The pair is the ``mlp`` (one hidden layer of ``--hidden`` ReLU units,
Gaussian likelihood with learned noise) with the ``deterministic`` guide, trained for
``--epochs`` epochs in batches of ``--batch-size`` by Adam:

* ``one net``: :func:`experiments.engine.training.fit` on one freshly built pair;
* ``ensemble of K``: :func:`experiments.engine.ensemble.ensemble` with the same
  :class:`~experiments.engine.settings.FitConfig` (member i: seed + i, a fresh pair).

Both include building the modules and ``fit``'s set-up (the same for each member as for the one
net). They are timed *interleaved*: in each of ``--repeats`` rounds both run once, the one that
starts alternating from round to round, after one untimed warm-up of each; the table reports the
median wall time over rounds and the ratio of the medians, which is at most K when an ensemble
costs no more than K single fits (an ensemble trains its members one after the other: no extra
work per member, no work that grows with K). Torch uses ``--threads`` threads (default 1: the
machine is shared); the load average is printed beside the numbers.

Run: ``python -m experiments.benchmarks.ensemble_cost [--members 5 --epochs 20 --repeats 3
--rows 2000 --threads 1]`` (about 30 s on one core).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import guides
import models
from experiments.benchmarks.timing import load_average, load_line
from experiments.engine.ensemble import ensemble
from experiments.engine.settings import FitConfig, RunOptions
from experiments.engine.training import fit


def synthetic_table(rows: int, features: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)``: standard-normal features and :math:`\\sin(x_1) + x_2 x_3 / 2` plus noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, features, generator=g)
    y = torch.sin(x[:, 0]) + 0.5 * x[:, 1] * x[:, 2] + 0.1 * torch.randn(rows, generator=g)
    return x, y


def make_pair(features: int, hidden: int):
    """A fresh ``mlp`` + ``deterministic`` pair (plain net, Gaussian likelihood, learned noise)."""
    model = models.create_model("mlp", in_features=features, widths=(hidden,), out_features=1,
                                activation="relu", noise_std=0.5, learn_noise=True)
    return model, guides.create_guide("deterministic", model)


def main(argv=None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--members", type=int, default=5, help="K, the ensemble's size")
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--features", type=int, default=8)
    p.add_argument("--hidden", type=int, default=50)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.members < 1 or args.repeats < 1:
        raise SystemExit(f"error: --members and --repeats must be >= 1, got {args.members}, "
                         f"{args.repeats}")
    torch.set_num_threads(args.threads)
    data = synthetic_table(args.rows, args.features)
    cfg = FitConfig(epochs=args.epochs, batch_size=args.batch_size, lr=1e-2, tensorboard=False,
                    checkpoint=False)
    options = RunOptions(device="cpu", progress=False)

    def one() -> None:
        model, guide = make_pair(args.features, args.hidden)
        fit(model, guide, data, cfg, options)

    def many() -> None:
        ens = ensemble(lambda: make_pair(args.features, args.hidden), data, args.members, cfg, options)
        assert len(ens) == args.members

    methods = {"one net": one, f"ensemble of {args.members}": many}
    for run in methods.values():  # warm-up: first-call costs (imports, allocator) paid once
        run()
    times: dict[str, list[float]] = {name: [] for name in methods}
    load = load_average()
    names = list(methods)
    for r in range(args.repeats):
        for name in names[r % 2:] + names[:r % 2]:
            t0 = time.perf_counter()
            methods[name]()
            times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(t) for name, t in times.items()}
    single, ens_name = med["one net"], f"ensemble of {args.members}"
    ratio = med[ens_name] / single
    steps = args.epochs * -(-args.rows // args.batch_size)
    print(f"mlp/deterministic 1x{args.hidden} ReLU, {args.rows} rows x {args.features} features, "
          f"{args.epochs} epochs of batch {args.batch_size} ({steps} steps per net), CPU, "
          f"{args.threads} thread(s), median of {args.repeats} interleaved rounds")
    print("| | wall s (median) | rounds |")
    print("|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {med[name]:.2f} | {', '.join(f'{v:.2f}' for v in t)} |")
    print(f"ratio ensemble / one net: {ratio:.2f} (K = {args.members}; at most K: "
          f"{'yes' if ratio <= args.members else 'NO'}); per member {med[ens_name] / args.members:.2f} s "
          f"against {single:.2f} s for one net")
    print(load_line(load))
    return {"one_net_s": single, "ensemble_s": med[ens_name], "ratio": ratio,
            "members": args.members}


if __name__ == "__main__":
    main()
