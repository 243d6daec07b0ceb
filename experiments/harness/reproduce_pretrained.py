"""``python -m experiments reproduce --pretrained [--smoke]``: every posterior on the search path
(:func:`experiments.harness.pretrained.search_path`: the shipped ones, then the cache's) loaded
and scored again, with no training, against its card.

For each posterior two kinds of rows are written:

* its card's ``check`` metric on its ``check.csv`` rows (:func:`~.pretrained.check_posterior`);
* without ``--smoke``, the card's headline metrics on the experiment's own test data, rebuilt
  from the card's ``source`` (the run's experiment config and seed) by the export recipe
  (:data:`experiments.harness.export_recipes.RECIPES`) and scored as the experiment scores them
  (:data:`HEADLINES`: co2's SVGP test RMSE / log likelihood / coverage, blundell-regression's
  test RMSE / log likelihood / band ratio, two moons' and MNIST-PCA's accuracy / NLL / ECE, dkl-regression's
  in-region and gap RMSE / log likelihood and band ratios, the UCI benchmark's split RMSE / log
  likelihood, svgp-uci's fold RMSE / MAE / log likelihood / coverage, blundell-mnist's test error
of the posterior-mean weights and of the Monte Carlo predictive, and its validation error).

Each recomputed value is compared with the card's within the card's tolerance (``check``'s
relative tolerance: 1e-6 for a closed-form prediction in float64, in float32 ten times the
check's largest distance from its float64 value and its values with 1, 2 and 4 threads (at least
1e-5), 1e-4 for a seeded Monte Carlo one; the
predictive seed is the training run's, so a posterior that loads as trained gives the card's
numbers); a value outside it, or a posterior that does not load, is a FAILED row. The report
(``<out>/REPORT-pretrained.md``, ``REPORT-pretrained-smoke.md`` with ``--smoke``) has the
summary table of ``reproduce``'s report, each row marked "from pretrained NAME"; the command
exits 1 on any FAILED row. Without ``--smoke``, each posterior whose experiment has a figure of
its predictions gets that figure drawn from the loaded posterior
(:mod:`.pretrained_figures`: ``<out>/pretrained-figures/NAME.png``), embedded below its rows.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from .export_recipes_mnist import HEADLINES as MNIST_HEADLINES
from .export_recipes_uci import HEADLINES as UCI_HEADLINES

HEADER = ["| posterior | experiment | metric | card | recomputed | tolerance | result | source |",
          "|---|---|---|---|---|---|---|---|"]


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def posterior_folders() -> list[Path]:
    """The folder of every posterior on the search path, a name's first one winning."""
    from .pretrained import search_path

    seen: dict[str, Path] = {}
    for root in search_path():
        if root.is_dir():
            for card in sorted(root.glob("*/card.json")):
                seen.setdefault(card.parent.name, card.parent)
    return [seen[k] for k in sorted(seen)]


# ------------------------------------------------------------------------------------------------
# the experiments' own test metrics, scored as each experiment's run scores them


def _rows(card: dict):
    """The experiment's test rows ``(x, y)`` (tensors, the model's units) from the card's source,
    through the export recipe."""
    import torch

    from .export_recipes import RECIPES

    src = card["source"]
    got = RECIPES[card["experiment"]][card["arm"]](
        {"config": src["config"], "seed": src["seed"]}, card["arm"], None)
    x, y = got["test_rows"]
    u = card["units"]
    x = (torch.as_tensor(x).reshape(len(y), -1) - torch.tensor(u["x_mean"])) / torch.tensor(u["x_std"])
    y = torch.as_tensor(y)
    if u["task"] == "regression":
        y = (y - u["y_mean"]) / u["y_std"]
    return x, y


def _co2(model, guide, card: dict) -> dict:
    from experiments.engine import metrics as M

    x, y = _rows(card)
    x, y = x.double(), y.double()
    pred = model.predict(x, guide)
    mean, sd = pred["y_mean"], pred["y_var"].sqrt()
    return {"svgp_test_rmse": M.rmse(mean, y), "svgp_test_ll": M.gaussian_log_likelihood(mean, sd, y),
            "svgp_test_coverage95": M.gaussian_interval_coverage(mean, sd, y)}


def _grid_ratio(model, guide, card: dict, grid, on, off, seed: int) -> float:
    from experiments.engine.predictive import posterior_predictive

    n = int(card["predict"]["num_samples"])
    ys = posterior_predictive(model, guide, grid, num_samples=n, seed=seed)["obs"]
    std = ys.std(0)
    return float(std[off].mean() / std[on].mean())


def _blundell(model, guide, card: dict) -> dict:
    import torch

    from experiments.engine import metrics as M
    from experiments.engine.predict import predict

    arm, seed, d = card["arm"], int(card["source"]["seed"]), card["source"]["config"]["data"]
    x, y = _rows(card)
    test = predict(model, guide, x.float(), num_samples=int(card["predict"]["num_samples"]),
                   y=y.float(), seed=seed)
    grid = torch.linspace(*d["grid"], d["num_grid"]).unsqueeze(-1)
    (lo, hi), g = d["x_range"], grid[:, 0]
    on, off = (g >= lo) & (g <= hi), (g <= lo - 0.1) | (g >= hi + 0.1)
    return {f"std_ratio_{arm}": _grid_ratio(model, guide, card, grid, on, off, seed),
            f"test_rmse_{arm}": M.rmse(test.mean, y.float()), f"test_ll_{arm}": test.log_likelihood}


def _svgp_classification(model, guide, card: dict) -> dict:
    import torch

    from experiments.engine import metrics as M

    from .export_recipes import _experiment_module

    mod = _experiment_module("svgp-classification")
    x, y = _rows(card)
    pred = model.predict(x.float(), guide)
    if card["arm"] == "mnist-svgp":  # Monte Carlo over q(f)'s marginals, the run's seed
        tag = "mnist_svgp"
        probs = mod.softmax_predictive(pred["f_mean"], pred["f_var"],
                                       int(card["predict"]["num_samples"]), int(card["source"]["seed"]))
    else:  # Gauss-Hermite
        tag = "moons"
        p1 = mod.bernoulli_predictive(pred["f_mean"][:, 0], pred["f_var"][:, 0])
        probs = torch.stack([1 - p1, p1], -1)
    y = y.long()
    return {f"{tag}_accuracy": M.accuracy(probs, y), f"{tag}_nll": M.nll(probs, y),
            f"{tag}_ece": M.expected_calibration_error(probs, y)}


def _dkl(model, guide, card: dict) -> dict:
    import torch

    from experiments.engine import metrics as M
    from experiments.engine.predict import predict

    arm, seed, cfg = card["arm"], int(card["source"]["seed"]), card["source"]["config"]
    d = cfg["data"]
    n = int(d["num_test"])
    x, y = _rows(card)
    kw = dict(num_samples=int(card["predict"]["num_samples"]), seed=seed)
    out = {}
    for part, rows in (("in", slice(0, n)), ("gap", slice(n, 2 * n))):
        test = predict(model, guide, x[rows].float(), y=y[rows].float(), **kw)
        out[f"rmse_{part}_{arm}"] = M.rmse(test.mean, y[rows].float())
        out[f"ll_{part}_{arm}"] = test.log_likelihood
    grid = torch.linspace(-d["grid_extent"], d["grid_extent"], d["num_grid"]).unsqueeze(-1)
    g = grid[:, 0]
    on = (g.abs() >= d["gap"]) & (g.abs() <= d["extent"])
    beyond = g.abs() > d["extent"] + 0.5 * (d["grid_extent"] - d["extent"])
    sd = predict(model, guide, grid, **kw).sd
    out[f"std_ratio_{arm}"] = float(sd[g.abs() < d["gap"]].mean() / sd[on].mean())
    out[f"std_ratio_out_{arm}"] = float(sd[beyond].mean() / sd[on].mean())
    return out


def _bound(model, guide, x, k: int, seed: int, **kw) -> tuple[float, float]:
    """``(nll_k, absolute tolerance)`` on the images ``x``: the bound with draws seeded by
    ``seed``; the tolerance 4 Monte Carlo standard errors of the difference of two estimates of
    the mean over ``x``, measured from a second estimate (seed + 1) on the same images."""
    import torch

    from experiments.engine.iwae import iwae_bound

    draws = []
    for s in (seed, seed + 1):
        with torch.random.fork_rng():
            torch.manual_seed(s)
            draws.append(iwae_bound(model, guide, x, k=int(k), reduce=False, **kw))
    return -float(draws[0].mean()), 4 * float((draws[0] - draws[1]).std() / len(x) ** 0.5)


def _test_images(card: dict):
    import torch

    from .export_recipes import RECIPES

    src = card["source"]
    got = RECIPES[card["experiment"]][card["arm"]]({"config": src["config"], "seed": src["seed"]},
                                                   card["arm"], None)
    return torch.as_tensor(got["test_rows"][0]).reshape(-1, *card["units"]["image_shape"])


def _iwae(model, guide, card: dict) -> dict:
    """iwae-nll's ``nll_K`` on its test images, as ``(value, absolute tolerance)``: its run drew
    them unseeded (:func:`_bound`)."""
    src = card["source"]
    ev = src["config"]["eval"]
    x = _test_images(card)
    out = {}
    for k in sorted({*ev["ks"], ev["k_nll"]}):
        if ev["k_nll"] == k and ev.get("nll_num_test"):
            continue  # the run's nll_{k_nll} is on a subset: not rebuilt here
        out[f"nll_{k}"] = _bound(model, guide, x, k, int(src["seed"]), k_chunk=ev["k_chunk"],
                                 data_chunk=ev["data_chunk"])
    return out


def _kingma(model, guide, card: dict) -> dict:
    """kingma-fig2's final test ELBO (the k = 1 bound on its test images, drawn unseeded)."""
    value, tol = _bound(model, guide, _test_images(card), 1, int(card["source"]["seed"]),
                        k_chunk=1, data_chunk=1000)
    return {f"final_test_elbo_{card['arm']}": (-value, tol)}


#: experiment -> the card's metrics recomputed on the experiment's test data (model, guide, card):
#: a value, or ``(value, absolute tolerance)`` for a Monte Carlo metric the run drew unseeded
HEADLINES = {**UCI_HEADLINES, **MNIST_HEADLINES, "co2": _co2, "blundell-regression": _blundell,
             "svgp-classification": _svgp_classification, "dkl-regression": _dkl,
             "iwae-nll": _iwae, "kingma-fig2": _kingma}


# ------------------------------------------------------------------------------------------------
# the rows and the report


def _row(name: str, card: dict, metric: str, expected, value, tol: float, absolute=None
         ) -> tuple[str, bool]:
    """One row; ``tol`` relative (of max(1, |card|)), or ``absolute`` where given."""
    bound = absolute if absolute is not None else tol * max(1.0, abs(float(expected)))
    ok = (isinstance(value, (int, float)) and math.isfinite(value)
          and abs(value - float(expected)) <= bound)
    shown = f"abs {absolute:.3g} (4 MC SE)" if absolute is not None else f"rel {tol:g}"
    line = (f"| {name} | {card.get('experiment', '?')} | {metric} | {_fmt(expected)} | "
            f"{_fmt(value)} | {shown} | {'PASS' if ok else 'FAILED'} | from pretrained {name} |")
    return line, ok


def _figure_lines(name: str, model, guide, card: dict, figures: Path) -> list[str]:
    """The posterior's figure (:func:`.pretrained_figures.draw_figure`) drawn into ``figures``,
    embedded below its rows: the table closes and reopens around it; [] where it has none."""
    from .pretrained_figures import draw_figure

    png = draw_figure(name, model, guide, card, figures)
    if png is None:
        return []
    return ["", f"Figure (from pretrained {name}):", "",
            f"![{name}]({figures.name}/{png.name})", "", *HEADER]


def posterior_rows(folder: Path, smoke: bool, figures: Path | None = None
                   ) -> tuple[list[str], int]:
    """The report rows of the posterior in ``folder`` and how many FAILED; without ``smoke`` and
    with a ``figures`` folder, its figure after them where its experiment has one."""
    from .pretrained import check_posterior, load_folder, read_card
    from .pretrained_figures import has_figure

    name = folder.name
    try:
        card = read_card(folder)
        check = check_posterior(folder)
        lines, oks = [], []
        line, ok = _row(name, card, f"check {check['metric']} ({card['check']['rows']} rows)",
                        check["expected"], check["value"], check["tolerance"])
        lines.append(line)
        oks.append(ok)
        headline = HEADLINES.get(card["experiment"])
        if not smoke and headline is not None and "source" in card:
            model, guide, _ = load_folder(folder)
            import torch

            with torch.no_grad():
                got = headline(model, guide, card)
            for key, value in got.items():
                if key in card["metrics"]:
                    value, absolute = value if isinstance(value, tuple) else (value, None)
                    line, ok = _row(name, card, key, card["metrics"][key], value,
                                    float(card["check"]["tolerance"]), absolute)
                    lines.append(line)
                    oks.append(ok)
            if figures is not None and has_figure(card):
                try:
                    lines += _figure_lines(name, model, guide, card, figures)
                except Exception as exc:  # the rows stand; the figure is one FAILED row
                    msg = f"{type(exc).__name__}: {exc}".replace("|", "/").replace("\n", " ")[:300]
                    lines.append(f"| {name} | {card['experiment']} | (figure) | | {msg} | | FAILED "
                                 f"| from pretrained {name} |")
                    oks.append(False)
        return lines, oks.count(False)
    except Exception as exc:  # keep going: one broken posterior must not hide the others
        msg = f"{type(exc).__name__}: {exc}".replace("|", "/").replace("\n", " ")[:300]
        return [f"| {name} | ? | (load or score) | | {msg} | | FAILED | from pretrained {name} |"], 1


def reproduce_pretrained(out="results", smoke: bool = False) -> tuple[Path, int]:
    """Write the report into ``out``; returns ``(report path, number of FAILED rows)``."""
    from .report import write_report
    from .runner import hardware

    t0 = time.perf_counter()
    lines, failed, walls = [], 0, []
    figures = Path(out) / "pretrained-figures"
    for folder in posterior_folders():
        t = time.perf_counter()
        rows, bad = posterior_rows(folder, smoke, None if smoke else figures)
        lines += rows
        failed += bad
        fig = figures / f"{folder.name}.png"
        drawn = "" if smoke else (f", figure {figures.name}/{fig.name}" if any(
            fig.name in r for r in rows) else ", no figure")
        walls.append(f"- {folder.name}: {time.perf_counter() - t:.1f} s{drawn} ({folder})")
    wall = time.perf_counter() - t0
    head = ["# Reproduction report (pretrained posteriors)", "",
            f"Command: `python -m experiments reproduce --pretrained{' --smoke' if smoke else ''}`  ",
            f"Hardware: {hardware()}  ", f"Date: {time.strftime('%Y-%m-%d %H:%M')}  ",
            f"Wall time: {wall:.1f} s, no training", "",
            "Every posterior on the search path, loaded by name and scored again: its card's check "
            "metric on its check rows" + ("" if smoke else ", and the card's metrics on the "
                                          "experiment's own test data where the export recipe "
                                          "rebuilds it") +
            "; a value outside the card's tolerance (relative; absolute, 4 Monte Carlo standard "
            "errors, for a bound its run drew unseeded) is FAILED."
            + (" Smoke: the check rows only." if smoke else
               " Where the posterior's experiment draws its predictions, that figure, drawn from "
               "the loaded posterior, follows its rows (PNG and PDF in "
               f"`{figures.name}/`)."), "", *HEADER]
    report = Path(out) / ("REPORT-pretrained-smoke.md" if smoke else "REPORT-pretrained.md")
    write_report(report, head + lines + [""],
                 [["## Time per posterior", "", *walls, "",
                   f"{failed} FAILED row(s)." if failed else "Every row PASS.", ""]])
    return report, failed


def main(args) -> int:
    """The command (``cmd_reproduce``'s branch for ``--pretrained``)."""
    report, failed = reproduce_pretrained(args.out, smoke=args.smoke)
    print(f"wrote {report}" + (f" ({failed} FAILED)" if failed else ""))
    return 1 if failed else 0


__all__ = ["HEADLINES", "main", "posterior_folders", "reproduce_pretrained"]
