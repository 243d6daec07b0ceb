"""Training a zoo pair with Pyro's own tools instead of ``fit`` (README, Known limitations)."""

import pyro
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO

import guides
import models


def _pair(model_name, guide_name):
    model = models.create_model(model_name, **models.MODELS.meta(model_name)["test_config"])
    return model, guides.create_guide(guide_name, model), model.example_data(8)


@pytest.mark.parametrize("model_name, guide_name", guides.list_pairs())
def test_pyro_module_local_idiom_trains_every_pair(model_name, guide_name):
    """Pyro's idiom for module-local parameters: ``Trace_ELBO()(model, guide)`` is an
    ``nn.Module`` whose parameters a torch optimiser takes; a step changes them."""
    model, guide, data = _pair(model_name, guide_name)
    loss_fn = Trace_ELBO()(model, guide)
    loss_fn(*data)  # lazily created parameters (autoguides) exist after the first call
    params = list(loss_fn.parameters())
    before = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(params, lr=1e-2)
    opt.zero_grad()
    loss = loss_fn(*data)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, p) for a, p in zip(before, params))


@pytest.mark.xfail(raises=AttributeError, strict=True, reason=(
    "pyro 1.9.2: with module-local parameters, PyroModule's param statements for a plain "
    "nn.Module child carry the raw Parameter, and SVI.step calls .unconstrained() on it"))
def test_pyro_svi_with_pyro_optim_on_a_pair_with_plain_child_modules():
    model, guide, data = _pair("vae", "encoder")
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
    svi.step(*data)
