"""The pair test base class: subclass it with ``model_name``/``guide_name`` (and optionally
``model_config``, ``guide_config``, or override ``make_pair``/``make_data``) and every contract
check below runs for your pair, on every available device (the ``device`` fixture of
``tests/conftest.py``: the CPU always, CUDA when present). ``tests/test_pairs.py`` instantiates it
for every registered pair.

``make_pair`` and ``make_data`` build on the CPU, as a user does; the checks move the pair and the
data to the device under test themselves (``fit`` and ``setup`` move them as they do for users).
"""

from __future__ import annotations

import math

import pyro
import torch
from pyro import poutine

import guides
import models
from experiments.engine.elbo import make_elbo
from experiments.engine.predictive import _guide_samples, posterior_predictive
from experiments.engine.settings import FitConfig, RunOptions
from experiments.engine.state import restore, save_checkpoint
from experiments.engine.training import fit, setup
from guides.base import elbo_context
from models.base import is_subsample


def _latents(trace):
    return {name: site for name, site in trace.nodes.items()
            if site["type"] == "sample" and not site["is_observed"]
            and not is_subsample(site)
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

    def _ready(self, device, num_data=None):
        model, guide = self.make_pair()
        data = self.make_data(model, num_data or self.num_data)
        model.to(device)
        guide.to(device)
        data = tuple(t.to(device) for t in data)
        guide(*data)  # lazy guide set-up, as fit() does
        return model, guide, data

    def test_trace_shapes(self, device):
        model, guide, data = self._ready(device)
        trace = poutine.trace(model).get_trace(*data)
        trace.compute_log_prob()
        obs = trace.nodes["obs"]
        assert obs["is_observed"]
        assert obs["value"].shape[0] == self.num_data
        assert any(f.name == "data" for f in obs["cond_indep_stack"]), "obs outside data plate"
        for name, site in _latents(trace).items():
            assert torch.isfinite(site["log_prob_sum"]), name

    def test_guide_latents_match_model(self, device):
        model, guide, data = self._ready(device)
        guide_trace = poutine.trace(guide).get_trace(*data)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*data)
        g, m = _latents(guide_trace), _latents(model_trace)
        assert set(g) == set(m), f"guide latents {sorted(g)} != model latents {sorted(m)}"
        for name in m:
            assert g[name]["value"].shape == m[name]["value"].shape, name

    def test_finite_elbo(self, device):
        model, guide, data = self._ready(device)
        for name in self.elbos:
            for particles in (1, 3):
                loss = make_elbo(name, num_particles=particles)(model, guide)
                with _ctx(guide):
                    value = loss(*data)
                assert torch.isfinite(value), (name, particles, value)

    def test_one_step_gives_every_parameter_a_gradient(self, device):
        model, guide = self.make_pair()
        data = self.make_data(model, self.num_data)
        state = setup(model, guide, data, FitConfig.from_dict({"batch_size": self.num_data,
                                                               "elbo": self.elbos[0], "num_particles": 2}),
                                          RunOptions(progress=False, device=str(device)))
        state.optimizer.zero_grad()
        with _ctx(guide):
            loss = state.loss_fn(*(t.to(device) for t in data))
        loss.backward()
        params = dict(state.loss_fn.named_parameters())
        assert params, "the pair has no trainable parameters"
        off = [n for n, p in params.items() if p.device.type != device.type]
        assert not off, f"parameters not on {device}: {off}"
        missing = [n for n, p in params.items() if p.grad is None]
        assert not missing, f"no gradient for {missing}"
        bad = [n for n, p in params.items() if not torch.isfinite(p.grad).all()]
        assert not bad, f"non-finite gradient for {bad}"
        before = {n: p.detach().clone() for n, p in params.items()}
        state.optimizer.step()
        assert any(not torch.equal(before[n], p) for n, p in params.items())

    def test_predictive_shapes(self, device):
        model, guide, data = self._ready(device)
        for n in (1, 3):
            x = data[0][:n].cpu()  # inputs on any device: the predictive moves them
            pred = posterior_predictive(model, guide, x, num_samples=4, sample_chunk=3)
            assert pred["obs"].device.type == "cpu"  # documented: results on the CPU
            assert pred["obs"].shape[:2] == (4, n)
            assert pred["f"].shape[:2] == (4, n)
            assert torch.isfinite(pred["f"]).all()

    def test_predictive_samples_differ_when_latent(self, device):
        """A distributional guide's draws differ (and so do the predictive's); a point guide's
        draws are all the same point."""
        model, guide, data = self._ready(device)
        latents = _latents(poutine.trace(guide).get_trace(*data))
        draws = _guide_samples(guide, data[0][:3], 5)
        if guides.GUIDES.meta(self.guide_name).get("point_estimate"):
            for name in latents:
                assert torch.equal(draws[name], draws[name][:1].expand_as(draws[name])), name
        elif latents:
            for name in latents:
                assert draws[name].std(0).max() > 0, name
            pred = posterior_predictive(model, guide, data[0][:3], num_samples=5)
            spread = pred["f"].std(0).max().item()
            assert spread > 0 and math.isfinite(spread)
        else:  # no latent site (mlp + deterministic): any spread is MC dropout's masks alone
            assert not draws and not getattr(model, "latent_sites", []), sorted(draws)
            dropout = float(getattr(model, "dropout", 0.0))
            for rate in dict.fromkeys((dropout, 0.0)):  # as configured, then the plain net
                if hasattr(model, "dropout"):
                    model.dropout = rate
                f = posterior_predictive(model, guide, data[0][:3], num_samples=5)["f"]
                assert f.shape[:2] == (5, 3) and torch.isfinite(f).all()
                if rate > 0:  # fresh masks per draw: the draws differ
                    assert f.std(0).max() > 0, f"dropout={rate}: identical predictive draws"
                else:  # a point: every draw is the same function
                    assert torch.equal(f, f[:1].expand_as(f)), "a plain net's draws differ"

    def test_checkpoint_moves_between_devices(self, device, load_device, tmp_path):
        """Train on ``device``, save, restore into a fresh pair on ``load_device``: the restored
        parameters equal the saved ones and live on ``load_device``, and training continues."""
        model, guide = self.make_pair()
        data = self.make_data(model, self.num_data)
        cfg = {"epochs": 1, "batch_size": self.num_data, "elbo": self.elbos[0], "checkpoint": False}
        state = fit(model, guide, data, FitConfig.from_dict(cfg),
                    RunOptions(progress=False, seed=1, device=str(device)))
        save_checkpoint(state, tmp_path / "ckpt.pt")
        saved = {n: p.detach().cpu() for n, p in state.loss_fn.named_parameters()}

        model2, guide2 = self.make_pair()
        state2 = setup(model2, guide2, data, FitConfig.from_dict({**cfg, "epochs": 2}),
                                             RunOptions(progress=False, seed=1, device=str(load_device)))
        restore(state2, tmp_path / "ckpt.pt")
        for name, p in state2.loss_fn.named_parameters():
            assert p.device.type == load_device.type, name
            torch.testing.assert_close(p.detach().cpu(), saved[name], rtol=0, atol=0)
        fit(model2, guide2, data, state=state2)
        assert state2.epoch == 2


def _ctx(guide):
    return elbo_context(guide)


__all__ = ["PairTestBase", "pyro"]
