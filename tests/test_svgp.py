"""The sparse variational GP pair against closed forms: the Z = X oracle (exact GP), Titsias'
bound, whitened vs unwhitened parameterisations, minibatch scaling, fresh q(u) at every step, and
clear errors on bad input. Everything analytic runs in float64, where the tolerances below are
far above round-off and the jitter's effect (stated per test) and far below any modelling
difference."""

from __future__ import annotations

import math

import pytest
import torch

import guides
import models
from experiments.engine.elbo import make_elbo
from experiments.engine.settings import FitConfig, RunOptions
from experiments.engine.training import fit, setup
from guides.svgp_marginal import MarginalizeInducing
from models.exact_gp import ExactGPRegression
from models.kernels import build_kernel
from models.sparse_gp import CholeskyError, stable_cholesky
from tests.helpers import experiment_config
from tests.pair_base import PairTestBase

KERNEL = {"type": "rbf", "lengthscale": 0.7, "outputscale": 1.3}
NOISE = 0.2


def _data(n=25, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=g, dtype=torch.float64) * 5
    y = torch.sin(2 * x[:, 0]) + NOISE * torch.randn(n, generator=g, dtype=torch.float64)
    return x, y


def _svgp(x, num_inducing, whiten=True, guide="cholesky", method="data", kernel=KERNEL):
    model = models.create_model("svgp", input_dim=1, num_inducing=num_inducing, kernel=kernel,
                                noise_std=NOISE, whiten=whiten, dtype="float64",
                                num_data=len(x))
    model.initialize_inducing(x, method=method)
    for p in model.parameters():  # hyperparameters fixed: only q(u) is variational
        p.requires_grad_(False)
    g = guides.create_guide(guide, model)
    g(x)  # lazy set-up
    return model, g


def _exact(x, y):
    return ExactGPRegression(x, y, build_kernel(KERNEL, 1).double(), noise_std=NOISE,
                             learn_noise=False)


def _elbo(model, guide, x, y):
    """The full-data ELBO: closed-form data term (marginalised q(f)) and closed-form KL, so it is
    deterministic."""
    loss = make_elbo("meanfield")(model, guide)
    with MarginalizeInducing():
        return -loss(x, y).item()


def test_exact_gp_reference_matches_direct_formula():
    x, y = _data()
    gp = _exact(x, y)
    K = build_kernel(KERNEL, 1).double()(x).to_dense() + NOISE**2 * torch.eye(len(x),
                                                                             dtype=x.dtype)
    direct = torch.distributions.MultivariateNormal(torch.zeros_like(y), K).log_prob(y)
    assert gp.log_marginal_likelihood().item() == pytest.approx(direct.item(), rel=1e-7)


def test_oracle_z_equals_x_closed_form_optimum():
    """With Z = X and Titsias' optimal q(u), the SVGP is the exact GP up to the jitter ε added to
    K_ZZ: the bound then carries tr(K − K(K + εI)⁻¹K)/(2σ²) ≈ Nε/(2σ²) (1.9e-6 nats here), and
    the predictive moments move by O(ε‖K⁻¹‖). A short lengthscale keeps K_XX well conditioned
    (smallest eigenvalue 1e-4), so ε = 1e-8 perturbs the moments by < 1e-6 (measured 5e-7)."""
    kernel = {**KERNEL, "lengthscale": 0.3}
    x, y = _data(n=15)
    model, guide = _svgp(x, len(x), kernel=kernel)
    guide.set_q_u(*model.optimal_q_u(x, y))
    gp = ExactGPRegression(x, y, build_kernel(kernel, 1).double(), noise_std=NOISE,
                           learn_noise=False)
    x_test = torch.linspace(-1, 6, 50, dtype=torch.float64).unsqueeze(-1)
    ours, exact = model.predict(x_test, guide), gp.predict(x_test)
    assert torch.allclose(ours["f_mean"][:, 0], exact["f_mean"], atol=1e-5)
    assert torch.allclose(ours["f_var"][:, 0], exact["f_var"], atol=1e-5)
    eps_bound = 2 * len(x) * model.jitter / NOISE**2
    assert _elbo(model, guide, x, y) == pytest.approx(gp.log_marginal_likelihood().item(),
                                                      abs=eps_bound)


# Adam at lr 0.02 oscillates about the optimum late in the run (the loss grows for 10 epochs near
# epoch 1400): the growth guard's advice is not what this test is about, the optimum is reached
@pytest.mark.filterwarnings("ignore:fit. the loss has grown for:guides.base.ImplausibleSettingWarning")
def test_oracle_z_equals_x_trained_by_svi():
    """The same optimum reached by the fit loop (Adam on q(u), hyperparameters fixed): within
    0.02 of the exact predictive mean/std (the prior std is 1.14) and 0.05 nats of log p(y)."""
    x, y = _data(n=15)
    model, guide = _svgp(x, len(x))
    fit(model, guide, (x, y), FitConfig.from_dict({"epochs": 1500, "batch_size": len(x), "lr": 0.02,
                                                   "elbo": "meanfield"}),
                              RunOptions(progress=False))
    gp = _exact(x, y)
    x_test = torch.linspace(0, 5, 30, dtype=torch.float64).unsqueeze(-1)
    ours, exact = model.predict(x_test, guide), gp.predict(x_test)
    assert (ours["f_mean"][:, 0] - exact["f_mean"]).abs().max() < 0.02
    assert (ours["f_var"][:, 0].sqrt() - exact["f_var"].sqrt()).abs().max() < 0.02
    assert _elbo(model, guide, x, y) == pytest.approx(gp.log_marginal_likelihood().item(),
                                                      abs=0.05)


@pytest.mark.parametrize("whiten", [True, False])
def test_fewer_inducing_points_elbo_below_evidence(whiten):
    """M < N: ELBO <= log p(y) at the optimal q(u) (Titsias' bound) and at the initial q(u)."""
    x, y = _data(n=30)
    log_evidence = _exact(x, y).log_marginal_likelihood().item()
    model, guide = _svgp(x, 6, whiten=whiten, method="kmeans")
    initial = _elbo(model, guide, x, y)
    guide.set_q_u(*model.optimal_q_u(x, y))
    optimal = _elbo(model, guide, x, y)
    assert initial < optimal <= log_evidence
    assert log_evidence - optimal > 1e-3  # 6 points cannot summarise sin(2x) on [0, 5] exactly


def test_titsias_bound_closed_form():
    """At the optimal q(u) the ELBO is Titsias' collapsed bound
    log N(y | 0, Q + σ²I) − tr(K − Q) / (2σ²)."""
    x, y = _data(n=30)
    model, guide = _svgp(x, 8, method="kmeans")
    guide.set_q_u(*model.optimal_q_u(x, y))
    k = build_kernel(KERNEL, 1).double()
    z = model.inducing_points.detach()
    Kzz = k(z).to_dense() + model.jitter * torch.eye(8, dtype=x.dtype)
    Kzx = k(z, x).to_dense()
    Q = Kzx.T @ torch.linalg.solve(Kzz, Kzx)
    cov = Q + NOISE**2 * torch.eye(len(x), dtype=x.dtype)
    bound = torch.distributions.MultivariateNormal(torch.zeros_like(y), cov).log_prob(y) \
        - (k(x, diag=True) - Q.diagonal()).sum() / (2 * NOISE**2)
    # measured 3e-8 relative: round-off through S = (I + AAᵀ/σ²)⁻¹ and its Cholesky
    assert _elbo(model, guide, x, y) == pytest.approx(bound.item(), rel=1e-6)


def test_whitened_and_unwhitened_give_the_same_predictive():
    """q(v) = N(m, RRᵀ) whitened corresponds to q(u) = N(L m, L RRᵀ Lᵀ): same predictive, same
    ELBO (the KL is invariant under the bijection u = L v)."""
    x, y = _data(n=30)
    white, gw = _svgp(x, 8, whiten=True, method="kmeans")
    plain, gu = _svgp(x, 8, whiten=False, method="kmeans")
    g = torch.Generator().manual_seed(1)
    m = torch.randn(1, 8, generator=g, dtype=torch.float64)
    R = torch.tril(torch.randn(1, 8, 8, generator=g, dtype=torch.float64)) * 0.3
    R.diagonal(dim1=-2, dim2=-1).abs_().add_(0.1)
    gw.set_q_u(m, R)
    L = white.conditional(x).L
    gu.set_q_u(m @ L.T, torch.linalg.cholesky(L @ R @ R.transpose(-1, -2) @ L.T))
    x_test = torch.linspace(-1, 6, 40, dtype=torch.float64).unsqueeze(-1)
    a, b = white.predict(x_test, gw), plain.predict(x_test, gu)
    assert torch.allclose(a["f_mean"], b["f_mean"], atol=1e-8)
    assert torch.allclose(a["f_var"], b["f_var"], atol=1e-8)
    assert _elbo(white, gw, x, y) == pytest.approx(_elbo(plain, gu, x, y), rel=1e-8)


def test_minibatch_elbo_is_unbiased():
    """The mean of the minibatch ELBO estimates over a partition of the data into equal batches
    (the expectation under random partitions) equals the full-batch ELBO."""
    x, y = _data(n=24)
    model, guide = _svgp(x, 5, method="kmeans")
    guide.set_q_u(*model.optimal_q_u(x, y))
    full = _elbo(model, guide, x, y)
    perm = torch.randperm(24, generator=torch.Generator().manual_seed(0))
    estimates = [_elbo(model, guide, x[idx], y[idx]) for idx in perm.split(6)]
    assert sum(estimates) / len(estimates) == pytest.approx(full, rel=1e-10)
    assert max(estimates) - min(estimates) > 1e-3  # the batches do differ


def test_q_u_used_at_each_step_is_the_current_one(monkeypatch):
    """GPyTorch's pyro_guide caches q(u) from the previous step; ours must use the parameters of
    this step. Record the q(u) that the training loss uses after each optimiser step and compare
    it with the guide's parameters at that moment. Plain Trace_ELBO, no retain_graph."""
    import models.sparse_gp as svgp_module

    x, y = _data(n=20)
    model = models.create_model("svgp", input_dim=1, num_inducing=5, dtype="float64")
    model.initialize_inducing(x, method="random")
    guide = guides.create_guide("cholesky", model)
    state = setup(model, guide, (x, y), FitConfig.from_dict({"batch_size": 20, "lr": 0.05, "elbo": "trace"}),
                                        RunOptions(progress=False))
    used = []
    real = svgp_module.marginal_moments

    def spy(cond, q_loc, q_tril):
        used.append((q_loc.detach().clone(), q_tril.detach().clone()))
        return real(cond, q_loc, q_tril)

    monkeypatch.setattr("guides.svgp_marginal.marginal_moments", spy)
    for _ in range(3):
        used.clear()
        with guide.elbo_context():
            loss = state.loss_fn(x, y)
        loss.backward()
        loc, tril = guide.q_u()
        assert len(used) == 1
        assert torch.equal(used[0][0], loc.detach()) and torch.equal(used[0][1], tril.detach())
        state.optimizer.step()
        state.optimizer.zero_grad()
    assert not torch.equal(used[0][0], torch.zeros_like(used[0][0]))  # it did move


def test_prediction_samples_match_closed_form_moments():
    """posterior_predictive (u ~ q, f ~ p(f | u), Monte Carlo) agrees with predict (closed form)."""
    from experiments.engine.predictive import posterior_predictive

    x, y = _data(n=30)
    model, guide = _svgp(x, 8, method="kmeans")
    guide.set_q_u(*model.optimal_q_u(x, y))
    x_test = torch.linspace(0, 5, 7, dtype=torch.float64).unsqueeze(-1)
    closed = model.predict(x_test, guide)
    pred = posterior_predictive(model, guide, x_test, num_samples=4000, sample_chunk=1000, seed=0)
    f = pred["f"][..., 0]
    sd = closed["f_var"][:, 0].sqrt()
    # 4000 samples: the mean's standard error is sd / 63; allow 5 of them
    assert ((f.mean(0) - closed["f_mean"][:, 0]).abs() < 5 * sd / math.sqrt(4000)).all()
    assert torch.allclose(f.std(0), sd, rtol=0.1)


@pytest.mark.parametrize("likelihood,extra", [("bernoulli", {}), ("student-t", {}),
                                              ("softmax", {"num_classes": 3})])
def test_other_likelihoods_train(likelihood, extra):
    model = models.create_model("svgp", input_dim=2, num_inducing=6, likelihood=likelihood,
                                **extra)
    x, y = model.example_data(60, torch.Generator().manual_seed(0))
    model.initialize_inducing(x)
    guide = guides.create_guide("cholesky", model)
    state = fit(model, guide, (x, y), FitConfig.from_dict({"epochs": 30, "batch_size": 20, "lr": 0.05,
                                                           "num_particles": 2}),
                                      RunOptions(progress=False))
    assert state.history[-1]["elbo"] > state.history[0]["elbo"]
    pred = model.predict(x[:4], guide)
    assert pred["f_mean"].shape == (4, model.num_latents)


# ---------------------------------------------------------------------------- bad input
def test_bad_inputs_have_clear_errors():
    x, y = _data(n=10)
    model, guide = _svgp(x, 4, method="random")
    with pytest.raises(ValueError, match=r"y must have shape \(10,\)"):
        model(x, y[:7])
    with pytest.raises(ValueError, match="different lengths"):
        fit(model, guide, (x, y[:7]), FitConfig.from_dict({"epochs": 1}), RunOptions(progress=False))
    x_nan = x.clone()
    x_nan[3, 0] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or inf in rows \[3\]"):
        fit(model, guide, (x_nan, y), FitConfig.from_dict({"epochs": 1}), RunOptions(progress=False))
    with pytest.raises(ValueError, match="NaN"):
        model.predict(x_nan, guide)
    big = models.create_model("svgp", input_dim=1, num_inducing=20)
    with pytest.raises(ValueError, match="num_inducing=20 exceeds the 10 training rows"):
        big.initialize_inducing(x)
    with pytest.raises(ValueError, match=r"lengthscale=-1.0 must be a positive"):
        models.create_model("svgp", input_dim=1, kernel={"type": "rbf", "lengthscale": -1.0})
    with pytest.raises(ValueError, match=r"x must have shape \(N, 1\)"):
        model(x.repeat(1, 2))
    with pytest.raises(ValueError, match="likelihood must be one of"):
        models.create_model("svgp", likelihood="poisson")


def test_cholesky_failure_names_jitter_and_suggests_float64():
    K = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
    with pytest.raises(CholeskyError, match=r"failed even with jitter .*float64"):
        stable_cholesky(K, jitter=1e-6)
    near = torch.ones(3, 3) + 1e-9 * torch.eye(3)  # singular in float32: rescued by jitter
    L = stable_cholesky(near, jitter=0.0)
    assert torch.isfinite(L).all()


# ---------------------------------------------------------------------------- pair tests
class TestSVGPSoftmaxCholesky(PairTestBase):
    model_name, guide_name = "svgp", "cholesky"
    model_config = dict(input_dim=2, num_inducing=4, likelihood="softmax", num_classes=3)
    elbos = ("trace", "meanfield")


class TestSVGPUnwhitenedMeanField(PairTestBase):
    model_name, guide_name = "svgp", "mean-field-u"
    model_config = dict(input_dim=2, num_inducing=4, whiten=False, likelihood="student-t")
    elbos = ("trace", "meanfield")


class TestSVGPBernoulliDelta(PairTestBase):
    model_name, guide_name = "svgp", "delta"
    model_config = dict(input_dim=2, num_inducing=4, likelihood="bernoulli")


# ---------------------------------------------------------------------------- experiment configs
def test_co2_and_svgp_uci_configs_are_typed():
    from experiments import co2, svgp_uci

    c = experiment_config(co2, "svgp.model_cfg.num_inducing=200", "svgp_init.q_u=prior",
                           "gpml.theta11=0.3", "mlp.fit.epochs=2", "exact.steps=5")
    assert c.svgp.model_cfg["num_inducing"] == 200 and c.svgp_init.q_u == "prior"
    assert c.gpml.theta11 == 0.3 and c.mlp.fit.epochs == 2 and c.exact.steps == 5
    u = experiment_config(svgp_uci, "datasets=[\"pol\", \"bike\"]", "folds=[0, 9]",
                           "svgp.fit.epochs=3", "elevators_gpytorch.run=false",
                           "svgp.model_cfg.kernel.lengthscale=2", "max_train=null")
    assert u.datasets == ["pol", "bike"] and u.folds == [0, 9] and u.svgp.fit.epochs == 3
    assert u.elevators_gpytorch.run is False and u.max_train is None
    assert u.svgp.model_cfg["kernel"]["lengthscale"] == 2.0
    assert u.svgp_init.q_u == "optimal" and u.elevators_gpytorch.svgp_init.q_u == "prior"


@pytest.mark.parametrize("name, override, message", [
    ("co2", "svgp_init.q_u=titsias", "expected one of 'optimal', 'prior'"),
    ("co2", "svgp.model_cfg.kernel={}", "svgp.model_cfg.kernel is set by the experiment"),
    ("co2", "data.train_until=1970", "need start < train_until < predict_until"),
    ("co2", "mlp.model_cfg.widthz=[3]", "unknown key 'widthz'"),
    ("svgp_uci", "datasets=[\"elevator\"]", "unknown ['elevator']; choose from ['kin40k'"),
    ("svgp_uci", "folds=[10]", "folds=[10]: fold indices are 0..9"),
    ("svgp_uci", "num_inducing=[]", "num_inducing=[]: must be a non-empty list"),
    ("svgp_uci", "svgp.model_cfg.num_inducing=3", "svgp.model_cfg.num_inducing is set by the"),
    ("svgp_uci", "max_train=0", "max_train=0: must be null or an integer >= 1"),
    ("svgp_uci", "seed=1", "use --seed"),
])
def test_co2_and_svgp_uci_bad_config_is_one_line(name, override, message):
    import importlib

    from experiments.harness.spec import ConfigError

    with pytest.raises(ConfigError) as info:
        experiment_config(importlib.import_module(f"experiments.{name}"), override)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_svgp_uci_run_with_a_run_context(tmp_path, data_dir):
    """The data folder and the run folder come from the RunContext; one fit folder per fit."""
    from experiments import svgp_uci
    from experiments.harness.spec import RunContext

    config = experiment_config(svgp_uci, "max_train=200")
    ctx = RunContext(seed=0, device="cpu", out_dir=tmp_path, data_dir=str(data_dir),
                     progress=False)
    metrics = svgp_uci.run(config, ctx)
    assert metrics["elevators_gpytorch_num_train"] == 200 and "elevators_M8_rmse" in metrics
    # the smoke config runs the natural-gradient arms too (tests/test_svgp_ngd.py)
    assert "elevators_gpytorch_ngd_mae" in metrics and "elevators_M8_ngd_rmse" in metrics
    assert {r["optimizer"] for r in metrics["table"]} == {"adam", "ngd"}
    for name in ("elevators-gpytorch", "elevators-fold0-M8", "elevators-gpytorch-ngd",
                 "elevators-fold0-M8-ngd"):
        assert (tmp_path / name / "history.json").is_file(), name


# --- q(u) started at Titsias' optimum: one call, kept by fit ----------------------------------------
def _titsias_problem():
    model = models.create_model("svgp", input_dim=1, num_inducing=8, noise_std=0.1)
    g = torch.Generator().manual_seed(0)
    x = torch.linspace(-3, 3, 120).unsqueeze(-1)
    y = torch.sin(2 * x[:, 0]) + 0.1 * torch.randn(120, generator=g)
    model.initialize_inducing(x, method="random")
    return model, x, y


@pytest.mark.parametrize("when", ["builder", "before-first-run"])
def test_titsias_start_is_kept_by_fit(when):
    """The Titsias start given before the guide ever ran (the documented one-call recipe, or
    set_q_u on a fresh guide) is what fit starts from: the first epoch's ELBO is near Titsias'
    bound, far above the start from the prior."""
    elbos = {}
    for start in ("prior", "titsias"):
        model, x, y = _titsias_problem()
        if start == "prior":
            guide = guides.create_guide("cholesky", model)
        elif when == "builder":
            guide = guides.create_guide("cholesky", model, init="titsias", data=(x, y))
        else:
            guide = guides.create_guide("cholesky", model)
            guide.set_q_u(*model.optimal_q_u(x, y))
        optimum = [t.clone() for t in model.optimal_q_u(x, y)]
        state = fit(model, guide, (x, y), FitConfig.from_dict({"epochs": 1, "batch_size": 120, "lr": 1e-6,
                                                               "elbo": "meanfield"}),
                                          RunOptions(progress=False, device="cpu"))
        if start == "titsias":
            torch.testing.assert_close(guide.u_loc.detach(), optimum[0], rtol=1e-3, atol=1e-3)
        elbos[start] = state.history[0]["elbo"]
    assert elbos["titsias"] > elbos["prior"] + 50, elbos


def test_set_q_u_checks_shapes_and_needs_a_scale_before_set_up():
    model, x, y = _titsias_problem()
    guide = guides.create_guide("cholesky", model)
    with pytest.raises(ValueError, match=r"loc must have shape \(1, 8\)"):
        guide.set_q_u(torch.zeros(8), torch.eye(8).unsqueeze(0))
    with pytest.raises(ValueError, match="needs scale_tril too"):
        guide.set_q_u(torch.zeros(1, 8))
    with pytest.raises(ValueError, match="needs data=\\(x, y\\)"):
        guides.create_guide("cholesky", model, init="titsias")
    delta = guides.create_guide("delta", model, init="titsias", data=(x, y))
    torch.testing.assert_close(delta.q_u()[0], model.optimal_q_u(x, y)[0])


def test_minibatch_kmeans_finds_well_separated_clusters():
    """Above max_rows the inducing inputs come from k-means++ on a subsample refined by mini-batch
    k-means: on four well-separated blobs each centre lands on a blob centre."""
    from models.sparse_gp import minibatch_kmeans

    g = torch.Generator().manual_seed(0)
    truth = torch.tensor([[-5.0, -5.0], [-5.0, 5.0], [5.0, -5.0], [5.0, 5.0]])
    x = truth[torch.randint(4, (4000,), generator=g)] + 0.3 * torch.randn(4000, 2, generator=g)
    centres = torch.as_tensor(minibatch_kmeans(x.double().numpy(), 4, seed=1, batch_size=256,
                                               seed_rows=500, progress=False))
    dist = torch.cdist(centres.float(), truth)
    assert (dist.min(1).values < 0.1).all() and set(dist.argmin(1).tolist()) == {0, 1, 2, 3}
    model = models.create_model("svgp", input_dim=2, num_inducing=4)
    z = model.initialize_inducing(x, max_rows=1000, seed=1, progress=False)  # the mini-batch path
    assert (torch.cdist(z.detach(), truth).min(1).values < 0.1).all()


@pytest.mark.parametrize("spec", [{"type": t, "outputscale": 1.5} for t in
                                  ("rbf", "matern12", "matern32", "matern52", "rq", "periodic")]
                         + [{"type": "sum", "terms": ["rbf", {"type": "matern52", "ard": True}]}])
def test_inputs_equal_hint_gives_gpytorch_kernel_values(spec):
    """inputs_equal (no torch.equal host read) gives GPyTorch's own K_ZZ, diag K_XX and K_XZ,
    and the same gradients."""
    from models.kernels import build_kernel, inputs_equal

    kernel = build_kernel(spec, 3).double()
    g = torch.Generator().manual_seed(0)
    x, z = torch.randn(7, 3, generator=g).double(), torch.randn(5, 3, generator=g).double()
    z.requires_grad_(True)

    def matrices():
        return [kernel(z).to_dense(), kernel(x, diag=True), kernel(x, z).to_dense()]

    reference = matrices()
    ref_grad = torch.autograd.grad(sum(m.sum() for m in reference), [z, *kernel.parameters()])
    with inputs_equal(True):
        kzz, kxx = kernel(z).to_dense(), kernel(x, diag=True)
    with inputs_equal(False):
        kxz = kernel(x, z).to_dense()
    for got, want in zip((kzz, kxx, kxz), reference):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    grad = torch.autograd.grad(kzz.sum() + kxx.sum() + kxz.sum(), [z, *kernel.parameters()])
    for got, want in zip(grad, ref_grad):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_cuda_graph_refuses_kernels_that_compare_inputs_on_the_host():
    from experiments.engine.cuda_graph import check_graph_pair

    for spec in ({"type": "product", "terms": ["rbf", "periodic"]}, {"type": "linear"}):
        model = models.create_model("svgp", input_dim=2, num_inducing=4, kernel=spec)
        guide = guides.create_guide("cholesky", model)
        with pytest.raises(ValueError, match="compare their inputs on the host"):
            check_graph_pair(model, guide)
    model = models.create_model("svgp", input_dim=2, num_inducing=4)  # RBF-ARD: accepted
    check_graph_pair(model, guides.create_guide("cholesky", model))


def test_cuda_graph_refuses_the_student_t_likelihood():
    from experiments.engine.cuda_graph import check_graph_pair

    model = models.create_model("svgp", input_dim=2, num_inducing=4, likelihood="student-t")
    with pytest.raises(ValueError, match="student-t likelihood cannot be captured"):
        check_graph_pair(model, guides.create_guide("cholesky", model))
