"""Local reparameterisation and flipout change the noise, not the distribution.

For a fixed mean-field guide :math:`q(W) = \\prod \\mathcal N(\\mu, \\sigma^2)` the network output of
each example has the same law under plain weight sampling, local reparameterisation (Kingma et al.
2015: sample pre-activations from their Gaussian marginal) and flipout (Wen et al. 2018: random sign
flips of a shared perturbation). What differs is the dependence *between* examples: plain sampling
shares one weight draw across the batch (two identical inputs give identical outputs), local
reparameterisation draws every example independently, flipout decorrelates them.

Draws are taken the way SVI takes them: the guide is traced, the model replays the guide's weights
(``poutine.replay``) inside ``guide.elbo_context()``, and the output is the model's deterministic
site ``"f"``; many draws at once under a vectorised particle plate.
"""

from __future__ import annotations

import contextlib
import math

import pyro
import pytest
import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.nn import PyroParam
from pyro.poutine.messenger import Messenger

import guides
import models
from experiments.engine.elbo import make_elbo
from guides.mean_field import LocalReparameterization
from models.base import _affine

VARIANTS = ("plain", "local_reparam", "flipout")
IN = 3
NUM_DRAWS = 20_000


def _inputs(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, IN, generator=g)


def _known_values(model, seed=1) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Random but fixed (loc, scale) for every latent site, not the guide's initial values."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name in model.latent_sites:
        shape = model.weight_shape(int(name[1:]))
        loc = torch.randn(shape, generator=g) / math.sqrt(shape[1])
        scale = 0.1 + 0.4 * torch.rand(shape, generator=g)
        out[name] = (loc, scale)
    return out


def _pair(variant: str, widths=(), values=None, x=None):
    """A BayesianMLP and a mean-field guide whose parameters are set to ``values``."""
    model = models.create_model("bnn", in_features=IN, widths=widths, activation="tanh",
                                noise_std=0.1, learn_noise=False)
    guide = guides.create_guide("mean-field", model, local_reparam=variant == "local_reparam",
                                flipout=variant == "flipout")
    x = _inputs() if x is None else x
    # set up the sites (before, or they would overwrite the values below); with y, or the guide
    # would take the unobserved site "obs" for a local latent and refuse it
    guide(x, torch.zeros(len(x)))
    values = values if values is not None else _known_values(model)
    for name, (loc, scale) in values.items():
        # a PyroParam assignment replaces the parameter (constrained value in, unconstrained stored)
        setattr(guide, f"{name}_loc", PyroParam(loc.clone()))
        setattr(guide, f"{name}_scale", PyroParam(scale.clone(), constraints.softplus_positive))
        torch.testing.assert_close(getattr(guide, f"{name}_loc").detach(), loc)
        torch.testing.assert_close(getattr(guide, f"{name}_scale").detach(), scale)
    return model, guide


def _draw_f(model, guide, x, num_draws=NUM_DRAWS) -> torch.Tensor:
    """``num_draws`` draws of the network output for the batch ``x``: ``(num_draws, N)``."""
    with torch.no_grad(), guide.elbo_context():
        with pyro.plate("particles", num_draws, dim=-2):
            guide_tr = poutine.trace(guide).get_trace(x)
            model_tr = poutine.trace(poutine.replay(model, trace=guide_tr)).get_trace(x)
    f = model_tr.nodes["f"]["value"]
    assert f.shape == (num_draws, x.shape[0], 1)
    return f[..., 0]


def _moment_ses(f: torch.Tensor):
    """Per-column mean, variance and their standard errors (variance SE from the 4th moment)."""
    n = f.shape[0]
    f = f.double()
    mean, var = f.mean(0), f.var(0)
    m4 = ((f - mean) ** 4).mean(0)
    return mean, var, (var / n).sqrt(), ((m4 - var**2) / n).sqrt()


def test_elbo_context_is_the_messenger_of_the_variant():
    for variant, kind in (("plain", contextlib.nullcontext), ("local_reparam", LocalReparameterization),
                          ("flipout", LocalReparameterization)):
        _, guide = _pair(variant)
        ctx = guide.elbo_context()
        assert isinstance(ctx, kind)
        if kind is LocalReparameterization:
            assert ctx.flipout == (variant == "flipout")
    model = models.create_model("bnn", in_features=IN, widths=())
    with pytest.raises(ValueError, match="not both"):
        guides.create_guide("mean-field", model, local_reparam=True, flipout=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_linear_output_has_the_exact_gaussian_marginal(variant):
    """widths=(): f = [x, 1]·w with w ~ N(μ, σ²), so f_n ~ N(μ·[x_n, 1], σ²·[x_n², 1]) exactly.
    Mean and variance of 20 000 draws agree within 4 standard errors."""
    x = _inputs(6)
    model, guide = _pair(variant)
    loc, scale = (t[0] for t in _known_values(model)["w0"])
    phi = torch.cat([x, torch.ones(len(x), 1)], 1)
    exact_mean, exact_var = phi @ loc, (phi**2) @ scale**2
    mean, var, se_mean, se_var = _moment_ses(_draw_f(model, guide, x))
    assert ((mean - exact_mean).abs() < 4 * se_mean).all(), (mean, exact_mean)
    assert ((var - exact_var).abs() < 4 * se_var).all(), (var, exact_var)


@pytest.mark.parametrize("variant", ["local_reparam", "flipout"])
def test_hidden_layer_output_law_matches_plain_weight_sampling(variant):
    """One tanh hidden layer: no closed form, so compare the per-example mean and variance of f
    with plain weight sampling (two independent samples: 4 combined standard errors)."""
    x = _inputs(6)
    model_p, guide_p = _pair("plain", widths=(8,))
    values = _known_values(model_p)
    model_v, guide_v = _pair(variant, widths=(8,), values=values)
    mean_p, var_p, se_mp, se_vp = _moment_ses(_draw_f(model_p, guide_p, x))
    mean_v, var_v, se_mv, se_vv = _moment_ses(_draw_f(model_v, guide_v, x))
    assert ((mean_p - mean_v).abs() < 4 * (se_mp**2 + se_mv**2).sqrt()).all(), (mean_p, mean_v)
    assert ((var_p - var_v).abs() < 4 * (se_vp**2 + se_vv**2).sqrt()).all(), (var_p, var_v)
    # the comparison has power: the variances are far from zero and differ across examples
    assert (var_p > 20 * se_vp).all() and var_p.max() > 1.2 * var_p.min()


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    return float((a * b).mean() / (a.pow(2).mean() * b.pow(2).mean()).sqrt())


# flipout only on the linear net: it decorrelates pre-activations, but after a nonlinearity two
# examples' outputs stay dependent through the shared |perturbation| (e.g. via tanh's curvature)
@pytest.mark.parametrize("variant, widths", [
    ("plain", ()), ("plain", (8,)), ("local_reparam", ()), ("local_reparam", (8,)),
    ("flipout", ())], ids=["plain-linear", "plain-hidden", "local_reparam-linear",
                           "local_reparam-hidden", "flipout-linear"])
def test_examples_in_a_batch(variant, widths):
    """Two identical inputs: one weight draw gives them identical outputs (correlation 1); local
    reparameterisation draws them independently, flipout decorrelates them (linear net), so the
    sample correlation is 0 within 4/sqrt(n). Fails if the messenger silently did nothing."""
    x0 = _inputs(2)
    x = torch.stack([x0[0], x0[0], x0[1]])
    model, guide = _pair(variant, widths=widths)
    f = _draw_f(model, guide, x)
    if variant == "plain":
        assert torch.equal(f[:, 0], f[:, 1])
        assert _corr(f[:, 0], f[:, 1]) == pytest.approx(1.0)
    else:
        same = torch.isclose(f[:, 0], f[:, 1]).double().mean().item()
        if variant == "local_reparam":  # independent draws: only chance float32 near-ties
            assert same < 1e-3
        else:  # flipout: equal exactly when both examples drew the same IN + 1 signs
            p = 2.0 ** -(IN + 1)
            assert abs(same - p) < 4 * math.sqrt(p * (1 - p) / NUM_DRAWS), same
        # same marginal, zero correlation: sd of a sample correlation under independence ≈ 1/sqrt(n)
        assert abs(_corr(f[:, 0], f[:, 1])) < 4 / math.sqrt(NUM_DRAWS)
        assert abs(_corr(f[:, 0], f[:, 2])) < 4 / math.sqrt(NUM_DRAWS)
    # the particle plate got independent draws (a few float32 ties among 20 000 values are normal)
    assert f[:, 0].unique().numel() > 0.99 * NUM_DRAWS


class _RecordBayesLinear(Messenger):
    """Records every ``bayes_linear`` effect after all handlers saw it: was its value replaced
    (i.e. is it not the plain affine map of the sampled weight)?"""

    def __init__(self):
        super().__init__()
        self.calls = []

    def _pyro_post_bayes_linear(self, msg):
        h, w = msg["args"]
        plain = _affine(h, w)
        replaced = plain.shape != msg["value"].shape or not torch.allclose(plain, msg["value"])
        self.calls.append((msg["name"], replaced, tuple(msg["value"].shape)))


@pytest.mark.parametrize("variant", ["local_reparam", "flipout"])
def test_vectorised_particles_loss_is_finite_and_gradients_flow(variant):
    x = _inputs(16)
    y = torch.randn(16)
    model, guide = _pair(variant, widths=(8,), x=x)
    elbo = make_elbo("meanfield", num_particles=4)
    assert elbo.vectorize_particles
    record = _RecordBayesLinear()
    with record, guide.elbo_context():
        loss = elbo.differentiable_loss(model, guide, x, y)
    assert torch.isfinite(loss)
    # both layers were computed by the handler, per particle and per example
    assert [c[:2] for c in record.calls] == [("w0", True), ("w1", True)]
    assert record.calls[0][2] == (4, 16, 8) and record.calls[1][2] == (4, 16, 1)
    loss.backward()
    for name in ("w0", "w1"):
        for part in ("loc", "scale"):
            grad = getattr(guide, f"{name}_{part}_unconstrained").grad
            assert grad is not None and torch.isfinite(grad).all(), (name, part)
            assert grad.abs().sum() > 0, (name, part)


def test_without_the_context_nothing_is_intercepted():
    x = _inputs(4)
    model, guide = _pair("local_reparam", widths=(8,), x=x)
    record = _RecordBayesLinear()
    with record:  # no elbo_context: plain affine layers
        guide_tr = poutine.trace(guide).get_trace(x)
        poutine.replay(model, trace=guide_tr)(x)
    assert [c[:2] for c in record.calls] == [("w0", False), ("w1", False)]


@pytest.mark.parametrize("variant", ["local_reparam", "flipout"])
def test_same_expected_gradient_as_plain_sampling(variant):
    """Unbiasedness where it matters for training: the mean ELBO gradient w.r.t. every loc and
    scale parameter matches plain weight sampling within 4 combined standard errors (linear net,
    300 single-particle gradients each). Local reparameterisation also has a smaller gradient
    variance for the weight means."""
    x, y = _inputs(32), torch.randn(32)
    values = None
    grads = {}
    for v in ("plain", variant):
        model, guide = _pair(v, x=x, values=values)
        values = values or _known_values(model)
        elbo = make_elbo("meanfield")
        rows = []
        for _ in range(300):
            with guide.elbo_context():
                loss = elbo.differentiable_loss(model, guide, x, y)
            g_loc, g_scale = torch.autograd.grad(
                loss, (guide.w0_loc_unconstrained, guide.w0_scale_unconstrained))
            rows.append(torch.cat([g_loc.flatten(), g_scale.flatten()]))
        grads[v] = torch.stack(rows).double()
    (gp, gv), n = (grads["plain"], grads[variant]), 300
    se = ((gp.var(0) + gv.var(0)) / n).sqrt()
    assert ((gp.mean(0) - gv.mean(0)).abs() < 4 * se).all(), (gp.mean(0), gv.mean(0), se)
    if variant == "local_reparam":
        loc_dims = IN + 1
        assert (gv.var(0)[:loc_dims] < gp.var(0)[:loc_dims]).all()


# ---------------------------------------------------------------------------------------------
# Skipping the unused weight draw (local reparameterisation + closed-form KL)


def _guide_trace(model, guide, x, **ctx):
    with guide.elbo_context(**ctx):
        trace = poutine.trace(guide).get_trace(x)
        poutine.replay(model, trace=trace)(x)  # the model reads the weights, as in the ELBO
    return trace


@pytest.mark.parametrize("prior,skipped", [({"kind": "gaussian", "sigma": 1.0}, True),
                                           ({"kind": "scale-mixture", "mixture_weight": 0.5,
                                             "sigma1": 1.0, "sigma2": 0.1}, False)],
                         ids=["gaussian", "scale-mixture"])
def test_the_draw_is_skipped_only_where_the_kl_is_closed_form(prior, skipped):
    model = models.create_model("bnn", in_features=IN, widths=(4,), prior=prior)
    guide = guides.create_guide("mean-field", model, local_reparam=True, init_scale=0.3)
    x = _inputs()
    guide(x, x.sum(-1))
    for name, expect_skip in ((n, skipped) for n in model.latent_sites):
        loc = getattr(guide, f"{name}_loc")
        drawn = _guide_trace(model, guide, x, closed_form_kl=False).nodes[name]["value"]
        assert not torch.equal(drawn, loc)  # a real draw without the flag
        value = _guide_trace(model, guide, x, closed_form_kl=True).nodes[name]["value"]
        assert torch.equal(value, loc) == expect_skip


@pytest.mark.parametrize("particles", [1, 3])
def test_skipping_the_draw_changes_neither_loss_nor_gradients(monkeypatch, particles):
    """With the pre-activation noise fixed, the local-reparameterisation loss is a deterministic
    function of (mu, sigma): skipping the weight draw must leave it and its gradients unchanged."""
    model = models.create_model("bnn", in_features=IN, widths=(4,), noise_std=0.3)
    guide = guides.create_guide("mean-field", model, local_reparam=True, init_scale=0.3)
    x = _inputs(8)
    y = x.sum(-1)
    guide(x, y)
    g = torch.Generator().manual_seed(0)
    noise = {}

    def fixed_noise(shape, like):
        key = tuple(shape)
        if key not in noise:
            noise[key] = torch.randn(shape, generator=g)
        return noise[key]

    monkeypatch.setattr("guides.mean_field._standard_normal", fixed_noise)
    elbo = make_elbo("meanfield", num_particles=particles)
    params = list(guide.parameters()) + list(model.parameters())
    out = []
    for flag in (False, True):
        with guide.elbo_context(closed_form_kl=flag):
            loss = elbo.differentiable_loss(model, guide, x, y)
        out.append((loss.detach(), torch.autograd.grad(loss, params)))
    torch.testing.assert_close(out[0][0], out[1][0])
    for a, b in zip(out[0][1], out[1][1]):
        torch.testing.assert_close(a, b)


def test_a_skipped_weight_the_model_never_passes_to_bayes_linear_is_an_error():
    model = models.create_model("rff-gp", **models.MODELS.meta("rff-gp")["test_config"])
    guide = guides.create_guide("mean-field", model, local_reparam=True)
    x, y = model.example_data(6, generator=torch.Generator().manual_seed(0))
    guide(x, y)
    with pytest.raises(RuntimeError, match="bayes_linear"):
        with guide.elbo_context(closed_form_kl=True):
            make_elbo("meanfield")(model, guide)(x, y)
    with guide.elbo_context(closed_form_kl=False):  # drawn: the model may read it as it likes
        assert torch.isfinite(make_elbo("meanfield")(model, guide)(x, y))


def test_fit_passes_closed_form_kl_through_the_guide_protocol():
    import contextlib

    from guides.base import elbo_context

    model = models.create_model("bnn", in_features=IN, widths=(4,))
    guide = guides.create_guide("mean-field", model, local_reparam=True)
    guide(_inputs(), _inputs().sum(-1))
    assert isinstance(elbo_context(guide, True), LocalReparameterization)
    assert elbo_context(guide, True).skip_draws
    assert not elbo_context(guide, False).skip_draws
    empty = guides.create_guide("deterministic", models.create_model("mlp", in_features=IN))
    assert isinstance(elbo_context(empty, True), contextlib.nullcontext)  # the default hook
    plain = lambda x, y=None: None  # noqa: E731  (a plain Pyro guide: no hooks, no error)
    assert isinstance(elbo_context(plain, True), contextlib.nullcontext)
