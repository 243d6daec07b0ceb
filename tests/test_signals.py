"""Every signal is a clean stop (issue 25): SIGINT, SIGTERM and SIGHUP."""

import os
import signal
from pathlib import Path

import pytest

from experiments.engine.signals import Stopped, StopSignals


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_the_first_signal_requests_a_stop_and_the_second_stops_at_once(signum):
    before = signal.getsignal(signum)
    with StopSignals(what="the test") as stops:
        os.kill(os.getpid(), signum)
        assert stops.requested == signum  # handled synchronously in the main thread
        with pytest.raises(Stopped) as info:
            os.kill(os.getpid(), signum)
            for _ in range(1000):  # (a handler runs between bytecodes)
                pass
    assert info.value.exit_code == 128 + signum
    assert signal.getsignal(signum) is before


def test_not_deferred_stops_at_once():
    with pytest.raises(Stopped, match="SIGTERM"), StopSignals(deferred=False):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass


# ------------------------------------------------------------------------------------------------
# fit stops after the step in progress, at a checkpoint from which the resume is exact

def _pair():
    import guides
    import models

    model = models.create_model("bnn", in_features=2, widths=(8,))
    return model, guides.create_guide("mean-field", model)


def _data(n=40):
    import torch

    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 2, generator=g)
    return x, x.sum(-1).sin() + 0.1 * torch.randn(n, generator=g)


def _config(out=None, **kw):
    """The FitConfig and the RunOptions of these fits (``*_config(...)`` in a call)."""
    from experiments.engine.settings import FitConfig, RunOptions

    return (FitConfig.from_dict({"epochs": 3, "batch_size": 4, "tensorboard": False, "lr": 1e-2, **kw}),
            RunOptions(progress=False, out_dir=str(out) if out else None))


def _params(state):
    return {n: p.detach().clone() for n, p in state.loss_fn.named_parameters()}


def _resume(path, **kw):
    from experiments.engine.state import restore
    from experiments.engine.training import fit, setup

    model, guide = _pair()
    state = restore(setup(model, guide, _data(), *_config(**kw)), path)
    return fit(state.model, state.guide, _data(), state=state)


def _same_run(a, b):
    import torch

    assert [{k: v for k, v in r.items() if k != "seconds"} for r in a.history] == \
        [{k: v for k, v in r.items() if k != "seconds"} for r in b.history]
    pa, pb = _params(a), _params(b)
    for name in pa:
        torch.testing.assert_close(pa[name], pb[name], rtol=0, atol=0)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_epoch_saves_there_and_the_resume_is_bit_identical(tmp_path, monkeypatch,
                                                                         signum):
    import experiments.engine.loop as loop
    from experiments.engine.checkpoint import load_checkpoint
    from experiments.engine.training import fit

    model, guide = _pair()
    full = fit(model, guide, _data(), *_config())
    real = loop.train_step

    def step(state, batch, **kw):  # the signal arrives during step 14 (epoch 2, step 4 of 10)
        loss = real(state, batch, **kw)
        if state.step == 14:
            os.kill(os.getpid(), signum)
        return loss

    monkeypatch.setattr(loop, "train_step", step)
    model, guide = _pair()
    with pytest.raises(Stopped, match="at epoch 2, step 4/10"):
        fit(model, guide, _data(), *_config(tmp_path))
    monkeypatch.setattr(loop, "train_step", real)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert (ckpt["epoch"], ckpt["step"], ckpt["position"]["steps"]) == (1, 14, 4)
    _same_run(full, _resume(tmp_path / "checkpoint.pt"))


def test_a_long_epoch_is_saved_within_and_a_resume_from_there_is_bit_identical(tmp_path,
                                                                                monkeypatch):
    import shutil

    import experiments.engine.loop as loop
    from experiments.engine.training import fit

    model, guide = _pair()
    full = fit(model, guide, _data(), *_config(batch_size=2))  # 20 steps an epoch
    real, copies = loop.save_checkpoint, []

    def save(state, path, meta=None):  # keep each within-epoch checkpoint, as a kill would
        out = real(state, path, meta)
        if meta and "within_epoch" in meta:
            copies.append(shutil.copy(path, tmp_path / f"within-{len(copies)}.pt"))
        return out

    monkeypatch.setattr(loop, "save_checkpoint", save)
    model, guide = _pair()
    fit(model, guide, _data(), *_config(tmp_path / "run", batch_size=2, checkpoint_every_s=0))
    assert len(copies) == 3  # step 16 of each epoch
    _same_run(full, _resume(copies[1], batch_size=2, checkpoint_every_s=0))


def test_sigterm_stops_a_cli_run_in_one_line_and_the_resume_gives_the_same_metrics(tmp_path):
    """``timeout``, schedulers and ``docker stop`` send SIGTERM: the run stops after a step with
    exit status 143 and one line naming the folder and the resume command; the resume's metrics
    equal an uninterrupted run's, bit for bit (issue 25)."""
    import glob
    import json
    import subprocess
    import sys
    import time

    args = [sys.executable, "-m", "experiments", "run", "blundell-regression", "--smoke",
            "--set", "bbb.fit.epochs=1500", "--no-progress", "--device", "cpu"]
    subprocess.run(args + ["--out", str(tmp_path / "full")], check=True, capture_output=True)
    proc = subprocess.Popen(args + ["--out", str(tmp_path / "stop")], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    deadline = time.time() + 120
    while not glob.glob(str(tmp_path / "stop/*/*/bbb/history.json")) and time.time() < deadline:
        time.sleep(0.02)  # (the bbb arm has finished its first epoch)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    last = err.strip().splitlines()[-1]
    run_dir = glob.glob(str(tmp_path / "stop/blundell-regression/*"))[0]
    assert last.startswith("stopped: blundell-regression stopped by SIGTERM") and run_dir in last
    assert "Traceback" not in err
    metrics = json.loads(Path(f"{run_dir}/metrics.json").read_text())
    assert metrics["status"] == "stopped" and metrics["resume"].endswith(run_dir)
    subprocess.run([sys.executable, "-m", "experiments", "run", "blundell-regression", "--resume",
                    run_dir, "--no-progress"], check=True, capture_output=True)
    full = json.loads(Path(glob.glob(str(tmp_path / "full/*/*/metrics.json"))[0]).read_text())
    resumed = json.loads(Path(f"{run_dir}/metrics.json").read_text())
    skip = {"wall_time_s", "hardware", "figure"}
    assert {k: v for k, v in full.items() if k not in skip} == \
        {k: v for k, v in resumed.items() if k not in skip}
