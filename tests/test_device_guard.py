"""CPU guard against tensors that do not follow ``.to(device)`` (see :mod:`tests.stray`).

Every registered pair is built as a user builds it (float32, the default dtype), moved with
``.to(torch.float64)`` the way ``fit`` moves it with ``.to("cuda")``, and then set up, stepped and
asked for its predictive under :class:`~tests.stray.StrayDtypeMode`. A pair that keeps a tensor
outside its parameters and buffers fails here, on a CPU, with the torch call that would have
failed on a GPU. Registering a pair is enough for it to be checked.
"""

from __future__ import annotations

import pytest
import torch

import guides
import models
from experiments.engine.predictive import posterior_predictive
from experiments.engine.settings import FitConfig
from experiments.engine.step import train_step
from experiments.engine.training import setup
from tests.stray import StrayDtypeMode, StrayTensorError


def _wide(t: torch.Tensor) -> torch.Tensor:
    return t.double() if t.is_floating_point() else t


# configurations beyond each model's test_config whose code paths hold tensors of their own
_MIXTURE = dict(in_features=2, widths=(4,), prior={"kind": "scale-mixture"})
VARIANTS = [
    ("bnn", _MIXTURE, "mean-field", {}),
    ("bnn", _MIXTURE, "mean-field", {"flipout": True}),
    ("bnn", _MIXTURE, "auto-normal", {}),
    ("bnn", dict(in_features=2, widths=(4,)), "mean-field", {"local_reparam": True}),
    ("bnn", dict(in_features=2, widths=(4,), out_features=3, task="classification",
                 bayesian_layers="last"), "mean-field", {"local_reparam": True}),
    ("mlp", dict(in_features=2, widths=(4,), dropout=0.2), "deterministic", {}),
    ("svgp", dict(input_dim=2, num_inducing=4, whiten=False, mean="constant"), "cholesky", {}),
    ("svgp", dict(input_dim=2, num_inducing=4, whiten=False, mean="constant"), "cholesky",
     {"natural_gradient": True}),
    ("svgp", dict(input_dim=2, num_inducing=4, likelihood="bernoulli"), "mean-field-u", {}),
    ("svgp", dict(input_dim=2, num_inducing=4, likelihood="student-t", learn_inducing=False),
     "cholesky", {}),
    ("svgp", dict(input_dim=2, num_inducing=4, likelihood="softmax", num_classes=3), "delta", {}),
    ("vae", dict(image_shape=(8, 4), z_dim=2, hidden=(5,), arch="conv"), "encoder", {}),
    ("vae", dict(image_shape=(4, 3), z_dim=2, hidden=(5,), likelihood="gaussian",
                 gaussian_scale="pixel"), "flow-encoder", {}),
    ("vae", dict(image_shape=(4, 3), z_dim=2, hidden=(5,), likelihood="continuous-bernoulli"),
     "encoder", {}),
]


def _moved_pair(model_name, guide_name, num_data=6, model_cfg=None, guide_cfg=None):
    if model_cfg is None:
        model_cfg = models.MODELS.meta(model_name)["test_config"]
    model = models.create_model(model_name, **model_cfg)
    guide = guides.create_guide(guide_name, model, **(guide_cfg or {}))
    data = model.example_data(num_data, generator=torch.Generator().manual_seed(0))
    model.double()
    guide.double()
    return model, guide, tuple(_wide(t) for t in data)


@pytest.mark.parametrize("model_name, guide_name", guides.list_pairs())
def test_pair_follows_to(model_name, guide_name):
    model, guide, data = _moved_pair(model_name, guide_name)
    with StrayDtypeMode():
        state = setup(model, guide, data, FitConfig.from_dict({"device": "cpu", "batch_size": 6,
                                                               "progress": False,
                                                               "num_particles": 2}))
        train_step(state, data)
        pred = posterior_predictive(model, guide, data[0][:3], num_samples=2)
    assert pred["f"].dtype == torch.float64


@pytest.mark.parametrize("model_name, model_cfg, guide_name, guide_cfg", VARIANTS,
                         ids=[f"{m}-{g}-{i}" for i, (m, _, g, _) in enumerate(VARIANTS)])
@pytest.mark.parametrize("elbo", ["trace", "meanfield"])
def test_variant_follows_to(model_name, model_cfg, guide_name, guide_cfg, elbo):
    model, guide, data = _moved_pair(model_name, guide_name, model_cfg=model_cfg,
                                     guide_cfg=guide_cfg)
    with StrayDtypeMode():
        state = setup(model, guide, data, FitConfig.from_dict({"device": "cpu", "batch_size": 6,
                                                               "progress": False,
                                                               "elbo": elbo}))
        train_step(state, data)
        posterior_predictive(model, guide, data[0][:3], num_samples=2)


@pytest.mark.parametrize("model_name, guide_name", guides.list_pairs())
def test_meanfield_elbo_follows_to(model_name, guide_name):
    """The closed-form-KL path (and the mean-field guide's skipped draw) too."""
    model, guide, data = _moved_pair(model_name, guide_name)
    with StrayDtypeMode():
        state = setup(model, guide, data, FitConfig.from_dict({"device": "cpu", "batch_size": 6,
                                                               "progress": False,
                                                               "elbo": "meanfield"}))
        train_step(state, data)


def test_guard_catches_a_stray_tensor():
    """The guard itself: a float32 (CPU-like) weight meeting float64 (GPU-like) inputs fails,
    a zero-dimensional one (a CUDA kernel accepts a 0-d CPU tensor) does not."""
    x = torch.randn(3, 2, dtype=torch.float64)
    with StrayDtypeMode():
        x * torch.tensor(2.0)
        with pytest.raises(StrayTensorError, match="mixes float64"):
            x @ torch.randn(2, 4)


def test_naive_pyro_benchmark_peer_follows_to():
    """bnn_step's "naive Pyro" peer (PyroSample priors + AutoNormal) is the baseline the zoo is
    timed against on a GPU, so it must run there too."""
    from pyro.infer import Trace_ELBO
    from pyro.infer.autoguide import AutoNormal

    from experiments.benchmarks.bnn_step import NaivePyroBNN

    model = NaivePyroBNN((4, 8, 3), num_data=10).double()
    guide = AutoNormal(model)
    x, y = torch.randn(5, 4, dtype=torch.float64), torch.randint(3, (5,))
    with StrayDtypeMode():
        Trace_ELBO()(model, guide)(x, y).backward()


def test_simulated_gpu_mode_flags_a_stray_tensor_and_nothing_else():
    """The VBZOO_SIMULATE_GPU rehearsal's mode (tests/conftest.py): a move to SIMULATED_GPU is a
    cast to float64, a CPU float32 tensor meeting the moved module fails, and what is fine on a
    GPU passes (a tensor made there, a follow move to another tensor's device, float64 on purpose)."""
    from tests.stray import SIMULATED_GPU, SimulatedGPUMode, StrayTensorError

    with SimulatedGPUMode():
        layer = torch.nn.Linear(3, 2).to(SIMULATED_GPU)
        assert layer.weight.dtype == torch.float64
        x = torch.randn(4, 3)
        with pytest.raises(StrayTensorError):
            layer(x)  # x stayed behind
        out = layer(x.to(SIMULATED_GPU))  # moved: fine
        y = torch.randn(4, 2)
        with pytest.raises(StrayTensorError):
            out - y
        _ = out - y.to(out.device)  # follows the prediction's device
        _ = out + torch.ones(4, 2, device=SIMULATED_GPU)  # made there
        sums = torch.zeros(2, dtype=torch.float64)
        sums.add_(torch.ones(2))  # float64 on purpose: says nothing about its device
        _ = torch.randn(4, 2).double().mean(0) - torch.randn(2)
        # a no-op cast of a tensor on the device leaves it there: it still counts
        for same in (out.double(), out.to(torch.float64)):
            with pytest.raises(StrayTensorError):
                same - torch.randn(4, 2)
