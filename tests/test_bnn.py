"""BNN configurations beyond the registry defaults, each through the full pair test base."""

import math

import pytest
import torch

import guides
import models
from tests.pair_base import PairTestBase


class TestLastLayerBNN(PairTestBase):
    model_name, guide_name = "bnn", "mean-field"
    model_config = dict(in_features=3, widths=(5, 4), bayesian_layers="last")

    def test_only_the_last_layer_is_latent(self):
        model, _ = self.make_pair()
        assert model.latent_sites == ["w2"]
        assert set(model.point_layers) == {"0", "1"}


class TestClassificationBNN(PairTestBase):
    model_name, guide_name = "bnn", "mean-field"
    model_config = dict(in_features=3, widths=(5,), out_features=4, task="classification")
    elbos = ("meanfield", "trace")

    def test_labels_must_be_integers(self):
        model, _ = self.make_pair()
        with pytest.raises(ValueError, match="integers"):
            model(torch.randn(2, 3), torch.tensor([0.0, 1.0]))


class TestStudentTBNN(PairTestBase):
    """Likelihoods come from one table (models.likelihoods): a robust-regression BNN."""

    model_name, guide_name = "bnn", "mean-field"
    model_config = dict(in_features=2, widths=(4,), likelihood="student-t", student_df=3.0)
    elbos = ("meanfield", "trace")

    def test_obs_is_student_t_with_a_learned_scale(self):
        import pyro.distributions as dist
        from pyro import poutine

        model, _ = self.make_pair()
        x, y = self.make_data(model, 5)
        trace = poutine.trace(model).get_trace(x, y)
        fn = trace.nodes["obs"]["fn"]
        while isinstance(fn, dist.Independent):
            fn = fn.base_dist
        assert isinstance(fn, dist.StudentT) and bool((fn.df == 3.0).all())
        assert "likelihood.noise_std_unconstrained" in dict(model.named_parameters())


class TestBernoulliMLP(PairTestBase):
    model_name, guide_name = "mlp", "deterministic"
    model_config = dict(in_features=2, widths=(4,), likelihood="bernoulli")


class TestHeteroscedasticBNN(PairTestBase):
    model_name, guide_name = "bnn", "mean-field"
    model_config = dict(in_features=2, widths=(4,), out_features=2,
                        likelihood="heteroscedastic-gaussian")


def test_likelihood_and_outputs_must_agree():
    with pytest.raises(ValueError, match="set out_features=2"):
        models.create_model("bnn", in_features=2, likelihood="heteroscedastic-gaussian")
    with pytest.raises(ValueError, match="likelihood must be one of"):
        models.create_model("bnn", in_features=2, likelihood="image-bernoulli")


class TestScaleMixturePrior(PairTestBase):
    model_name, guide_name = "bnn", "mean-field"
    model_config = dict(in_features=2, widths=(4,), prior={"kind": "scale-mixture"})
    elbos = ("meanfield", "trace")  # no closed-form KL: TraceMeanField falls back to MC


class TestLocalReparamPair(PairTestBase):
    model_name, guide_name = "bnn", "mean-field"
    guide_config = {"local_reparam": True}
    elbos = ("meanfield",)


class TestFlipoutPair(PairTestBase):
    model_name, guide_name = "bnn", "mean-field"
    guide_config = {"flipout": True}
    elbos = ("meanfield",)


class TestMCDropoutPair(PairTestBase):
    model_name, guide_name = "mlp", "deterministic"
    model_config = dict(in_features=2, widths=(8,), dropout=0.5)

    def test_masks_differ_across_predictive_samples(self):
        from experiments.engine.predictive import posterior_predictive

        model, guide = self.make_pair()
        x, _ = self.make_data(model, 3)
        f = posterior_predictive(model, guide, x, num_samples=20)["f"]
        assert f.std(0).min() > 0  # each sample drew its own dropout masks


def test_plain_mlp_predictive_is_deterministic():
    from experiments.engine.predictive import posterior_predictive

    model = models.create_model("mlp", in_features=2, widths=(8,), dropout=0.0)
    guide = guides.create_guide("deterministic", model)
    f = posterior_predictive(model, guide, torch.randn(3, 2), num_samples=5)["f"]
    assert torch.equal(f.std(0), torch.zeros_like(f[0]))


@pytest.mark.parametrize("kwargs, match", [
    (dict(bayesian_layers=[5]), "out of range"), (dict(bayesian_layers="first"), "bayesian_layers"),
    (dict(activation="swishy"), "activation"), (dict(task="ranking"), "task"),
    (dict(widths=(0,)), "positive"), (dict(prior={"kind": "laplace"}), "prior kind"),
    (dict(prior={"sigma": -1.0}), "sigma"), (dict(noise_std=0.0), "noise_std"),
])
def test_bad_model_config_is_a_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        models.create_model("bnn", **{"in_features": 2, **kwargs})


def test_registry_refuses_duplicates_and_suggests_names():
    with pytest.raises(ValueError, match="already registered"):
        models.register_model("bnn")(lambda **kw: None)
    with pytest.raises(KeyError, match="Did you mean 'bnn'"):
        models.create_model("bnm")
    with pytest.raises(KeyError, match="mean-field"):
        guides.create_guide("mean-feld", None)


def test_scale_mixture_log_prob_is_torchs_normal_bit_for_bit():
    """The scale-mixture prior's Gaussian terms, computed without a Normal (no host copy), are
    torch's Normal(0, sigma).log_prob exactly, so earlier runs' numbers are unchanged."""
    from models.priors import _centred_normal_log_prob

    g = torch.Generator().manual_seed(0)
    value = torch.randn(1000, generator=g) * 3
    for sigma in (torch.tensor(1.0), torch.tensor(math.exp(-6.0)), torch.tensor(0.3).double()):
        v = value.to(sigma.dtype)
        assert torch.equal(_centred_normal_log_prob(v, sigma),
                           torch.distributions.Normal(0.0, sigma).log_prob(v))
