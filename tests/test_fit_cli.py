"""``python -m experiments fit`` / ``predict`` on a user's own table: the run folder, predictions
in original units, every table format, and one-line errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments.__main__ import main
from experiments.data import load_table
from tests.helpers import csv_rows, write_csv

REPO = Path(__file__).resolve().parents[1]


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "experiments", *args], cwd=REPO,
                          timeout=timeout, capture_output=True, text=True)


def _truth(a, b):
    return 100.0 + 30.0 * a - 20.0 * b


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    """y = 100 + 30 a - 20 b + N(0, 0.5²), 200 rows; new inputs with the columns swapped."""
    d = tmp_path_factory.mktemp("linear")
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (200, 2))
    y = _truth(x[:, 0], x[:, 1]) + rng.normal(0, 0.5, 200)
    write_csv(d / "data.csv", ["a", "b", "y"], np.column_stack([x, y]).tolist())
    new = rng.uniform(-2, 2, (6, 2))
    write_csv(d / "new.csv", ["b", "a"], new[:, ::-1].tolist())
    return d, new


def test_regression_fit_then_predict_in_original_units(linear, tmp_path):
    d, new = linear
    proc = _cli("fit", "--model", "bnn", "--guide", "mean-field", "--data", str(d / "data.csv"),
                "--target", "y", "--set", "model_cfg.widths=[]", "--set", "fit.epochs=600",
                "--device", "cpu", "--no-progress", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (tmp_path / "fit").iterdir()
    for name in ("config.json", "metrics.json", "run.log", "model.pt", "standardization.json",
                 "test_predictions.csv", "test_predictions.png", "train/history.json",
                 "train/checkpoint.pt"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["command"].startswith("python -m experiments fit --model bnn")
    assert config["model_args"] == {"likelihood": "gaussian", "out_features": 1,
                                    "in_features": 2, "task": "regression"}
    assert config["pair"]["model_cfg"] == {"widths": []} and config["n_test"] == 20
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "ok"
    assert {"rmse", "mae", "test_ll", "coverage95"} <= set(metrics)
    assert metrics["rmse"] < 3.0  # y spans about ±70 around 100: standardised units would fail
    std = json.loads((run / "standardization.json").read_text())
    assert std["columns"] == ["a", "b"] and std["y_mean"] == pytest.approx(100, abs=5)

    out = tmp_path / "preds.csv"
    proc = _cli("predict", str(run), "--data", str(d / "new.csv"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"wrote {out} (6 rows)" in proc.stdout
    rows = csv_rows(out)
    # the row ids in new.csv, no target column (new.csv has none), then the predictions
    assert list(rows[0]) == ["row", "mean", "sd", "epistemic_sd", "aleatoric_sd"]
    assert [r["row"] for r in rows] == [str(i) for i in range(6)]
    mean = np.array([float(r["mean"]) for r in rows])
    sd = np.array([float(r["sd"]) for r in rows])
    np.testing.assert_allclose(mean, _truth(new[:, 0], new[:, 1]), atol=3.0)
    # the learned noise (true 0.5; ~7 after 300 steps from 0.1 in standardised units) times
    # y_std ≈ 44: in standardised units it would be ~0.15
    assert ((sd > 0.3) & (sd < 20.0)).all()
    # the training file itself, target included: predict reports its metrics too
    proc = _cli("predict", str(run), "--data", str(d / "data.csv"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '"rmse"' in proc.stdout and (run / "predictions.csv").is_file()


def test_classification_fit_then_predict(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, (160, 2))
    labels = np.where(x[:, 0] + x[:, 1] > 0, 3, 1)  # any numbers as labels
    data = write_csv(tmp_path / "cls.csv", ["u", "v", "label"],
                      np.column_stack([x, labels]).tolist())
    proc = _cli("fit", "--model", "bnn", "--guide", "mean-field", "--data", str(data),
                "--target", "label", "--task", "classification", "--test-fraction", "0.25",
                "--set", "fit.epochs=40", "--set", "model_cfg.widths=[8]", "--device", "cpu",
                "--no-progress", "--out", str(tmp_path / "res"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (tmp_path / "res" / "fit").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"accuracy", "nll", "ece"} <= set(metrics) and metrics["n_test"] == 40
    assert metrics["accuracy"] > 0.8
    assert (run / "test_predictions.png").is_file()
    test_rows = csv_rows(run / "test_predictions.csv")
    assert list(test_rows[0]) == ["row", "u", "v", "label", "predicted", "p_1", "p_3"]
    assert json.loads((run / "standardization.json").read_text())["classes"] == [1.0, 3.0]
    proc = _cli("predict", str(run), "--data", str(data), "--out", str(tmp_path / "p.csv"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = csv_rows(tmp_path / "p.csv")
    assert list(rows[0]) == ["row", "label", "predicted", "p_1", "p_3"] and len(rows) == 160
    assert [int(r["row"]) for r in rows] == list(range(160))
    assert [int(r["label"]) for r in rows] == labels.tolist()  # the file's labels, as they are
    p = np.array([[float(r["p_1"]), float(r["p_3"])] for r in rows])
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    predicted = np.array([int(r["predicted"]) for r in rows])
    assert (predicted == labels).mean() > 0.8


def test_npz_and_pt_tables_with_their_own_test_set(tmp_path):
    rng = np.random.default_rng(2)
    x, x_test = rng.normal(size=(40, 3)), rng.normal(size=(7, 3))
    y, y_test = x.sum(1), x_test.sum(1)
    np.savez(tmp_path / "d.npz", x=x, y=y, x_test=x_test, y_test=y_test)
    torch.save({"x": torch.as_tensor(x), "y": torch.as_tensor(y)}, tmp_path / "d.pt")
    t = load_table(tmp_path / "d.npz")
    assert t.columns == ["x0", "x1", "x2"] and t.x_test.shape == (7, 3)
    assert load_table(tmp_path / "d.pt").x.shape == (40, 3)
    for name in ("d.npz", "d.pt"):
        code = main(["fit", "--model", "svgp", "--guide", "cholesky", "--data",
                     str(tmp_path / name), "--set", "fit.epochs=3", "--device", "cpu",
                     "--no-progress", "--out", str(tmp_path / name.replace(".", "_"))])
        assert code == 0
        (run,) = (tmp_path / name.replace(".", "_") / "fit").iterdir()
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["n_test"] == (7 if name == "d.npz" else 4)
        assert main(["predict", str(run), "--data", str(tmp_path / "d.npz")]) == 0
        assert len(csv_rows(run / "predictions.csv")) == 40


@pytest.fixture
def bad_files(tmp_path):
    write_csv(tmp_path / "text.csv", ["a", "b", "y"], [[1, 2, 3], [4, "x", 6]])
    write_csv(tmp_path / "nan.csv", ["a", "b", "y"], [[1, 2, 3], [4, "", 6], [7, 8, "nan"]])
    write_csv(tmp_path / "few.csv", ["a", "y"], [[i, i] for i in range(5)])
    write_csv(tmp_path / "ok.csv", ["a", "y"], [[i, 2 * i] for i in range(30)])
    write_csv(tmp_path / "halves.csv", ["a", "y"], [[i, 0.5 + i % 2] for i in range(30)])
    (tmp_path / "ragged.csv").write_text("a,y\n1,2\n3\n")
    np.savez(tmp_path / "nox.npz", y=np.zeros(3))
    return tmp_path


@pytest.mark.parametrize("args,message", [
    (["--data", "{d}/missing.csv", "--target", "y"], "data file {d}/missing.csv does not exist"),
    (["--data", "{d}/ok.csv", "--target", "z"], "no column 'z' (the target); columns: a, y"),
    (["--data", "{d}/ok.csv"], "name the target column with --target"),
    (["--data", "{d}/text.csv", "--target", "y"], "line 3, column 'b': 'x' is not a number"),
    (["--data", "{d}/nan.csv", "--target", "y"], "NaN or inf values in 2 row(s), at lines 3, 4"),
    (["--data", "{d}/ragged.csv", "--target", "y"], "line 3: 1 cells, but the header has 2"),
    (["--data", "{d}/few.csv", "--target", "y"], "4 training and 1 test row(s) are too few"),
    (["--data", "{d}/nox.npz"], "has no array 'x'"),
    (["--data", "{d}/halves.csv", "--target", "y", "--task", "classification"],
     "the classification target 'y' holds non-integer values (0.5, 1.5)"),
    (["--data", "{d}/ok.csv", "--target", "y", "--set", "model_cfg.in_features=3"],
     "in_features comes from the data; leave it out"),
    (["--data", "{d}/ok.csv", "--target", "y", "--set", "fit.epochs=abc"],
     "--set fit.epochs=abc: expected an integer"),
    (["--data", "{d}/ok.csv", "--target", "y", "--set", "model_cfg.likelihood=bernoulli"],
     "a regression table takes one of gaussian, student-t, heteroscedastic-gaussian"),
])
def test_errors_are_one_line(bad_files, capsys, args, message):
    out = bad_files / "runs"
    code = main(["fit", "--model", "bnn", "--guide", "mean-field", "--device", "cpu", "--out",
                 str(out), *[a.format(d=bad_files) for a in args]])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert message.format(d=bad_files) in err[-1] and err[-1].startswith("error: ")
    assert not out.exists()  # checked before a run folder exists


def test_unsupported_pair_lists_the_pairs_that_fit(bad_files, capsys):
    code = main(["fit", "--model", "rff-gp", "--guide", "mean-field", "--data",
                 str(bad_files / "ok.csv"), "--target", "y", "--task", "classification",
                 "--out", str(bad_files / "runs")])
    err = capsys.readouterr().err
    assert code == 2
    assert "--model rff-gp --guide mean-field does not fit a classification table" in err
    assert "bnn/mean-field" in err and "svgp/cholesky" in err and "rff-gp/" not in \
        err.split("pairs that do:")[1]
    code = main(["fit", "--model", "vae", "--guide", "encoder", "--data",
                 str(bad_files / "ok.csv"), "--target", "y", "--out", str(bad_files / "runs")])
    assert code == 2 and "rff-gp/auto-mvn" in capsys.readouterr().err


def test_predict_errors(bad_files, capsys):
    assert main(["predict", str(bad_files), "--data", str(bad_files / "ok.csv")]) == 2
    assert "is not a finished fit run: no config.json" in capsys.readouterr().err


@pytest.mark.parametrize("model, guide", [("svgp", "cholesky"), ("bnn", "mean-field")])
def test_staged_kin40k_as_csv_fit_then_predict(model, guide, data_dir, tmp_path):
    """The issue's acceptance: the staged kin40k (its first 1500 training rows) written as a CSV,
    fitted with --test-fraction 0.1; metrics in the target's own units; predict writes means and
    sds."""
    from experiments import data as D

    d = D.load_uci_large("kin40k", data_dir=str(data_dir))
    x, y = d.x_train[:1500].numpy(), d.y_train[:1500].numpy()
    names = [f"x{i}" for i in range(x.shape[1])]
    write_csv(tmp_path / "kin40k.csv", names + ["y"],
               [list(map(float, row)) + [float(t)] for row, t in zip(x, y)])
    proc = _cli("fit", "--model", model, "--guide", guide, "--data", str(tmp_path / "kin40k.csv"),
                "--target", "y", "--test-fraction", "0.1", "--set", "fit.epochs=5",
                "--device", "cpu", "--no-progress", "--out", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = (tmp_path / "runs" / "fit").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # original units: kin40k's target sd is about 1 on its own scale, a trivial predictor of the
    # training mean has RMSE about std(y); a trained model is below it and far from 0
    assert 0.05 < metrics["rmse"] < 1.1 * float(np.std(y))
    proc = _cli("predict", str(run_dir), "--data", str(tmp_path / "kin40k.csv"), "--out",
                str(tmp_path / "preds.csv"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(tmp_path / "preds.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1500 and {"mean", "sd"} <= set(rows[0])
    assert abs(np.mean([float(r["mean"]) for r in rows]) - float(np.mean(y))) < 0.5 * np.std(y)


def test_prediction_csvs_carry_row_ids_and_the_target(tmp_path):
    """fit's test_predictions.csv: ``row`` (the test row's index in the data file), then the
    features and the target; predict's CSV: ``row`` (the index in its file), the target when the
    file has it, then the predictions."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-2, 2, (60, 2))
    y = _truth(x[:, 0], x[:, 1]) + rng.normal(0, 0.5, 60)
    data = write_csv(tmp_path / "data.csv", ["a", "b", "y"], np.column_stack([x, y]).tolist())
    test = write_csv(tmp_path / "test.csv", ["a", "b", "y"],
                      np.column_stack([x[:5], y[:5]]).tolist())
    new = write_csv(tmp_path / "new.csv", ["b", "a"], x[:4, ::-1].tolist())
    common = ["--model", "bnn", "--guide", "mean-field", "--target", "y", "--set",
              "model_cfg.widths=[]", "--set", "fit.epochs=2", "--set", "num_samples=4",
              "--device", "cpu", "--no-progress"]
    assert main(["fit", "--data", str(data), "--test-fraction", "0.25", "--out",
                 str(tmp_path / "a"), *common]) == 0
    (run,) = (tmp_path / "a" / "fit").iterdir()
    rows = csv_rows(run / "test_predictions.csv")
    assert list(rows[0])[:4] == ["row", "a", "b", "y"] and len(rows) == 15
    ids = [int(r["row"]) for r in rows]
    assert ids == sorted(set(ids)) and 0 <= ids[0] and ids[-1] < 60
    got = np.array([[float(r["a"]), float(r["b"]), float(r["y"])] for r in rows])
    np.testing.assert_allclose(got, np.column_stack([x, y])[ids], rtol=1e-7)

    assert main(["predict", str(run), "--data", str(data)]) == 0
    rows = csv_rows(run / "predictions.csv")
    assert list(rows[0]) == ["row", "y", "mean", "sd", "epistemic_sd", "aleatoric_sd"]
    assert [int(r["row"]) for r in rows] == list(range(60))
    np.testing.assert_allclose([float(r["y"]) for r in rows], y, rtol=1e-7)
    assert main(["predict", str(run), "--data", str(new), "--out", str(tmp_path / "n.csv")]) == 0
    rows = csv_rows(tmp_path / "n.csv")
    assert list(rows[0])[:2] == ["row", "mean"] and [r["row"] for r in rows] == list("0123")

    # with --test FILE, the ids are the rows of that file
    assert main(["fit", "--data", str(data), "--test", str(test), "--out", str(tmp_path / "b"),
                 *common]) == 0
    (run,) = (tmp_path / "b" / "fit").iterdir()
    assert [r["row"] for r in csv_rows(run / "test_predictions.csv")] == list("01234")


@pytest.mark.parametrize("ensemble", [1, 5])
def test_fit_figure_names_the_run_and_samples_intervals(tmp_path, monkeypatch, ensemble):
    """5000 test rows: 500 random rows get intervals over a dot per row, the figure says so, and
    its title names the pair (the ensemble) and the data file; written in well under 5 s."""
    import time

    from experiments.engine.predict import Prediction
    from experiments.harness import fitjob, plotting, tables, userpredict

    texts = []
    save = plotting.save_figure

    def keep_texts(fig, path):
        texts.extend(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))
        return save(fig, path)

    monkeypatch.setattr(plotting, "save_figure", keep_texts)
    rng = np.random.default_rng(0)
    y = rng.normal(size=5000)
    var = torch.full((5000,), 0.25, dtype=torch.float64)
    pred = Prediction("regression", torch.as_tensor(y + rng.normal(0, 0.5, 5000)), var,
                      0.2 * var, 0.8 * var)
    std = tables.Standardization(task="regression", columns=["a"], target="y", x_mean=[0.0],
                                  x_std=[1.0])
    job = fitjob.FitJob("mlp", "deterministic", ensemble=ensemble)
    t0 = time.perf_counter()
    paths = userpredict.plot_test(pred, y, std, {"rmse": 0.5, "coverage95": 0.95},
                              tmp_path / "test_predictions", job=job, data="/some/where/big.csv")
    assert time.perf_counter() - t0 < 5.0
    assert all(p.is_file() for p in paths)
    text = "\n".join(texts)
    assert "500 of 5000 rows shown" in text
    assert "mlp/deterministic on big.csv" in text
    assert ("ensemble of 5" in text) == (ensemble == 5)


def test_errors_are_one_line_and_debug_adds_the_traceback(tmp_path, capsys):
    data = write_csv(tmp_path / "d.csv", ["a", "y"], [[float(i), float(i)] for i in range(20)])
    args = ["fit", "--model", "bnn", "--guide", "mean-field", "--data", str(data), "--target",
            "y", "--set", "fit.epochs=abc", "--out", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "error: --set fit.epochs=abc" in err and "Traceback" not in err
    assert main(["--debug", *args]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_text_files_as_people_have_them(tmp_path, caplog):
    """A UTF-8 byte-order mark is not part of the first column's name; latin-1 is read with a
    note naming the byte (issue 25, item 7)."""
    from experiments.data import load_table

    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffa,y\n1,2\n3,4\n".encode("utf-8"))
    table = load_table(bom, "y")
    assert table.columns == ["a"] and table.y.tolist() == [2.0, 4.0]
    latin = tmp_path / "latin.csv"
    latin.write_bytes("größe,y\n1,2\n3,4\n".encode("latin-1"))
    with caplog.at_level("WARNING"):
        table = load_table(latin, "y")
    assert table.columns == ["größe"] and "not UTF-8" in caplog.text and "latin.csv" in caplog.text


def test_predict_refuses_to_overwrite_its_input(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (40, 2))
    data = write_csv(tmp_path / "d.csv", ["a", "b", "y"],
                      np.column_stack([x, x[:, 0]]).tolist())
    assert main(["fit", "--model", "bnn", "--guide", "mean-field", "--data", str(data),
                 "--target", "y", "--set", "fit.epochs=1", "--set", "model_cfg.widths=[]",
                 "--device", "cpu", "--no-progress", "--out", str(tmp_path)]) == 0
    (run,) = (tmp_path / "fit").iterdir()
    before = data.read_text()
    assert main(["predict", str(run), "--data", str(data), "--out", str(data)]) == 2
    assert "would overwrite it" in capsys.readouterr().err and data.read_text() == before
    assert main(["predict", str(run), "--data", str(data), "--out",
                 str(tmp_path / "no" / "such" / "p.csv")]) == 2
    assert "not writable" in capsys.readouterr().err
