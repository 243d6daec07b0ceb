"""The BNN step benchmark runs end to end at toy sizes (not timed: it only must not rot)."""

from __future__ import annotations

import pytest

from experiments.benchmarks import bnn_step


def test_bnn_step_benchmark_runs_at_toy_size(capsys):
    out = bnn_step.main(["--steps", "1", "--repeats", "1", "--warmup", "1", "--hidden", "8",
                         "--batch-size", "16", "--num-data", "64", "--mixture"])
    printed = capsys.readouterr().out
    for name in (bnn_step.FLOOR, bnn_step.REFERENCE, "pyro naive (AutoNormal, Trace_ELBO)",
                 "zoo (bnn + mean-field, local reparam)", "zoo (weight sampling)",
                 "zoo (scale mixture, MC KL)"):
        assert name in out and f"| {name} |" in printed
    assert out[bnn_step.REFERENCE] == 1.0


def test_bnn_step_benchmark_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        bnn_step.main(["--steps", "0"])
    with pytest.raises(SystemExit):
        bnn_step.main(["--num-data", "8", "--batch-size", "16"])


def test_peers_run_when_installed():
    """bayesian-torch and blitz are optional (``pip install --no-deps``); where installed, their
    steps must run and return a finite loss."""
    import math

    import torch

    ran = 0
    batches = bnn_step.Batches(16, torch.device("cpu"), pool=2)
    for make in (bnn_step.bayesian_torch_step, bnn_step.blitz_step):
        step = make([784, 8, 10], 64, batches, torch.device("cpu"))
        if step is not None:
            assert math.isfinite(step())
            ran += 1
    if not ran:
        pytest.skip("neither bayesian-torch nor blitz is installed")
