r"""Analytic oracle of the VAE pair: a linear-Gaussian decoder is probabilistic PCA.

With :math:`p(z) = \mathcal N(0, I_K)` and :math:`p(x\mid z) = \mathcal N(Wz + b, \sigma^2 I_D)`
(the ``vae`` model with ``hidden=()``, ``gaussian_mean="identity"``, ``gaussian_scale="shared"``)
the marginal is :math:`p(x) = \mathcal N(b, WW^\top + \sigma^2 I)` in closed form, and for the linear
encoder's :math:`q(z\mid x) = \mathcal N(m, \mathrm{diag}\,s^2)` so is the ELBO,

.. math:: \mathcal L = -\tfrac D2\log 2\pi\sigma^2
          - \frac{\|x - Wm - b\|^2 + \sum_j s_j^2 \|W_{:j}\|^2}{2\sigma^2}
          - \tfrac12\sum_j (s_j^2 + m_j^2 - 1 - \log s_j^2).

After training we check, for the *trained* parameters: the IWAE estimate with k = 1 is the ELBO in
expectation; :math:`\mathcal L_1 \le \mathcal L_5 \le \mathcal L_{50} \le \log p(x)` on average; and
:math:`\mathcal L_{k}` with k = 2000 is within 0.01 nats per datapoint of the exact log-likelihood.
"Statistically" means: comparisons of averages over datapoints with a slack of 4 standard errors of
the paired per-datapoint differences.
"""

from __future__ import annotations

import math

import pyro
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine

import guides
import models
from experiments.engine.iwae import iwae_bound, log_weights
from experiments.engine.settings import FitConfig, RunOptions
from experiments.engine.training import fit

D, K = 6, 2


def _ppca_data(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(D, K, generator=g)
    b = torch.randn(D, generator=g)
    x = torch.randn(n, K, generator=g) @ w.T + b + 0.5 * torch.randn(n, D, generator=g)
    return x


def _linear_vae():
    model = models.create_model("vae", image_shape=(D,), z_dim=K, hidden=(), likelihood="gaussian",
                                gaussian_mean="identity", gaussian_scale="shared", min_scale=0.0)
    guide = guides.create_guide("encoder", model)
    return model, guide


def _decoder_params(model):
    lin = model.decoder[0]
    sigma = F.softplus(model.likelihood.scale_raw) + model.min_scale
    return lin.weight.detach(), lin.bias.detach(), sigma.detach()


def exact_log_likelihood(model, x):
    """log N(x | b, W W^T + sigma^2 I) per datapoint, float64."""
    w, b, sigma = (t.double() for t in _decoder_params(model))
    cov = w @ w.T + sigma**2 * torch.eye(D, dtype=torch.float64, device=w.device)
    return torch.distributions.MultivariateNormal(b, cov).log_prob(x.double())


def analytic_elbo(model, guide, x):
    """The closed-form ELBO per datapoint for the linear-Gaussian decoder, float64."""
    w, b, sigma = (t.double() for t in _decoder_params(model))
    with torch.no_grad():
        m, s, _ = guide.encode(x)
    m, s, x = m.double(), s.double(), x.double()
    resid = ((x - m @ w.T - b) ** 2).sum(-1) + (s**2 * (w**2).sum(0)).sum(-1)
    ell = -0.5 * D * torch.log(2 * math.pi * sigma**2) - resid / (2 * sigma**2)
    kl = 0.5 * (s**2 + m**2 - 1 - torch.log(s**2)).sum(-1)
    return ell - kl


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    x = _ppca_data(400)
    model, guide = _linear_vae()
    # on the CPU wherever the suite runs: these tests are about the bounds' maths, and
    # iwae_bound returns its per-datapoint values on the CPU while the oracles below compute on
    # the model's device (tests/test_vae.py::test_fit_and_iwae_on_cuda covers the bound on CUDA)
    fit(model, guide, (x,), FitConfig.from_dict({"epochs": 100, "batch_size": 100, "lr": 0.05,
                                                 "elbo": "meanfield", "lr_schedule": "cosine",
                                                 "checkpoint": False}),
                            RunOptions(progress=False, device="cpu"))
    return model, guide, x


def _mean_se(d: torch.Tensor):
    return float(d.mean()), float(d.std() / math.sqrt(len(d)))


def test_iwae_1_is_the_elbo_in_expectation(trained):
    model, guide, x = trained
    elbo = analytic_elbo(model, guide, x)  # (N,)
    reps = torch.stack([iwae_bound(model, guide, x, k=1, reduce=False) for _ in range(20)]).mean(0)
    mean, se = _mean_se(reps - elbo)
    assert abs(mean) < 4 * se + 1e-6, (mean, se)


def test_bounds_are_ordered_and_approach_the_exact_log_likelihood(trained):
    model, guide, x = trained
    exact = exact_log_likelihood(model, x)
    bounds = {k: iwae_bound(model, guide, x, k=k, k_chunk=500, reduce=False) for k in (1, 5, 50, 2000)}
    for small, large in ((1, 5), (5, 50)):
        mean, se = _mean_se(bounds[large] - bounds[small])
        assert mean > -4 * se, (small, large, mean, se)
    for k, b in bounds.items():
        mean, se = _mean_se(b - exact)
        assert mean < 4 * se, (k, mean, se)  # L_k <= log p(x)
    # the ELBO of the trained linear VAE is not tight, L_2000 is (tolerance 0.01 nats/datapoint)
    gap1 = float((exact - bounds[1]).mean())
    gap = float((exact - bounds[2000]).mean())
    assert abs(gap) < 0.01, gap
    assert gap1 > abs(gap)


def test_log_weights_are_per_datapoint_and_unscaled(trained):
    """The data plate's minibatch scale (num_data / batch) is not in the per-datapoint bound, and the
    log-weights are the exact log p(x, z) - log q(z | x)."""
    model, guide, x = trained
    xb = x[:5]
    torch.manual_seed(1)
    lw = log_weights(model, guide, xb, 3)  # model.num_data = 400 > 5: plate scale 80 during training
    assert lw.shape == (3, 5) and lw.dtype == torch.float64
    torch.manual_seed(1)
    with pyro.plate("_iwae_particles", 3, dim=-2):
        gt = poutine.trace(guide).get_trace(xb)
    z = gt.nodes["z"]["value"]  # (3, 5, K)
    w, b, sigma = _decoder_params(model)
    log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    log_px = torch.distributions.Normal(z @ w.T + b, sigma).log_prob(xb).sum(-1)
    log_q = guide.posterior(xb).log_prob(z)
    torch.testing.assert_close(lw.float(), (log_pz + log_px - log_q).detach(), rtol=1e-4, atol=1e-4)


def test_chunking_gives_the_same_estimate(trained):
    model, guide, x = trained
    xb = x[:50]
    torch.manual_seed(3)
    one = iwae_bound(model, guide, xb, k=40, k_chunk=40, data_chunk=50, reduce=False)
    torch.manual_seed(3)
    lw = log_weights(model, guide, xb, 40)
    torch.testing.assert_close(one, torch.logsumexp(lw, 0) - math.log(40))
    chunked = iwae_bound(model, guide, xb, k=40, k_chunk=7, data_chunk=9, reduce=False)
    mean, se = _mean_se(chunked - one)
    assert abs(mean) < 4 * se + 1e-3


def test_global_latents_are_refused():
    model = models.create_model("bnn", in_features=2, widths=(3,))
    guide = guides.create_guide("mean-field", model)
    x, y = model.example_data(4)
    guide(x, y)
    with pytest.raises(ValueError, match="outside the data plate"):
        iwae_bound(lambda x: model(x, y), lambda x: guide(x, y), x, k=2)


@pytest.mark.slow
def test_linear_vae_reaches_the_ppca_maximum_likelihood():
    """Trained longer, the linear VAE's decoder attains pPCA's maximum log-likelihood (Tipping &
    Bishop 1999: sigma^2 = mean of the D - K smallest eigenvalues of the sample covariance), as
    Lucas et al. (2019) show for linear VAEs with a diagonal posterior."""
    torch.manual_seed(0)
    x = _ppca_data(1000)
    model, guide = _linear_vae()
    fit(model, guide, (x,), FitConfig.from_dict({"epochs": 400, "batch_size": 250, "lr": 0.05,
                                                 "elbo": "meanfield", "lr_schedule": "cosine",
                                                 "checkpoint": False}),
                            RunOptions(progress=False))
    xd = x.double()
    cov = torch.cov(xd.T, correction=0)
    lam, u = torch.linalg.eigh(cov)
    lam, u = lam.flip(0), u.flip(1)
    s2 = lam[K:].mean()
    w_ml = u[:, :K] * (lam[:K] - s2).sqrt()
    ml = torch.distributions.MultivariateNormal(xd.mean(0), w_ml @ w_ml.T + s2 * torch.eye(D,
                                                dtype=torch.float64)).log_prob(xd).mean()
    exact = exact_log_likelihood(model, x).mean()
    assert exact <= ml + 1e-6
    assert ml - exact < 0.1, (float(ml), float(exact))
