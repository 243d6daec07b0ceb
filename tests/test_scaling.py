"""Standardisation statistics are checked before training (issue 25: numbers checked)."""

import numpy as np
import pytest

from experiments.data.scaling import NumericRangeError, check_float32, mean_std


def test_ordinary_columns_are_unchanged_and_constant_ones_standardise_to_zero():
    rng = np.random.default_rng(0)
    a = np.column_stack([rng.normal(3.0, 2.0, 500), np.full(500, 0.1 + 0.2)])
    mean, std = mean_std(a)
    assert mean[0] == a[:, 0].mean() and std[0] == a[:, 0].std()
    assert mean[1] == a[0, 1] and std[1] == 1.0
    assert np.all((a[:, 1] - mean[1]) / std[1] == 0.0)


def test_a_column_whose_spread_overflows_is_refused_naming_it():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(200, 3))
    a[:, 2] *= 1e300
    with pytest.raises(NumericRangeError, match=r"feature 'c' .* reach .*e\+300.* overflows"):
        mean_std(a, ["a", "b", "c"], "feature")


def test_a_column_that_varies_below_float64_resolution_is_refused():
    a = np.array([[0.0], [5e-324], [0.0], [1e-323]])
    with pytest.raises(NumericRangeError, match="target 'y' .* standard deviation is 0"):
        mean_std(a, ["y"], "target")


def test_standardised_values_beyond_float32_are_refused_naming_column_and_row():
    check_float32(np.array([[0.0, 3e38]]), ["p", "q"])  # within range: no error
    z = np.zeros((5, 2))
    z[3, 1] = -1e39
    with pytest.raises(NumericRangeError, match="column 'q' of row 3 is -1e[+]39"):
        check_float32(z, ["p", "q"])


def test_fit_refuses_a_feature_scaled_by_1e300_before_training_in_one_line(tmp_path):
    import subprocess
    import sys

    from tests.helpers import write_csv

    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 2))
    rows = np.column_stack([x[:, 0], x[:, 1] * 1e300, x.sum(1)])
    data = write_csv(tmp_path / "t.csv", ["a", "huge", "y"], rows)
    out = subprocess.run([sys.executable, "-m", "experiments", "fit", "--model", "mlp", "--guide",
                          "deterministic", "--data", str(data), "--target", "y", "--out",
                          str(tmp_path / "runs"), "--no-progress"], capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "feature 'huge' cannot be standardised" in out.stderr.splitlines()[-1]
    assert not (tmp_path / "runs").exists()  # refused before any run folder


def test_implausible_sizes_are_refused_or_warned_with_a_memory_estimate(monkeypatch):
    """widths=[1e9] used to allocate until the machine gave up: a model larger than memory is
    refused before it allocates, and one above a quarter of memory warns, with the estimate."""
    import models
    from models import base

    monkeypatch.setattr(base, "machine_memory", lambda: 2**30)  # a 1 GiB machine
    with pytest.raises(ValueError, match=r"widths=\[1000000000\] .* GiB .* use smaller widths"):
        models.create_model("bnn", in_features=3, widths=[10**9])
    with pytest.raises(ValueError, match="num_inducing=100000: .* use fewer inducing points"):
        models.create_model("svgp", input_dim=2, num_inducing=100_000)
    with pytest.warns(base.SizeWarning, match=r"widths=\[3000, 3000\]"):  # 9M weights: 0.27 GiB
        models.create_model("mlp", in_features=10, widths=[3000, 3000])
    models.create_model("bnn", in_features=3, widths=[50])  # an ordinary size: silent
