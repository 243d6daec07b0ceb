"""The VAE pair (models/vae.py, guides/vae.py): likelihood and architecture variants through the pair
base, bad input, KL warm-up in fit, generation, dynamic binarisation, CUDA.

The analytic oracle (linear decoder = probabilistic PCA) is in tests/test_ppca_oracle.py; the
``encoder`` and ``flow-encoder`` pairs with the registered test config run in tests/test_pairs.py."""

from __future__ import annotations

import dataclasses
import json
import math

import pyro
import pytest
import torch
from pyro import poutine

import guides
import models
from experiments.__main__ import prepare_config
from experiments.engine.checkpoint import load_zoo_file, save_zoo_file
from experiments.engine.elbo import make_elbo
from experiments.engine.iwae import iwae_bound
from experiments.engine.kl_schedule import KLScale
from experiments.engine.settings import FitConfig, RunOptions
from experiments.engine.training import fit
from experiments.harness.spec import ConfigError, RunContext, config_dict, validate_config
from experiments.harness.vae import DynamicBinarization, load_images
from tests.pair_base import PairTestBase


class TestGaussianFrey(PairTestBase):
    """The paper's Frey Face decoder: sigmoid mean, per-pixel variance from the network."""

    model_name, guide_name = "vae", "encoder"
    model_config = dict(image_shape=(4, 3), z_dim=2, hidden=(5,), likelihood="gaussian")
    elbos = ("trace", "meanfield")


class TestGaussianSharedScaleFlow(PairTestBase):
    model_name, guide_name = "vae", "flow-encoder"
    model_config = dict(image_shape=(5,), z_dim=3, hidden=(), likelihood="gaussian",
                        gaussian_mean="identity", gaussian_scale="shared")
    guide_config = {"num_flows": 1, "context_dim": 2}


class TestContinuousBernoulli(PairTestBase):
    model_name, guide_name = "vae", "encoder"
    model_config = dict(image_shape=(4, 3), z_dim=2, hidden=(5, 4), likelihood="continuous-bernoulli",
                        activation="relu")


class TestConv(PairTestBase):
    model_name, guide_name = "vae", "encoder"
    model_config = dict(image_shape=(8, 8), z_dim=2, hidden=(6,), arch="conv", activation="relu")


def _pair(**cfg):
    base = dict(image_shape=(4, 3), z_dim=2, hidden=(5,))
    model = models.create_model("vae", **{**base, **cfg})
    return model, guides.create_guide("encoder", model)


# --- bad input ----------------------------------------------------------------------------------
def test_wrong_image_size_is_a_clear_error():
    model, guide = _pair()
    for bad in (torch.zeros(3, 4, 4), torch.zeros(3, 11), torch.zeros(12)):
        with pytest.raises(ValueError, match=r"images must have shape \(N, 4, 3\) or \(N, 12\)"):
            model(bad)
        with pytest.raises(ValueError, match="images must have shape"):
            guide(bad)


def test_grey_values_under_bernoulli_are_refused_not_nan():
    model, guide = _pair()
    x = torch.rand(6, 4, 3)  # grey levels
    with pytest.raises(ValueError, match="binary images.*dynamic binarisation"):
        model(x)
    # in training (Pyro validation off) too: a clear error, never a silent NaN
    with pytest.raises(ValueError, match="binary images"):
        fit(model, guide, (x,), FitConfig.from_dict({"epochs": 1, "batch_size": 3, "validate": False}),
                                RunOptions(progress=False))


@pytest.mark.parametrize("likelihood", ["continuous-bernoulli", "gaussian"])
def test_values_outside_unit_interval_are_refused(likelihood):
    model, _ = _pair(likelihood=likelihood)
    model(torch.rand(2, 4, 3))  # grey levels are fine
    with pytest.raises(ValueError, match=r"values in \[0, 1\].*255"):
        model(255 * torch.rand(2, 4, 3))
    with pytest.raises(ValueError, match="NaN or inf"):
        model(torch.full((2, 12), math.nan))


def test_labels_are_refused():
    model, _ = _pair()
    with pytest.raises(ValueError, match="unsupervised"):
        model(torch.zeros(2, 12), torch.zeros(2))


def test_identity_mean_gaussian_accepts_any_real_values():
    """Values far outside [0, 1] are data for the identity-mean Gaussian (the sigmoid-mean one
    refuses them): the model observes them as they are, with a finite log-density."""
    model, _ = _pair(likelihood="gaussian", gaussian_mean="identity")
    x = torch.randn(3, 12) * 10
    trace = poutine.trace(model).get_trace(x)
    trace.compute_log_prob()
    obs = trace.nodes["obs"]
    assert torch.equal(obs["value"], x) and torch.isfinite(obs["log_prob_sum"])
    sigmoid, _ = _pair(likelihood="gaussian", gaussian_mean="sigmoid")
    with pytest.raises(ValueError, match="needs pixel values in"):
        sigmoid(x)


@pytest.mark.parametrize("cfg, match", [
    (dict(likelihood="poisson"), "likelihood"), (dict(arch="resnet"), "arch"),
    (dict(z_dim=0), "positive"), (dict(arch="conv", image_shape=(6, 6)), "divisible by 4"),
    (dict(activation="swish"), "activation")])
def test_bad_configuration(cfg, match):
    with pytest.raises(ValueError, match=match):
        _pair(**cfg)


def test_flow_encoder_needs_two_latent_dims():
    model = models.create_model("vae", image_shape=(4,), z_dim=1, hidden=())
    with pytest.raises(ValueError, match="z_dim >= 2"):
        guides.create_guide("flow-encoder", model)


# --- the pair -----------------------------------------------------------------------------------
def test_registry_shows_two_guides_for_the_vae():
    pairs = set(guides.list_pairs())
    assert {("vae", "encoder"), ("vae", "flow-encoder")} <= pairs
    assert models.MODELS.meta("vae")["family"] == "vae"


def test_trace_sites_and_shapes_under_particles():
    model, guide = _pair()
    x = model.example_data(5)[0]
    with pyro.plate("particles", 3, dim=-2):
        gt = pyro.poutine.trace(guide).get_trace(x)
        mt = pyro.poutine.trace(pyro.poutine.replay(model, trace=gt)).get_trace(x)
    assert gt.nodes["z"]["value"].shape == (3, 5, 2)
    assert mt.nodes["f"]["value"].shape == (3, 5, 12)
    assert mt.nodes["obs"]["value"].shape == (5, 12)
    assert mt.nodes["obs"]["fn"].batch_shape == (3, 5)


def test_meanfield_and_trace_elbo_agree_in_expectation():
    """The closed-form KL (TraceMeanField_ELBO) and the Monte Carlo KL estimate the same ELBO."""
    model, guide = _pair()
    x = model.example_data(8)[0]
    guide(x)
    torch.manual_seed(0)
    with torch.no_grad():
        mc = torch.stack([make_elbo("trace", 200)(model, guide)(x) for _ in range(5)])
        cf = torch.stack([make_elbo("meanfield", 200)(model, guide)(x) for _ in range(5)])
    se = (mc.var() / 5 + cf.var() / 5).sqrt()
    assert abs(float(mc.mean() - cf.mean())) < 4 * float(se) + 0.05


def test_decode_and_sample_shapes_and_ranges():
    model, _ = _pair()
    imgs = model.sample(7, generator=torch.Generator().manual_seed(0))
    assert imgs.shape == (7, 4, 3) and ((imgs >= 0) & (imgs <= 1)).all()
    assert model.decode(torch.zeros(2, 3, 2)).shape == (2, 3, 4, 3)


def test_training_improves_the_test_bound():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    protos = (torch.rand(3, 12, generator=g) > 0.5).float()  # three binary "digits" with noise
    x = protos[torch.randint(3, (300,), generator=g)]
    x = torch.where(torch.rand(x.shape, generator=g) < 0.05, 1 - x, x)
    model, guide = _pair(hidden=(16,))
    before = iwae_bound(model, guide, x[:100], k=1)
    fit(model, guide, (x[100:],), FitConfig.from_dict({"epochs": 15, "batch_size": 50, "lr": 0.01,
                                                       "elbo": "meanfield", "checkpoint": False}),
                                  RunOptions(progress=False))
    after = iwae_bound(model, guide, x[:100], k=1)
    assert after > before + 2.0, (before, after)


# --- KL warm-up -----------------------------------------------------------------------------------
@pytest.mark.parametrize("elbo_name", ["trace", "meanfield"])
def test_kl_scale_zero_on_local_latents_leaves_the_reconstruction_term(elbo_name):
    model, guide = _pair()
    x = model.example_data(6)[0]
    guide(x)
    elbo = make_elbo(elbo_name)
    loss_fn = elbo(model, guide)
    with KLScale(0.0, include_local=True):
        loss = loss_fn(x)
    torch.testing.assert_close(loss.item(), -float(elbo.last_log_likelihood), rtol=1e-5, atol=1e-4)


def test_kl_warmup_in_fit_ramps_beta_per_step():
    model, guide = _pair()
    x = model.example_data(40)[0]
    state = fit(model, guide, (x,), FitConfig.from_dict({"epochs": 4, "batch_size": 10, "kl_warmup_epochs": 2,
                                                         "checkpoint": False}),
                                    RunOptions(progress=False))
    betas = [row["kl_beta"] for row in state.history]
    assert betas == pytest.approx([0.5, 1.0, 1.0, 1.0])
    plain = fit(*_pair(), (x,), FitConfig.from_dict({"epochs": 1, "batch_size": 10}),
                                RunOptions(progress=False))
    assert "kl_beta" not in plain.history[0]
    with pytest.raises(ValueError, match="kl_warmup_epochs"):
        fit(*_pair(), (x,), FitConfig.from_dict({"epochs": 1, "kl_warmup_epochs": -1}),
                            RunOptions(progress=False))


# --- data -----------------------------------------------------------------------------------------
def test_dynamic_binarization_resamples_binary_images():
    x = torch.rand(50, 4, 3)
    ds = DynamicBinarization(x)
    (a,), (b,) = ds[list(range(50))], ds[list(range(50))]
    assert a.shape == (50, 4, 3) and ((a == 0) | (a == 1)).all()
    assert not torch.equal(a, b)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        DynamicBinarization(x * 2)
    model, guide = _pair()
    state = fit(model, guide, ds, FitConfig.from_dict({"epochs": 1, "batch_size": 25}),
                                  RunOptions(progress=False))
    assert math.isfinite(state.history[0]["loss"])


# --- the VAE experiments: typed configs, reproducibility, evaluating a saved vae.pt -----------------
VAE_EXPERIMENTS = ("iwae-nll", "kingma-fig2", "kingma-fig4", "kingma-fig5")


@pytest.mark.parametrize("name", VAE_EXPERIMENTS)
@pytest.mark.parametrize("smoke", [False, True])
def test_vae_experiment_configs_are_typed_and_valid(name, smoke):
    exp, cfg = prepare_config(name, smoke=smoke, overrides=[])
    assert dataclasses.is_dataclass(cfg)
    text = json.dumps(config_dict(cfg))  # the run's keys live in the RunContext only
    assert not any(f'"{k}"' in text for k in ("seed", "device", "out_dir", "progress"))


@pytest.mark.parametrize("name, overrides, match", [
    ("iwae-nll", ["data.binarization=grey"],
     "data.binarization=grey: expected one of 'dynamic', 'static', 'none'"),
    ("iwae-nll", ["eval.k_nll=0"], r"eval.k_nll=0 is invalid: expected an integer >= 1"),
    ("iwae-nll", ["load=missing/vae.pt"], "load='missing/vae.pt': no such file"),
    ("iwae-nll", ["vae.model_cfg.image_shape=[28, 28]"], "set by the experiment itself"),
    ("iwae-nll", ["fit.epochs=3"], "unknown key 'fit'.*valid keys: data, vae, eval, load"),
    ("kingma-fig2", ["frey.data.binarization=dynamic"],
     "frey.data.binarization='dynamic' is invalid for Frey Face.*'none'"),
    ("kingma-fig2", ["mnist.latent_sizes=[]", "frey.latent_sizes=[]"], "both empty"),
    ("kingma-fig2", ["mnist.vae.model_cfg.z_dim=4"], "mnist.vae.model_cfg.z_dim is set by"),
    ("kingma-fig4", ["mnist.vae.model_cfg.z_dim=3"], r"z_dim=3 is invalid: .*2-D"),
    ("kingma-fig5", ['datasets=["mnist", "svhn"]'], "expected a list of one of 'mnist', 'frey'"),
    ("kingma-fig5", ["latent_sizes=[2, 2]"], r"latent_sizes=\[2, 2\] is invalid"),
])
def test_vae_experiment_bad_config_is_one_line(name, overrides, match):
    with pytest.raises(ConfigError, match=match) as info:
        prepare_config(name, smoke=True, overrides=overrides)
    assert "\n" not in str(info.value)


def _tiny_iwae_config():
    from experiments import iwae_nll

    cfg = iwae_nll.get_config(smoke=True)
    cfg.data.num_train, cfg.data.num_test = 200, 40
    cfg.vae.model_cfg.update(hidden=[16], z_dim=4)
    cfg.vae.fit.epochs, cfg.vae.fit.batch_size = 1, 50
    cfg.eval.ks, cfg.eval.k_nll, cfg.eval.k_chunk = [1], 10, 10
    validate_config(cfg)
    return cfg


def _measured(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if "seconds" not in k and k != "figure"}


def test_iwae_nll_is_reproducible_and_its_vae_pt_loads(tmp_path, data_dir):
    """One seed, one result, whatever the global random stream held before (the networks used to be
    initialised from it); a saved vae.pt is evaluated without training, as is one written by the
    dict configs before the typed ones."""
    from experiments import iwae_nll

    cfg = _tiny_iwae_config()

    def ctx(name):
        (tmp_path / name).mkdir()
        return RunContext(seed=3, device="cpu", out_dir=tmp_path / name, data_dir=str(data_dir),
                          progress=False)

    runs = []
    for i, name in enumerate(("a", "b")):
        torch.manual_seed(100 + i)  # what an earlier run might have left behind
        runs.append(iwae_nll.run(cfg, ctx(name)))
    assert _measured(runs[0]) == _measured(runs[1])
    assert (tmp_path / "a" / "fit" / "history.json").is_file()

    saved, meta = load_zoo_file(tmp_path / "a" / "vae.pt", "vae")
    assert meta["experiment"] == "iwae-nll"
    assert saved["config"]["vae"]["model_cfg"] == {**cfg.vae.model_cfg}
    legacy = {"model": saved["model"], "guide": saved["guide"],
              "config": {"model": cfg.vae.model_cfg, "guide": "encoder", "guide_cfg": {}}}
    save_zoo_file(tmp_path / "legacy.pt", "vae", legacy)
    data = load_images("mnist", num_train=200, num_test=40, data_dir=str(data_dir), seed=3)
    for path in (tmp_path / "a" / "vae.pt", tmp_path / "legacy.pt"):
        model, _, state = iwae_nll._load(str(path), data, "cpu")
        assert state is None
        for key, value in saved["model"].items():
            torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
        loaded = dataclasses.replace(cfg, load=str(path))
        validate_config(loaded)
        metrics = iwae_nll.run(loaded, RunContext(seed=3, device="cpu", out_dir=tmp_path,
                                                  data_dir=str(data_dir), progress=False))
        assert metrics["loaded_from"] == str(path) and metrics["epochs"] is None
        assert abs(metrics["nll_10"] - runs[0]["nll_10"]) < 5.0  # same model, fresh MC draws


# --- CUDA -----------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("guide_name", ["encoder", "flow-encoder"])
def test_fit_and_iwae_on_cuda(guide_name):
    model = models.create_model("vae", image_shape=(8, 8), z_dim=3, hidden=(16,))
    guide = guides.create_guide(guide_name, model)
    x = (torch.rand(64, 8, 8) > 0.5).float()
    fit(model, guide, (x,), FitConfig.from_dict({"epochs": 2, "batch_size": 32}),
                            RunOptions(device="cuda", progress=False))
    assert model.z_loc.is_cuda
    b = iwae_bound(model, guide, x.cuda(), k=20, k_chunk=8)
    assert math.isfinite(b)
    assert model.sample(4).is_cuda


# --- benchmark script -----------------------------------------------------------------------------
def test_benchmark_script_runs_at_toy_size(capsys):
    from experiments.benchmarks import vae_step

    ratios = vae_step.main(["--steps", "2", "--repeats", "1", "--warmup", "1", "--hidden", "8",
                            "--z-dim", "2", "--batch-size", "4"])
    assert set(ratios) == {"plain torch", "zoo (meanfield)", "zoo (trace)", "bare pyro (meanfield)",
                           "bare pyro (trace)", "plain torch (foreach Adam)",
                           "plain torch (fused Adam)", "zoo (meanfield, fused Adam)"}
    # (the foreach and fused rows: on the CPU)
    assert ratios["plain torch"] == 1.0 and all(math.isfinite(r) and r > 0 for r in ratios.values())
    out = capsys.readouterr().out
    assert "| zoo (meanfield) |" in out and "plain torch with the same foreach Adam)" in out
    assert "load average" in out  # beside every timing


def test_benchmark_phases_run_at_toy_size(capsys):
    from experiments.benchmarks import vae_step

    totals = vae_step.main(["--phases", "--steps", "2", "--repeats", "1", "--warmup", "1",
                            "--hidden", "8", "--z-dim", "2", "--batch-size", "4"])
    assert set(totals) == {"zoo (meanfield)", "plain torch (foreach Adam)"}
    assert all(t > 0 for t in totals.values())
    out = capsys.readouterr().out
    assert "| zoo (meanfield) |" in out and "load average" in out
    with pytest.raises(SystemExit):
        vae_step.main(["--phases", "--device", "cuda"])


def test_benchmark_counts_ops_at_toy_size(capsys):
    from experiments.benchmarks import vae_step

    counts = vae_step.main(["--ops", "--hidden", "8", "--z-dim", "2", "--batch-size", "4"])
    assert set(counts) == {"plain torch", "zoo (meanfield)", "zoo (trace)", "bare pyro (meanfield)",
                           "bare pyro (trace)"}
    # the plain loss: four linears, their backward and gradient accumulation at least
    assert counts["plain torch"] > 40
    # the zoo's closed-form loss takes fewer ops than its Monte Carlo one (no log-densities of z)
    assert counts["zoo (meanfield)"] < counts["zoo (trace)"]
    assert "| zoo (meanfield) |" in capsys.readouterr().out
