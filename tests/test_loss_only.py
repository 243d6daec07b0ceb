"""``models.base.loss_only``: what ``train_step`` enters around the loss (issue 14, the CPU VAE
step). Inside it zoo modules skip the ``param`` statements of their plain ``nn.Module`` children
and the ``pyro.deterministic`` records (``models.base.record``); the ELBO reads neither, so for
every registered pair the loss and every gradient must be *identical* with and without it, while
the traces lose exactly those records. Outside it (prediction) nothing changes.
"""

from __future__ import annotations

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

import guides
import models
from experiments.engine.elbo import MeanFieldELBO, TraceELBO, _broadcast_shape
from models.base import is_loss_only, loss_only, record


def _pair(model_name, guide_name):
    model = models.create_model(model_name, **models.MODELS.meta(model_name)["test_config"])
    guide = guides.create_guide(guide_name, model)
    data = model.example_data(6, generator=torch.Generator().manual_seed(0))
    model.num_data = 6
    guide(*data)  # lazy parameters exist from here on
    return model, guide, data


def _loss_and_grads(elbo, model, guide, data, only: bool):
    params = [p for p in list(model.parameters()) + list(guide.parameters()) if p.requires_grad]
    pyro.set_rng_seed(7)
    with pyro.validation_enabled(False), (loss_only() if only else torch.enable_grad()):
        loss = elbo.differentiable_loss(model, guide, *data)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return loss.detach(), grads


@pytest.mark.parametrize("model_name, guide_name", guides.list_pairs())
@pytest.mark.parametrize("elbo", [TraceELBO, MeanFieldELBO], ids=["trace", "meanfield"])
def test_loss_only_changes_no_loss_and_no_gradient(model_name, guide_name, elbo):
    model, guide, data = _pair(model_name, guide_name)
    a, ga = _loss_and_grads(elbo(), model, guide, data, only=False)
    b, gb = _loss_and_grads(elbo(), model, guide, data, only=True)
    assert torch.isfinite(a)
    assert torch.equal(a, b)
    for u, v in zip(ga, gb):
        assert (u is None) == (v is None)
        if u is not None:
            assert torch.equal(u, v)


@pytest.mark.parametrize("model_name, guide_name", [("vae", "encoder"), ("bnn", "mean-field"),
                                                    ("svgp", "cholesky")])
def test_loss_only_drops_the_records_the_elbo_does_not_read(model_name, guide_name):
    model, guide, data = _pair(model_name, guide_name)

    def traces():
        guide_trace = poutine.trace(guide).get_trace(*data)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*data)
        return model_trace, guide_trace

    full_model, full_guide = traces()
    with loss_only():
        assert is_loss_only()
        lean_model, lean_guide = traces()
    assert not is_loss_only()
    assert "f" in full_model.nodes and "f" not in lean_model.nodes
    for full, lean in ((full_model, lean_model), (full_guide, lean_guide)):
        kept = {n for n, s in full.nodes.items() if s["type"] != "param" and n != "f"}
        assert {n for n, s in lean.nodes.items() if s["type"] != "param"} == kept
        assert {n for n, s in lean.nodes.items() if s["type"] == "param"} <= \
            {n for n, s in full.nodes.items() if s["type"] == "param"}
    if model_name == "vae":  # the decoder is a plain nn.Module: its four parameters' statements go
        assert sum(s["type"] == "param" for s in full_model.nodes.values()) == 4
        assert not any(s["type"] == "param" for s in lean_model.nodes.values())


def test_record_is_pyros_deterministic_outside_loss_only_and_nothing_inside():
    calls = []

    def value():
        calls.append(1)
        return torch.ones(3)

    def fn():
        return record("f", value, event_dim=1), record("g", torch.zeros(2))

    trace = poutine.trace(fn).get_trace()
    assert trace.nodes["f"]["infer"]["_deterministic"] and torch.equal(trace.nodes["g"]["value"],
                                                                      torch.zeros(2))
    assert len(calls) == 1
    with loss_only():
        trace = poutine.trace(fn).get_trace()
        f, g = fn()
    assert "f" not in trace.nodes and "g" not in trace.nodes
    assert f is None and torch.equal(g, torch.zeros(2)) and len(calls) == 1  # never computed


def test_the_elbos_skip_deterministic_sites_and_keep_their_value():
    """A deterministic site's log-density is 0: skipping it leaves both ELBOs equal to Pyro's."""
    model, guide, data = _pair("vae", "encoder")
    for ours, theirs in ((TraceELBO(), Trace_ELBO()), (MeanFieldELBO(), TraceMeanField_ELBO())):
        a, _ = _loss_and_grads(ours, model, guide, data, only=False)
        b, _ = _loss_and_grads(theirs, model, guide, data, only=False)
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-5)


def test_a_non_module_zoo_guide_reports_a_missing_attribute_plainly():
    class Plain(guides.base.ZooGuide):
        pass

    with pytest.raises(AttributeError, match="'Plain' object has no attribute 'nope'"):
        Plain().nope  # noqa: B018


@pytest.mark.parametrize("a, b", [((128, 50), (50,)), ((50,), (128, 50)), ((3, 1, 5), (4, 1)),
                                  ((), (2, 3)), ((2, 3), ()), ((2, 3), (2, 3))])
def test_broadcast_shape_is_torchs(a, b):
    assert _broadcast_shape(torch.Size(a), torch.Size(b)) == torch.broadcast_shapes(a, b)
