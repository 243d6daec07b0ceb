"""The pair test base class: subclass it with ``model_name``/``guide_name`` (and optionally
``model_config``, ``guide_config``, or override ``make_pair``/``make_data``) and every contract
check below runs for your pair. ``tests/test_pairs.py`` instantiates it for every registered pair.
"""

from __future__ import annotations

import math

import pyro
import torch
from pyro import poutine

import guides
import models
from experiments.common.predictive import posterior_predictive
from experiments.common.training import make_elbo, setup


def _latents(trace):
    return {name: site for name, site in trace.nodes.items()
            if site["type"] == "sample" and not site["is_observed"]
            and type(site["fn"]).__name__ != "_Subsample"
            and not site["infer"].get("is_auxiliary")}


class PairTestBase:
    model_name: str = ""
    guide_name: str = ""
    model_config: dict | None = None  # default: the model's registered test_config
    guide_config: dict = {}
    num_data = 6
    elbos = ("trace",)

    def make_pair(self):
        cfg = self.model_config
        if cfg is None:
            cfg = models.MODELS.meta(self.model_name).get("test_config", {})
        model = models.create_model(self.model_name, **cfg)
        guide = guides.create_guide(self.guide_name, model, **self.guide_config)
        return model, guide

    def make_data(self, model, num_data: int):
        return model.example_data(num_data, generator=torch.Generator().manual_seed(0))

    def _ready(self, num_data=None):
        model, guide = self.make_pair()
        data = self.make_data(model, num_data or self.num_data)
        guide(*data)  # lazy guide set-up, as fit() does
        return model, guide, data

    def test_trace_shapes(self):
        model, guide, data = self._ready()
        trace = poutine.trace(model).get_trace(*data)
        trace.compute_log_prob()
        obs = trace.nodes["obs"]
        assert obs["is_observed"]
        assert obs["value"].shape[0] == self.num_data
        assert any(f.name == "data" for f in obs["cond_indep_stack"]), "obs outside data plate"
        for name, site in _latents(trace).items():
            assert torch.isfinite(site["log_prob_sum"]), name

    def test_guide_latents_match_model(self):
        model, guide, data = self._ready()
        guide_trace = poutine.trace(guide).get_trace(*data)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*data)
        g, m = _latents(guide_trace), _latents(model_trace)
        assert set(g) == set(m), f"guide latents {sorted(g)} != model latents {sorted(m)}"
        for name in m:
            assert g[name]["value"].shape == m[name]["value"].shape, name

    def test_finite_elbo(self):
        model, guide, data = self._ready()
        for name in self.elbos:
            for particles in (1, 3):
                loss = make_elbo(name, num_particles=particles)(model, guide)
                with _ctx(guide):
                    value = loss(*data)
                assert torch.isfinite(value), (name, particles, value)

    def test_one_step_gives_every_parameter_a_gradient(self):
        model, guide = self.make_pair()
        data = self.make_data(model, self.num_data)
        state = setup(model, guide, data, {"batch_size": self.num_data, "progress": False,
                                           "elbo": self.elbos[0], "num_particles": 2})
        state.optimizer.zero_grad()
        with _ctx(guide):
            loss = state.loss_fn(*data)
        loss.backward()
        params = dict(state.loss_fn.named_parameters())
        assert params, "the pair has no trainable parameters"
        missing = [n for n, p in params.items() if p.grad is None]
        assert not missing, f"no gradient for {missing}"
        bad = [n for n, p in params.items() if not torch.isfinite(p.grad).all()]
        assert not bad, f"non-finite gradient for {bad}"
        before = {n: p.detach().clone() for n, p in params.items()}
        state.optimizer.step()
        assert any(not torch.equal(before[n], p) for n, p in params.items())

    def test_predictive_shapes(self):
        model, guide, data = self._ready()
        for n in (1, 3):
            x = data[0][:n]
            pred = posterior_predictive(model, guide, x, num_samples=4, sample_chunk=3)
            assert pred["obs"].shape[:2] == (4, n)
            assert pred["f"].shape[:2] == (4, n)
            assert torch.isfinite(pred["f"]).all()

    def test_predictive_samples_differ_when_latent(self):
        model, guide, data = self._ready()
        latents = _latents(poutine.trace(guide).get_trace(*data))
        pred = posterior_predictive(model, guide, data[0][:3], num_samples=5)
        spread = pred["f"].std(0).max().item()
        if latents and not guides.GUIDES.meta(self.guide_name).get("point_estimate"):
            assert spread > 0 and math.isfinite(spread)


def _ctx(guide):
    import contextlib

    ctx = getattr(guide, "elbo_context", None)
    return ctx() if ctx else contextlib.nullcontext()


__all__ = ["PairTestBase", "pyro"]
