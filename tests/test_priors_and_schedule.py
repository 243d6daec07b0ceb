"""Weight priors (Blundell's scale mixture, validation) and the minibatch KL schedule (weights,
the :class:`KLScale` handler, and its use by :func:`fit`)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from scipy import stats
from scipy.special import logsumexp

import guides
import models
from experiments.engine import step as engine_step
from experiments.engine.elbo import make_elbo
from experiments.engine.kl_schedule import KLScale, kl_weights
from experiments.engine.settings import FitConfig, RunOptions
from experiments.engine.training import fit
from models.priors import ScaleMixtureGaussian, WeightPrior

# ---------------------------------------------------------------------------------------------
# ScaleMixtureGaussian

GRID = np.array([0.0, 1e-6, -1e-3, 2e-3, 0.01, -0.05, 0.3, -1.0, 2.5, -7.0, 30.0, -200.0, 1e4])


def _reference_log_prob(w, pi, s1, s2):
    """log(π N(w | 0, s1²) + (1 − π) N(w | 0, s2²)) with scipy, in log space (no underflow)."""
    return logsumexp(np.stack([np.log(pi) + stats.norm.logpdf(w, 0.0, s1),
                               np.log1p(-pi) + stats.norm.logpdf(w, 0.0, s2)]), axis=0)


@pytest.mark.parametrize("pi, s1, s2", [(0.5, 1.0, math.exp(-6.0)), (0.25, math.exp(-1.0),
                                                                      math.exp(-8.0)),
                                        (0.75, 2.0, 0.5)])
def test_scale_mixture_log_prob_matches_scipy(pi, s1, s2):
    d = ScaleMixtureGaussian(pi, s1, s2)
    ours = d.log_prob(torch.tensor(GRID, dtype=torch.float64)).double().numpy()
    ref = _reference_log_prob(GRID, pi, s1, s2)
    assert np.all(np.isfinite(ours))  # even at |w| = 1e4, where the narrow density is exp(-1e14)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-5)
    # and the naive density formula where it does not underflow
    small = np.abs(GRID) < 5 * s1
    naive = np.log(pi * stats.norm.pdf(GRID[small], 0, s1)
                   + (1 - pi) * stats.norm.pdf(GRID[small], 0, s2))
    np.testing.assert_allclose(ours[small], naive, rtol=1e-6, atol=1e-5)


def test_scale_mixture_log_prob_in_float64_is_exact():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        d = ScaleMixtureGaussian(0.3, 1.5, 0.01)
        ours = d.log_prob(torch.tensor(GRID)).numpy()
    finally:
        torch.set_default_dtype(old)
    np.testing.assert_allclose(ours, _reference_log_prob(GRID, 0.3, 1.5, 0.01), rtol=1e-12)


def test_scale_mixture_log_prob_broadcasts_parameters():
    pi = torch.tensor([0.2, 0.5, 0.8])
    d = ScaleMixtureGaussian(pi, 1.0, 0.1)
    assert d.batch_shape == (3,) and d.event_shape == ()
    w = torch.tensor([[0.05], [1.0]])  # (2, 1) against batch (3,) -> (2, 3)
    lp = d.log_prob(w)
    assert lp.shape == (2, 3)
    for i in range(3):
        ref = _reference_log_prob(w[:, 0].numpy().astype(np.float64), float(pi[i]), 1.0, 0.1)
        np.testing.assert_allclose(lp[:, i].numpy(), ref, rtol=1e-5)


def test_scale_mixture_sample_moments():
    pi, s1, s2 = 0.25, 1.0, math.exp(-6.0)
    d = ScaleMixtureGaussian(pi, s1, s2)
    n = 400_000
    w = d.sample((n,)).double()
    assert w.shape == (n,)
    var = pi * s1**2 + (1 - pi) * s2**2
    fourth = 3 * (pi * s1**4 + (1 - pi) * s2**4)  # E w⁴ of the mixture
    assert float(d.variance) == pytest.approx(var, rel=1e-6)
    assert float(d.mean) == 0.0
    # within 4 standard errors: SE(mean) = sqrt(var / n), SE(mean of w²) = sqrt((E w⁴ − var²) / n)
    assert abs(w.mean().item()) < 4 * math.sqrt(var / n)
    assert abs((w**2).mean().item() - var) < 4 * math.sqrt((fourth - var**2) / n)
    # π is the weight of the *wide* component: P(|w| > 20 σ2) = π P(|z| > 20 σ2/σ1) ≈ 0.99 π
    p_wide = pi * 2 * stats.norm.sf(20 * s2 / s1)
    frac = (w.abs() > 20 * s2).double().mean().item()
    assert abs(frac - p_wide) < 4 * math.sqrt(p_wide * (1 - p_wide) / n)


def test_scale_mixture_expand_and_sample_shapes():
    d = ScaleMixtureGaussian(0.5, 1.0, 0.1)
    assert d.batch_shape == ()
    e = d.expand((3, 4))
    assert isinstance(e, ScaleMixtureGaussian)
    assert e.batch_shape == (3, 4) and e.event_shape == ()
    assert e.sample().shape == (3, 4)
    assert e.sample((5,)).shape == (5, 3, 4)
    v = torch.randn(3, 4)
    torch.testing.assert_close(e.log_prob(v), d.log_prob(v))
    assert e.variance.shape == (3, 4) and e.mean.shape == (3, 4)
    # as the BNN uses it: an event of the weight matrix's shape
    prior = WeightPrior(kind="scale-mixture", mixture_weight=0.5, sigma1=1.0, sigma2=0.1)
    p = prior((2, 3))
    assert p.batch_shape == () and p.event_shape == (2, 3)
    w = torch.randn(2, 3)
    torch.testing.assert_close(p.log_prob(w), d.log_prob(w).sum())
    assert p.sample((7,)).shape == (7, 2, 3)


def test_gaussian_weight_prior():
    prior = WeightPrior(kind="gaussian", sigma=0.7)
    p = prior((4, 3))
    assert p.event_shape == (4, 3) and p.batch_shape == ()
    w = torch.randn(4, 3)
    ref = stats.norm.logpdf(w.double().numpy(), 0.0, 0.7).sum()
    assert float(p.log_prob(w)) == pytest.approx(ref, rel=1e-5)


# ---------------------------------------------------------------------------------------------
# WeightPrior validation


@pytest.mark.parametrize("kwargs, match", [
    ({"kind": "laplace"}, "kind"),
    ({"kind": "Gaussian"}, "kind"),
    ({"sigma": 0.0}, "sigma"),
    ({"sigma": -1.0}, "sigma"),
    ({"sigma": float("nan")}, "sigma"),
    ({"kind": "scale-mixture", "sigma1": 0.0}, "sigma1"),
    ({"kind": "scale-mixture", "sigma2": -0.1}, "sigma2"),
    ({"kind": "scale-mixture", "mixture_weight": 0.0}, "mixture_weight"),
    ({"kind": "scale-mixture", "mixture_weight": 1.0}, "mixture_weight"),
    ({"kind": "scale-mixture", "mixture_weight": -0.2}, "mixture_weight"),
    ({"kind": "scale-mixture", "mixture_weight": 1.5}, "mixture_weight"),
])
def test_weight_prior_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WeightPrior(**kwargs)


def test_bad_prior_reaches_the_user_through_the_model():
    with pytest.raises(ValueError, match="kind"):
        models.create_model("bnn", in_features=2, widths=(), prior={"kind": "cauchy"})


# ---------------------------------------------------------------------------------------------
# kl_weights


@pytest.mark.parametrize("schedule", ["uniform", "blundell"])
@pytest.mark.parametrize("m", [1, 2, 5, 100, 2000])
def test_kl_weights_sum_to_one(schedule, m):
    w = kl_weights(m, schedule)
    assert len(w) == m
    assert all(math.isfinite(x) and x >= 0 for x in w)
    assert math.fsum(w) == pytest.approx(1.0, abs=1e-12)
    # the per-batch KL scale M π_i that fit() applies averages to 1 over an epoch
    assert math.fsum(m * x for x in w) / m == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("m", [1, 2, 3, 5, 10, 30, 60])
def test_blundell_weights_exact_for_small_m(m):
    w = kl_weights(m, "blundell")
    exact = [Fraction(2 ** (m - i), 2**m - 1) for i in range(1, m + 1)]
    for got, want in zip(w, exact):
        assert got == pytest.approx(float(want), rel=1e-12, abs=0)
    assert all(a > b for a, b in zip(w, w[1:]))


def test_blundell_weights_for_large_m_do_not_overflow():
    w = kl_weights(2000, "blundell")  # 2**2000 overflows a double
    assert w[0] == pytest.approx(0.5, rel=1e-12)
    assert all(a >= b for a, b in zip(w, w[1:]))
    positive = [x for x in w if x > 0]
    assert all(a > b for a, b in zip(positive, positive[1:]))
    assert w[9] == pytest.approx(2.0**-10, rel=1e-12)


def test_uniform_weights_and_errors():
    assert kl_weights(4, "uniform") == [0.25] * 4
    with pytest.raises(ValueError, match="num_batches"):
        kl_weights(0)
    with pytest.raises(ValueError, match="schedule"):
        kl_weights(3, "linear")


# ---------------------------------------------------------------------------------------------
# KLScale


def _tiny_model(n_sub=4, n_total=10):
    g = pyro.sample("g", dist.Normal(0.0, 1.0))  # global latent
    with pyro.plate("features", 3):
        h = pyro.sample("h", dist.Normal(0.0, 1.0))  # global latent in a non-data plate
    with pyro.plate("data", n_total, subsample=torch.arange(n_sub)):
        z = pyro.sample("z", dist.Normal(g, 1.0))  # local latent
        pyro.sample("obs", dist.Normal(z + h.sum(), 1.0), obs=torch.zeros(n_sub))


def _scales(handler=None):
    model = _tiny_model if handler is None else handler(_tiny_model)
    tr = poutine.trace(model).get_trace()
    return {name: float(site["scale"]) for name, site in tr.nodes.items()
            if site["type"] == "sample"}


def test_kl_scale_scales_global_latents_only():
    base = _scales()
    assert base["obs"] == base["z"] == 2.5 and base["g"] == base["h"] == 1.0
    scaled = _scales(lambda m: KLScale(0.3)(m))
    assert scaled["g"] == pytest.approx(0.3) and scaled["h"] == pytest.approx(0.3)
    assert scaled["z"] == 2.5  # inside the data plate
    assert scaled["obs"] == 2.5  # observed
    assert scaled["data"] == base["data"]  # the plate's subsample site
    with_local = _scales(lambda m: KLScale(0.3, include_local=True)(m))
    assert with_local["z"] == pytest.approx(0.75) and with_local["obs"] == 2.5
    assert with_local["g"] == pytest.approx(0.3)


def test_kl_scale_composes_and_validates():
    nested = _scales(lambda m: KLScale(0.5)(KLScale(4.0)(m)))
    assert nested["g"] == pytest.approx(2.0) and nested["obs"] == 2.5
    assert _scales(lambda m: KLScale(0.0)(m))["g"] == 0.0
    with pytest.raises(ValueError, match="scale"):
        KLScale(-1.0)
    with pytest.raises(ValueError, match="scale"):
        KLScale(float("nan"))


def _blr_pair(**guide_cfg):
    model = models.create_model("bnn", in_features=2, widths=(), noise_std=0.5, learn_noise=False,
                                prior={"kind": "gaussian", "sigma": 1.0})
    return model, guides.create_guide("mean-field", model, init_scale=0.3, **guide_cfg)


def _data(n=24):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(n, 2, generator=g)
    return x, x @ torch.tensor([1.0, -1.0]) + 0.5 * torch.randn(n, generator=g)


@pytest.mark.parametrize("c", [0.0, 0.25, 1.0, 3.0])
def test_kl_scale_scales_the_closed_form_kl_and_the_monte_carlo_kl(c):
    """loss = c·KL − E log-lik: the handler reaches the guide's site too (closed-form KL uses its
    scale), and for the trace ELBO both log p(w) and log q(w) are scaled."""
    x, y = _data()
    model, guide = _blr_pair()
    guide(x, y)
    q = dist.Normal(guide.w0_loc.detach(), guide.w0_scale.detach()).to_event(2)
    kl = float(torch.distributions.kl_divergence(q, model.prior((1, 3))))
    mf = make_elbo("meanfield")
    with torch.no_grad(), KLScale(c):
        kl_part = float(mf.differentiable_loss(model, guide, x, y)) + float(mf.last_log_likelihood)
    assert kl_part == pytest.approx(c * kl, rel=1e-5, abs=1e-5)

    tr = make_elbo("trace")
    with torch.no_grad():
        pyro.set_rng_seed(7)
        unscaled = float(tr.differentiable_loss(model, guide, x, y)) + float(tr.last_log_likelihood)
        pyro.set_rng_seed(7)
        with KLScale(c):
            scaled = float(tr.differentiable_loss(model, guide, x, y)) + float(tr.last_log_likelihood)
    assert scaled == pytest.approx(c * unscaled, rel=1e-4, abs=1e-4)


# ---------------------------------------------------------------------------------------------
# fit with a KL schedule


@pytest.mark.parametrize("schedule", ["uniform", "blundell"])
def test_fit_applies_the_schedule_per_minibatch(monkeypatch, schedule):
    """fit() weights minibatch i of every epoch by M π_i (``KLScale``, none when the weight is
    exactly 1): recorded scales equal the schedule's, in order, and average to 1 per epoch."""
    seen = []
    kl_scale = engine_step._kl_scale

    def recording_kl_scale(scale):
        seen.append(scale)
        return kl_scale(scale)

    monkeypatch.setattr(engine_step, "_kl_scale", recording_kl_scale)
    x, y = _data(24)
    model, guide = _blr_pair()
    epochs, batch = 3, 5  # M = 5 minibatches, the last one of 4 rows
    state = fit(model, guide, (x, y), FitConfig.from_dict({"epochs": epochs, "batch_size": batch, "lr": 0.01,
                                                           "elbo": "meanfield", "kl_schedule": schedule}),
                                      RunOptions(progress=False, device="cpu"))
    m = math.ceil(24 / batch)
    expected = [m * w for w in kl_weights(m, schedule)]
    assert len(seen) == epochs * m
    for e in range(epochs):
        assert seen[e * m:(e + 1) * m] == pytest.approx(expected, rel=1e-12)
        assert math.fsum(seen[e * m:(e + 1) * m]) / m == pytest.approx(1.0, abs=1e-12)
    if schedule == "blundell":
        assert seen[0] > 1 > seen[m - 1]
    assert len(state.history) == epochs
    assert all(math.isfinite(row["loss"]) and row["kl"] > 0 for row in state.history)


def test_fit_with_blundell_and_uniform_schedules_both_learn():
    """Both schedules optimise the same epoch objective: on a tiny problem they land close to
    each other (not identical: the per-step weighting differs)."""
    x, y = _data(24)
    locs = {}
    for schedule in ("uniform", "blundell"):
        model, guide = _blr_pair(local_reparam=True)
        state = fit(model, guide, (x, y), FitConfig.from_dict({"epochs": 60, "batch_size": 8, "lr": 0.05,
                                                               "elbo": "meanfield", "num_particles": 4,
                                                               "kl_schedule": schedule,
                                                               "lr_schedule": "cosine"}),
                                          RunOptions(progress=False, device="cpu"))
        assert state.history[-1]["loss"] < state.history[0]["loss"]
        locs[schedule] = guide.w0_loc.detach()[0]
    # posterior mean ≈ [1, -1, 0]; both are within 0.3 of it and of each other
    torch.testing.assert_close(locs["uniform"], locs["blundell"], atol=0.3, rtol=0)
    torch.testing.assert_close(locs["uniform"], torch.tensor([1.0, -1.0, 0.0]), atol=0.3, rtol=0)


def test_a_kl_weight_of_exactly_one_adds_no_handler_and_changes_nothing():
    """The uniform schedule's weight M * (1/M) is usually exactly 1: train_step then enters no
    KLScale (one handler fewer on every site); any other weight, or a tensor, still scales."""
    import contextlib

    assert isinstance(engine_step._kl_scale(1.0), contextlib.nullcontext)
    for scale in (1.0 - 1e-16 * 2, 0.5, torch.tensor(1.0)):
        assert isinstance(engine_step._kl_scale(scale), KLScale)
    with pytest.raises(ValueError, match="KL scale must be >= 0"):
        engine_step._kl_scale(float("nan"))
    model, guide = _blr_pair()
    x, y = _data(8)
    guide(x, y)
    losses = []
    for ctx in (KLScale(1.0), engine_step._kl_scale(1.0)):
        pyro.set_rng_seed(0)
        with ctx:
            losses.append(make_elbo("meanfield").differentiable_loss(model, guide, x, y).detach())
    assert torch.equal(losses[0], losses[1])
