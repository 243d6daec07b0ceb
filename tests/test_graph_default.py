"""CUDA graphs by default (FitConfig.cuda_graph="auto"): the decision, checked on the CPU with a
CUDA device object (nothing runs on it). tests/test_gpu.py checks graphed against eager."""

import logging
import warnings

import pytest
import torch

import guides
import models
from experiments.engine.cuda_graph import graph_blockers, uses_cuda_graph
from experiments.engine.settings import FitConfig, RunOptions
from experiments.engine.training import fit
from experiments.harness.spec import PairSpec, apply_overrides

CUDA, CPU = torch.device("cuda"), torch.device("cpu")


def _pair(model_name, guide_name, **model_cfg):
    defaults = {"bnn": dict(in_features=2, widths=[4]), "mlp": dict(in_features=2, widths=[4]),
                "svgp": dict(input_dim=2, num_inducing=4)}[model_name]
    model = models.create_model(model_name, **{**defaults, **model_cfg})
    return model, guides.create_guide(guide_name, model)


def test_auto_is_the_default_and_parses_from_the_command_line():
    assert FitConfig().cuda_graph == "auto"
    spec = apply_overrides(PairSpec("bnn", "mean-field"), ["fit.cuda_graph=false"])
    assert spec.fit.cuda_graph is False
    spec = apply_overrides(PairSpec("bnn", "mean-field", fit={"cuda_graph": False}),
                           ["fit.cuda_graph=auto"])
    assert spec.fit.cuda_graph == "auto"
    with pytest.raises(ValueError, match="cuda_graph"):
        FitConfig(cuda_graph="sometimes")
    # auto never refuses a setting: an optimiser without a capturable kernel just runs eagerly
    FitConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="optimizer"):
        FitConfig(optimizer="sgd", cuda_graph=True)


@pytest.mark.parametrize("pair", [("bnn", "mean-field"), ("mlp", "deterministic"),
                                  ("svgp", "cholesky")])
def test_auto_graphs_a_supported_pair_on_cuda_only(pair):
    model, guide = _pair(*pair)
    cfg = FitConfig()
    assert graph_blockers(cfg, model, guide) == []
    assert uses_cuda_graph(cfg, CUDA, model, guide)
    assert not uses_cuda_graph(cfg, CPU, model, guide)
    assert not uses_cuda_graph(FitConfig(cuda_graph=False), CUDA, model, guide)


def test_auto_runs_other_pairs_eagerly_and_says_why():
    model, guide = _pair("bnn", "auto-normal")
    why = graph_blockers(FitConfig(), model, guide)
    assert why and "bnn + auto-normal pair is not captured" in why[0]
    assert not uses_cuda_graph(FitConfig(), CUDA, model, guide)
    model, guide = _pair("svgp", "cholesky", likelihood="student-t")
    assert any("student-t" in w for w in graph_blockers(FitConfig(), model, guide))
    model, guide = _pair("bnn", "mean-field")
    assert any("sgd" in w for w in graph_blockers(FitConfig(optimizer="sgd"), model, guide))
    assert graph_blockers(FitConfig(fused=False), model, guide) == ["fused=False"]
    # an explicit True is the user's choice: graphed (or refused by check_graph_pair in fit)
    assert uses_cuda_graph(FitConfig(cuda_graph=True), CUDA, *_pair("bnn", "auto-normal"))


def test_auto_on_the_cpu_changes_nothing_and_says_nothing(caplog):
    x = torch.randn(64, 2)
    y = x[:, 0]
    model, guide = _pair("bnn", "mean-field")
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO):
        warnings.simplefilter("always")
        state = fit(model, guide, (x, y), FitConfig(epochs=2), RunOptions(device="cpu", progress=False))
    assert not [w for w in caught if "cuda_graph" in str(w.message)]
    assert "CUDA graph" not in caplog.text
    # no capturable optimiser on the CPU: the lr stays a Python float
    assert isinstance(state.optimizer.param_groups[0]["lr"], float)
