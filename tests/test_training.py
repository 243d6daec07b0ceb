"""The SVI loop: history, determinism under a seed, checkpoints, clear failures."""

from __future__ import annotations

import json
import math
import warnings

import pyro
import pytest
import torch

import guides
import models
from experiments.engine.checkpoint import CheckpointError, load_checkpoint
from experiments.engine.settings import FitConfig, RunOptions
from experiments.engine.state import restore, save_checkpoint
from experiments.engine.training import fit, setup


def _pair(**guide_cfg):
    model = models.create_model("bnn", in_features=2, widths=(8,))
    return model, guides.create_guide("mean-field", model, **guide_cfg)


def _data(n=40):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 2, generator=g)
    return x, x.sum(-1).sin() + 0.1 * torch.randn(n, generator=g)


def test_history_splits_elbo_and_is_written(tmp_path):
    model, guide = _pair()
    state = fit(model, guide, _data(), FitConfig.from_dict({"epochs": 3, "batch_size": 16,
                                                            "elbo": "meanfield"}),
                                       RunOptions(progress=False, out_dir=str(tmp_path)),
                eval_fn=lambda m, g: {"const": 1.0})
    assert [row["epoch"] for row in state.history] == [1, 2, 3]
    for row in state.history:
        assert math.isclose(row["elbo"], row["log_likelihood"] - row["kl"], rel_tol=1e-6,
                            abs_tol=1e-6)
        assert row["kl"] > 0 and row["val_const"] == 1.0
    assert json.loads((tmp_path / "history.json").read_text()) == state.history
    assert (tmp_path / "history.csv").read_text().startswith("epoch,")
    assert (tmp_path / "checkpoint.pt").is_file()
    assert model.num_data == 40


def test_same_seed_same_result_different_seed_different():
    def run(seed):
        model, guide = _pair()
        fit(model, guide, _data(), FitConfig.from_dict({"epochs": 2, "batch_size": 8}),
                                   RunOptions(seed=seed, progress=False))
        return guide.w0_loc.detach().clone()

    a, b, c = run(3), run(3), run(4)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_checkpoint_roundtrip_and_resume_matches_uninterrupted(tmp_path):
    data = _data()
    cfg, run = {"epochs": 4, "batch_size": 16}, RunOptions(progress=False, seed=5)
    model, guide = _pair()
    full = fit(model, guide, data, FitConfig.from_dict(cfg), run)

    model2, guide2 = _pair()
    half = fit(model2, guide2, data, FitConfig.from_dict({**cfg, "epochs": 2}), run)
    save_checkpoint(half, tmp_path / "ckpt.pt")

    model3, guide3 = _pair()
    state3 = setup(model3, guide3, data, FitConfig.from_dict(cfg), run)
    restore(state3, tmp_path / "ckpt.pt")
    assert state3.epoch == 2 and len(state3.history) == 2
    resumed = fit(model3, guide3, data, state=state3)
    assert resumed.epoch == 4
    for name, p in full.guide.named_parameters():
        torch.testing.assert_close(p, dict(resumed.guide.named_parameters())[name])


def test_corrupted_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="ckpt.pt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_nan_in_data_is_a_clear_error():
    model, guide = _pair()
    x, y = _data()
    y[3] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or inf in rows \[3\]"):
        fit(model, guide, (x, y), FitConfig.from_dict({"epochs": 1}), RunOptions(progress=False))


@pytest.mark.filterwarnings("ignore:Encountered NaN")
def test_nan_loss_stops_before_the_update():
    model, guide = _pair()
    data = _data()
    # validation off: with it on, Pyro rejects the NaN parameter before any loss is computed
    state = setup(model, guide, data, FitConfig.from_dict({"epochs": 1, "batch_size": 64, "validate": False}),
                                      RunOptions(progress=False))
    with torch.no_grad():
        guide.w0_loc_unconstrained[0, 0] = float("nan")
    before = guide.w1_loc.detach().clone()
    with pytest.raises(FloatingPointError, match="epoch 1, step 1"):
        fit(model, guide, data, state=state)
    assert torch.equal(before, guide.w1_loc.detach())


@pytest.mark.parametrize("bad, match", [
    ({"epochs": 0}, "epochs"), ({"optimizer": "adamm"}, "optimizer"),
    ({"elbo": "renyi"}, "elbo"), ({"lr": -1.0}, "lr"), ({"epochz": 3}, "unknown"),
])
def test_bad_config_names_the_key(bad, match):
    with pytest.raises(ValueError, match=match):
        FitConfig.from_dict(bad)


def test_bad_inputs_are_clear_errors():
    model, guide = _pair()
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        model(torch.randn(5, 3))
    with pytest.raises(ValueError, match="different lengths"):
        fit(model, guide, (torch.randn(5, 2), torch.randn(4)), FitConfig.from_dict({}),
                                                               RunOptions(progress=False))
    with pytest.raises(ValueError, match="init_scale"):
        guides.create_guide("mean-field", model, init_scale=0.0)
    with pytest.raises(ValueError, match="not both"):
        guides.create_guide("mean-field", model, local_reparam=True, flipout=True)


@pytest.mark.parametrize("schedule", ["constant", "cosine", "step", "exponential"])
def test_lr_schedules_follow_their_formula(schedule):
    """The lr recorded for each epoch is the schedule's value at that epoch (base 1e-3)."""
    epochs = 4
    model, guide = _pair()
    state = fit(model, guide, _data(), FitConfig.from_dict({"epochs": epochs, "batch_size": 16,
                                                            "lr_schedule": schedule, "lr_step_epochs": 2,
                                                            "lr_gamma": 0.5}),
                                       RunOptions(progress=False))
    lrs = [row["lr"] for row in state.history]  # the lr used during epoch e (0-based)
    expected = {
        "constant": [1e-3] * epochs,
        "cosine": [1e-3 * (1 + math.cos(math.pi * e / epochs)) / 2 for e in range(epochs)],
        "step": [1e-3 * 0.5 ** (e // 2) for e in range(epochs)],
        "exponential": [1e-3 * 0.5**e for e in range(epochs)],
    }[schedule]
    assert lrs == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert state.optimizer.param_groups[0]["lr"] == pytest.approx(
        {"constant": 1e-3, "cosine": 0.0, "step": 2.5e-4, "exponential": 6.25e-5}[schedule],
        abs=1e-15)


def test_clip_norm_bounds_the_gradient_norm_of_the_step(monkeypatch):
    """With clip_norm the optimiser sees gradients of global norm <= clip_norm (and the unclipped
    norm here is larger, so the check can fail)."""
    import experiments.engine.settings as settings

    norms = {}
    real_step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        norms.setdefault(clip, []).append(float(torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(g) for g in grads]))))
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    for clip in (None, 1e-3):
        model, guide = _pair()
        fit(model, guide, _data(), FitConfig.from_dict({"epochs": 1, "batch_size": 16, "clip_norm": clip}),
                                   RunOptions(progress=False))
    assert min(norms[None]) > 1e-3
    assert max(norms[1e-3]) <= 1e-3 * (1 + 1e-5)
    assert settings.OPTIMIZERS["adam"] is torch.optim.Adam


def test_validation_follows_config_and_environment(monkeypatch):
    from pyro.infer.util import is_validation_enabled

    seen = []
    model, guide = _pair()
    data = _data()
    for flag, env, expected in ((True, "0", True), (False, "1", False), (None, "1", True),
                                (None, "0", False)):
        monkeypatch.setenv("VBZOO_PYRO_VALIDATION", env)
        seen.clear()
        fit(model, guide, data, FitConfig.from_dict({"epochs": 1, "batch_size": 64, "validate": flag}),
                                RunOptions(progress=False),
            eval_fn=lambda m, g: seen.append(is_validation_enabled()) or {})
        assert seen == [expected], (flag, env)


@pytest.mark.parametrize("model_cfg, y, message", [
    (dict(in_features=2, widths=(4,), out_features=3, task="classification"),
     torch.cat([torch.randint(3, (60,)), torch.tensor([3])]),
     r"must lie in 0..2 .*found \[3\] in rows \[60\]"),
    (dict(in_features=2, widths=(4,), out_features=3, task="classification"),
     torch.randint(3, (61,)).float(), "class labels must be integers"),
    (dict(in_features=2, widths=(4,), out_features=1, likelihood="bernoulli"),
     torch.cat([torch.randint(2, (60,)).float(), torch.tensor([-1.0])]),
     r"Bernoulli labels must be 0 or 1 .*found \[-1.0\] in rows \[60\]"),
    (dict(in_features=2, widths=(4,)), torch.randint(3, (61,)),
     "targets must be real numbers"),
])
def test_targets_are_checked_over_the_whole_data_before_training(model_cfg, y, message):
    """A bad label in the last row (not in the first batch) is found before any step."""
    model = models.create_model("bnn", **model_cfg)
    guide = guides.create_guide("mean-field", model)
    x = torch.randn(len(y), 2)
    with pytest.raises(ValueError, match=message):
        fit(model, guide, (x, y), FitConfig.from_dict({"epochs": 1, "batch_size": 8}),
                                  RunOptions(progress=False, device="cpu"))
    assert not any(p.grad is not None for p in guide.parameters())


def test_svgp_bernoulli_labels_in_minus_one_one_are_refused():
    model = models.create_model("svgp", input_dim=2, num_inducing=4, likelihood="bernoulli")
    guide = guides.create_guide("cholesky", model)
    x = torch.randn(40, 2)
    y = torch.where(x[:, 0] > 0, 1.0, -1.0)
    with pytest.raises(ValueError, match=r"map your two classes to 0 and 1"):
        fit(model, guide, (x, y), FitConfig.from_dict({"epochs": 1, "batch_size": 8}),
                                  RunOptions(progress=False, device="cpu"))


# ------------------------------------------------------------------------------------------------
# checkpoints that survive failure; restore checks the config


def _failing_step(monkeypatch, at_step: int, fail):
    """Patch fit's train_step so that ``fail(state, batch, kwargs)`` runs the step numbered
    ``at_step + 1``; the parameters just before it are returned (filled in when it runs)."""
    import experiments.engine.loop as loop

    real, before = loop.train_step, {}

    def step(state, batch, **kwargs):
        if state.step == at_step:
            before.update({n: p.detach().clone() for n, p in state.loss_fn.named_parameters()})
            return fail(real, state, batch, kwargs)
        return real(state, batch, **kwargs)

    monkeypatch.setattr(loop, "train_step", step)
    return before


def _params_after_restore(path, cfg, run=None):
    model, guide = _pair()
    state = restore(setup(model, guide, _data(), FitConfig.from_dict(cfg), run), path)
    return state, {n: p.detach().clone() for n, p in state.loss_fn.named_parameters()}


@pytest.mark.filterwarnings("ignore:Encountered NaN")
def test_a_nan_stop_saves_the_state_before_the_bad_step(tmp_path, monkeypatch):
    from experiments.engine.checkpoint import load_zoo_file

    # 40 rows / batch 8: 5 steps an epoch; step 8 (epoch 2) sees NaN targets -> a NaN loss
    cfg = {"epochs": 3, "batch_size": 8, "tensorboard": False, "validate": False}
    run = RunOptions(progress=False, out_dir=str(tmp_path))
    before = _failing_step(monkeypatch, 7, lambda real, state, batch, kw: real(
        state, (batch[0], torch.full_like(batch[1], math.nan)), **kw))
    model, guide = _pair()
    with pytest.raises(FloatingPointError, match="epoch 2, step 8"):
        fit(model, guide, _data(), FitConfig.from_dict(cfg), run)
    payload, meta = load_zoo_file(tmp_path / "checkpoint.pt", "checkpoint")
    assert (payload["epoch"], payload["step"]) == (1, 7)  # 1 epoch done, 2 steps into the next
    assert meta["stopped_by"] == "FloatingPointError" and meta["partial_epoch_steps"] == 2
    assert [r["epoch"] for r in json.loads((tmp_path / "history.json").read_text())] == [1]
    monkeypatch.undo()
    state, params = _params_after_restore(tmp_path / "checkpoint.pt", cfg, run)
    assert params.keys() == before.keys()
    for name, p in params.items():
        assert torch.isfinite(p).all()
        torch.testing.assert_close(p, before[name], rtol=0, atol=0)
    assert fit(state.model, state.guide, _data(), state=state).epoch == 3  # resumes epoch 2


def test_a_keyboard_interrupt_mid_training_writes_a_checkpoint(tmp_path, monkeypatch):
    def interrupt(real, state, batch, kw):
        raise KeyboardInterrupt

    before = _failing_step(monkeypatch, 6, interrupt)
    model, guide = _pair()
    # checkpoint_every_s=60: without the save on failure there would be no checkpoint yet
    with pytest.raises(KeyboardInterrupt):
        fit(model, guide, _data(), FitConfig.from_dict({"epochs": 3, "batch_size": 8, "tensorboard": False}),
                                   RunOptions(progress=False, out_dir=str(tmp_path)))
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert (ckpt["epoch"], ckpt["step"], len(ckpt["history"])) == (1, 6, 1)
    assert (tmp_path / "history.json").is_file()
    _, params = _params_after_restore(tmp_path / "checkpoint.pt", {"epochs": 3, "batch_size": 8})
    for name, p in params.items():
        torch.testing.assert_close(p, before[name], rtol=0, atol=0)


def test_a_diverged_epoch_does_not_overwrite_the_last_good_checkpoint(tmp_path, monkeypatch,
                                                                      caplog):
    import experiments.engine.loop as loop

    real = loop.train_step

    def step(state, batch, **kwargs):  # epochs 2 and 3 report a loss 1e6 x larger
        loss = real(state, batch, **kwargs)
        return loss * 1e6 if state.epoch >= 1 else loss

    monkeypatch.setattr(loop, "train_step", step)
    model, guide = _pair()
    with caplog.at_level("WARNING"):
        state = fit(model, guide, _data(), FitConfig.from_dict({"epochs": 3, "batch_size": 8,
                                                                "tensorboard": False,
                                                                "checkpoint_every_s": 0}),
                                           RunOptions(progress=False, out_dir=str(tmp_path)))
    assert len(state.history) == 3 and len(json.loads((tmp_path / "history.json").read_text())) == 3
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1
    warnings = [r.getMessage() for r in caplog.records if "not overwritten" in r.getMessage()]
    assert len(warnings) == 1 and "epoch 2 diverged" in warnings[0]  # once per bad stretch


def test_restore_refuses_another_optimisation_before_touching_anything(tmp_path):
    model, guide = _pair()
    save_checkpoint(fit(model, guide, _data(), FitConfig.from_dict({"epochs": 1, "batch_size": 16}),
                                               RunOptions(progress=False)),
                    tmp_path / "ckpt.pt")
    model2, guide2 = _pair()
    state = setup(model2, guide2, _data(), FitConfig.from_dict({"epochs": 1, "batch_size": 16, "lr": 0.01,
                                                                "optimizer": "sgd"}),
                                           RunOptions(device="cpu"))
    before = {n: p.detach().clone() for n, p in state.loss_fn.named_parameters()}
    with pytest.raises(CheckpointError, match=r"ckpt.pt .*lr: checkpoint 0.001, now 0.01; "
                                              r"optimizer: checkpoint 'adam', now 'sgd'$"):
        restore(state, tmp_path / "ckpt.pt")
    for name, p in state.loss_fn.named_parameters():
        assert torch.equal(p, before[name]), name
    assert (state.epoch, state.step, state.history) == (0, 0, [])


def test_restore_may_extend_epochs_except_for_a_cosine_schedule(tmp_path, monkeypatch):
    model, guide = _pair()
    cfg = {"epochs": 2, "batch_size": 16}
    save_checkpoint(fit(model, guide, _data(), FitConfig.from_dict(cfg), RunOptions(progress=False)),
                    tmp_path / "ckpt.pt")
    state, _ = _params_after_restore(tmp_path / "ckpt.pt", {**cfg, "epochs": 4},
                                      RunOptions(progress=False))
    assert fit(state.model, state.guide, _data(), state=state).epoch == 4
    with pytest.raises(CheckpointError, match="epochs: the checkpoint has 2 epochs done"):
        _params_after_restore(tmp_path / "ckpt.pt", {**cfg, "epochs": 1})

    # cosine: interrupted in epoch 3 of 4, it resumes to its planned end and the lr only falls;
    # extending it to 6 epochs is refused (T_max = epochs: the lr would go back up)
    cosine = {**cfg, "epochs": 4, "lr_schedule": "cosine", "tensorboard": False,
              "checkpoint_every_s": 0}
    run = RunOptions(progress=False, out_dir=str(tmp_path / "run"))

    def interrupt(real, state, batch, kw):
        raise KeyboardInterrupt

    _failing_step(monkeypatch, 7, interrupt)
    with pytest.raises(KeyboardInterrupt):
        fit(*_pair(), _data(), FitConfig.from_dict(cosine), run)
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="epochs: checkpoint 4, now 6 with lr_schedule 'cos"):
        _params_after_restore(tmp_path / "run" / "checkpoint.pt", {**cosine, "epochs": 6})
    state, _ = _params_after_restore(tmp_path / "run" / "checkpoint.pt", cosine, run)
    lrs = [row["lr"] for row in fit(state.model, state.guide, _data(), state=state).history]
    assert lrs == pytest.approx([1e-3 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)])
    assert lrs == sorted(lrs, reverse=True)


@pytest.mark.filterwarnings("ignore:Encountered NaN")
def test_a_stop_with_non_finite_parameters_keeps_the_last_good_checkpoint(tmp_path, monkeypatch,
                                                                          caplog):
    """A finite loss whose update makes a parameter NaN (step 7): the NaN stop comes a step later,
    with the parameters already bad, so checkpoint.pt keeps epoch 1's state."""
    def poison(real, state, batch, kw):
        loss = real(state, batch, **kw)
        with torch.no_grad():
            state.guide.w0_loc_unconstrained[0, 0] = math.nan
        return loss

    _failing_step(monkeypatch, 6, poison)
    with caplog.at_level("WARNING"), pytest.raises(FloatingPointError, match="step 8"):
        fit(*_pair(), _data(), FitConfig.from_dict({"epochs": 3, "batch_size": 8, "validate": False,
                                                    "tensorboard": False, "checkpoint_every_s": 0}),
                               RunOptions(progress=False, out_dir=str(tmp_path)))
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert (ckpt["epoch"], ckpt["step"]) == (1, 5)
    assert all(torch.isfinite(v).all() for v in ckpt["guide"].values())
    assert any("non-finite parameters" in r.getMessage() for r in caplog.records)


def test_float64_data_trains_a_float32_model_with_a_note(caplog):
    """Floating data of another dtype is cast to the model's, batch by batch, with a log note
    (it used to be a matmul dtype error)."""
    import logging

    model, guide = _pair()
    x, y = _data()
    with caplog.at_level(logging.INFO, logger="experiments.engine.training"):
        state = fit(model, guide, (x.double(), y.double()),
                    FitConfig.from_dict({"epochs": 1, "batch_size": 16}),
                    RunOptions(progress=False, device="cpu"))
    assert math.isfinite(state.history[0]["loss"])
    assert "casting torch.float64 data to the model's torch.float32" in caplog.text


def test_a_guide_for_another_model_lists_the_valid_guides():
    model = models.create_model("bnn", in_features=2)
    with pytest.raises(ValueError, match=r"the guides of 'bnn' are \['auto-iaf'.*'mean-field'\]"):
        guides.create_guide("cholesky", model)


def test_finite_nonsense_warns():
    """Settings that train, to nonsense, warn: a guide wider than its prior, an lr above the
    plausible range, a loss that grows for many epochs in a row."""
    from guides.base import ImplausibleSettingWarning

    model = models.create_model("bnn", in_features=2, widths=(8,))
    with pytest.warns(ImplausibleSettingWarning, match="init_scale=1e\\+06"):
        guides.create_guide("mean-field", model, init_scale=1e6)
    with pytest.warns(ImplausibleSettingWarning, match="init_scale=5"):
        guides.create_guide("auto-normal", model, init_scale=5.0)
    model, guide = _pair()
    with pytest.warns(ImplausibleSettingWarning, match="lr=10000 is above the plausible range"):
        setup(model, guide, _data(), FitConfig.from_dict({"epochs": 1, "batch_size": 16, "lr": 1e4}),
                                     RunOptions(progress=False, device="cpu"))

    from experiments.engine.guards import EpochGuard

    model, guide = _pair()
    state = setup(model, guide, _data(), FitConfig.from_dict({}), RunOptions(progress=False, device="cpu"))
    sums = torch.zeros(2, dtype=torch.float64)
    guard = EpochGuard(state.config, state, list(state.loss_fn.parameters()), sums)
    with pytest.warns(ImplausibleSettingWarning, match="the loss has grown for 10 epochs"):
        for loss in range(1, 13):  # a finite loss that grows every epoch (one step per epoch)
            guard.start_epoch()
            sums[0] += float(loss)
            state.step += 1
            guard.end_epoch()


def test_cuda_graph_is_ignored_on_cpu_with_one_warning():
    runs = []
    for graph in (False, True):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            state = fit(*_pair(), _data(), FitConfig.from_dict({"epochs": 2, "batch_size": 16,
                                                                "cuda_graph": graph}),
                                           RunOptions(progress=False, device="cpu"))
        said = [w for w in caught if "cuda_graph=True is ignored" in str(w.message)]
        assert len(said) == (1 if graph else 0)
        runs.append([p.detach().clone() for p in state.loss_fn.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*runs))  # the same eager steps


@pytest.mark.parametrize("fused", [True, False])
def test_the_gate_stops_updates_on_the_device_and_names_the_step(fused):
    """A non-finite step among log_every steps without a host read: every update from it on is
    skipped (parameters and Adam state), and the read names it. Fused (the CUDA default): on
    the device; plain (the CPU default): by a host read of the flag every step."""
    from experiments.engine.guards import check_finite
    from experiments.engine.step import train_step
    from experiments.engine.training import setup

    model, guide = _pair()
    x, y = _data(16)
    state = setup(model, guide, (x, y), FitConfig.from_dict({"batch_size": 16, "fused": fused}),
                                        RunOptions(progress=False, device="cpu"))
    for _ in range(3):
        train_step(state, (x, y))
    check_finite(state)
    before = {k: v.clone() for k, v in state.loss_fn.state_dict().items()}
    adam_steps = [float(s["step"]) for s in state.optimizer.state.values()]
    bad_x = x.clone()
    bad_x[0, 0] = float("nan")
    with pyro.validation_enabled(False):  # as in fit (validation would refuse the NaN input)
        train_step(state, (bad_x, y))  # step 4: NaN
        for _ in range(2):
            train_step(state, (x, y))  # finite, but after the bad step: skipped too
    assert state.step == 6
    with pytest.raises(FloatingPointError, match="epoch 1, step 4"):
        check_finite(state)
    assert state.step == 3
    after = state.loss_fn.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [float(s["step"]) for s in state.optimizer.state.values()] == adam_steps


def test_integer_inputs_are_refused_before_training_with_what_to_do():
    x = torch.randint(0, 255, (20, 2), dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"inputs x must be real numbers .*torch.uint8.*x.float\(\)"):
        fit(*_pair(), (x, torch.randn(20)), FitConfig.from_dict({"epochs": 1}), RunOptions(progress=False))


@pytest.mark.parametrize("name, options", [("adam", {}), ("adam", {"weight_decay": 1e-4}),
                                           ("adamw", {"weight_decay": 1e-2})])
def test_cpu_adam_takes_the_multi_tensor_path_with_the_default_paths_numbers(name, options):
    """fit's Adam/AdamW on the CPU is torch's foreach implementation, chosen for its lower
    per-step cost; it must give the numbers of torch's CPU default (the single-tensor loop) bit
    for bit, so that runs recorded before the change reproduce. Large and small gradients, and
    an lr change half way as a scheduler makes."""
    from experiments.engine.optim import make_optimizer

    shapes = [(40, 78), (40,), (10, 40), (7,), ()]
    init = [torch.randn(s, generator=torch.Generator().manual_seed(i)) for i, s in enumerate(shapes)]
    ours = [torch.nn.Parameter(t.clone()) for t in init]
    ref = [torch.nn.Parameter(t.clone()) for t in init]
    cfg = FitConfig(optimizer=name, lr=1e-2, **options)
    opt = make_optimizer(cfg, ours, torch.device("cpu"))
    assert all(g.get("foreach") for g in opt.param_groups)
    ref_opt = type(opt)(ref, lr=1e-2, foreach=False, **options)
    g = torch.Generator().manual_seed(1)
    for step in range(60):
        for a, b, s in zip(ours, ref, shapes):
            a.grad = torch.randn(s, generator=g) * (1e3 if step % 7 == 0 else 1e-3)
            b.grad = a.grad.clone()
        opt.step()
        ref_opt.step()
        if step == 30:
            for o in (opt, ref_opt):
                o.param_groups[0]["lr"] *= 0.5
    assert all(torch.equal(a, b) for a, b in zip(ours, ref))


def test_a_dict_config_is_refused_with_the_explicit_conversion_to_use():
    with pytest.raises(TypeError, match=r"FitConfig.from_dict"):
        setup(*_pair(), _data(), {"epochs": 1})
    assert setup(*_pair(), _data(), FitConfig.from_dict({"epochs": 1}),
                                    RunOptions(device="cpu")).config.epochs == 1
