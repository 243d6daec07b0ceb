r"""Time one SVGP training step: the zoo's pair against native GPyTorch and ``pyro.contrib.gp``.

Every method trains the same whitened sparse variational GP on kin40k (fold 0 of
:func:`experiments.data.load_uci_large`, 36 000 training rows, D = 8, x and y
standardised): :math:`M` inducing inputs (learned, all starting at the same random subset of the
training inputs), a full-covariance :math:`q(u) = \mathcal N(\mu, RR^\top)`, an RBF-ARD kernel with
an output scale, a zero mean, a Gaussian likelihood with learned noise, minibatches of B rows,
float32, and Adam (lr 0.01) over every parameter. One *step* is: the minibatch estimate of the
negative ELBO, ``backward``, ``optimizer.step``, and ``loss.item()``.

* ``zoo (cholesky, meanfield)`` / ``zoo (cholesky, trace)``: the ``svgp`` model and ``cholesky``
  guide after :func:`experiments.engine.training.setup`, stepped exactly as
  :func:`experiments.engine.training.fit` steps them (``guide.elbo_context()`` and ``KLScale``
  around ``state.loss_fn(x, y)``, the device-side non-finite gate, ``zero_grad``, ``backward``,
  ``optimizer.step``, ``loss.item()``, the ELBO's recorded log-likelihood). ``meanfield`` has the
  closed-form KL; ``trace`` the one-sample Monte Carlo KL (the data term is closed-form in both).
* ``gpytorch (native)``: ``ApproximateGP`` with ``VariationalStrategy(...,
  learn_inducing_locations=True)`` (whitened) and ``CholeskyVariationalDistribution``,
  ``GaussianLikelihood``, ``VariationalELBO``.
* ``pyro.contrib.gp``: ``VariationalSparseGP(whiten=True)`` with its ``RBF`` kernel (one
  lengthscale per input dimension), ``set_data`` per minibatch, and
  ``TraceMeanField_ELBO().differentiable_loss`` (what ``pyro.contrib.gp.util.train`` uses). Note
  that its Gaussian likelihood scores :math:`\log\mathcal N(y \mid \mu_f, s_f^2 + \sigma^2)`
  rather than the ELBO's :math:`\mathbb E_{q(f)}\log\mathcal N(y \mid f, \sigma^2)`; the cost is
  the same.

Pyro's validation is off for all of them (as in ``fit``), and torch uses ``--threads`` intra-op
threads (default 1: the benchmark machines are shared, and one thread makes the ratios about the
work done rather than about thread scheduling). The methods are timed *interleaved*: in each of
``--repeats`` rounds every method runs ``--warmup`` untimed steps then ``--steps`` timed steps, in a
round-robin order; the table reports the median over rounds of the mean ms/step within a round,
and the ratio of the medians to native GPyTorch. On a shared CPU expect ±5–10 % noise between
runs; the interleaving and the medians are what make the ratios comparable.

Run: ``python -m experiments.benchmarks.svgp_step [--steps 20 --repeats 7 --device cpu
--num-inducing 500 --batch-size 1024 --threads 1]``. ``--synthetic N`` replaces kin40k by N
random rows (used by the test suite, which runs it at toy sizes so that it cannot rot).
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Callable

import gpytorch
import pyro
import pyro.contrib.gp as pyro_gp
import torch

import guides
import models
from experiments.benchmarks.timing import adam_step, graphed_adam_step, graphed_zoo_step, interleaved
from experiments.benchmarks.timing import zoo_step as timed_zoo_step
from experiments.engine.settings import FitConfig, RunOptions
from experiments.engine.training import setup

LR = 0.01
NOISE_STD = 0.3


def load_data(synthetic: int | None, data_dir: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """kin40k fold 0 (standardised), or ``synthetic`` rows of a smooth 8-D function."""
    if synthetic:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(synthetic, 8, generator=g)
        y = x.sin().sum(-1) / 2 + 0.1 * torch.randn(synthetic, generator=g)
        return x, y
    from experiments.data import load_uci_large

    data = load_uci_large("kin40k", fold=0, data_dir=data_dir)
    return data.x_train.float(), data.y_train.float()


class Batches:
    """An endless, seeded stream of random minibatches (index draws outside the timed region are
    not worth the trouble: ``randperm`` of 36k rows is ~0.1 ms)."""

    def __init__(self, x, y, batch_size: int, seed: int = 0):
        self.x, self.y, self.b = x, y, batch_size
        self.g = torch.Generator().manual_seed(seed)

    def __call__(self):
        idx = torch.randint(len(self.x), (self.b,), generator=self.g, device="cpu")
        return self.x[idx.to(self.x.device)], self.y[idx.to(self.x.device)]


def zoo_step(x, y, z, batch_size: int, elbo: str, device, cuda_graph: bool = False
             ) -> Callable[[], float]:
    """The zoo's pair, set up by ``setup`` and stepped as ``fit`` steps it."""
    m = z.shape[0]
    model = models.create_model("svgp", input_dim=x.shape[1], num_inducing=m,
                                kernel={"type": "rbf", "ard": True, "lengthscale": 1.0,
                                        "outputscale": 1.0},
                                likelihood="gaussian", noise_std=NOISE_STD)
    model.inducing_points.data.copy_(z)
    guide = guides.create_guide("cholesky", model)
    state = setup(model, guide, (x.cpu(), y.cpu()),
                  FitConfig(batch_size=batch_size, lr=LR, elbo=elbo, cuda_graph=cuda_graph),
                  RunOptions(device=str(device), progress=False))
    batches = Batches(x.to(device), y.to(device), batch_size, seed=1)
    if cuda_graph:
        return graphed_zoo_step(state, batches)
    return timed_zoo_step(state, batches)


class TorchSVGP(torch.nn.Module):
    r"""The same whitened SVGP written in plain PyTorch, the floor of the zoo's step: an ARD RBF
    kernel, :math:`q(v) = \mathcal N(m, RR^\top)`, :math:`A = L_{ZZ}^{-1}K_{ZX}`, and the
    negative ELBO with the Gaussian expected log-likelihood and the KL in closed form,

    .. math:: \frac NB\sum_n \Bigl[\tfrac12\log 2\pi\sigma^2 + \frac{(y_n - a_n^\top m)^2
              + k_{nn} - \|a_n\|^2 + \|R^\top a_n\|^2}{2\sigma^2}\Bigr]
              + \tfrac12\bigl(\|R\|_F^2 + \|m\|^2 - M - 2\textstyle\sum_i\log R_{ii}\bigr).
    """

    def __init__(self, z: torch.Tensor, noise_std: float):
        super().__init__()
        m, d = z.shape
        self.z = torch.nn.Parameter(z.clone())
        self.log_lengthscale = torch.nn.Parameter(torch.zeros(d, device=z.device))
        self.log_outputscale = torch.nn.Parameter(torch.zeros((), device=z.device))
        self.log_noise = torch.nn.Parameter(torch.tensor(math.log(noise_std), device=z.device))
        self.loc = torch.nn.Parameter(torch.zeros(m, device=z.device))
        self.tril = torch.nn.Parameter(torch.eye(m, device=z.device))
        self.jitter = 1e-6

    def _k(self, a, b):
        ls = self.log_lengthscale.exp()
        return self.log_outputscale.exp() * torch.exp(-0.5 * torch.cdist(a / ls, b / ls).pow(2))

    def loss(self, x: torch.Tensor, y: torch.Tensor, num_data: int) -> torch.Tensor:
        m = self.z.shape[0]
        eye = torch.eye(m, device=x.device, dtype=x.dtype)
        chol = torch.linalg.cholesky(self._k(self.z, self.z) + self.jitter * eye)
        a = torch.linalg.solve_triangular(chol, self._k(self.z, x), upper=False)  # (M, B)
        r = self.tril.tril(-1) + torch.diag_embed(torch.nn.functional.softplus(
            self.tril.diagonal()))
        mean = a.T @ self.loc
        var = (self.log_outputscale.exp() - a.pow(2).sum(0) + (r.T @ a).pow(2).sum(0)).clamp_min(0)
        noise = (2 * self.log_noise).exp()
        nll = 0.5 * (torch.log(2 * math.pi * noise) + ((y - mean).pow(2) + var) / noise)
        kl = 0.5 * (r.pow(2).sum() + self.loc.pow(2).sum() - m) - r.diagonal().log().sum()
        return nll.sum() * (num_data / len(y)) + kl


def torch_step(x, y, z, batch_size: int, device, graphed: bool = False) -> Callable[[], float]:
    """:class:`TorchSVGP` stepped by Adam (:func:`adam_step`), or captured in a CUDA graph and
    replayed (:func:`graphed_adam_step`)."""
    model = TorchSVGP(z.clone(), NOISE_STD).to(device)
    batches = Batches(x.to(device), y.to(device), batch_size, seed=1)

    def loss_of(xb, yb):
        return model.loss(xb, yb, len(x))

    if graphed:
        return graphed_adam_step(model.parameters(), loss_of, batches, LR, device)
    return adam_step(model.parameters(), loss_of, batches, LR)


class _GPyTorchSVGP(gpytorch.models.ApproximateGP):
    def __init__(self, z):
        q = gpytorch.variational.CholeskyVariationalDistribution(z.shape[0])
        strategy = gpytorch.variational.VariationalStrategy(self, z, q,
                                                            learn_inducing_locations=True)
        super().__init__(strategy)
        self.mean_module = gpytorch.means.ZeroMean()
        self.covar_module = gpytorch.kernels.ScaleKernel(
            gpytorch.kernels.RBFKernel(ard_num_dims=z.shape[1]))

    def forward(self, x):
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))


def gpytorch_step(x, y, z, batch_size: int, device) -> Callable[[], float]:
    """GPyTorch's own SVGP recipe (its documentation example, Adam instead of NGD)."""
    model = _GPyTorchSVGP(z.clone()).to(device)
    likelihood = gpytorch.likelihoods.GaussianLikelihood().to(device)
    likelihood.noise = NOISE_STD ** 2
    model.covar_module.base_kernel.lengthscale = 1.0
    model.covar_module.outputscale = 1.0
    model.train()
    likelihood.train()
    mll = gpytorch.mlls.VariationalELBO(likelihood, model, num_data=len(x))
    opt = torch.optim.Adam([*model.parameters(), *likelihood.parameters()], lr=LR)
    batches = Batches(x.to(device), y.to(device), batch_size, seed=1)

    def step() -> float:
        xb, yb = batches()
        opt.zero_grad(set_to_none=True)
        loss = -mll(model(xb), yb)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def pyro_gp_step(x, y, z, batch_size: int, device) -> Callable[[], float]:
    """``pyro.contrib.gp.models.VariationalSparseGP`` trained as ``pyro.contrib.gp.util.train``
    trains it (``TraceMeanField_ELBO().differentiable_loss``, a torch optimiser)."""
    d = x.shape[1]
    kernel = pyro_gp.kernels.RBF(input_dim=d, variance=torch.tensor(1.0),
                                 lengthscale=torch.ones(d))
    likelihood = pyro_gp.likelihoods.Gaussian(variance=torch.tensor(NOISE_STD ** 2))
    batches = Batches(x.to(device), y.to(device), batch_size, seed=1)
    xb, yb = batches()
    gp = pyro_gp.models.VariationalSparseGP(xb, yb, kernel, Xu=z.clone(), likelihood=likelihood,
                                            num_data=len(x), whiten=True, jitter=1e-6).to(device)
    opt = torch.optim.Adam(gp.parameters(), lr=LR)
    loss_fn = pyro.infer.TraceMeanField_ELBO().differentiable_loss

    def step() -> float:
        xb, yb = batches()
        gp.set_data(xb, yb)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(gp.model, gp.guide)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def table(times: dict[str, list[float]], reference: str) -> str:
    med = {n: statistics.median(t) for n, t in times.items()}
    rows = ["| method | median ms/step | min–max over rounds | ratio to native GPyTorch |",
            "|---|---:|---:|---:|"]
    for n, m in med.items():
        rows.append(f"| {n} | {m:.1f} | {min(times[n]):.1f}–{max(times[n]):.1f} | "
                    f"{m / med[reference]:.2f}× |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round")
    parser.add_argument("--repeats", type=int, default=7, help="rounds (median over them)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before each round")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--num-inducing", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--synthetic", type=int, default=None,
                        help="use this many random rows instead of kin40k")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--methods", default="zoo-meanfield,zoo-trace,gpytorch,pyro-gp,torch",
                        help="comma-separated subset of zoo-meanfield, zoo-trace, gpytorch, "
                             "pyro-gp, torch (on CUDA also zoo-graphed, torch-graphed)")
    args = parser.parse_args(argv)
    for name in ("steps", "repeats", "num_inducing", "batch_size", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available")

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x, y = load_data(args.synthetic, args.data_dir)
    if args.num_inducing > len(x):
        parser.error(f"--num-inducing {args.num_inducing} exceeds the {len(x)} training rows")
    z = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:args.num_inducing]]
    z = z.clone().to(device)
    builders = {
        "zoo-meanfield": ("zoo (cholesky, meanfield)",
                          lambda: zoo_step(x, y, z, args.batch_size, "meanfield", device)),
        "zoo-trace": ("zoo (cholesky, trace)",
                      lambda: zoo_step(x, y, z, args.batch_size, "trace", device)),
        "zoo-graphed": ("zoo graphed (cholesky, meanfield)",
                        lambda: zoo_step(x, y, z, args.batch_size, "meanfield", device, True)),
        "gpytorch": ("gpytorch (native)", lambda: gpytorch_step(x, y, z, args.batch_size, device)),
        "pyro-gp": ("pyro.contrib.gp", lambda: pyro_gp_step(x, y, z, args.batch_size, device)),
        "torch": ("plain torch", lambda: torch_step(x, y, z, args.batch_size, device)),
        "torch-graphed": ("plain torch graphed",
                          lambda: torch_step(x, y, z, args.batch_size, device, graphed=True)),
    }
    chosen = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(chosen) - set(builders))
    if unknown:
        parser.error(f"unknown --methods {unknown}; choose from {sorted(builders)}")
    if "gpytorch" not in chosen:
        chosen.append("gpytorch")  # the reference of the ratios
    if device.type == "cuda":
        for graphed in ("zoo-graphed", "torch-graphed"):  # FitConfig.cuda_graph, and its floor:
            if graphed not in chosen:  # the hand-written step captured and replayed
                chosen.append(graphed)
    else:
        for graphed in ("zoo-graphed", "torch-graphed"):
            if graphed in chosen:
                parser.error(f"--methods {graphed} needs --device cuda (a CUDA graph)")
    with pyro.validation_enabled(False):
        methods = {builders[m][0]: builders[m][1]() for m in chosen}
        times = interleaved(methods, args.steps, args.repeats, args.warmup, device)
    out = table(times, "gpytorch (native)")
    print(f"SVGP step, {'synthetic' if args.synthetic else 'kin40k'} N={len(x)}, "
          f"M={args.num_inducing}, B={args.batch_size}, float32, device={device}, "
          f"threads={args.threads}, {args.repeats} rounds × {args.steps} steps "
          f"(+{args.warmup} warm-up), torch {torch.__version__}, pyro {pyro.__version__}, "
          f"gpytorch {gpytorch.__version__}\n")
    print(out)
    return out


if __name__ == "__main__":
    main()
