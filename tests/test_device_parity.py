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
import pytest
import torch

import guides
import models
from experiments.engine.elbo import make_elbo
from experiments.engine.settings import FitConfig, RunOptions
from experiments.engine.training import setup
from guides.base import elbo_context
from tests.helpers import CASES, FixedNoise

RTOL, ATOL = 1e-7, 1e-9


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
    setup(model, guide, data, FitConfig.from_dict({"batch_size": 8, "elbo": elbo_name}),
                              RunOptions(device="cpu", progress=False))  # creates the guide's lazy parameters
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
