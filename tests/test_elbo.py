"""The zoo's mean-field ELBO is Pyro's ``TraceMeanField_ELBO``, value for value and gradient for
gradient, only cheaper: checked on a BNN with a closed-form KL (Gaussian prior), with a Monte Carlo
KL (scale-mixture prior), with vectorised particles, under a KL weight, and on the VAE (local
latents inside the data plate)."""

from __future__ import annotations

import pyro
import pytest
import torch
from pyro.distributions import Normal
from pyro.infer import TraceMeanField_ELBO
from torch.distributions import kl_divergence

import guides
import models
from experiments.engine.elbo import MeanFieldELBO, closed_form_kl, has_closed_form_kl, normal_kl
from experiments.engine.kl_schedule import KLScale

MIXTURE = {"kind": "scale-mixture", "mixture_weight": 0.5, "sigma1": 1.0, "sigma2": 0.1}


def test_normal_kl_matches_torch_including_broadcast_scalar_priors():
    g = torch.Generator().manual_seed(0)
    q = Normal(torch.randn(5, 7, generator=g), torch.rand(5, 7, generator=g) + 0.1)
    for p in (Normal(torch.randn(5, 7, generator=g), torch.rand(5, 7, generator=g) + 0.1),
              Normal(0.3, 1.7).expand((5, 7)),  # stride-0 parameters: the scalar path
              Normal(torch.tensor(-0.2), torch.tensor(0.5))):
        torch.testing.assert_close(normal_kl(q, p), kl_divergence(q, p), rtol=1e-5, atol=1e-6)


def test_closed_form_kl_sums_event_dims_and_falls_back_to_none():
    q = Normal(torch.zeros(3, 4), torch.ones(3, 4) * 0.5).to_event(1)
    p = Normal(1.0, 2.0).expand((3, 4)).to_event(1)
    torch.testing.assert_close(closed_form_kl(q, p), kl_divergence(q, p))
    g = torch.Generator().manual_seed(2)
    p_full = Normal(torch.randn(3, 4, generator=g), torch.rand(3, 4, generator=g) + 0.2)
    for event in (1, 2):  # tensor-valued prior: the elementwise path
        torch.testing.assert_close(closed_form_kl(q.base_dist.to_event(event), p_full.to_event(event)),
                                   kl_divergence(q.base_dist.to_event(event), p_full.to_event(event)))
    q2 = q.base_dist.to_event(2)  # scalar prior, whole events: the rearranged sum
    p2 = Normal(-0.4, 0.7).expand((3, 4)).to_event(2)
    torch.testing.assert_close(closed_form_kl(q2, p2), kl_divergence(q2, p2))
    mixture = models.priors.WeightPrior(**MIXTURE)((3, 4))
    assert closed_form_kl(Normal(torch.zeros(3, 4), 1.0).to_event(2), mixture) is None
    assert not has_closed_form_kl(Normal(torch.zeros(3, 4), 1.0).to_event(2), mixture)


def _bnn(prior=None, **guide_cfg):
    model = models.create_model("bnn", in_features=3, widths=(5,), out_features=1, prior=prior,
                                noise_std=0.3)
    guide = guides.create_guide("mean-field", model, init_scale=0.2, **guide_cfg)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(12, 3, generator=g)
    y = x.sum(-1).sin() + 0.1 * torch.randn(12, generator=g)
    model.num_data = 40
    guide(x, y)
    return model, guide, (x, y)


def _loss_and_grads(elbo, model, guide, data, seed, context=None):
    params = list(model.parameters()) + list(guide.parameters())
    pyro.set_rng_seed(seed)
    with (context or KLScale(1.0)):
        loss = elbo.differentiable_loss(model, guide, *data)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return loss.detach(), [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


@pytest.mark.parametrize("prior", [None, MIXTURE], ids=["gaussian", "scale-mixture"])
@pytest.mark.parametrize("particles", [1, 3])
@pytest.mark.parametrize("validate", [True, False], ids=["validated", "fast"])
def test_meanfield_elbo_equals_pyros_value_and_gradients(prior, particles, validate):
    with pyro.validation_enabled(validate):
        _compare_on_bnn(prior, particles)


def _compare_on_bnn(prior, particles):
    model, guide, data = _bnn(prior)
    kw = dict(num_particles=particles, vectorize_particles=particles > 1, max_plate_nesting=1)
    ours, theirs = MeanFieldELBO(**kw), TraceMeanField_ELBO(**kw)
    for c in (1.0, 0.25):
        a, ga = _loss_and_grads(ours, model, guide, data, seed=3, context=KLScale(c))
        b, gb = _loss_and_grads(theirs, model, guide, data, seed=3, context=KLScale(c))
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
        for x, y in zip(ga, gb):
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


def test_meanfield_elbo_on_local_latents_equals_pyros():
    model = models.create_model("vae", **models.MODELS.meta("vae")["test_config"])
    guide = guides.create_guide("encoder", model)
    x, = model.example_data(10, generator=torch.Generator().manual_seed(0))[:1]
    model.num_data = 50
    guide(x)
    a, ga = _loss_and_grads(MeanFieldELBO(), model, guide, (x,), seed=5)
    b, gb = _loss_and_grads(TraceMeanField_ELBO(), model, guide, (x,), seed=5)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v, rtol=1e-4, atol=1e-5)


def test_meanfield_elbo_records_the_log_likelihood():
    model, guide, data = _bnn()
    elbo = MeanFieldELBO()
    with torch.no_grad():
        loss = float(elbo.differentiable_loss(model, guide, *data))
    assert elbo.last_log_likelihood < 0
    assert loss > -elbo.last_log_likelihood  # loss = KL - log-lik with KL > 0


def test_meanfield_elbo_accepts_guide_messengers():
    """Pyro's GuideMessenger guides (e.g. AutoNormalMessenger) take Pyro's own trace path."""
    from pyro.infer.autoguide import AutoNormalMessenger

    model, _, data = _bnn()
    guide = AutoNormalMessenger(model)
    a, _ = _loss_and_grads(MeanFieldELBO(), model, guide, data, seed=4)
    b, _ = _loss_and_grads(TraceMeanField_ELBO(), model, guide, data, seed=4)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
