"""Inducing-input set-up on a large UCI set: scipy's k-means on a 20 000-row subsample (the zoo's
method up to 2026-11-27, still used up to ``max_rows`` rows) against k-means++ on 10 000 rows
refined by mini-batch k-means over all rows (:func:`models.sparse_gp.minibatch_kmeans`, used above).

Prints, per M, the seconds of each (interleaved rounds, median) and the k-means objective (mean
squared distance of every training row to its nearest centre; lower is better). One warm-up
call per method first (imports).

Run: ``python -m experiments.benchmarks.inducing_init [--dataset kin40k] [--num-inducing 100 500]
[--rounds 2] [--threads 1]`` (staged data: ``$VBZOO_DATA_DIR``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main(argv=None) -> dict:
    from scipy.cluster.vq import kmeans2, vq

    from experiments import data as D
    from models.sparse_gp import minibatch_kmeans

    p = argparse.ArgumentParser(prog="python -m experiments.benchmarks.inducing_init")
    p.add_argument("--dataset", default="kin40k", choices=sorted(D.UCI_LARGE_DATASETS))
    p.add_argument("--num-inducing", type=int, nargs="+", default=[100, 500])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    x = D.load_uci_large(args.dataset, data_dir=args.data_dir).x_train.double().numpy()

    def old(m):
        rows = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:20000]]
        return kmeans2(rows, m, minit="++", seed=0)[0]

    def new(m):
        return minibatch_kmeans(x, m, seed=0, progress=False)

    out = {}
    print(f"inducing-input set-up, {args.dataset} ({len(x)} x {x.shape[1]}), {args.threads} "
          f"thread(s), median of {args.rounds} rounds")
    print("| M | method | seconds | k-means objective |\n|---|---|---|---|")
    for m in args.num_inducing:
        for name, fn in (("scipy k-means, 20 000 rows", old), ("k-means++ 10k + mini-batch", new)):
            fn(min(m, 10))  # warm-up: imports and first-call costs are not the method's
            times = []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                centres = fn(m)
                times.append(time.perf_counter() - t0)
            objective = float((vq(x, centres)[1] ** 2).mean())
            out[(m, name)] = (statistics.median(times), objective)
            print(f"| {m} | {name} | {statistics.median(times):.2f} | {objective:.4f} |")
    return out


if __name__ == "__main__":
    main()
