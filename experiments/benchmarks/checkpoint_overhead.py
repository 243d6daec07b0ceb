r"""What checkpointing costs a real epoch: the BNN MNIST epoch (784-400-400-10 ``bnn`` +
``mean-field``, local reparameterisation, 60 000 rows, batch 128, Adam), trained by ``fit`` with
``out_dir`` set, under the default policy (``checkpoint_every_s=None``: save when it keeps the
time spent saving within ``checkpoint_overhead`` = 2 % of training) and under "every epoch"
(``checkpoint_every_s=0``). It prints, per policy, the seconds ``fit`` spent writing history and
checkpoints (``TrainState.save_seconds``), the training seconds, their ratio, and the checkpoint's
size. The data are random MNIST-shaped tensors: what a save costs does not depend on them.

Run: ``python -m experiments.benchmarks.checkpoint_overhead [--epochs 3 --threads 1]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import guides
import models
from experiments.engine.settings import FitConfig, RunOptions
from experiments.engine.training import fit


def run(policy: float | None, epochs: int, num_data: int, out: Path) -> dict[str, float]:
    model = models.create_model("bnn", in_features=784, widths=(400, 400), out_features=10,
                                task="classification")
    guide = guides.create_guide("mean-field", model, init_scale=1e-2, local_reparam=True)
    g = torch.Generator().manual_seed(0)
    data = (torch.rand(num_data, 784, generator=g), torch.randint(10, (num_data,), generator=g))
    t0 = time.perf_counter()
    state = fit(model, guide, data, FitConfig(epochs=epochs, batch_size=128, elbo="meanfield",
                                              tensorboard=False, checkpoint_every_s=policy),
                                    RunOptions(progress=False, device="cpu", out_dir=str(out)))
    total = time.perf_counter() - t0
    saves = sum(1 for _ in out.glob("checkpoint.pt"))
    return {"seconds": total, "save_seconds": state.save_seconds,
            "overhead": state.save_seconds / (total - state.save_seconds),
            "checkpoint_mb": (out / "checkpoint.pt").stat().st_size / 2**20 if saves else 0.0}


def main(argv=None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--num-data", type=int, default=60000)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, policy in (("default (<= 2 % overhead)", None), ("every epoch", 0.0)):
            out[name] = run(policy, args.epochs, args.num_data, Path(tmp) / name.split()[0])
    print(f"BNN MNIST epoch (784-400-400-10, batch 128, {args.num_data} rows), {args.epochs} "
          f"epochs, CPU, {args.threads} thread(s)")
    print("| policy | training s | history + checkpoint s | overhead | checkpoint MB |")
    print("|---|---|---|---|---|")
    for name, r in out.items():
        print(f"| {name} | {r['seconds'] - r['save_seconds']:.1f} | {r['save_seconds']:.2f} | "
              f"{100 * r['overhead']:.2f} % | {r['checkpoint_mb']:.1f} |")
    return out


if __name__ == "__main__":
    main()
