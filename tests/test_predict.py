"""The one prediction API (experiments.engine.predict): oracles per family, the variance split,
units, devices and the errors for bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import guides
import models
from experiments.engine import metrics as M
from experiments.engine.predict import Prediction, predict
from experiments.engine.predictive import posterior_predictive
from experiments.engine.settings import FitConfig, RunOptions
from experiments.engine.training import fit

QUIET = dict(checkpoint=False, tensorboard=False)
RUN = RunOptions(progress=False, device="cpu")


def _trained(model_name, guide_name, epochs=30, n=64, lr=1e-2, **model_cfg):
    model = models.create_model(model_name, **model_cfg)
    guide = guides.create_guide(guide_name, model)
    data = model.example_data(n, torch.Generator().manual_seed(0))
    fit(model, guide, data, FitConfig(epochs=epochs, batch_size=n, lr=lr, **QUIET), RUN)
    return model, guide, data


# ------------------------------------------------------------------------------------------------
# SVGP: closed form


def test_svgp_gaussian_equals_the_exact_gp_with_z_equal_x():
    """With Z = X and Titsias' optimal q(u) the SVGP predictive is the exact GP's: mean
    k*ᵀ(K + σ²I)⁻¹y, variance k** - k*ᵀ(K + σ²I)⁻¹k* + σ², and the log-likelihood is that of
    this Gaussian (an independent computation in float64)."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(12, 1, generator=g, dtype=torch.float64) * 4
    y = torch.sin(x[:, 0]) + 0.1 * torch.randn(12, generator=g, dtype=torch.float64)
    model = models.create_model("svgp", input_dim=1, num_inducing=12, dtype="float64",
                                noise_std=0.2, learn_noise=False, jitter=1e-12)
    guide = guides.create_guide("cholesky", model)
    model.initialize_inducing(x, method="data")
    guide(x[:2], y[:2])
    guide.set_q_u(*model.optimal_q_u(x, y))
    xs = torch.linspace(-1, 5, 7, dtype=torch.float64)[:, None]
    ys = torch.sin(xs[:, 0])
    pred = predict(model, guide, xs, y=ys)

    with torch.no_grad():
        K = model.kernel(x).to_dense() + 0.04 * torch.eye(12, dtype=torch.float64)
        Ks = model.kernel(xs, x).to_dense()
        kss = model.kernel(xs, diag=True)
    mean = Ks @ torch.linalg.solve(K, y)
    f_var = kss - (Ks * torch.linalg.solve(K, Ks.T).T).sum(-1)
    torch.testing.assert_close(pred.mean, mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(pred.epistemic, f_var, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(pred.aleatoric, torch.full_like(f_var, 0.04))
    torch.testing.assert_close(pred.variance, pred.epistemic + pred.aleatoric, rtol=0, atol=0)
    oracle = torch.distributions.Normal(mean, (f_var + 0.04).sqrt()).log_prob(ys)
    assert pred.log_likelihood == pytest.approx(float(oracle.mean()), rel=1e-5)
    torch.testing.assert_close(pred.log_likelihood_per_point, oracle, rtol=1e-5, atol=1e-6)
    assert pred.num_samples == 0 and pred.probs is None


def test_svgp_bernoulli_probabilities_match_quadrature():
    """P(y=1) = E_{N(m, v)}[σ(f)] by Monte Carlo over the closed-form marginal, against
    Gauss-Hermite quadrature of the same integral."""
    model, guide, (x, y) = _trained("svgp", "cholesky", input_dim=2, num_inducing=8,
                                    likelihood="bernoulli")
    pred = predict(model, guide, x, num_samples=20000, y=y, seed=0)
    moments = model.predict(x, guide)
    m, v = moments["f_mean"][:, 0].double(), moments["f_var"][:, 0].double()
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    nodes, weights = torch.as_tensor(nodes), torch.as_tensor(weights) / math.sqrt(2 * math.pi)
    p1 = (torch.sigmoid(m[:, None] + v.sqrt()[:, None] * nodes) * weights).sum(-1)
    torch.testing.assert_close(pred.mean.double(), p1, atol=0.01, rtol=0)
    assert pred.probs.shape == (64, 2)
    torch.testing.assert_close(pred.probs.sum(-1), torch.ones(64))
    # LL of the labels is log of the predictive probability of the true class
    p_true = pred.probs.gather(1, y.long()[:, None])[:, 0]
    assert pred.log_likelihood == pytest.approx(float(p_true.log().mean()), abs=1e-4)


def test_svgp_softmax_probs_sum_to_one_and_variance_splits():
    model, guide, (x, y) = _trained("svgp", "cholesky", input_dim=2, num_inducing=8,
                                    likelihood="softmax", num_classes=3)
    pred = predict(model, guide, x, num_samples=200, y=y, seed=0)
    assert pred.kind == "classification" and pred.probs.shape == (64, 3)
    torch.testing.assert_close(pred.probs.sum(-1), torch.ones(64))
    torch.testing.assert_close(pred.mean, pred.probs)
    torch.testing.assert_close(pred.epistemic + pred.aleatoric, pred.variance)
    # Var of the one-hot label under the predictive: p(1 - p)
    torch.testing.assert_close(pred.variance, pred.probs * (1 - pred.probs), rtol=1e-5,
                               atol=1e-6)
    assert pred.log_likelihood == pytest.approx(-M.nll(pred.probs, y), abs=1e-5)


# ------------------------------------------------------------------------------------------------
# Monte Carlo families


def test_bnn_moments_agree_with_posterior_predictive_samples():
    """Mean and epistemic variance are the moments of the f draws (the same draws for the same
    seed); the total variance is that of y: the obs draws' variance within Monte Carlo error."""
    model, guide, (x, y) = _trained("bnn", "mean-field", in_features=2, widths=(8,))
    x = x[:16]
    pred = predict(model, guide, x, num_samples=4000, seed=5, return_samples=True,
                   sample_chunk=4000)
    draws = posterior_predictive(model, guide, x, num_samples=4000, seed=5, sample_chunk=4000)
    f, obs = draws["f"][..., 0], draws["obs"]
    torch.testing.assert_close(pred.samples, f)
    torch.testing.assert_close(pred.mean, f.mean(0))
    torch.testing.assert_close(pred.epistemic, f.var(0, unbiased=False))
    noise = model.likelihood.noise_std.item()
    torch.testing.assert_close(pred.aleatoric, torch.full((16,), noise ** 2))
    torch.testing.assert_close(pred.variance, pred.epistemic + pred.aleatoric, rtol=0, atol=0)
    sd = pred.variance.sqrt()
    assert ((obs.mean(0) - pred.mean).abs() < 5 * sd / math.sqrt(4000)).all()
    torch.testing.assert_close(obs.var(0), pred.variance, rtol=0.12, atol=0)


def test_bnn_log_likelihood_is_log_mean_exp_over_draws():
    model, guide, (x, y) = _trained("bnn", "mean-field", in_features=2, widths=(8,))
    pred = predict(model, guide, x, num_samples=50, y=y, seed=1, return_samples=True)
    lp = torch.distributions.Normal(pred.samples.double(),
                                    model.likelihood.noise_std.item()).log_prob(y.double())
    oracle = torch.logsumexp(lp, 0) - math.log(50)
    torch.testing.assert_close(pred.log_likelihood_per_point.double(), oracle, rtol=1e-5,
                               atol=1e-5)
    assert pred.log_likelihood == pytest.approx(float(oracle.mean()), rel=1e-5)


def test_heteroscedastic_aleatoric_is_the_mean_noise_variance():
    model, guide, (x, y) = _trained("bnn", "mean-field", in_features=2, widths=(8,),
                                    likelihood="heteroscedastic-gaussian", out_features=2)
    x = x[:16]
    pred = predict(model, guide, x, num_samples=4000, seed=2, sample_chunk=4000)
    draws = posterior_predictive(model, guide, x, num_samples=4000, seed=2, sample_chunk=4000)
    scale = torch.nn.functional.softplus(draws["f"][..., 1]) + model.likelihood.min_scale
    torch.testing.assert_close(pred.aleatoric, (scale ** 2).mean(0))
    torch.testing.assert_close(pred.variance, pred.epistemic + pred.aleatoric)
    torch.testing.assert_close(draws["obs"].var(0), pred.variance, rtol=0.12, atol=0)


def test_student_t_aleatoric_is_the_t_variance():
    model, guide, (x, y) = _trained("bnn", "mean-field", in_features=2, widths=(4,),
                                    likelihood="student-t", student_df=5.0)
    pred = predict(model, guide, x, num_samples=20, y=y, seed=0)
    s2 = model.likelihood.noise_std.item() ** 2
    torch.testing.assert_close(pred.aleatoric, torch.full((64,), s2 * 5 / 3))
    assert math.isfinite(pred.log_likelihood)


def test_rff_gp_moments_match_the_gaussian_weight_posterior():
    """f = φ(x)ᵀw with q(w) = N(μ, diag σ²): mean φᵀμ and epistemic (φ²)ᵀσ², within Monte
    Carlo error."""
    model, guide, (x, y) = _trained("rff-gp", "mean-field", in_features=2, num_features=16)
    x = x[:16]
    pred = predict(model, guide, x, num_samples=4000, seed=0, sample_chunk=4000)
    with torch.no_grad():
        phi = model.features(x)
        mu, sigma = guide.w_loc, guide.w_scale
    mean, var = phi @ mu, (phi ** 2) @ sigma ** 2
    assert ((pred.mean - mean).abs() < 5 * var.sqrt() / math.sqrt(4000) + 1e-6).all()
    torch.testing.assert_close(pred.epistemic, var, rtol=0.12, atol=1e-6)


@pytest.mark.parametrize("likelihood,cfg", [("categorical", dict(task="classification",
                                                                    out_features=3)),
                                           ("bernoulli", dict(likelihood="bernoulli"))])
def test_bnn_classification_probs_sum_to_one(likelihood, cfg):
    model, guide, (x, y) = _trained("bnn", "mean-field", in_features=2, widths=(8,), **cfg)
    pred = predict(model, guide, x, num_samples=30, y=y, seed=0, return_samples=True)
    c = 3 if likelihood == "categorical" else 2
    assert pred.kind == "classification" and pred.probs.shape == (64, c)
    assert pred.samples.shape == (30, 64, c)
    torch.testing.assert_close(pred.probs.sum(-1), torch.ones(64))
    torch.testing.assert_close(pred.probs, pred.samples.mean(0))
    torch.testing.assert_close(pred.epistemic + pred.aleatoric, pred.variance)
    if likelihood == "bernoulli":
        torch.testing.assert_close(pred.mean, pred.probs[:, 1])
    assert pred.log_likelihood == pytest.approx(-M.nll(pred.probs, y.long()), abs=1e-5)


def test_mc_dropout_and_laplace_predict():
    model, guide, (x, y) = _trained("mlp", "deterministic", in_features=2, widths=(8,),
                                    dropout=0.2)
    pred = predict(model, guide, x, num_samples=20, seed=0)
    assert (pred.epistemic > 0).all()  # the dropout masks differ between draws
    model, guide, data = _trained("bnn", "laplace", epochs=300, in_features=2, widths=())
    with pytest.raises(ValueError, match="train_data"):
        predict(model, guide, data[0])
    pred = predict(model, guide, data[0], num_samples=20, seed=0, train_data=data)
    assert (pred.epistemic > 0).all() and pred.mean.shape == (64,)


def test_vae_reconstruction_and_iwae_log_likelihood():
    model, guide, (x,) = _trained("vae", "encoder", epochs=5, image_shape=(4, 3), z_dim=2,
                                  hidden=(5,))
    pred = predict(model, guide, x[:10], num_samples=20, seed=0, return_samples=True)
    assert pred.kind == "reconstruction" and pred.mean.shape == (10, 4, 3)
    assert pred.samples.shape == (20, 10, 4, 3) and ((pred.mean >= 0) & (pred.mean <= 1)).all()
    torch.testing.assert_close(pred.mean, pred.samples.mean(0))
    assert pred.variance is None and pred.log_likelihood_per_point.shape == (10,)
    assert math.isfinite(pred.log_likelihood) and pred.log_likelihood < 0
    with pytest.raises(ValueError, match="without y"):
        predict(model, guide, x[:10], y=torch.zeros(10))


# ------------------------------------------------------------------------------------------------
# units, devices, errors


def test_to_original_units():
    pred = Prediction("regression", mean=torch.tensor([0.0, 1.0]),
                      variance=torch.tensor([1.0, 4.0]), epistemic=torch.tensor([0.5, 3.0]),
                      aleatoric=torch.tensor([0.5, 1.0]), samples=torch.zeros(3, 2),
                      log_likelihood=-1.0, log_likelihood_per_point=torch.tensor([-1.0, -1.0]))
    out = pred.to_original_units(10.0, 2.0)
    torch.testing.assert_close(out.mean, torch.tensor([10.0, 12.0]))
    torch.testing.assert_close(out.sd, torch.tensor([2.0, 4.0]))
    torch.testing.assert_close(out.epistemic + out.aleatoric, out.variance)
    torch.testing.assert_close(out.samples, torch.full((3, 2), 10.0))
    assert out.log_likelihood == pytest.approx(-1.0 - math.log(2.0))
    with pytest.raises(ValueError, match="regression"):
        dataclass_cls = Prediction("classification", mean=torch.zeros(2))
        dataclass_cls.to_original_units(0.0, 1.0)


def test_inputs_on_the_models_device_results_on_the_cpu(device):
    model, guide, (x, y) = _trained("bnn", "mean-field", in_features=2, widths=(4,))
    model.to(device)
    guide.to(device)
    pred = predict(model, guide, x.numpy(), num_samples=5, y=y.to(device), seed=0)
    assert pred.mean.device.type == "cpu" and pred.log_likelihood_per_point.device.type == "cpu"
    svgp, sguide, (xs, ys) = _trained("svgp", "cholesky", input_dim=2, num_inducing=4)
    svgp.to(device)
    sguide.to(device)
    pred = predict(svgp, sguide, xs.to(device), y=ys)
    assert pred.variance.device.type == "cpu"


@pytest.mark.parametrize("bad,match", [
    (torch.zeros(5, 3), r"shape \(N, 2\).*got shape \(5, 3\)"),
    (torch.zeros(5), r"shape \(N, 2\).*got shape \(5,\)"),
    (torch.zeros(0, 2), "empty"),
    (torch.tensor([[0.0, 1.0], [float("nan"), 0.0], [0.0, float("inf")]]),
     r"NaN or inf in 2 row\(s\) \(first: \[1, 2\]\)"),
    ("abc", "array of numbers|real numbers"),
])
def test_bad_inputs_are_clear_errors(bad, match):
    model = models.create_model("bnn", in_features=2, widths=(4,))
    guide = guides.create_guide("mean-field", model)
    with pytest.raises(ValueError, match=match):
        predict(model, guide, bad)


def test_bad_targets_are_clear_errors():
    model, guide, (x, y) = _trained("bnn", "mean-field", epochs=1, in_features=2, widths=(4,),
                                    task="classification", out_features=3)
    with pytest.raises(ValueError, match=r"shape \(N,\) = \(64,\)"):
        predict(model, guide, x, y=y[:10])
    with pytest.raises(ValueError, match=r"class labels in \[0, 3\).*\[7, 7\]"):
        predict(model, guide, x, y=torch.full((64,), 7))
    reg, rguide, (xr, yr) = _trained("bnn", "mean-field", epochs=1, in_features=2, widths=(4,))
    yr = yr.clone()
    yr[3] = float("nan")
    with pytest.raises(ValueError, match=r"y holds NaN or inf at rows \[3\]"):
        predict(reg, rguide, xr, y=yr)
    with pytest.raises(ValueError, match="num_samples"):
        predict(reg, rguide, xr, num_samples=0)
