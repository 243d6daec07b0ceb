r"""Time one Bayes-by-Backprop training step: the zoo's ``bnn`` + ``mean-field`` against its peers.

Every method trains a 784-400-400-10 ReLU classifier (``--hidden``) on minibatches of B = 128
(``--batch-size``) MNIST-sized inputs with Adam (lr 1e-3), float32, the minibatch log-likelihood
scaled by N/B with N = 60000 (``--num-data``), one weight sample per step. One *step* is the
minibatch estimate of the loss, ``backward``, ``optimizer.step`` and ``loss.item()``.

* ``torch MLP (floor)``: a deterministic ``nn.Sequential`` net, :math:`\frac NB\sum_n
  \mathrm{CE}_n`: the cost of the matrix products alone.
* ``torch BbB (local reparam)``: hand-written Bayes by Backprop in plain PyTorch, per layer
  :math:`(\mu, \rho)` for ``[W | b]``, :math:`\sigma = \mathrm{softplus}(\rho)`, pre-activations
  sampled as :math:`b = h\mu^\top + \sqrt{h^2 (\sigma^2)^\top}\,\epsilon` (local
  reparameterisation), plus the closed-form :math:`\mathrm{KL}[\mathcal N(\mu,\sigma^2)\,\|\,
  \mathcal N(0, 1)]`. The reference: the zoo step's goal is at most 1.2x this.
* ``pyro naive``: the textbook Pyro BNN — ``PyroModule[nn.Linear]`` layers with ``PyroSample``
  :math:`\mathcal N(0, 1)` priors on weight and bias, :class:`~pyro.infer.autoguide.AutoNormal`,
  :class:`~pyro.infer.Trace_ELBO` (weights sampled, Monte Carlo KL), a subsampled data plate.
* ``zoo``: ``bnn`` (Gaussian prior N(0, 1)) + ``mean-field`` (``local_reparam=True``) after
  :func:`experiments.engine.training.setup` with ``elbo="meanfield"`` (closed-form KL, the same
  estimator as the hand-written step), stepped exactly as :func:`~experiments.engine.training.fit`
  steps it (:func:`~experiments.engine.step.train_step`: ``guide.elbo_context()`` and
  ``KLScale`` around ``state.loss_fn(x, y)``, the device-side non-finite gate, ``zero_grad``, ``backward``,
  ``optimizer.step``; then ``loss.item()``).
* ``zoo (weight sampling)``: the same pair with ``local_reparam=False``: one weight draw per
  batch, the estimator bayesian-torch's ``LinearReparameterization`` uses.
* ``bayesian-torch`` / ``blitz``, when installed: their ``LinearReparameterization`` (weights
  sampled, closed-form KL to N(0, 1)) and ``BayesianLinear`` (weights sampled, Monte Carlo KL;
  ``prior_pi=1``, one N(0, 1)) layers, σ initialised at 0.01, the same loss. ``pip install
  bayesian-torch blitz-bayesian-pytorch`` would replace the pinned torch (it resolves torch 2.15
  and CUDA wheels); ``pip install --no-deps bayesian-torch blitz-bayesian-pytorch`` after the
  pinned torch works (their layers need nothing else), or ``pip install --no-deps --target DIR``
  and ``PYTHONPATH=DIR``.
* ``zoo (scale mixture)`` (``--mixture``): the zoo pair with Blundell's scale-mixture prior, whose
  KL is a Monte Carlo estimate (the weights are then sampled too, for :math:`\log p(w)-\log q(w)`).

Pyro's validation is off (as in ``fit``) and torch uses ``--threads`` intra-op threads (default 1).
The methods are timed *interleaved*: in each of ``--repeats`` rounds every method runs ``--warmup``
untimed steps then ``--steps`` timed steps, in a rotating round-robin order; the table reports the
median over rounds of the mean ms/step and the ratios to the floor and to the hand-written BbB step.
``--profile`` prints the torch-profiler table of the zoo step. Measured numbers: README, "BNN step
benchmark".

Where the zoo's step lost time, and what fixed it (profiled with ``--profile`` and torch's
profiler grouped by input shape; first measured at 1.94x the hand-written step): (1) Pyro's
``TraceMeanField_ELBO`` computes :math:`\log p(w)` and :math:`\log q(w)` of every latent site
before it knows the KL is closed-form: four unused log-densities over the 478k weights;
:class:`experiments.engine.elbo.MeanFieldELBO` computes them only where read. (2) torch's
``kl_normal_normal`` spends two full-size divisions and a ``pow``; :func:`~experiments.engine.elbo.
closed_form_kl` sums a scalar prior's KL over the event with three per-weight operations. (3) The
guide drew every weight although local reparameterisation with a closed-form KL never reads the
draw; ``fit`` now tells the guide's ``elbo_context`` (``closed_form_kl=True``) and the draw is
skipped. (4) Slicing ``[W | b]`` into W and b costs two full-size zero-fills and additions per
parameter in the backward pass; :func:`models.base.with_ones` makes the layer one product
``[h | 1] @ [W | b].T``. What remains is Pyro's per-step cost (two traces, ~18 messages, plates and
handlers), about 1 ms: the zoo-minus-hand-written gap at ``--hidden 8``.

Run: ``python -m experiments.benchmarks.bnn_step [--steps 50 --repeats 9 --batch-size 128
--hidden 400 --num-data 60000 --threads 1 --device cpu --mixture --profile]``
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.infer import Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from pyro.nn import PyroModule, PyroSample
from torch import nn

import guides
import models
from experiments.benchmarks.timing import adam_step, graphed_adam_step, graphed_zoo_step, interleaved
from experiments.benchmarks.timing import zoo_step as timed_zoo_step
from experiments.engine.settings import FitConfig, RunOptions
from experiments.engine.training import setup

LR = 1e-3
X_DIM, CLASSES = 784, 10
FLOOR, REFERENCE = "torch MLP (floor)", "torch BbB (local reparam)"


class Batches:
    """A fixed pool of random (x, y) minibatches, served round-robin (no data cost in the loop)."""

    def __init__(self, batch_size: int, device, pool: int = 16, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.batches = [(torch.rand(batch_size, X_DIM, generator=g).to(device),
                         torch.randint(CLASSES, (batch_size,), generator=g).to(device))
                        for _ in range(pool)]
        self.i = 0

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.i = (self.i + 1) % len(self.batches)
        return self.batches[self.i]


def _sizes(hidden: int, depth: int) -> list[int]:
    return [X_DIM] + [hidden] * depth + [CLASSES]


def torch_mlp_net(sizes, device) -> nn.Module:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers).to(device)


def torch_mlp_step(sizes, num_data, batches, device) -> Callable[[], float]:
    net = torch_mlp_net(sizes, device)
    return adam_step(net.parameters(), lambda x, y: _nll(net(x), y, num_data), batches, LR)


def torch_graphed_step(net: nn.Module, loss_of, batches, device) -> Callable[[], float]:
    """``loss_of(x, y, net)`` stepped by Adam inside a CUDA graph (:func:`graphed_adam_step`)."""
    return graphed_adam_step(net.parameters(), lambda x, y: loss_of(x, y, net), batches, LR,
                             device)


def _nll(logits, y, num_data: int) -> torch.Tensor:
    """The minibatch cross-entropy scaled to the whole data set: N/B sum_n CE_n."""
    return F.cross_entropy(logits, y, reduction="sum") * (num_data / len(y))


def _rho(init_scale: float) -> float:
    """softplus^-1(init_scale): the rho that starts every sigma at ``init_scale``."""
    return float(torch.log(torch.expm1(torch.tensor(init_scale))))


class TorchBbB(nn.Module):
    """Bayes by Backprop with local reparameterisation and the closed-form KL to N(0, 1)."""

    def __init__(self, sizes, init_scale: float = 1e-2):
        super().__init__()
        rho0 = _rho(init_scale)
        self.locs = nn.ParameterList()
        self.rhos = nn.ParameterList()
        for a, b in zip(sizes[:-1], sizes[1:]):
            bound = a ** -0.5
            self.locs.append(nn.Parameter((torch.rand(b, a + 1) * 2 - 1) * bound))
            self.rhos.append(nn.Parameter(torch.full((b, a + 1), rho0)))

    def loss(self, x, y, num_data: int) -> torch.Tensor:
        h, kl = x, 0.0
        last = len(self.locs) - 1
        for i, (loc, rho) in enumerate(zip(self.locs, self.rhos)):
            scale = F.softplus(rho)
            var = scale * scale
            mean = h @ loc[:, :-1].T + loc[:, -1]
            sd = ((h * h) @ var[:, :-1].T + var[:, -1]).clamp_min(1e-30).sqrt()
            h = mean + sd * torch.randn_like(mean)
            if i < last:
                h = torch.relu(h)
            kl = kl + 0.5 * (var + loc * loc - 1.0).sum() - torch.log(scale).sum()
        return _nll(h, y, num_data) + kl


def torch_bbb_step(sizes, num_data, batches, device) -> Callable[[], float]:
    net = TorchBbB(sizes).to(device)
    return adam_step(net.parameters(), lambda x, y: net.loss(x, y, num_data), batches, LR)


class NaivePyroBNN(PyroModule):
    """The textbook Pyro BNN: ``PyroSample`` N(0, 1) priors on every ``nn.Linear`` parameter.

    The priors are built at each call from registered buffers (``PyroSample`` of a function of the
    module, Pyro's idiom for priors that follow ``.to(device)``); a prior built from Python floats
    once, ``PyroSample(dist.Normal(0.0, 1.0)...)``, keeps CPU tensors and fails on CUDA."""

    def __init__(self, sizes, num_data: int):
        super().__init__()
        self.num_data = num_data
        self.register_buffer("prior_loc", torch.tensor(0.0))
        self.register_buffer("prior_scale", torch.tensor(1.0))
        self.layers = PyroModule[nn.ModuleList]([PyroModule[nn.Linear](a, b)
                                                 for a, b in zip(sizes[:-1], sizes[1:])])
        for layer in self.layers:
            layer.weight = PyroSample(self._prior(layer.weight.shape))
            layer.bias = PyroSample(self._prior(layer.bias.shape))

    def _prior(self, shape):
        return lambda _layer: dist.Normal(self.prior_loc, self.prior_scale).expand(shape) \
            .to_event(len(shape))

    def forward(self, x, y=None):
        h = x
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        with pyro.plate("data", self.num_data, subsample=torch.arange(len(x), device=x.device)):
            return pyro.sample("obs", dist.Categorical(logits=h), obs=y)


def pyro_naive_step(sizes, num_data, batches, device) -> Callable[[], float]:
    model = NaivePyroBNN(sizes, num_data).to(device)
    guide = AutoNormal(model, init_scale=1e-2)
    loss_fn = Trace_ELBO()(model, guide)
    loss_fn(*batches())  # creates the guide's parameters
    return adam_step(loss_fn.parameters(), loss_fn, batches, LR)


def bayesian_torch_step(sizes, num_data, batches, device) -> Callable[[], float]:
    """bayesian-torch's ``LinearReparameterization`` layers (weights sampled per batch, closed-form
    KL to N(0, 1)), sigma initialised at 0.01 as in the other methods; ``None`` if not installed."""
    try:
        from bayesian_torch.layers import LinearReparameterization
    except ImportError:
        return None
    layers = nn.ModuleList(LinearReparameterization(a, b, prior_mean=0.0, prior_variance=1.0,
                                                    posterior_rho_init=_rho(1e-2))
                           for a, b in zip(sizes[:-1], sizes[1:])).to(device)

    def loss(x, y) -> torch.Tensor:
        h, kl = x, 0.0
        for i, layer in enumerate(layers):
            h, kl_i = layer(h)
            kl = kl + kl_i
            if i < len(layers) - 1:
                h = torch.relu(h)
        return _nll(h, y, num_data) + kl

    return adam_step(layers.parameters(), loss, batches, LR)


def blitz_step(sizes, num_data, batches, device) -> Callable[[], float]:
    """blitz's ``BayesianLinear`` layers: weights sampled per batch, Monte Carlo KL
    (``log q(w) - log p(w)``) to its prior with ``prior_pi=1`` (one Gaussian, sigma 1); ``None`` if
    not installed."""
    try:
        from blitz.modules import BayesianLinear
        from blitz.utils import variational_estimator
    except ImportError:
        return None
    @variational_estimator
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(
                BayesianLinear(a, b, prior_sigma_1=1.0, prior_sigma_2=1.0, prior_pi=1.0,
                               posterior_rho_init=_rho(1e-2)) for a, b in zip(sizes[:-1], sizes[1:]))

        def forward(self, x):
            for i, layer in enumerate(self.layers):
                x = layer(x)
                if i < len(self.layers) - 1:
                    x = torch.relu(x)
            return x

    net = Net().to(device)
    return adam_step(net.parameters(), lambda x, y: _nll(net(x), y, num_data)
                     + net.nn_kl_divergence(), batches, LR)


def zoo_state(sizes, num_data, batch_size, device, prior: dict, local_reparam: bool = True,
              cuda_graph: bool = False):
    model = models.create_model("bnn", in_features=X_DIM, widths=sizes[1:-1], out_features=CLASSES,
                                task="classification", prior=prior)
    guide = guides.create_guide("mean-field", model, init_scale=1e-2, local_reparam=local_reparam)
    g = torch.Generator().manual_seed(1)
    data = (torch.rand(num_data, X_DIM, generator=g), torch.randint(CLASSES, (num_data,), generator=g))
    return setup(model, guide, data, FitConfig(batch_size=batch_size, lr=LR, elbo="meanfield",
                                               cuda_graph=cuda_graph),
                                     RunOptions(device=str(device), progress=False))


def zoo_step(sizes, num_data, batch_size, batches, device, prior: dict,
             local_reparam: bool = True) -> Callable[[], float]:
    """The zoo's pair, set up by ``setup`` and stepped as ``fit`` steps it."""
    return timed_zoo_step(zoo_state(sizes, num_data, batch_size, device, prior, local_reparam),
                          batches)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def main(argv=None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=_positive, default=50)
    p.add_argument("--repeats", type=_positive, default=9)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch-size", type=_positive, default=128)
    p.add_argument("--hidden", type=_positive, default=400)
    p.add_argument("--depth", type=_positive, default=2)
    p.add_argument("--num-data", type=_positive, default=60000)
    p.add_argument("--threads", type=_positive, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--mixture", action="store_true", help="also time the scale-mixture prior")
    p.add_argument("--profile", action="store_true", help="print the torch profile of the zoo step")
    args = p.parse_args(argv)
    if args.num_data < args.batch_size:
        p.error(f"--num-data ({args.num_data}) must be >= --batch-size ({args.batch_size})")
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args) -> dict[str, float]:
    device = torch.device(args.device)
    torch.manual_seed(0)
    sizes = _sizes(args.hidden, args.depth)
    batches = Batches(args.batch_size, device)
    n = args.num_data
    with pyro.validation_enabled(False):
        methods = {
            FLOOR: torch_mlp_step(sizes, n, batches, device),
            REFERENCE: torch_bbb_step(sizes, n, batches, device),
            "pyro naive (AutoNormal, Trace_ELBO)": pyro_naive_step(sizes, n, batches, device),
            "zoo (bnn + mean-field, local reparam)": zoo_step(
                sizes, n, args.batch_size, batches, device, {"kind": "gaussian", "sigma": 1.0}),
        }
        methods["zoo (weight sampling)"] = zoo_step(
            sizes, n, args.batch_size, batches, device, {"kind": "gaussian", "sigma": 1.0},
            local_reparam=False)
        if device.type == "cuda":  # FitConfig.cuda_graph: the step captured and replayed
            # the floor: the hand-written steps captured in a CUDA graph (same kernels, no
            # launch overhead); the zoo's graphed rows are read against "torch BbB graphed"
            methods["torch MLP graphed"] = torch_graphed_step(
                torch_mlp_net(sizes, device), lambda x, y, net: _nll(net(x), y, n), batches,
                device)
            methods["torch BbB graphed"] = torch_graphed_step(
                TorchBbB(sizes).to(device), lambda x, y, net: net.loss(x, y, n), batches, device)
            for name, local in (("local reparam", True), ("weight sampling", False)):
                methods[f"zoo graphed ({name})"] = graphed_zoo_step(
                    zoo_state(sizes, n, args.batch_size, device, {"kind": "gaussian", "sigma": 1.0},
                              local, cuda_graph=True), batches)
        for name, make in (("bayesian-torch (LinearReparameterization)", bayesian_torch_step),
                           ("blitz (BayesianLinear, MC KL)", blitz_step)):
            step = make(sizes, n, batches, device)
            if step is None:
                print(f"{name}: not installed, skipped (pip install --no-deps bayesian-torch "
                      "blitz-bayesian-pytorch, after the pinned torch)")
            else:
                methods[name] = step
        if args.mixture:
            methods["zoo (scale mixture, MC KL)"] = zoo_step(
                sizes, n, args.batch_size, batches, device,
                {"kind": "scale-mixture", "mixture_weight": 0.5, "sigma1": 1.0, "sigma2": 0.0025})
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            step = methods["zoo (bnn + mean-field, local reparam)"]
            for _ in range(10):
                step()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(20):
                    step()
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
        times = interleaved(methods, args.steps, args.repeats, args.warmup, device)
    floor = statistics.median(times[FLOOR])
    ref = statistics.median(times[REFERENCE])
    print(f"BNN step, {'-'.join(map(str, sizes))}, batch {args.batch_size}, N = {n}, {device}, "
          f"{args.threads} thread(s), median of {args.repeats} interleaved rounds of {args.steps} steps")
    print("| method | ms/step | ratio to torch MLP | ratio to torch BbB |")
    print("|---|---|---|---|")
    ratios = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        ratios[name] = med / ref
        print(f"| {name} | {med:.2f} | {med / floor:.2f}× | {med / ref:.2f}× |")
    return ratios


if __name__ == "__main__":
    main()
