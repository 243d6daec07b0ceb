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
from experiments.engine.predictive import posterior_predictive
from experiments.engine.settings import FitConfig, RunOptions
from experiments.engine.step import train_step
from experiments.engine.training import setup
from tests.helpers import VARIANTS, moved_pair
from tests.stray import StrayDtypeMode, StrayTensorError


@pytest.mark.parametrize("model_name, guide_name", guides.list_pairs())
def test_pair_follows_to(model_name, guide_name):
    model, guide, data = moved_pair(model_name, guide_name)
    with StrayDtypeMode():
        state = setup(model, guide, data, FitConfig.from_dict({"batch_size": 6, "num_particles": 2}),
                                          RunOptions(device="cpu", progress=False))
        train_step(state, data)
        pred = posterior_predictive(model, guide, data[0][:3], num_samples=2)
    assert pred["f"].dtype == torch.float64


@pytest.mark.parametrize("model_name, model_cfg, guide_name, guide_cfg", VARIANTS,
                         ids=[f"{m}-{g}-{i}" for i, (m, _, g, _) in enumerate(VARIANTS)])
@pytest.mark.parametrize("elbo", ["trace", "meanfield"])
def test_variant_follows_to(model_name, model_cfg, guide_name, guide_cfg, elbo):
    model, guide, data = moved_pair(model_name, guide_name, model_cfg=model_cfg,
                                     guide_cfg=guide_cfg)
    with StrayDtypeMode():
        state = setup(model, guide, data, FitConfig.from_dict({"batch_size": 6, "elbo": elbo}),
                                          RunOptions(device="cpu", progress=False))
        train_step(state, data)
        posterior_predictive(model, guide, data[0][:3], num_samples=2)


@pytest.mark.parametrize("model_name, guide_name", guides.list_pairs())
def test_meanfield_elbo_follows_to(model_name, guide_name):
    """The closed-form-KL path (and the mean-field guide's skipped draw) too."""
    model, guide, data = moved_pair(model_name, guide_name)
    with StrayDtypeMode():
        state = setup(model, guide, data, FitConfig.from_dict({"batch_size": 6, "elbo": "meanfield"}),
                                          RunOptions(device="cpu", progress=False))
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
