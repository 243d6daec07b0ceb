"""Export recipes (:mod:`experiments.harness.export_recipes`) and ``reproduce --pretrained``
scorers (:data:`experiments.harness.reproduce_pretrained.HEADLINES`) of the UCI experiments,
whose arms are named by a pattern:

* ``uci-benchmark``: ``<set>/<method>-split<k>`` for the ``bbb`` and ``svgp`` methods (the fit
  folder ``train_pair`` writes; run with ``--set bbb.fit.checkpoint=true --set
  svgp.fit.checkpoint=true``, since the benchmark's fits keep no checkpoint by default);
* ``svgp-uci``: ``<set>-fold<k>-M<m>[-ngd]`` of the 10-fold protocol.

The user's units are the data file's (columns ``x1..xD``, target ``y``), the model's those
standardised with the training split's mean and std, as the experiments train. The card's metrics
are the arm's own (its row of the run's ``rows`` / ``table``), named ``<set>_<method>_split<k>_*``
and ``<set>_fold<k>_M<m>[_ngd]_*``; reproduce rebuilds the split from the card's source and scores
it as the experiment does."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping

_UCI_ARM = re.compile(r"(?P<ds>[a-z0-9]+)/(?P<method>bbb|svgp)-split(?P<split>[0-9]+)")
_FOLD_ARM = re.compile(r"(?P<ds>[a-z0-9]+)-fold(?P<fold>[0-9])-M(?P<m>[0-9]+)(?P<ngd>-ngd)?")


class ArmPattern(Mapping):
    """``arm -> recipe`` for the arms whose names match ``pattern``; it iterates over one key,
    ``shown`` (the pattern in words, for the export's list of known arms)."""

    def __init__(self, pattern: re.Pattern, recipe, shown: str):
        self.pattern, self.recipe, self.shown = pattern, recipe, shown

    def __getitem__(self, arm):
        if isinstance(arm, str) and self.pattern.fullmatch(arm):
            return self.recipe
        raise KeyError(arm)

    def __iter__(self):
        return iter([self.shown])

    def __len__(self) -> int:
        return 1


def _module(experiment: str):
    """The registered experiment's module (through the registry, as
    :func:`experiments.harness.export_recipes._experiment_module`: importing an experiment
    script by name would close an import cycle through the CLI)."""
    from experiments.registry import get_experiment

    return sys.modules[get_experiment(experiment).run.__module__]


def _units(raw) -> dict:
    d = raw.x_train.shape[1]
    return {"task": "regression", "columns": [f"x{j + 1}" for j in range(d)], "target": "y",
            "x_mean": [float(v) for v in raw.x_mean], "x_std": [float(v) for v in raw.x_std],
            "y_mean": float(raw.y_mean), "y_std": float(raw.y_std)}


def _row(rows: list, **key) -> dict:
    for row in rows:
        if all(row.get(k) == v for k, v in key.items()) and "error" not in row:
            return row
    raise KeyError(f"the run's metrics have no finished row {key}")


# ------------------------------------------------------------------------------------------------
# uci-benchmark


def _uci_paper(ds: str, method: str, tag: str) -> dict:
    """The published means over the set's 20 splits (5 for protein) beside the split's value:
    VI and PBP for BbB (the experiment's ``paper_numbers``), the bayesian_benchmarks SVGP
    (M = 100) for the SVGP, where REFERENCES.md has it."""
    from experiments.uci.results import PUBLISHED

    pub = PUBLISHED[ds]

    def fmt(key):
        mean, se = pub[key]
        return f"{mean}" + (f" ± {se}" if se is not None else "")

    out = {}
    for metric, name in (("ll", "test log-likelihood"), ("rmse", "RMSE")):
        if method == "bbb":
            text = f"VI {fmt(f'vi_{metric}')}, PBP {fmt(f'pbp_{metric}')}"
        elif f"svgp_{metric}" in pub:
            text = f"bayesian_benchmarks SVGP (M = 100) {fmt(f'svgp_{metric}')}"
        else:
            continue
        out[f"{tag}_{metric}"] = f"{text} ({name}, mean over the set's splits; here one split)"
    return out


def uci_benchmark(cfg: dict, arm: str, data_dir) -> dict:
    """uci-benchmark's ``<set>/<bbb|svgp>-split<k>``: the split's test rows in the file's units."""
    from experiments import data as zoo_data

    m = _UCI_ARM.fullmatch(arm)
    ds, method, split = m["ds"], m["method"], int(m["split"])
    exp = cfg["config"]
    raw = zoo_data.load_uci(ds, split, standardize=False, data_dir=data_dir)
    d, n = raw.x_train.shape[1], raw.n_train
    spec = exp[method]
    if method == "bbb":
        args = {"in_features": d, "widths": [int(exp["hidden_per_dataset"].get(ds, exp["hidden"]))]}
    else:
        args = {"input_dim": d, "num_inducing": min(int(spec["num_inducing"]), n)}
    tag = f"{ds}_{method}_split{split}"
    folder = zoo_data._uci_folder(ds)

    def arm_metrics(metrics: dict) -> dict:
        row = _row(metrics["rows"], dataset=ds, method=method, split=split)
        return {**{f"{tag}_{k}": float(row[k]) for k in ("rmse", "ll", "noise_std", "seconds")},
                "num_train": int(n), "num_test": int(len(raw.y_test))}

    return {
        "model_args": args, "num_data": int(n), "spec": spec, "metric_tag": tag,
        "arm_metrics": arm_metrics, "paper": _uci_paper(ds, method, tag),
        "units": _units(raw),
        "data": {"dataset": f"UCI {folder} (shared/data/uci/{folder}, experiments.data.load_uci); "
                            "columns x1..xD are the file's feature columns in order",
                 "split": f"the fixed 90/10 split {split} of the PBP / MC-dropout papers "
                          f"({zoo_data.UCI_DATASETS[folder]} splits); x and y standardised with "
                          "the training rows' mean and population std",
                 "num_train": int(n), "num_test": int(len(raw.y_test))},
        "test_rows": (raw.x_test.numpy(), raw.y_test.numpy()), "check_metric": "rmse",
        "num_samples": int(exp["num_samples"]),
    }


def uci_benchmark_scores(model, guide, card: dict) -> dict:
    """The split's test RMSE and LL in original units, as the benchmark's fits score them
    (:func:`experiments.uci.fitters._test_metrics`: BbB with the run's draws, seed + split;
    the SVGP in closed form)."""
    from experiments import data as zoo_data
    from experiments.uci.fitters import _test_metrics

    m = _UCI_ARM.fullmatch(card["arm"])
    ds, method, split = m["ds"], m["method"], int(m["split"])
    src = card["source"]
    data = zoo_data.load_uci(ds, split)
    kw = {} if method == "svgp" else {"num_samples": int(src["config"]["num_samples"]),
                                      "seed": int(src["seed"]) + split}
    got = _test_metrics(model, guide, data, **kw)
    tag = f"{ds}_{method}_split{split}"
    return {f"{tag}_rmse": got["rmse"], f"{tag}_ll": got["ll"]}


# ------------------------------------------------------------------------------------------------
# svgp-uci (the 10-fold protocol)


def svgp_uci(cfg: dict, arm: str, data_dir) -> dict:
    """svgp-uci's ``<set>-fold<k>-M<m>[-ngd]``: the fold's test rows in the file's units."""
    from experiments import data as zoo_data

    m = _FOLD_ARM.fullmatch(arm)
    ds, fold, num_inducing, ngd = m["ds"], int(m["fold"]), int(m["m"]), bool(m["ngd"])
    exp = cfg["config"]
    raw = zoo_data.load_uci_large(ds, fold=fold, standardize=False, data_dir=data_dir)
    n = raw.n_train if exp.get("max_train") is None else min(raw.n_train, int(exp["max_train"]))
    tag = f"{ds}_fold{fold}_M{num_inducing}" + ("_ngd" if ngd else "")

    def arm_metrics(metrics: dict) -> dict:
        row = _row(metrics["table"], dataset=ds, fold=fold, num_inducing=num_inducing,
                   optimizer="ngd" if ngd else "adam")
        keys = ("rmse", "mae", "test_ll", "coverage95", "noise_std", "final_elbo", "seconds")
        return {**{f"{tag}_{k}": float(row[k]) for k in keys}, "epochs": int(row["epochs"]),
                "num_train": int(n), "num_test": int(len(raw.y_test))}

    init = exp["svgp_init"]
    return {
        "model_args": {"input_dim": int(raw.x_train.shape[1]), "num_inducing": num_inducing},
        "num_data": int(n), "spec": exp["svgp_ngd" if ngd else "svgp"], "metric_tag": tag,
        "arm_metrics": arm_metrics, "paper": {}, "units": _units(raw),
        "data": {"dataset": f"{ds} (shared/data/uci-large/{ds}, experiments.data.load_uci_large); "
                            "columns x1..xD are the file's feature columns in order",
                 "split": f"fold {fold} of the fixed 10-fold split (90 / 10); x and y "
                          "standardised with the training rows' mean and std"
                          + (f"; the first {n} training rows" if n < raw.n_train else "")
                          + f"; inducing inputs started at {init['inducing']}, q(u) at "
                          f"{init['q_u']}",
                 "num_train": int(n), "num_test": int(len(raw.y_test))},
        "test_rows": (raw.x_test.numpy(), raw.y_test.numpy()), "check_metric": "rmse",
    }


def svgp_uci_scores(model, guide, card: dict) -> dict:
    """The fold's test RMSE, MAE, log likelihood and 95 % coverage in the file's units, as
    svgp-uci scores them (:func:`experiments.svgp_uci.test_scores`, closed form)."""
    from experiments import data as zoo_data

    m = _FOLD_ARM.fullmatch(card["arm"])
    data = zoo_data.load_uci_large(m["ds"], fold=int(m["fold"]))
    got = _module("svgp-uci").test_scores(model, guide, data)
    tag = f"{m['ds']}_fold{m['fold']}_M{m['m']}" + ("_ngd" if m["ngd"] else "")
    return {f"{tag}_{k}": v for k, v in got.items()}


#: the recipes, by experiment (:data:`experiments.harness.export_recipes.RECIPES`)
RECIPES = {"uci-benchmark": ArmPattern(_UCI_ARM, uci_benchmark, "<set>/<bbb|svgp>-split<k>"),
           "svgp-uci": ArmPattern(_FOLD_ARM, svgp_uci, "<set>-fold<k>-M<m>[-ngd]")}
#: the scorers, by experiment (:data:`experiments.harness.reproduce_pretrained.HEADLINES`)
HEADLINES = {"uci-benchmark": uci_benchmark_scores, "svgp-uci": svgp_uci_scores}

__all__ = ["HEADLINES", "RECIPES", "ArmPattern"]
