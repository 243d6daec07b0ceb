"""The defaults of ``python -m experiments fit`` on tables no setting was chosen for.

Every staged regression set (the nine UCI sets at split 0, elevators, kin40k, pol and bike at fold
0) and synthetic stress tables with the traits real tables have (:func:`stress_tables`) are fitted
with the zoo's defaults by ``svgp/cholesky``, ``bnn/mean-field`` and the plain net
``mlp/deterministic``, and by native GPyTorch (an ``ApproximateGP`` with k-means inducing points,
``CholeskyVariationalDistribution``, ``VariationalELBO``, Adam) at the SVGP's budget: the same
inducing points, batch size, epochs and lr. The goals (issue 23):

* no pair crashes or reports nonsense (``fit`` stops a run that does: ``status`` failed);
* the SVGP within 5 % RMSE and 0.05 test LL of native GPyTorch;
* BbB's test LL at least the plain net's on two thirds of the tables, with 95 % coverage in
  [0.90, 0.99].

Usage::

    python -m experiments.benchmarks.defaults_table [--quick] [--out docs/results/defaults.json]
    python -m experiments.benchmarks.defaults_table --render docs/results/defaults.json \\
        --md docs/defaults.md

The result file holds the metrics with the command, commit, hardware and date; ``--render``
writes the page from it, so a re-run updates the page. Needs the staged data
(``$VBZOO_DATA_DIR``); a missing set is a row marked so.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from experiments.benchmarks.defaults_page import judge, render

PAIRS = (("svgp", "cholesky"), ("bnn", "mean-field"), ("mlp", "deterministic"))
UCI = ("boston", "concrete", "energy", "kin8nm", "naval", "power", "protein", "wine", "yacht")
UCI_LARGE = ("elevators", "kin40k", "pol", "bike")

log = logging.getLogger("experiments")


# ------------------------------------------------------------------------------------------------
# tables


def _target(x: np.ndarray, rng) -> np.ndarray:
    return np.sin(x[:, 0]) + 0.5 * x[:, 1] + 0.2 * x[:, 2] * x[:, 3]


def stress_tables(rng_seed: int = 0, quick: bool = False) -> dict[str, tuple[np.ndarray, ...]]:
    """Synthetic ``(x_train, y_train, x_test, y_test)`` with one trait each, five informative
    Gaussian features and noise sd 0.1 unless the trait says otherwise:

    ``dups`` two thirds of the rows repeat earlier rows; ``collinear`` an extra column that is an
    exact linear function of another; ``const`` an extra constant column; ``skew`` an extra
    lognormal(0, 3) column; ``heavy-tail`` Student-t (2 degrees of freedom) noise on the target;
    ``scale-1e6`` every feature times 1e6 and the target times 1e6 plus 1e7; ``dup-columns``
    every feature twice; ``n20`` and ``n500k``: 20 and 500 000 rows (``quick``: 50 000)."""
    out = {}
    specs = {"dups": 20000, "collinear": 20000, "const": 20000, "skew": 20000,
             "heavy-tail": 20000, "scale-1e6": 20000, "dup-columns": 20000, "n20": 20,
             "n500k": 50000 if quick else 500000}
    for trait, rows in specs.items():
        rng = np.random.default_rng(rng_seed)
        n_test = max(rows // 10, 10)
        unique = (rows + n_test) // 3 if trait == "dups" else rows + n_test
        x = rng.normal(size=(unique, 5))
        noise = rng.standard_t(2, size=unique) if trait == "heavy-tail" else rng.normal(size=unique)
        y = _target(x, rng) + 0.1 * noise
        if trait == "collinear":
            x = np.c_[x, 2.0 * x[:, 0] + 1.0]
        elif trait == "const":
            x = np.c_[x, np.full(len(x), 7.0)]
        elif trait == "skew":
            x = np.c_[x, rng.lognormal(0.0, 3.0, len(x))]
        elif trait == "scale-1e6":
            x, y = x * 1e6, y * 1e6 + 1e7
        elif trait == "dup-columns":
            x = np.c_[x, x]
        if trait == "dups":
            idx = rng.integers(0, unique, rows + n_test)
            x, y = x[idx], y[idx]
        out[trait] = (x[:rows], y[:rows], x[rows:], y[rows:])
    return out


def moons(seed: int = 0, rows: int = 2000) -> tuple[np.ndarray, ...]:
    """Two interleaved half circles with Gaussian noise 0.2, labels 0 and 1, 10 % test rows."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, rows)
    label = rng.integers(0, 2, rows)
    x = np.where(label[:, None] == 0, np.c_[np.cos(t), np.sin(t)],
                 np.c_[1 - np.cos(t), 0.5 - np.sin(t)]) + 0.2 * rng.normal(size=(rows, 2))
    n_test = rows // 10
    return x[n_test:], label[n_test:].astype(float), x[:n_test], label[:n_test].astype(float)


def staged_tables(quick: bool = False) -> dict[str, tuple[np.ndarray, ...] | str]:
    """The staged regression sets (split / fold 0, raw units), or why one is missing."""
    from experiments.data import DataError
    from experiments.data.uci import load_uci
    from experiments.data.uci_large import load_uci_large

    out: dict = {}
    names = [(n, load_uci) for n in UCI] + [(n, load_uci_large) for n in UCI_LARGE]
    if quick:
        names = names[:2]
    for name, loader in names:
        try:
            d = loader(name, 0, standardize=False, download=False)
        except (DataError, FileNotFoundError, ValueError) as exc:
            out[name] = f"missing: {exc}"
            continue
        out[name] = tuple(t.double().numpy() for t in (d.x_train, d.y_train, d.x_test, d.y_test))
    return out


# ------------------------------------------------------------------------------------------------
# fits


def _write(folder: Path, name: str, x: np.ndarray, y: np.ndarray) -> str:
    path = folder / f"{name}.csv"
    header = ",".join([f"x{i}" for i in range(x.shape[1])] + ["y"])
    np.savetxt(path, np.c_[x, y], delimiter=",", header=header, comments="", fmt="%.10g")
    return str(path)


def zoo_fit(model: str, guide: str, train: str, test: str, out: str, seed: int) -> dict:
    """``python -m experiments fit`` with its defaults, in this process; a failure is a row."""
    from experiments.harness.userfit import FitArgs, run_fit

    t0 = time.perf_counter()
    try:
        run_dir, metrics = run_fit(FitArgs(model=model, guide=guide, data=train, test=test,
                                           target="y", device="cpu", seed=seed, out=out,
                                           progress=False))
    except Exception as exc:  # noqa: BLE001 - the table records every failure
        return {"status": "failed", "error": f"{type(exc).__name__}: {str(exc)[:300]}",
                "seconds": round(time.perf_counter() - t0, 1)}
    config = json.loads((Path(run_dir) / "config.json").read_text())
    pair = config["pair"]
    return {"status": metrics["status"], "rmse": metrics["rmse"], "test_ll": metrics["test_ll"],
            "coverage95": metrics["coverage95"], "seconds": round(time.perf_counter() - t0, 1),
            "epochs": pair["fit"]["epochs"], "batch_size": pair["fit"]["batch_size"],
            "lr": pair["fit"]["lr"], "num_inducing": config["model_args"].get("num_inducing")}


def gpytorch_fit(xs: tuple[np.ndarray, ...], budget: dict, seed: int) -> dict:
    """Native GPyTorch at the zoo SVGP's budget: k-means Z (the zoo's k-means), ScaleKernel(RBF
    with ARD), constant mean, Gaussian likelihood, ``VariationalELBO``, Adam on everything."""
    import gpytorch

    import models

    t0 = time.perf_counter()
    x_tr, y_tr, x_te, y_te = xs
    mx, sx = x_tr.mean(0), x_tr.std(0)
    sx[sx == 0] = 1.0
    my, sy = float(y_tr.mean()), float(y_tr.std()) or 1.0
    x = torch.as_tensor((x_tr - mx) / sx, dtype=torch.float32)
    y = torch.as_tensor((y_tr - my) / sy, dtype=torch.float32)
    xt = torch.as_tensor((x_te - mx) / sx, dtype=torch.float32)
    torch.manual_seed(seed)
    m = budget["num_inducing"]
    z = models.create_model("svgp", input_dim=x.shape[1], num_inducing=m).initialize_inducing(
        x, seed=seed, progress=False).detach().clone()

    class GP(gpytorch.models.ApproximateGP):
        def __init__(self, z):
            q = gpytorch.variational.CholeskyVariationalDistribution(len(z))
            super().__init__(gpytorch.variational.VariationalStrategy(
                self, z, q, learn_inducing_locations=True))
            self.mean_module = gpytorch.means.ConstantMean()
            self.covar_module = gpytorch.kernels.ScaleKernel(
                gpytorch.kernels.RBFKernel(ard_num_dims=x.shape[1]))

        def forward(self, a):
            return gpytorch.distributions.MultivariateNormal(self.mean_module(a),
                                                             self.covar_module(a))

    gp, lik = GP(z), gpytorch.likelihoods.GaussianLikelihood()
    opt = torch.optim.Adam([*gp.parameters(), *lik.parameters()], lr=budget["lr"])
    mll = gpytorch.mlls.VariationalELBO(lik, gp, num_data=len(y))
    gp.train()
    lik.train()
    g = torch.Generator().manual_seed(seed)
    try:
        for _ in range(budget["epochs"]):
            for idx in torch.randperm(len(y), generator=g).split(budget["batch_size"]):
                opt.zero_grad()
                loss = -mll(gp(x[idx]), y[idx])
                loss.backward()
                opt.step()
        gp.eval()
        lik.eval()
        with torch.no_grad():
            means, variances = [], []
            for chunk in xt.split(4096):
                pred = lik(gp(chunk))
                means.append(pred.mean)
                variances.append(pred.variance)
        mean = torch.cat(means).double() * sy + my
        sd = torch.cat(variances).double().sqrt() * sy
    except Exception as exc:  # noqa: BLE001
        return {"status": "failed", "error": f"{type(exc).__name__}: {str(exc)[:300]}",
                "seconds": round(time.perf_counter() - t0, 1)}
    yt = torch.as_tensor(y_te, dtype=torch.float64)
    ll = torch.distributions.Normal(mean, sd).log_prob(yt).mean()
    inside = ((yt - mean).abs() <= 1.959964 * sd).double().mean()
    return {"status": "ok", "rmse": float((mean - yt).pow(2).mean().sqrt()), "test_ll": float(ll),
            "coverage95": float(inside), "seconds": round(time.perf_counter() - t0, 1)}


# ------------------------------------------------------------------------------------------------
# goals and page


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/results/defaults.json", help="result file to write")
    ap.add_argument("--quick", action="store_true", help="two staged sets and a 50 000-row "
                                                         "table instead of 500 000 (a check)")
    ap.add_argument("--only", default=None, help="comma-separated table names")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--render", metavar="RESULT", default=None,
                    help="write the page from this result file and exit")
    ap.add_argument("--md", default="docs/defaults.md", help="the page --render writes")
    ap.add_argument("--write-tables", metavar="DIR", default=None,
                    help="write every table as DIR/<name>_train.csv and _test.csv (header "
                         "x0..xK,y), and a two-moons classification table DIR/moons_{train,"
                         "test}.csv, for `fit` and `compare` by hand; then exit")
    args = ap.parse_args(argv)
    if args.write_tables:
        folder = Path(args.write_tables)
        folder.mkdir(parents=True, exist_ok=True)
        tables = {**staged_tables(), **stress_tables(args.seed), "moons": moons(args.seed)}
        for name, xs in tables.items():
            if isinstance(xs, str):
                print(f"{name}: {xs}")
                continue
            for part, (x, y) in (("train", xs[:2]), ("test", xs[2:])):
                _write(folder, f"{name}_{part}", x, y)
            print(f"{name}: {len(xs[0])} + {len(xs[2])} rows -> {folder}/{name}_{{train,test}}.csv")
        return 0
    if args.render:
        result = json.loads(Path(args.render).read_text())
        result["result_file"] = args.render
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md).write_text(render(result))
        print(f"wrote {args.md}")
        return 0
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    torch.set_num_threads(1)
    from experiments.harness.runner import code_version, hardware

    started = time.perf_counter()
    commit = code_version()  # the code this process runs (read once: later commits are not it)
    tables = {**staged_tables(args.quick), **stress_tables(args.seed, args.quick)}
    if args.only:
        keep = set(args.only.split(","))
        tables = {k: v for k, v in tables.items() if k in keep}
    rows: dict = {}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, xs in tables.items():
            if isinstance(xs, str):
                rows[name] = xs
                print(f"{name}: {xs}", flush=True)
                continue
            folder = Path(tmp) / name
            folder.mkdir()
            train, test = _write(folder, "train", xs[0], xs[1]), _write(folder, "test", xs[2], xs[3])
            row: dict = {"rows": len(xs[0]) + len(xs[2]), "features": xs[0].shape[1]}
            for model, guide in PAIRS:
                row[model] = zoo_fit(model, guide, train, test, str(folder / "runs"), args.seed)
                print(f"{name} {model}/{guide}: {row[model]}", flush=True)
            if row["svgp"].get("status") == "ok":
                row["gpytorch"] = gpytorch_fit(xs, row["svgp"], args.seed)
                print(f"{name} gpytorch: {row['gpytorch']}", flush=True)
            rows[name] = row
            result = {
                "command": "python -m experiments.benchmarks.defaults_table "
                           + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
                "commit": commit, "hardware": hardware(),
                "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
                "load_average": list(os.getloadavg()),
                "minutes": (time.perf_counter() - started) / 60, "rows": rows,
                "goals": judge(rows)}
            out.write_text(json.dumps(result, indent=1))  # after every table: nothing lost
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
