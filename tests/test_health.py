"""No silent nonsense: the SVGP's Monte Carlo KL after a Titsias start, and fit's guards against a
negative KL, an ELBO above the likelihood's maximum, a q(u) factor beyond float precision and a
non-finite loss whose advice must work when followed."""

import math
import re
from dataclasses import replace

import pyro.distributions as dist
import pytest
import torch

import guides
import guides.svgp_marginal as gsvgp
import models
from experiments.engine import health
from experiments.engine.settings import FitConfig, RunOptions
from experiments.engine.training import fit
from guides.base import ImplausibleSettingWarning


def _table(n=2000, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = torch.sin(x[:, 0]) + 0.5 * x[:, 1] + 0.01 * torch.randn(n, generator=g)
    return x, y


def _titsias_svgp(x, y, noise_std, num_inducing=32, **guide_cfg):
    model = models.create_model("svgp", input_dim=x.shape[1], num_inducing=num_inducing,
                                noise_std=noise_std)
    guide = guides.create_guide("cholesky", model, **guide_cfg)
    model.initialize_inducing(x, seed=0)
    guide(x[:2], y[:2])
    guide.set_q_u(*model.optimal_q_u(x, y))
    return model, guide


def _config(**kw):
    return FitConfig(**{"epochs": 2, "lr": 1e-2, "batch_size": 128, **kw})


RUN = RunOptions(device="cpu", progress=False)


def test_drawn_mvn_scores_its_own_draw_exactly_at_an_ill_conditioned_factor():
    """The cause of the KL explosion: log q(u) by a float32 triangular solve with R of condition
    number ~1e20 (small diagonal after a Titsias start, off-diagonals moved by one Adam step) is
    off by orders of magnitude; from the draw's own eps it is exact."""
    m = 32
    tril = torch.full((m, m), 1e-2).tril(-1) + torch.diag(torch.full((m,), 1e-3))
    loc = torch.randn(m, generator=torch.Generator().manual_seed(1))
    q = gsvgp.DrawnMultivariateNormal(loc, scale_tril=tril)
    torch.manual_seed(0)
    u = q.rsample()
    eps = q._draw[1].double()
    exact = (-0.5 * eps.pow(2).sum() - tril.double().diagonal().log().sum()
             - 0.5 * m * math.log(2 * math.pi))
    assert float(q.log_prob(u)) == pytest.approx(float(exact), rel=1e-5)
    by_solve = float(dist.MultivariateNormal(loc, scale_tril=tril).log_prob(u))
    assert abs(by_solve - float(exact)) > 1e3  # what the trace ELBO used before


def test_trace_elbo_after_a_titsias_start_never_reports_a_negative_kl():
    """The NaN at step 3 / the KL of -1e27, on a small table: low noise, Titsias start, trace
    ELBO, Adam at lr 1e-2. Before the fix the ELBO went to +2e24 in epoch 1 (log q(u) by the
    solve); now it trains with KL >= 0."""
    x, y = _table()
    model, guide = _titsias_svgp(x, y, noise_std=0.03)
    state = fit(model, guide, (x, y), _config(elbo="trace"), RUN)
    assert all(r["kl"] > 0 and math.isfinite(r["elbo"]) for r in state.history)


def test_broken_kl_estimate_is_an_error_naming_the_epoch_and_what_to_try(monkeypatch):
    """Put the solve back (the code before the fix): fit must stop in epoch 1 with the quantity,
    the epoch and the pair's advice, instead of reporting 'ok'."""
    monkeypatch.setattr(gsvgp.DrawnMultivariateNormal, "log_prob",
                        lambda self, v: dist.MultivariateNormal.log_prob(self, v))
    x, y = _table()
    model, guide = _titsias_svgp(x, y, noise_std=0.03)
    with pytest.raises((health.ImplausibleFitError, FloatingPointError)) as err:
        fit(model, guide, (x, y), _config(elbo="trace"), RUN)
    msg = str(err.value)
    assert "epoch 1" in msg and "fit.elbo=meanfield" in msg


def test_q_u_beyond_float_precision_is_an_error_and_its_advice_works():
    """Adam's first steps move every off-diagonal entry of R by about lr, against a diagonal of
    sigma/sqrt(N lambda): with the noise started at 0.01 R leaves float32 precision in epoch 1.
    The error names the condition number; following its advice (natural gradients) trains."""
    x, y = _table()
    model, guide = _titsias_svgp(x, y, noise_std=0.01)
    with pytest.raises(health.ImplausibleFitError, match="condition number") as err:
        fit(model, guide, (x, y), _config(elbo="meanfield"), RUN)
    assert "epoch 1" in str(err.value)
    assert "--set guide_cfg.natural_gradient=true" in str(err.value)
    model, guide = _titsias_svgp(x, y, noise_std=0.01, natural_gradient=True)
    state = fit(model, guide, (x, y), _config(elbo="meanfield"), RUN)
    assert all(r["kl"] > 0 for r in state.history)
    assert guide.numerical_problems() == []


def _settings(message: str) -> dict:
    return dict(re.findall(r"--set fit\.(\w+)=([0-9.e+-]+)", message))


@pytest.mark.parametrize("pair", [("mlp", "deterministic"), ("bnn", "mean-field")])
def test_non_finite_loss_advice_works_when_followed(pair):
    """lr=100 makes the loss non-finite at step 2; the message's first setting trains."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 3, generator=g)
    y = 5 * x[:, 0] + torch.randn(256, generator=g)

    def run(cfg):
        model = models.create_model(pair[0], in_features=3, widths=[32])
        return fit(model, guides.create_guide(pair[1], model), (x, y), cfg, RUN)

    cfg = _config(lr=100.0, epochs=20, batch_size=128)
    with pytest.warns(ImplausibleSettingWarning, match="lr=100 is above the plausible range"), \
            pytest.raises(FloatingPointError, match="non-finite") as err:
        run(cfg)
    advice = _settings(str(err.value))
    assert "lr" in advice
    state = run(replace(cfg, lr=float(advice["lr"])))
    assert math.isfinite(state.history[-1]["loss"])
    assert state.history[-1]["loss"] < state.history[0]["loss"]


class _State:
    def __init__(self, model, guide, epochs=10, epoch=1):
        self.model, self.guide = model, guide
        self.config = FitConfig(epochs=epochs)
        self.epoch = epoch


def test_kl_check_allows_monte_carlo_noise_and_refuses_a_negative_mean():
    model = models.create_model("bnn", in_features=2, widths=[4])
    guide = guides.create_guide("mean-field", model)
    model.num_data = 100
    state = _State(model, guide)
    row = {"epoch": 1, "loss": 300.0, "log_likelihood": -200.0}
    # ten steps with KL estimates 100 +- 300: a mean of 100, fine
    noisy = [100.0 + 300.0 * (-1) ** i for i in range(10)]
    ok = health.epoch_problem(state, row, health.KLPool(), 10,
                              (sum(noisy), sum(v * v for v in noisy)))
    assert ok is None
    # ten steps of about -50 with a spread of 1: impossible
    bad = [-50.0 + (-1) ** i for i in range(10)]
    msg = health.epoch_problem(state, row, health.KLPool(), 10,
                               (sum(bad), sum(v * v for v in bad)))
    assert msg is not None and "KL term is -50" in msg and "epoch 1" in msg
    # a point estimate's "kl" is -log p(w), which may be negative: not checked
    map_guide = guides.create_guide("map", model)
    assert health.epoch_problem(_State(model, map_guide), row, health.KLPool(), 10,
                                (sum(bad), sum(v * v for v in bad))) is None


def test_elbo_above_the_likelihoods_maximum_is_an_error():
    model = models.create_model("bnn", in_features=2, widths=[4], task="classification",
                                out_features=3, likelihood="categorical")
    guide = guides.create_guide("mean-field", model)
    model.num_data = 100
    assert model.likelihood.max_log_density() == 0.0
    # a classifier's log-likelihood is <= 0; +4e27 (the SVGP's report before the fix) is not
    row = {"epoch": 3, "loss": -4.4e27, "log_likelihood": 4.4e27}
    msg = health.epoch_problem(_State(model, guide, epoch=3), row, health.KLPool(), 10,
                               (10 * 5.0, 10 * 25.0))
    assert msg is not None and "epoch 3" in msg and "above" in msg
    fine = {"epoch": 3, "loss": 60.0, "log_likelihood": -50.0}
    assert health.epoch_problem(_State(model, guide, epoch=3), fine, health.KLPool(), 10,
                                (10 * 10.0, 10 * 100.0)) is None


def test_gaussian_and_student_t_maxima():
    g = models.likelihoods.GaussianLikelihood(noise_std=0.5)
    assert g.max_log_density() == pytest.approx(
        float(torch.distributions.Normal(0.0, 0.5).log_prob(torch.tensor(0.0))), rel=1e-6)
    t = models.likelihoods.StudentTLikelihood(df=4.0, noise_std=0.5)
    assert t.max_log_density() == pytest.approx(
        float(torch.distributions.StudentT(4.0, 0.0, 0.5).log_prob(torch.tensor(0.0))), rel=1e-5)
