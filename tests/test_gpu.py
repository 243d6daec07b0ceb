"""CUDA checks (marked ``gpu``; skipped when torch.cuda.is_available() is False)."""

import pytest
import torch

import guides
import models
from experiments.common.predictive import posterior_predictive
from experiments.common.training import fit


@pytest.mark.gpu
@pytest.mark.parametrize("model_name, guide_name", guides.list_pairs())
def test_pair_trains_and_predicts_on_cuda(model_name, guide_name):
    model = models.create_model(model_name, **models.MODELS.meta(model_name)["test_config"])
    guide = guides.create_guide(guide_name, model)
    data = model.example_data(32)  # (x, y), or (x,) for the VAE; on the CPU, as users have it
    state = fit(model, guide, data, {"epochs": 2, "batch_size": 8, "device": "cuda",
                                     "progress": False, "num_particles": 2})
    assert all(p.is_cuda for p in state.loss_fn.parameters())
    assert all(b.is_cuda for b in model.buffers())
    pred = posterior_predictive(model, guide, data[0][:5], num_samples=4)  # CPU inputs are moved
    assert pred["obs"].shape[:2] == (4, 5)


@pytest.mark.gpu
def test_local_reparam_on_cuda():
    model = models.create_model("bnn", in_features=3, widths=(16,))
    guide = guides.create_guide("mean-field", model, local_reparam=True)
    x, y = model.example_data(64)
    state = fit(model, guide, (x, y), {"epochs": 3, "batch_size": 16, "device": "cuda",
                                       "elbo": "meanfield", "progress": False})
    assert torch.isfinite(torch.tensor(state.history[-1]["loss"]))


@pytest.mark.gpu
def test_svgp_cuda_matches_cpu():
    """The same SVGP state predicts the same moments on CUDA and CPU (float64)."""
    model = models.create_model("svgp", input_dim=2, num_inducing=16, dtype="float64")
    x, y = model.example_data(200, torch.Generator().manual_seed(0))
    model.initialize_inducing(x)
    guide = guides.create_guide("cholesky", model)
    fit(model, guide, (x, y), {"epochs": 3, "batch_size": 50, "device": "cuda",
                               "elbo": "meanfield", "progress": False})
    on_gpu = model.predict(x[:20].cuda(), guide)
    model.cpu()
    guide.cpu()
    on_cpu = model.predict(x[:20], guide)
    assert torch.allclose(on_gpu["f_mean"], on_cpu["f_mean"], atol=1e-8)
    assert torch.allclose(on_gpu["f_var"], on_cpu["f_var"], atol=1e-8)
