"""Deep kernel learning (models/dkl.py, guides/dkl.py) and the conv net (models/cnn.py).

``tests/test_pairs.py`` runs the shared pair checks on every registered pair with the model's
test_config (a deterministic trunk); the classes here run them again on the Bayesian trunk, with
each weight guide, and on the conv trunk, and add what is specific: the identity trunk is the
plain SVGP, the Bayesian trunk's weights are latents next to ``u``, the composed guide enters
both parts' handlers, and a short fit improves the ELBO.
"""

from __future__ import annotations

import pytest
import torch
from pyro import poutine

import guides
import models
from experiments.engine.elbo import make_elbo
from experiments.engine.predict import predict
from experiments.engine.settings import FitConfig, RunOptions
from experiments.engine.step import train_step
from experiments.engine.training import fit, setup
from guides.base import elbo_context
from tests.helpers import moved_pair
from tests.pair_base import PairTestBase, _latents
from tests.stray import StrayDtypeMode

BAYES = dict(in_features=2, trunk="bayes-mlp", widths=(4,), feature_dim=2, num_inducing=4)
CONV = dict(in_features=64, trunk="conv", image_shape=(8, 8), channels=(2, 3), conv_hidden=5,
            feature_dim=2, num_inducing=4, likelihood="softmax", num_classes=3)


class TestBayesTrunkMeanField(PairTestBase):
    model_name, guide_name, model_config = "dkl", "dkl-mean-field", BAYES
    elbos = ("meanfield", "trace")
    guide_config = {"local_reparam": True}


class TestBayesTrunkMeanFieldFlipout(PairTestBase):
    model_name, guide_name, model_config = "dkl", "dkl-mean-field", BAYES
    guide_config = {"flipout": True}


class TestBayesTrunkAutoNormal(PairTestBase):
    model_name, guide_name, model_config = "dkl", "dkl-auto-normal", BAYES


class TestBayesTrunkSoftmax(PairTestBase):
    model_name, guide_name = "dkl", "dkl-mean-field"
    model_config = {**BAYES, "likelihood": "softmax", "num_classes": 3}
    elbos = ("meanfield",)


class TestConvTrunk(PairTestBase):
    model_name, guide_name, model_config = "dkl", "dkl-cholesky", CONV
    elbos = ("meanfield",)


class TestConvNetBayesHead(PairTestBase):
    model_name, guide_name = "cnn", "mean-field"
    model_config = dict(image_shape=(8, 8), channels=(2, 3), hidden=5, num_classes=3,
                        bayesian_head=True)
    guide_config = {"local_reparam": True}
    elbos = ("meanfield",)


@pytest.mark.parametrize("model_cfg, guide_name, guide_cfg, elbo", [
    (BAYES, "dkl-mean-field", {"local_reparam": True}, "meanfield"),
    (BAYES, "dkl-auto-normal", {}, "trace"),
    ({**BAYES, "whiten": False, "mean": "constant"}, "dkl-mean-field", {}, "trace"),
    (CONV, "dkl-cholesky", {}, "meanfield"),
])
def test_variants_follow_to(model_cfg, guide_name, guide_cfg, elbo):
    """tests/test_device_guard.py's check on the configurations beyond the test_config."""
    model, guide, data = moved_pair("dkl", guide_name, model_cfg=model_cfg, guide_cfg=guide_cfg)
    with StrayDtypeMode():
        state = setup(model, guide, data, FitConfig.from_dict({"batch_size": 6, "elbo": elbo,
                                                               "num_particles": 2}),
                                          RunOptions(device="cpu", progress=False))
        train_step(state, data)


def _loss(model, guide, data, elbo="meanfield"):
    with elbo_context(guide, closed_form_kl=elbo == "meanfield"):
        return make_elbo(elbo)(model, guide)(*data)


def test_identity_trunk_is_the_svgp():
    """A linear trunk set to the identity, the SVGP's hyperparameters and the same q(u): the dkl
    pair's ELBO equals the svgp pair's (closed form under the Gaussian likelihood)."""
    svgp = models.create_model("svgp", input_dim=2, num_inducing=5, num_data=40)
    dkl = models.create_model("dkl", in_features=2, trunk="mlp", widths=(), feature_dim=2,
                              num_inducing=5, num_data=40)
    with torch.no_grad():
        svgp.inducing_points.normal_()
        svgp.kernel.base_kernel.lengthscale = torch.tensor([[0.7, 1.3]])
        dkl.gp.load_state_dict(svgp.state_dict())
        (layer,) = dkl.trunk.layers
        layer.weight.copy_(torch.eye(2))
        layer.bias.zero_()
    g = torch.Generator().manual_seed(3)
    loc = torch.randn(1, 5, generator=g)
    tril = torch.eye(5).unsqueeze(0) * 0.5 + torch.randn(1, 5, 5, generator=g).tril(-1) * 0.1
    q_svgp = guides.create_guide("cholesky", svgp)
    q_dkl = guides.create_guide("dkl-cholesky", dkl)
    q_svgp.set_q_u(loc, tril)
    q_dkl.set_q_u(loc, tril)
    data = svgp.example_data(40, generator=g)
    a = _loss(svgp, q_svgp, data)
    b = _loss(dkl, q_dkl, data)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
    # a trunk that is not the identity changes it
    with torch.no_grad():
        layer.weight.mul_(2.0)
    assert abs(_loss(dkl, q_dkl, data).item() - a.item()) > 1e-2


def test_bayesian_trunk_weights_are_latents():
    model = models.create_model("dkl", **{**BAYES, "widths": (3, 4)})
    guide = guides.create_guide("dkl-mean-field", model)
    x, y = model.example_data(6)
    guide(x, y)
    trace = poutine.trace(guide).get_trace(x, y)
    latents = _latents(trace)
    assert set(latents) == {"w0", "w1", "w2", "u"}
    assert latents["w0"]["value"].shape == (3, 3)  # (out, in + 1)
    assert latents["w2"]["value"].shape == (2, 5)  # to feature_dim
    assert model.latent_sites == ["w0", "w1", "w2"]
    # the q(u) part stays the Cholesky guide's MultivariateNormal, the weights mean-field Normals
    fn = latents["u"]["fn"]
    while isinstance(fn, torch.distributions.Independent):
        fn = fn.base_dist
    assert isinstance(fn, torch.distributions.MultivariateNormal)
    names = sorted(n for n, _ in guide.named_parameters() if "w0" in n)
    assert [n.split("_unconstrained")[0] for n in names] == ["weights.w0_loc", "weights.w0_scale"]


def test_composed_guide_enters_both_handlers():
    """Under the composed guide's context, the model's bayes_linear is answered by local
    reparameterisation (the weights are not drawn at all with a closed-form KL) and the
    svgp_conditional by the marginal q(f): two particles of the same weights then give
    different pre-activations, and the loss is finite."""
    from guides.mean_field import LocalReparameterization
    from guides.svgp_marginal import MarginalizeInducing

    model = models.create_model("dkl", **BAYES)
    guide = guides.create_guide("dkl-mean-field", model, local_reparam=True)
    data = model.example_data(6)
    guide(*data)
    ctx = guide.elbo_context(closed_form_kl=True)
    with ctx:
        kinds = {type(h) for h in ctx._contexts}
        assert kinds == {LocalReparameterization, MarginalizeInducing}
        loss = make_elbo("meanfield")(model, guide)(*data)
    assert torch.isfinite(loss)
    # the deterministic-trunk guide carries only MarginalizeInducing
    det = models.create_model("dkl", **{**BAYES, "trunk": "mlp"})
    ctx = guides.create_guide("dkl-cholesky", det).elbo_context()
    assert [type(h) for h in ctx._contexts] == [MarginalizeInducing]


def test_cholesky_guide_refuses_a_bayesian_trunk():
    model = models.create_model("dkl", **BAYES)
    with pytest.raises(ValueError, match="dkl-mean-field"):
        guides.create_guide("dkl-cholesky", model)
    with pytest.raises(ValueError, match="trunk"):
        models.create_model("dkl", in_features=10, trunk="conv")


@pytest.mark.parametrize("cfg, guide_name", [
    (dict(trunk="mlp"), "dkl-cholesky"),
    (dict(trunk="bayes-mlp"), "dkl-mean-field"),
])
def test_short_fit_improves_the_elbo(cfg, guide_name):
    torch.manual_seed(0)
    model = models.create_model("dkl", in_features=1, widths=(16,), feature_dim=2,
                                num_inducing=8, noise_std=0.3, **cfg)
    guide = guides.create_guide(guide_name, model)
    x = torch.linspace(-2, 2, 64).unsqueeze(-1)
    y = torch.sin(2 * x[:, 0]) + 0.05 * torch.randn(64)
    model.initialize_inducing(x, method="random")

    def rmse():
        pred = predict(model, guide, x, num_samples=50, seed=0)
        return float((pred.mean - y).pow(2).mean().sqrt())

    guide(x, y)  # set-up (the weight guide's needs y the first time)
    before = rmse()
    state = fit(model, guide, (x, y), FitConfig.from_dict({"epochs": 80, "batch_size": 32, "lr": 0.02,
                                                           "elbo": "meanfield", "checkpoint": False,
                                                           "tensorboard": False}),
                                      RunOptions(progress=False, device="cpu"))
    first, last = state.history[0]["elbo"], state.history[-1]["elbo"]
    assert last > first + 0.3 * abs(first), (first, last)
    assert rmse() < 0.8 * before


def test_initialize_inducing_uses_the_features():
    model = models.create_model("dkl", in_features=3, trunk="mlp", widths=(5,), feature_dim=2,
                                num_inducing=4)
    x = torch.randn(30, 3)
    z = model.initialize_inducing(x, method="random", seed=1)
    with torch.no_grad():
        h = model.trunk(x)
    # every inducing input is one of the rows' features
    assert (z[:, None] - h[None]).norm(dim=-1).min(-1).values.max() < 1e-6


def test_mnist_reliability_bins_give_the_ece_and_auroc_ranks():
    """dkl-mnist's reliability diagram uses the bins of metrics.expected_calibration_error: its
    count-weighted |accuracy - confidence| is the ECE; its AUROC is the rank statistic."""
    from experiments.dkl_mnist import auroc, reliability
    from experiments.engine import metrics as M

    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(3 * torch.randn(500, 4, generator=g), -1)
    y = torch.randint(4, (500,), generator=g)
    conf, acc, count = reliability(probs, y, 15)
    ece = float(((acc - conf).abs().nan_to_num() * count).sum() / count.sum())
    assert abs(ece - M.expected_calibration_error(probs, y, n_bins=15)) < 1e-6
    assert int(count.sum()) == 500
    a, b = torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0.4, 0.5])
    assert auroc(a, b) == 1.0 and auroc(b, a) == 0.0
    assert auroc(torch.tensor([0.5, 0.1]), torch.tensor([0.5, 0.9])) == 0.875  # a tie counts half


def test_gap_data_leaves_the_gap_empty():
    from experiments.dkl_regression import gap_data

    x, y = gap_data(500, 1.0, 0.4, 0.1, seed=0)
    assert x.shape == (500, 1) and y.shape == (500,)
    assert (x.abs() >= 0.4).all() and (x.abs() <= 1.0).all()
    assert (x < 0).any() and (x > 0).any()
    xg, _ = gap_data(100, 1.0, 0.4, 0.1, seed=1, where="gap")
    assert (xg.abs() < 0.4).all()


@pytest.mark.parametrize("model_cfg, guide_name, guide_cfg", [
    (BAYES, "dkl-mean-field", {"local_reparam": True}),
    (BAYES, "dkl-mean-field", {"flipout": True}),
    (CONV, "dkl-cholesky", {}),
])
def test_variant_step_has_no_host_read(model_cfg, guide_name, guide_cfg):
    """tests/test_no_sync.py's check (a training step reads nothing to the host) on the Bayesian
    and conv trunks."""
    from tests.helpers import step_pair, step_without_host_reads

    state, data = step_pair("dkl", guide_name, model_cfg, guide_cfg, elbo="meanfield",
                        num_particles=2)
    step_without_host_reads(state, data)
