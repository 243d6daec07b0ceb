"""fit's validation split: the plain net's epoch is chosen on held-out training rows."""

import json

import numpy as np
import pytest
import torch

from experiments.__main__ import main
from experiments.harness import tables, userfit


def test_split_validation_holds_out_a_seeded_fraction_or_nothing():
    tr, va = tables.split_validation(100, 0.1, seed=0)
    assert len(va) == 10 and len(tr) == 90 and not set(tr) & set(va)
    again = tables.split_validation(100, 0.1, seed=0)
    assert np.array_equal(again[1], va)
    assert tables.split_validation(50, 0.1, seed=0) is None  # 5 rows: too few to choose on
    assert tables.split_validation(100, 0.0, seed=0) is None


def test_epoch_chooser_keeps_the_best_state(monkeypatch):
    """Scores -3, -1, -2 at evaluations 1..3 (every 2 epochs): epoch 4's state is restored."""
    model, guide = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    scores = iter([-3.0, -1.0, -2.0])

    class Scored:
        def __init__(self, ll):
            self.log_likelihood = ll

    monkeypatch.setattr(userfit, "predict", lambda m, g, x, s, y=None: Scored(next(scores)))
    chooser = userfit.EpochChooser(None, None, 1, eval_every=2, epochs=10)
    for w in (1.0, 2.0, 3.0):
        with torch.no_grad():
            model.weight.fill_(w)
        chooser(model, guide)
    assert chooser.best_epoch == 4 and chooser.best_ll == -1.0
    chooser.restore(model, guide)
    assert model.weight.item() == 2.0


@pytest.mark.parametrize("validation", ["0", "0.2"])
def test_fit_records_the_chosen_epoch(tmp_path, validation):
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (120, 2))
    y = np.sin(x[:, 0]) + 0.3 * rng.normal(size=120)
    path = tmp_path / "d.csv"
    np.savetxt(path, np.c_[x, y], delimiter=",", header="a,b,y", comments="")
    assert main(["fit", "--model", "mlp", "--guide", "deterministic", "--data", str(path),
                 "--target", "y", "--set", "fit.epochs=40", "--set", f"validation={validation}",
                 "--device", "cpu", "--no-progress", "--out", str(tmp_path)]) == 0
    (run,) = (tmp_path / "fit").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    if validation == "0":
        assert "chosen_epoch" not in metrics
    else:
        assert metrics["validation_rows"] == 22  # 0.2 of the 108 training rows
        assert 1 <= metrics["chosen_epoch"] <= 40
