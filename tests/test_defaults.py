"""The per-family defaults of ``fit`` (fitjob.default_job / build_job)."""

import pytest

from experiments.harness import fitjob


def _job(model, guide, task="regression", n=10000, overrides=(), classes=None):
    job, supplied = fitjob.build_job(model, guide, list(overrides), task, num_features=3,
                                      num_classes=classes, n_train=n)
    return job, supplied


def test_svgp_regression_defaults():
    job, supplied = _job("svgp", "cholesky")
    assert job.fit.elbo == "meanfield" and job.fit.lr == 1e-2 and job.fit.batch_size == 256
    assert job.guide_cfg == {"natural_gradient": True, "ngd_lr": 0.1}
    assert job.model_cfg["mean"] == "constant" and job.model_cfg["noise_std"] == 0.5
    assert supplied["num_inducing"] == fitjob.DEFAULT_INDUCING
    assert _job("svgp", "cholesky", n=50)[1]["num_inducing"] == 50


def test_natural_gradients_only_with_the_gaussian_likelihood():
    job, _ = _job("svgp", "cholesky", task="classification", classes=2)
    assert "natural_gradient" not in job.guide_cfg
    job, _ = _job("svgp", "cholesky", overrides=["model_cfg.likelihood=student-t"])
    assert "natural_gradient" not in job.guide_cfg
    job, _ = _job("svgp", "cholesky", overrides=["model_cfg.likelihood=student-t",
                                                 "guide_cfg.natural_gradient=true"])
    assert job.guide_cfg["natural_gradient"] is True


def test_net_defaults_and_the_plain_nets_validation():
    bbb, _ = _job("bnn", "mean-field")
    assert bbb.fit.lr_schedule == "cosine" and bbb.guide_cfg == {"local_reparam": True}
    assert bbb.validation == 0
    net, _ = _job("mlp", "deterministic")
    assert net.fit.lr_schedule == "cosine" and net.validation == 0.1


@pytest.mark.parametrize("n, batch, epochs", [(20, 128, 1000), (10000, 128, 76),
                                              (500000, 128, 2), (45000, 256, 18)])
def test_epochs_follow_a_step_budget(n, batch, epochs):
    model = "svgp" if batch == 256 else "bnn"
    assert fitjob.default_epochs(model, n, batch) == epochs


def test_set_wins_over_every_default():
    job, _ = _job("svgp", "cholesky", overrides=["fit.epochs=3", "fit.elbo=trace",
                                                 "guide_cfg.natural_gradient=false",
                                                 "model_cfg.noise_std=0.1", "fit.batch_size=64"])
    assert job.fit.epochs == 3 and job.fit.elbo == "trace" and job.fit.batch_size == 64
    assert job.guide_cfg["natural_gradient"] is False and job.model_cfg["noise_std"] == 0.1
    job, _ = _job("bnn", "mean-field", overrides=["fit.batch_size=1000"], n=10000)
    assert job.fit.epochs == fitjob.default_epochs("bnn", 10000, 1000)  # from the new batch


def test_help_lists_the_defaults():
    text = fitjob.describe_defaults()
    assert "svgp/cholesky" in text and "fit.elbo=meanfield" in text and "validation=0.1" in text
