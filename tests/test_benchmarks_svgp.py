"""The SVGP step benchmark runs end to end at toy sizes (not timed: it only must not rot)."""

from __future__ import annotations

import pytest

from experiments.benchmarks import svgp_step


def test_svgp_step_benchmark_runs_at_toy_size(capsys):
    out = svgp_step.main(["--steps", "1", "--repeats", "1", "--warmup", "1", "--num-inducing", "16",
                          "--batch-size", "32", "--synthetic", "200"])
    printed = capsys.readouterr().out
    for name in ("zoo (cholesky, meanfield)", "zoo (cholesky, trace)", "gpytorch (native)",
                 "pyro.contrib.gp", "plain torch"):
        assert f"| {name} |" in out and f"| {name} |" in printed
    assert "| gpytorch (native) |" in out and "1.00×" in out


def test_the_hand_written_svgp_trains_and_its_graphed_row_needs_cuda():
    import torch

    x, y = svgp_step.load_data(600, None)
    step = svgp_step.torch_step(x, y, x[:16].clone(), 64, torch.device("cpu"))
    losses = [step() for _ in range(150)]
    assert losses[-1] < 0.5 * losses[0]
    with pytest.raises(SystemExit):  # the graphed floor is a CUDA row
        svgp_step.main(["--methods", "torch-graphed", "--synthetic", "50"])


def test_svgp_step_benchmark_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        svgp_step.main(["--steps", "0", "--synthetic", "50"])
    with pytest.raises(SystemExit):
        svgp_step.main(["--methods", "zoo-meanfield,sklearn", "--synthetic", "50"])


def test_inducing_init_benchmark_runs(capsys, data_dir):
    from experiments.benchmarks import inducing_init

    out = inducing_init.main(["--dataset", "elevators", "--num-inducing", "8", "--rounds", "1",
                              "--data-dir", str(data_dir)])
    assert len(out) == 2 and all(t > 0 and obj > 0 for t, obj in out.values())
    assert "| 8 | k-means++ 10k + mini-batch |" in capsys.readouterr().out
