r"""Time one VAE training step: the zoo's ``vae`` + ``encoder`` pair against a plain-PyTorch VAE.

Both train the same 784-400-50 networks (encoder 784 -> 400 softplus -> 2 x 50 for the mean and
the scale :math:`\mathrm{softplus}(\cdot) + 10^{-4}`; decoder 50 -> 400 softplus -> 784 Bernoulli
logits, as in Pyro's ``examples/vae/vae.py``) on minibatches of B = 128 binary MNIST-sized images
with Adam (lr 1e-3), float32. One *step* is the minibatch estimate of the negative ELBO,
``backward``, ``optimizer.step`` and ``loss.item()``.

* ``plain torch``: the textbook VAE loss, :math:`\sum_n [\mathrm{BCE}(x_n, \ell(z_n)) +
  \mathrm{KL}(q(z_n\mid x_n)\,\|\,\mathcal N(0, I))]` with the closed-form KL and one
  reparameterised sample.
* ``zoo (meanfield)``: the ``vae`` model and ``encoder`` guide after
  :func:`experiments.engine.training.setup` with ``elbo="meanfield"`` (closed-form KL, the same
  estimator as plain torch), stepped exactly as :func:`experiments.engine.training.fit` steps them
  (``guide.elbo_context()`` and ``KLScale`` around ``state.loss_fn(x)``, the device-side non-finite gate,
  ``zero_grad``, ``backward``, ``optimizer.step``, ``loss.item()``, the recorded log-likelihood),
  the data checked whole before training as ``fit`` does (no per-batch check), and on
  ``--device cuda`` also ``zoo graphed (...)``: the same step captured in a CUDA graph and
  replayed (``FitConfig.cuda_graph``).
* ``zoo (trace)``: the same with ``elbo="trace"`` (Monte Carlo KL).
* on the CPU, ``plain torch (foreach Adam)``: plain torch with the Adam implementation the zoo
  takes on the CPU, torch's multi-tensor ``foreach`` one (the numbers of torch's CPU default, the
  single-tensor loop, bit for bit, with less Python per step); the zoo's meanfield row also gives
  its ratio to it, like for like;
* on the CPU, ``plain torch (fused Adam)`` and ``zoo (meanfield, fused Adam)``: the same two
  steps with ``torch.optim.Adam(fused=True)`` (``FitConfig.fused``, the CUDA default); the zoo's
  last column then compares it with plain torch under the same Adam.
* ``bare pyro (meanfield)`` / ``bare pyro (trace)``: the reference for what Pyro itself costs: the
  model and guide of Pyro's ``examples/vae/vae.py`` (``pyro.plate("data", B)`` without subsample, no
  ``f`` site, no data check) on the same networks, ``TraceMeanField_ELBO`` / ``Trace_ELBO``
  ``.differentiable_loss`` and the same torch Adam. The zoo's ratio to it is the cost of the zoo's
  contract (data plate with subsample, ``f``, data check, ``KLScale``, the recorded log-likelihood).

Pyro's validation is off (as in ``fit``) and torch uses ``--threads`` intra-op threads (default 1:
the machines are shared, and one thread makes the ratio about the work done). The methods are timed
*interleaved*: in each of ``--repeats`` rounds every method runs ``--warmup`` untimed steps then
``--steps`` timed steps, in a rotating round-robin order; the table reports the median over rounds
of the mean ms/step, and each method's ratio to plain torch. ``--profile`` prints the
torch-profiler table of the zoo step. ``--phases`` (CPU) instead times the phases of the zoo's
meanfield step and of the plain step (foreach Adam), alternating one step of each: the forward
(:func:`~experiments.engine.step.step_loss`), ``zero_grad``, ``backward``, the non-finite gate,
the optimiser step, and the epoch sums with the one ``loss.item()``; medians in µs. ``--ops``
instead counts the torch operations (``torch.profiler`` events: operators, autograd nodes,
gradient accumulation) of one forward and backward of the zoo's meanfield and trace losses, of
bare Pyro's and of plain torch's: a number that does not move with the machine's load (on a
GPU, most of them are kernel launches).

Run: ``python -m experiments.benchmarks.vae_step [--steps 50 --repeats 9 --batch-size 128
--hidden 400 --z-dim 50 --threads 1 --device cpu]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import pyro
import torch
import torch.nn.functional as F
from torch import nn

import guides
import models
from experiments.benchmarks import timing
from experiments.benchmarks.timing import graphed_adam_step, graphed_zoo_step, interleaved
from experiments.benchmarks.timing import zoo_step as timed_zoo_step
from experiments.engine.settings import FitConfig, RunOptions
from experiments.engine.training import setup

LR = 1e-3
X_DIM = 784


class Batches:
    """A fixed pool of random binary minibatches, served round-robin (no data cost in the loop)."""

    def __init__(self, batch_size: int, device, pool: int = 16, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        p = torch.rand(pool, batch_size, X_DIM, generator=g)
        self.batches = [torch.bernoulli(p[i], generator=g).to(device) for i in range(pool)]
        self.i = 0

    def __call__(self) -> torch.Tensor:
        self.i = (self.i + 1) % len(self.batches)
        return self.batches[self.i]


class PlainVAE(nn.Module):
    def __init__(self, hidden: int, z_dim: int):
        super().__init__()
        self.z_dim = z_dim
        self.enc = nn.Sequential(nn.Linear(X_DIM, hidden), nn.Softplus(), nn.Linear(hidden, 2 * z_dim))
        self.dec = nn.Sequential(nn.Linear(z_dim, hidden), nn.Softplus(), nn.Linear(hidden, X_DIM))

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        h = self.enc(x)
        loc, scale = h[:, : self.z_dim], F.softplus(h[:, self.z_dim:]) + 1e-4
        z = loc + scale * torch.randn_like(loc)
        rec = F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="sum")
        kl = 0.5 * (scale**2 + loc**2 - 1 - 2 * torch.log(scale)).sum()
        return rec + kl


def plain_step(hidden, z_dim, batches, device, fused: bool | None = None,
               foreach: bool | None = None) -> Callable[[], float]:
    model = PlainVAE(hidden, z_dim).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=LR, fused=fused, foreach=foreach)

    def step() -> float:
        loss = model.loss(batches())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return step


class BarePyroVAE(nn.Module):
    """Pyro's examples/vae model and guide on :class:`PlainVAE`'s networks."""

    def __init__(self, hidden: int, z_dim: int):
        super().__init__()
        self.nets = PlainVAE(hidden, z_dim)
        self.z_dim = z_dim

    def model(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", pyro.distributions.Normal(x.new_zeros(self.z_dim), 1.0).to_event(1))
            pyro.sample("obs", pyro.distributions.Bernoulli(logits=self.nets.dec(z)).to_event(1), obs=x)

    def guide(self, x):
        h = self.nets.enc(x)
        loc, scale = h[:, : self.z_dim], F.softplus(h[:, self.z_dim:]) + 1e-4
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", pyro.distributions.Normal(loc, scale).to_event(1))


def bare_pyro_loss(hidden, z_dim, elbo, batches, device):
    """Bare Pyro's VAE on the same nets and its loss of the next batch: ``(vae, loss())``."""
    vae = BarePyroVAE(hidden, z_dim).to(device)
    loss_fn = {"meanfield": pyro.infer.TraceMeanField_ELBO, "trace": pyro.infer.Trace_ELBO}[elbo]()
    return vae, lambda: loss_fn.differentiable_loss(vae.model, vae.guide, batches())


def bare_pyro_step(hidden, z_dim, elbo, batches, device) -> Callable[[], float]:
    vae, loss_of_batch = bare_pyro_loss(hidden, z_dim, elbo, batches, device)
    opt = torch.optim.Adam(vae.parameters(), lr=LR)

    def step() -> float:
        loss = loss_of_batch()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def zoo_pair(hidden, z_dim, batch_size, elbo, device, cuda_graph: bool = False,
             fused: bool | None = None):
    model = models.create_model("vae", image_shape=(X_DIM,), z_dim=z_dim, hidden=(hidden,),
                                activation="softplus", likelihood="bernoulli")
    guide = guides.create_guide("encoder", model)
    x0 = torch.bernoulli(torch.full((batch_size, X_DIM), 0.5))
    state = setup(model, guide, (x0,), FitConfig(batch_size=batch_size, lr=LR, elbo=elbo,
                                                 cuda_graph=cuda_graph, fused=fused),
                                       RunOptions(device=str(device), progress=False))
    return state


def zoo_step(hidden, z_dim, batch_size, elbo, batches, device,
             fused: bool | None = None) -> Callable[[], float]:
    """The zoo's pair, set up by ``setup`` and stepped as ``fit`` steps it."""
    return timed_zoo_step(zoo_pair(hidden, z_dim, batch_size, elbo, device, fused=fused),
                          lambda: (batches(),))


def main(argv=None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--hidden", type=int, default=400)
    p.add_argument("--z-dim", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--profile", action="store_true", help="print the torch profile of the zoo step")
    p.add_argument("--phases", action="store_true",
                   help="time the phases of the zoo and plain steps instead (CPU)")
    p.add_argument("--ops", action="store_true",
                   help="count the torch ops of one forward and backward of each loss instead")
    args = p.parse_args(argv)
    if args.phases and args.device != "cpu":
        p.error("--phases times phases with the host clock: CPU only")
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def phase_times(hidden, z_dim, batch_size, batches, steps: int, warmup: int
                ) -> dict[str, dict[str, float]]:
    """Median µs of each phase of the zoo's meanfield step and of the plain step (foreach Adam,
    the zoo's CPU Adam), one step of each in turn, after ``warmup`` steps of each."""
    from experiments.engine.step import accumulate, step_loss, step_mode

    device = torch.device("cpu")
    state = zoo_pair(hidden, z_dim, batch_size, "meanfield", device)
    params = list(state.loss_fn.parameters())
    sums = torch.zeros(2, dtype=torch.float64)
    plain = PlainVAE(hidden, z_dim)
    opt = torch.optim.Adam(plain.parameters(), lr=LR, foreach=True)
    zoo_t: dict[str, list[float]] = {k: [] for k in ("forward", "zero_grad", "backward", "gate",
                                                     "optimizer", "sums + item")}
    plain_t: dict[str, list[float]] = {k: [] for k in ("forward", "zero_grad", "backward",
                                                       "optimizer", "sums + item")}
    clock = time.perf_counter
    for i in range(warmup + steps):
        x = batches()
        t = [clock()]
        with step_mode(state.model, True, True):  # as fit (see timing.zoo_step)
            loss = step_loss(state, (x,))
        t.append(clock())
        for o in state.optimizers:
            o.zero_grad(set_to_none=True)
        t.append(clock())
        loss.backward()
        t.append(clock())
        go = state.gate.gate(state.optimizers, loss, params)
        t.append(clock())
        if go:
            for o in state.optimizers:
                o.step()
        state.step += 1
        t.append(clock())
        accumulate(sums, state, loss)
        loss.item()
        t.append(clock())
        p = [clock()]
        ploss = plain.loss(x)
        p.append(clock())
        opt.zero_grad(set_to_none=True)
        p.append(clock())
        ploss.backward()
        p.append(clock())
        opt.step()
        p.append(clock())
        ploss.item()
        p.append(clock())
        if i >= warmup:
            for times, marks in ((zoo_t, t), (plain_t, p)):
                for k, a, b in zip(times, marks, marks[1:]):
                    times[k].append(1e6 * (b - a))
    return {name: {k: statistics.median(v) for k, v in times.items()}
            for name, times in (("zoo (meanfield)", zoo_t), ("plain torch (foreach Adam)", plain_t))}


def op_counts(hidden, z_dim, batch_size, batches, device, rounds: int = 5) -> dict[str, float]:
    """Torch ops (``torch.profiler`` events) per forward and backward of each method's loss,
    averaged over ``rounds`` after two untimed ones."""
    from torch.profiler import ProfilerActivity, profile

    from experiments.engine.step import step_loss, step_mode

    def zoo(elbo):
        state = zoo_pair(hidden, z_dim, batch_size, elbo, device)

        def run():
            with step_mode(state.model, device.type != "cuda", True):
                loss = step_loss(state, (batches(),))
            loss.backward()
        return run

    def bare(elbo):
        _, loss_of_batch = bare_pyro_loss(hidden, z_dim, elbo, batches, device)
        return lambda: loss_of_batch().backward()

    plain = PlainVAE(hidden, z_dim).to(device)
    methods = {"plain torch": lambda: plain.loss(batches()).backward(),
               "zoo (meanfield)": zoo("meanfield"), "zoo (trace)": zoo("trace"),
               "bare pyro (meanfield)": bare("meanfield"), "bare pyro (trace)": bare("trace")}
    counts = {}
    for name, run in methods.items():
        for _ in range(2):
            run()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(rounds):
                run()
        counts[name] = sum(e.count for e in prof.key_averages()) / rounds
    return counts


def _print_ops(args, batches) -> dict[str, float]:
    with pyro.validation_enabled(False):
        counts = op_counts(args.hidden, args.z_dim, args.batch_size, batches, torch.device(args.device))
    print(f"VAE loss, {X_DIM}-{args.hidden}-{args.z_dim}, batch {args.batch_size}, {args.device}: "
          "torch ops (profiler events) per forward + backward")
    print("| method | ops | ratio to plain torch |")
    print("|---|---|---|")
    for name, n in counts.items():
        print(f"| {name} | {n:.0f} | {n / counts['plain torch']:.2f}x |")
    return counts


def _print_phases(args, batches) -> dict[str, float]:
    steps = args.steps * args.repeats
    load = timing.load_average()
    with pyro.validation_enabled(False):
        phases = phase_times(args.hidden, args.z_dim, args.batch_size, batches, steps,
                             args.warmup)
    names = list(phases["zoo (meanfield)"])
    print(f"VAE step phases, {X_DIM}-{args.hidden}-{args.z_dim}, batch {args.batch_size}, cpu, "
          f"{args.threads} thread(s), median µs over {steps} alternating steps")
    print("| method | " + " | ".join(names) + " | total |")
    print("|---|" + "---|" * (len(names) + 1))
    totals = {}
    for method, ph in phases.items():
        totals[method] = sum(ph.values())
        print(f"| {method} | " + " | ".join(f"{ph[k]:.0f}" if k in ph else "" for k in names)
              + f" | {totals[method]:.0f} |")
    print(timing.load_line(load))
    return totals


def _run(args) -> dict[str, float]:
    device = torch.device(args.device)
    torch.manual_seed(0)
    batches = Batches(args.batch_size, device)
    if args.phases:
        return _print_phases(args, batches)
    if args.ops:
        return _print_ops(args, batches)
    with pyro.validation_enabled(False):
        methods = {
            "plain torch": plain_step(args.hidden, args.z_dim, batches, device),
            "zoo (meanfield)": zoo_step(args.hidden, args.z_dim, args.batch_size, "meanfield", batches,
                                        device),
            "zoo (trace)": zoo_step(args.hidden, args.z_dim, args.batch_size, "trace", batches, device),
            "bare pyro (meanfield)": bare_pyro_step(args.hidden, args.z_dim, "meanfield", batches, device),
            "bare pyro (trace)": bare_pyro_step(args.hidden, args.z_dim, "trace", batches, device),
        }
        if device.type == "cpu":
            # the zoo's CPU Adam: torch's foreach implementation (the default's numbers)
            methods["plain torch (foreach Adam)"] = plain_step(args.hidden, args.z_dim, batches,
                                                               device, foreach=True)
            # fused Adam (the CUDA default; FitConfig.fused on the CPU)
            methods["plain torch (fused Adam)"] = plain_step(args.hidden, args.z_dim, batches,
                                                             device, fused=True)
            methods["zoo (meanfield, fused Adam)"] = zoo_step(
                args.hidden, args.z_dim, args.batch_size, "meanfield", batches, device, fused=True)
        if device.type == "cuda":  # FitConfig.cuda_graph: the step captured and replayed
            plain = PlainVAE(args.hidden, args.z_dim).to(device)  # the floor: the same, graphed
            methods["plain torch graphed"] = graphed_adam_step(plain.parameters(), plain.loss,
                                                               lambda: (batches(),), LR, device)
            for elbo in ("meanfield", "trace"):
                methods[f"zoo graphed ({elbo})"] = graphed_zoo_step(
                    zoo_pair(args.hidden, args.z_dim, args.batch_size, elbo, device, True),
                    lambda: (batches(),))
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            step = methods["zoo (meanfield)"]
            for _ in range(10):
                step()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(20):
                    step()
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
        times = interleaved(methods, args.steps, args.repeats, args.warmup, device)
    base = statistics.median(times["plain torch"])
    print(f"VAE step, {X_DIM}-{args.hidden}-{args.z_dim}, batch {args.batch_size}, {device}, "
          f"{args.threads} thread(s), median of {args.repeats} interleaved rounds of {args.steps} steps")
    print("| method | ms/step | ratio to plain torch | ratio to bare pyro (same ELBO) or plain "
          "torch (same Adam) |")
    print("|---|---|---|---|")
    ratios, extra = {}, {}
    for name, ts in times.items():
        med = statistics.median(ts)
        ratios[name] = med / base
        ref = {"zoo (meanfield)": "bare pyro (meanfield)", "zoo (trace)": "bare pyro (trace)",
               "zoo (meanfield, fused Adam)": "plain torch (fused Adam)"}.get(name)
        if name == "zoo (meanfield)" and "plain torch (foreach Adam)" in times:
            same = statistics.median(times[name]) / statistics.median(times["plain torch (foreach Adam)"])
            extra[name] = f" ({same:.2f}x plain torch with the same foreach Adam)"
        vs_pyro = f"{med / statistics.median(times[ref]):.2f}x" if ref else ""
        print(f"| {name} | {med:.2f} | {med / base:.2f}x | {vs_pyro}{extra.get(name, '')} |")
    return ratios


if __name__ == "__main__":
    main()
