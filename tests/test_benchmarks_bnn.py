"""The BNN step benchmark runs end to end at toy sizes (not timed: it only must not rot)."""

from __future__ import annotations

import pytest

from experiments.benchmarks import bnn_step


def test_bnn_step_benchmark_runs_at_toy_size(capsys):
    out = bnn_step.main(["--steps", "1", "--repeats", "1", "--warmup", "1", "--hidden", "8",
                         "--batch-size", "16", "--num-data", "64", "--mixture"])
    printed = capsys.readouterr().out
    for name in (bnn_step.FLOOR, bnn_step.REFERENCE, "pyro naive (AutoNormal, Trace_ELBO)",
                 "zoo (bnn + mean-field, local reparam)", "zoo (scale mixture, MC KL)"):
        assert name in out and f"| {name} |" in printed
    assert out[bnn_step.REFERENCE] == 1.0


def test_bnn_step_benchmark_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        bnn_step.main(["--steps", "0"])
    with pytest.raises(SystemExit):
        bnn_step.main(["--num-data", "8", "--batch-size", "16"])
