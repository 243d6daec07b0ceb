"""CUDA checks (marked ``gpu``; skipped when torch.cuda.is_available() is False)."""

import pytest
import torch

import guides
import models
from experiments.engine.predictive import posterior_predictive
from experiments.engine.settings import FitConfig, RunOptions
from experiments.engine.training import fit


@pytest.mark.gpu
@pytest.mark.parametrize("model_name, guide_name", guides.list_pairs())
def test_pair_trains_and_predicts_on_cuda(model_name, guide_name):
    model = models.create_model(model_name, **models.MODELS.meta(model_name)["test_config"])
    guide = guides.create_guide(guide_name, model)
    data = model.example_data(32)  # (x, y), or (x,) for the VAE; on the CPU, as users have it
    state = fit(model, guide, data, FitConfig.from_dict({"epochs": 2, "batch_size": 8, "num_particles": 2}),
                                    RunOptions(device="cuda", progress=False))
    assert all(p.is_cuda for p in state.loss_fn.parameters())
    assert all(b.is_cuda for b in model.buffers())
    pred = posterior_predictive(model, guide, data[0][:5], num_samples=4)  # CPU inputs are moved
    assert pred["obs"].shape[:2] == (4, 5)


@pytest.mark.gpu
def test_local_reparam_on_cuda():
    model = models.create_model("bnn", in_features=3, widths=(16,))
    guide = guides.create_guide("mean-field", model, local_reparam=True)
    x, y = model.example_data(64)
    state = fit(model, guide, (x, y), FitConfig.from_dict({"epochs": 3, "batch_size": 16,
                                                           "elbo": "meanfield"}),
                                      RunOptions(device="cuda", progress=False))
    assert torch.isfinite(torch.tensor(state.history[-1]["loss"]))


@pytest.mark.gpu
def test_svgp_cuda_matches_cpu():
    """The same SVGP state predicts the same moments on CUDA and CPU (float64)."""
    model = models.create_model("svgp", input_dim=2, num_inducing=16, dtype="float64")
    x, y = model.example_data(200, torch.Generator().manual_seed(0))
    model.initialize_inducing(x)
    guide = guides.create_guide("cholesky", model)
    fit(model, guide, (x, y), FitConfig.from_dict({"epochs": 3, "batch_size": 50, "elbo": "meanfield"}),
                              RunOptions(device="cuda", progress=False))
    on_gpu = model.predict(x[:20].cuda(), guide)
    model.cpu()
    guide.cpu()
    on_cpu = model.predict(x[:20], guide)
    assert torch.allclose(on_gpu["f_mean"], on_cpu["f_mean"], atol=1e-8)
    assert torch.allclose(on_gpu["f_var"], on_cpu["f_var"], atol=1e-8)


@pytest.mark.gpu
def test_metrics_take_targets_on_another_device():
    """Predictions on the GPU, targets on the CPU (as loaders give them): the metrics move the
    targets and give the same numbers as on the CPU."""
    from experiments.engine import metrics as M

    g = torch.Generator().manual_seed(0)
    loc, y = torch.randn(5, 20, generator=g), torch.randn(20, generator=g)
    probs, labels = torch.softmax(torch.randn(20, 3, generator=g), -1), torch.randint(3, (20,))
    cases = [(M.rmse, loc[0], y), (M.mae, loc[0], y), (M.interval_coverage, loc, y),
             (M.accuracy, probs, labels), (M.nll, probs, labels),
             (M.expected_calibration_error, probs, labels)]
    for fn, pred, target in cases:
        assert fn(pred.cuda(), target) == pytest.approx(fn(pred, target), rel=1e-5), fn.__name__
    on_gpu = M.gaussian_log_likelihood(loc.cuda(), torch.tensor(0.5), y)
    assert on_gpu == pytest.approx(M.gaussian_log_likelihood(loc, 0.5, y), rel=1e-5)


@pytest.mark.gpu
def test_checkpoint_from_gpu_restores_on_cpu(tmp_path):
    """A checkpoint written on a GPU machine (CUDA random state included) restores on the CPU."""
    from experiments.engine.state import restore, save_checkpoint
    from experiments.engine.training import setup

    model = models.create_model("bnn", in_features=2, widths=(4,))
    guide = guides.create_guide("mean-field", model)
    data = model.example_data(16)
    state = fit(model, guide, data, FitConfig.from_dict({"epochs": 1, "batch_size": 8, "checkpoint": False}),
                                    RunOptions(device="cuda", progress=False))
    save_checkpoint(state, tmp_path / "ckpt.pt")
    model2 = models.create_model("bnn", in_features=2, widths=(4,))
    guide2 = guides.create_guide("mean-field", model2)
    cfg2 = FitConfig.from_dict({"epochs": 2, "batch_size": 8})
    state2 = restore(setup(model2, guide2, data, cfg2, RunOptions(device="cpu", progress=False)),
                     tmp_path / "ckpt.pt")
    assert not guide2.w0_loc.is_cuda
    torch.testing.assert_close(guide2.w0_loc, guide.w0_loc.cpu())
    fit(model2, guide2, data, state=state2)


GRAPH_CASES = [
    ("bnn", dict(in_features=3, widths=(16,)), "mean-field", {"local_reparam": True}, "meanfield"),
    ("bnn", dict(in_features=3, widths=(16,)), "mean-field", {"flipout": True}, "trace"),
    ("vae", dict(image_shape=(6, 4), z_dim=2, hidden=(8,)), "encoder", {}, "meanfield"),
    ("svgp", dict(input_dim=2, num_inducing=8), "cholesky", {}, "meanfield"),
    ("svgp", dict(input_dim=2, num_inducing=8), "cholesky", {"natural_gradient": True},
     "meanfield"),
]


@pytest.mark.gpu
@pytest.mark.parametrize("model_name, model_cfg, guide_name, guide_cfg, elbo", GRAPH_CASES,
                         ids=[f"{c[0]}-{c[2]}-{c[4]}-{i}" for i, c in enumerate(GRAPH_CASES)])
def test_cuda_graph_agrees_with_eager_in_distribution(model_name, model_cfg, guide_name,
                                                      guide_cfg, elbo):
    """200 steps (20 epochs of 10 batches, the last one short: it runs eagerly) graphed and
    eager under one seed: the mean loss of the last 5 epochs agrees within Monte Carlo error."""
    data = models.create_model(model_name, **model_cfg).example_data(
        610, torch.Generator().manual_seed(0))
    runs = {}
    for graph in (False, True):
        model = models.create_model(model_name, **model_cfg)
        guide = guides.create_guide(guide_name, model, **guide_cfg)
        state = fit(model, guide, data, FitConfig.from_dict({"epochs": 20, "batch_size": 64, "elbo": elbo,
                                                             "lr": 0.01, "kl_schedule": "blundell",
                                                             "cuda_graph": graph}),
                                        RunOptions(device="cuda", progress=False))
        runs[graph] = torch.tensor([r["loss"] for r in state.history])
        assert state.step == 200
        assert torch.isfinite(runs[graph]).all()
    tail = torch.cat([runs[False][-5:], runs[True][-5:]])
    tol = 4 * tail.std() / 5 ** 0.5 + 0.02 * tail.mean().abs()
    assert (runs[True][-5:].mean() - runs[False][-5:].mean()).abs() < tol, runs
    assert runs[True][-1] < runs[True][0]  # it trained


@pytest.mark.gpu
def test_cuda_graph_refuses_an_unsupported_pair():
    model = models.create_model("bnn", in_features=3, widths=(4,))
    guide = guides.create_guide("auto-normal", model)
    with pytest.raises(ValueError, match="pairs with CUDA-graph support: bnn \\+ mean-field"):
        fit(model, guide, model.example_data(32), FitConfig.from_dict({"epochs": 1, "cuda_graph": True}),
                                                  RunOptions(device="cuda", progress=False))


@pytest.mark.gpu
def test_cuda_graph_gate_stops_a_nan_and_names_the_step():
    """A non-finite value inside replayed steps: the gate stops the updates on the device and the
    error at the next read names the first bad step (epoch 2, step 9: 8 steps per epoch)."""
    model = models.create_model("bnn", in_features=3, widths=(4,))
    guide = guides.create_guide("mean-field", model)

    def poison(model, guide):  # after epoch 1 (eval_fn runs between epochs)
        if state_steps[0] == 0:
            for p in guide.parameters():
                p.data.fill_(float("inf"))
                break
            state_steps[0] = 1
        return {}

    state_steps = [0]
    with pytest.raises(FloatingPointError, match="epoch 2, step 9"):
        fit(model, guide, model.example_data(64), FitConfig.from_dict({"epochs": 3, "batch_size": 8,
                                                                       "cuda_graph": True}),
                                                  RunOptions(device="cuda", progress=False), eval_fn=poison)
