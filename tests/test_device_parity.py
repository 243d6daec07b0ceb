"""CPU/GPU parity: under fixed Monte Carlo noise, in float64, the first step's loss and gradients
of one pair of each family agree across devices.

The random streams of the CPU and of CUDA differ, so the comparison fixes the noise instead of the
seed: :class:`FixedNoise` draws every Gaussian latent as ``loc + scale * eps`` (or
``loc + scale_tril @ eps``) with ``eps`` drawn once from a CPU generator and shared by both runs,
which keeps the draw reparameterised (the gradient reaches the guide's parameters). The pair is
built and set up once, on the CPU, and deep-copied to the other device, so both runs start from
the same parameters.

``other="cpu"`` runs everywhere: the copy is evaluated after reseeding torch's global stream
differently, so it passes only if no noise is left unfixed (the harness is sound). ``other="cuda"``
is the parity check itself (``gpu``; skipped without CUDA). Tolerance: ``rtol=1e-7, atol=1e-9``
in float64, far above the ~1e-15 relative error of reordered float64 reductions and far below any
device bug.
"""

from __future__ import annotations

import copy

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.poutine.messenger import Messenger

import guides
import models
from experiments.engine.elbo import make_elbo
from experiments.engine.settings import FitConfig
from experiments.engine.training import setup
from guides.base import elbo_context
from models.base import is_subsample

RTOL, ATOL = 1e-7, 1e-9

CASES = [  # one pair of each family, with the ELBO that family trains with
    ("bnn", dict(in_features=2, widths=(8,)), "mean-field", "meanfield"),
    ("svgp", dict(input_dim=2, num_inducing=6), "cholesky", "meanfield"),
    ("vae", dict(image_shape=(4, 3), z_dim=2, hidden=(5,)), "encoder", "trace"),
]


class FixedNoise(Messenger):
    """Draw unobserved ``Normal`` / ``MultivariateNormal`` sites (possibly ``.to_event``-ed) from
    shared standard-normal noise ``noise[name]`` (created from a seeded CPU generator on first
    use). Any other unobserved site is an error: its noise would not be shared."""

    def __init__(self, noise: dict, seed: int = 0):
        super().__init__()
        self.noise = noise
        self.generator = torch.Generator().manual_seed(seed)

    def _eps(self, name, shape, like):
        if name not in self.noise:
            self.noise[name] = torch.randn(shape, generator=self.generator, dtype=torch.float64)
        return self.noise[name].to(like.device, like.dtype)

    def _pyro_sample(self, msg):
        if msg["is_observed"] or msg["value"] is not None or msg["infer"].get("_deterministic"):
            return  # observed, replayed from the guide, or a pyro.deterministic site
        fn = msg["fn"]
        if is_subsample(msg):
            return
        base = fn
        while isinstance(base, dist.Independent):
            base = base.base_dist
        if isinstance(base, dist.Normal):
            loc, scale = base.loc.expand(fn.shape()), base.scale.expand(fn.shape())
            msg["value"] = loc + scale * self._eps(msg["name"], fn.shape(), loc)
        elif isinstance(base, dist.MultivariateNormal):
            loc = base.loc.expand(fn.shape())
            eps = self._eps(msg["name"], fn.shape(), loc)
            msg["value"] = loc + (base.scale_tril @ eps.unsqueeze(-1)).squeeze(-1)
        else:
            raise TypeError(f"FixedNoise cannot fix the noise of site {msg['name']!r} "
                            f"({type(base).__name__})")


def _first_step(model, guide, data, elbo_name, noise):
    loss_fn = make_elbo(elbo_name)(model, guide)
    with FixedNoise(noise), elbo_context(guide, elbo_name == "meanfield"):
        loss = loss_fn(*data)
    loss.backward()
    grads = {n: p.grad.detach().cpu() for n, p in loss_fn.named_parameters()}
    return loss.detach().cpu(), grads


@pytest.fixture(params=[pytest.param("cpu", id="cpu-reseeded"),
                        pytest.param("cuda", id="cuda", marks=pytest.mark.gpu)])
def other(request) -> torch.device:
    return torch.device(request.param)


@pytest.mark.parametrize("model_name, model_cfg, guide_name, elbo_name", CASES,
                         ids=[c[0] for c in CASES])
def test_first_step_agrees_across_devices(model_name, model_cfg, guide_name, elbo_name, other):
    pyro.set_rng_seed(0)
    model = models.create_model(model_name, **model_cfg)
    guide = guides.create_guide(guide_name, model)
    data = model.example_data(8, generator=torch.Generator().manual_seed(0))
    model.double()
    guide.double()
    data = tuple(t.double() if t.is_floating_point() else t for t in data)
    setup(model, guide, data, FitConfig.from_dict({"device": "cpu", "batch_size": 8, "progress": False,
                                                   "elbo": elbo_name}))  # creates the guide's lazy parameters
    model2, guide2 = copy.deepcopy((model, guide))  # one copy: the guide keeps its model
    model2.to(other)
    guide2.to(other)

    noise: dict = {}
    torch.manual_seed(1)
    loss, grads = _first_step(model, guide, data, elbo_name, noise)
    assert noise, "no latent site was drawn: the check would compare nothing random"
    torch.manual_seed(2)  # a different global stream: only FixedNoise's noise may matter
    loss2, grads2 = _first_step(model2, guide2, tuple(t.to(other) for t in data), elbo_name,
                                noise)

    torch.testing.assert_close(loss2, loss, rtol=RTOL, atol=ATOL)
    assert grads2.keys() == grads.keys()
    for name, g in grads.items():
        torch.testing.assert_close(grads2[name], g, rtol=RTOL, atol=ATOL, msg=name)
