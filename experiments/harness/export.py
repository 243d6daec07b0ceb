"""``python -m experiments export RUN_DIR[/ARM] --name NAME [--to FOLDER] [--half]``: a trained
pair of a run folder as a posterior folder ``NAME/`` (:mod:`experiments.harness.pretrained`).

Two sources are understood:

* a ``fit`` run folder (``model.pt``, ``config.json``, ``standardization.json``): the pair and
  its data-derived arguments come from ``config.json``, the units from the standardisation, the
  check rows from the first rows of ``test_predictions.csv`` (held out);
* an experiment arm ``RUN_DIR/ARM`` (``ARM/checkpoint.pt``, or the ``best.pt`` a recipe names:
  blundell-mnist's best-validation state) of an experiment with a recipe in
  :data:`~experiments.harness.export_recipes.RECIPES`, which rebuilds what the experiment's
  ``run`` gave the arm's constructor (input dimension, kernel, dtype, ...) and its units from
  ``config.json`` and the data.

The card records the source run's metrics, the paper's numbers the experiment declares, the
command, commit, hardware, wall time and date of the training, and the sha256 of
``posterior.pt``; ``--half`` stores floating tensors as float16 (the card says so, and its check
metric is computed from the stored state, so it holds for what ships).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .export_recipes import RECIPES


def add_export_command(sub) -> None:
    p = sub.add_parser("export", help="write a trained pair of a run folder as a posterior "
                                      "(posterior.pt + card) for load_pretrained")
    p.add_argument("source", metavar="RUN_DIR[/ARM]",
                   help="a fit run folder, or an experiment run folder's arm (e.g. RUN/svgp)")
    p.add_argument("--name", required=True, help="the posterior's name (a-z, 0-9, . _ -)")
    p.add_argument("--to", default=".", help="folder to write NAME/ into (default: .)")
    p.add_argument("--half", action="store_true", help="store floating tensors as float16")
    p.add_argument("--check-rows", type=int, default=24, help="held-out rows kept in check.csv")
    p.add_argument("--note", default=None, metavar="JSON",
                   help='facts for the card\'s sections, as a JSON object, e.g. {"training": '
                        '{"load_average": "2.1"}, "data": {"source": "..."}}')


def cmd_export(args) -> int:
    folder = export(args.source, args.name, to=args.to, half=args.half,
                    check_rows=args.check_rows, note=json.loads(args.note) if args.note else None)
    card = json.loads((folder / "card.json").read_text())
    print(json.dumps({"check": card["check"], "state": card["state"]}, indent=2))
    print(f"wrote {folder}")
    return 0


# ------------------------------------------------------------------------------------------------
# the export


def _read_json(path: Path):
    from experiments.engine.manifest import read_json

    return read_json(path)


def _half(tree):
    import torch

    if isinstance(tree, dict):
        return {k: _half(v) for k, v in tree.items()}
    if torch.is_tensor(tree) and tree.is_floating_point():
        return tree.half()
    return tree


def _write_check(path: Path, columns, target, x, y) -> None:
    """The check rows; without a target (images), the inputs only."""
    import csv

    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(list(columns) + ([target] if target else []))
        for xi, yi in zip(x.tolist(), y.tolist()):
            w.writerow([repr(float(v)) for v in xi] + ([repr(float(yi))] if target else []))


def _from_fit(run: Path, data_dir) -> tuple[dict, dict, dict]:
    """``(state, card fields, source facts)`` of a ``fit`` run folder."""
    import numpy as np

    from experiments.engine.checkpoint import load_zoo_file

    from .pretrained import PretrainedError

    cfg = _read_json(run / "config.json")
    std = _read_json(run / "standardization.json")
    state, _ = load_zoo_file(run / "model.pt", "fit-model")
    if "members" in state:
        raise PretrainedError(f"{run} is a deep ensemble (--ensemble K): exporting ensembles is "
                              "not supported yet; export a single fit")
    pair = cfg["pair"]
    if pair["guide"] == "laplace":
        raise PretrainedError(f"{run}: the {pair['guide']} guide predicts from its training "
                              "data, which a posterior does not ship; export another pair")
    rows = np.genfromtxt(run / "test_predictions.csv", delimiter=",", names=True)
    cols = list(std["columns"]) + [std["target"]]
    x = np.stack([np.atleast_1d(rows[c]) for c in std["columns"]], 1)
    y = np.atleast_1d(rows[std["target"]])
    fields = {
        "experiment": "fit", "arm": None,
        "pair": {"model": pair["model"], "guide": pair["guide"], "model_cfg": pair["model_cfg"],
                 "guide_cfg": pair["guide_cfg"], "model_args": cfg["model_args"],
                 "num_data": int(cfg["n_train"])},
        "units": std,
        "data": {k: cfg.get(k) for k in ("data", "data_sha256", "target", "task", "test",
                                         "test_fraction", "n_train", "n_test", "split")
                 if cfg.get(k) is not None},
        "predict": {"num_samples": int(pair.get("num_samples", 100))},
    }
    facts = {"config": cfg, "metrics": _read_json(run / "metrics.json"), "arm": None,
             "test_rows": (x, y), "columns": cols,
             "check_metric": "rmse" if std["task"] == "regression" else "accuracy"}
    return {"model": state["model"], "guide": state["guide"]}, fields, facts


def _from_arm(run: Path, arm: str, data_dir) -> tuple[dict, dict, dict]:
    from experiments.engine.checkpoint import load_zoo_file

    from .pretrained import PretrainedError

    cfg = _read_json(run / "config.json")
    exp = cfg.get("experiment")
    recipe = RECIPES.get(exp, {}).get(arm)
    if recipe is None:
        known = ", ".join(f"{e}/{a}" for e, arms in RECIPES.items() for a in arms)
        raise PretrainedError(f"no export recipe for experiment {exp!r} arm {arm!r} (known: "
                              f"{known}); add one to experiments.harness.export_recipes.RECIPES")
    got = recipe(cfg, arm, cfg.get("data_dir") or data_dir)
    if "state_file" in got:  # the recipe's pick (blundell-mnist: best.pt, the best-val state)
        file, kind = got["state_file"]
        if not (run / arm / file).is_file():
            raise PretrainedError(f"{run / arm / file} does not exist: the arm has not finished")
        ckpt, _ = load_zoo_file(run / arm / file, kind)
    else:
        ckpt, _ = load_zoo_file(run / arm / "checkpoint.pt", "checkpoint")
        fit_cfg = ckpt.get("config", {})
        if int(ckpt.get("epoch", 0)) < int(fit_cfg.get("epochs", 0)):
            raise PretrainedError(f"{run / arm} stopped at epoch {ckpt.get('epoch')} of "
                                  f"{fit_cfg.get('epochs')}: resume the run before exporting it")
    spec = got.get("spec") or cfg["config"][arm]
    fields = {
        "experiment": exp, "arm": arm,
        "pair": {"model": spec["model"], "guide": spec["guide"], "model_cfg": spec["model_cfg"],
                 "guide_cfg": spec["guide_cfg"], "model_args": got["model_args"],
                 "num_data": got["num_data"]},
        "units": got["units"], "data": got["data"],
        "predict": {"num_samples": int(got.get("num_samples", 100))},
        "smoke": bool(cfg.get("smoke")),
        # what `reproduce --pretrained` needs to rebuild the experiment's test data
        "source": {"config": cfg["config"], "seed": int(cfg.get("seed", 0))},
    }
    std = got["units"]
    metrics = _read_json(run / "metrics.json")
    facts = {"config": cfg, "metrics": metrics,
             "arm": arm, "test_rows": got["test_rows"],
             "columns": list(std["columns"]) + [std["target"]],
             "check_metric": got["check_metric"], "tag": got.get("metric_tag", arm),
             "arm_metrics": got["arm_metrics"](metrics) if "arm_metrics" in got else None,
             "paper": got.get("paper")}
    return {"model": ckpt["model"], "guide": ckpt["guide"]}, fields, facts


def _tolerance(pair: dict, half: bool) -> float:
    """The check's relative tolerance: 1e-6 where the prediction is in closed form (the SVGP with
    a Gaussian likelihood) in float64, 1e-5 in float32 (then widened to ten times its measured
    rounding and thread spread, :func:`_rounding_tolerance`), 1e-4 where it is a seeded Monte Carlo average
    (float32 sums may differ in the last bits across machines) or the state is stored as
    float16."""
    def get(key, default):
        return pair["model_args"].get(key, pair["model_cfg"].get(key, default))

    if pair["model"] != "svgp" or get("likelihood", "gaussian") != "gaussian" or half:
        return 1e-4
    return 1e-6 if get("dtype", "float32") == "float64" else 1e-5


def _over_threads(folder: Path, check) -> list[float]:
    """The check's value with 1, 2 and 4 torch threads (the thread count restored after)."""
    import torch

    before = torch.get_num_threads()
    try:
        out = []
        for n in (1, 2, 4):
            torch.set_num_threads(n)
            out.append(check(folder)["value"])
        return out
    finally:
        torch.set_num_threads(before)


def _rounding_tolerance(value: float, others: list[float]) -> float:
    """A float32 closed-form check's relative tolerance: ten times its largest distance from
    ``others`` (the same prediction in float64, and with 1, 2 and 4 threads), rounded up to one
    digit, at least 1e-5. The SVGP's predictive in float32 moves with the thread count (kin40k,
    M = 500: 1.4e-4 of the check RMSE between one thread and two) and, on an ill-conditioned
    kernel matrix, away from float64 (yacht: 2e-3)."""
    import math

    dev = 10 * max(abs(value - v) for v in others) / max(1.0, abs(value))
    if dev <= 1e-5:
        return 1e-5
    e = 10.0 ** math.floor(math.log10(dev))
    return float(f"{math.ceil(round(dev / e, 6)) * e:.1g}")


def _paper(experiment: str) -> dict:
    from experiments.registry import get_experiment

    return {} if experiment == "fit" else dict(get_experiment(experiment).paper_numbers)


def export(source, name: str, to=".", *, half: bool = False, check_rows: int = 24,
           note: dict | None = None, data_dir=None) -> Path:
    """Write the posterior ``<to>/<name>/`` from ``source`` (a ``fit`` run folder or
    ``RUN_DIR/ARM``); returns the folder.

    :param note: ``{section: {key: value}}`` added to the card's ``training``, ``data``, ...
        sections (what the run folder does not know: the machine's load, the data's origin).
    """
    from . import pretrained as P
    from .lock import RunLock

    if not P._NAME.fullmatch(name):
        raise P.PretrainedError(f"--name {name!r}: use 1 to 64 of a-z, 0-9, '.', '_', '-', "
                                "starting with a letter or digit")
    source = Path(source)
    if (source / "model.pt").is_file() and (source / "standardization.json").is_file():
        run, (state, fields, facts) = source, _from_fit(source, data_dir)
    elif ((source / "checkpoint.pt").is_file() or (source / "best.pt").is_file()) and any(
            (p / "config.json").is_file() for p in source.parents[:2]):
        # the arm's folder is RUN/ARM, or RUN/SET/ARM (uci-benchmark's <set>/<method>-split<k>)
        run = next(p for p in source.parents[:2] if (p / "config.json").is_file())
        state, fields, facts = _from_arm(run, source.relative_to(run).as_posix(), data_dir)
    else:
        raise FileNotFoundError(f"{source} is neither a fit run folder (model.pt, "
                                "standardization.json) nor an experiment arm (ARM/checkpoint.pt, "
                                "or best.pt, under a run folder with config.json)")
    folder = Path(to) / name
    folder.mkdir(parents=True, exist_ok=True)
    with RunLock(folder):  # one writer of the posterior's folder (LOCK is removed after)
        return _write(folder, name, run, facts, fields, state, half, check_rows, note)


def _write(folder: Path, name: str, run: Path, facts: dict, fields: dict, state: dict, half: bool,
           check_rows: int, note: dict | None) -> Path:
    """The posterior's files (check rows, posterior.pt, card.json, card.md) into ``folder``."""
    import numpy as np

    from experiments.engine.checkpoint import atomic_write_text, save_zoo_file

    from . import pretrained as P
    from .runner import code_version, hardware

    cfg, metrics = facts["config"], facts["metrics"]
    arm = facts.get("tag", facts["arm"])

    def mine(key: str) -> bool:  # the arm's metrics: svgp_test_rmse (co2), test_rmse_bbb (blundell)
        return arm is None or key.startswith(f"{arm}_") or key.endswith(f"_{arm}")

    arm_metrics = {k: v for k, v in metrics.items() if mine(k)
                   and isinstance(v, (int, float)) and k != "wall_time_s"}
    if arm:
        arm_metrics.update({k: metrics[k] for k in ("num_train", "num_test") if k in metrics})
    if facts.get("arm_metrics") is not None:  # the recipe's pick (one split of several)
        arm_metrics = facts["arm_metrics"]
    x, y = facts["test_rows"]
    pick = np.linspace(0, len(y) - 1, min(check_rows, len(y))).round().astype(int)
    _write_check(folder / "check.csv", facts["columns"][:-1], facts["columns"][-1],
                 np.asarray(x).reshape(len(y), -1)[pick], np.asarray(y)[pick])
    card = {
        "card_format_version": P.CARD_VERSION, "name": name, **fields,
        "dtype": "float16 (stored; loaded into the model's dtype)" if half else "as trained",
        "metrics": arm_metrics,
        "paper": facts["paper"] if facts.get("paper") is not None else
        {k: v for k, v in _paper(fields["experiment"]).items() if mine(k)},
        "training": {"command": cfg.get("command"), "commit": cfg.get("commit")
                     or metrics.get("commit"), "hardware": metrics.get("hardware"),
                     "wall_time_s": metrics.get("wall_time_s"), "run": str(run),
                     "date": time.strftime("%Y-%m-%d", time.gmtime(
                         (run / "config.json").stat().st_mtime))},
        "exported": {"commit": code_version(), "hardware": hardware(),
                     "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        "check": {"file": "check.csv", "rows": int(len(pick)), "metric": facts["check_metric"],
                  "seed": 0, "value": None, "tolerance": _tolerance(fields["pair"], half)},
    }
    for section, facts_ in (note or {}).items():
        card[section] = {**card.get(section, {}), **facts_}

    def put(st) -> None:  # posterior.pt and the card that names its sha256
        save_zoo_file(folder / "posterior.pt", P.KIND, st,
                      {"name": name, "experiment": fields["experiment"], "arm": fields["arm"]})
        card["state"] = {"file": "posterior.pt", "sha256": P.sha256_file(folder / "posterior.pt"),
                         "bytes": (folder / "posterior.pt").stat().st_size}
        atomic_write_text(folder / "card.json", json.dumps(card, indent=2, allow_nan=False))

    put(state)
    full = P.check_posterior(folder)["value"]
    value = full
    if half:  # the card's value is the shipped (float16) state's; the trained one's beside it
        put(_half(state))
        value = P.check_posterior(folder)["value"]
        card["check"]["value_full_precision"] = full
    card["check"]["value"] = value
    if card["check"]["tolerance"] == 1e-5:  # closed form in float32: ten times its rounding
        card["check"]["value_float64"] = P.check_posterior(folder, double=True)["value"]
        card["check"]["values_1_2_4_threads"] = _over_threads(folder, P.check_posterior)
        card["check"]["tolerance"] = _rounding_tolerance(
            value, [card["check"]["value_float64"], *card["check"]["values_1_2_4_threads"]])
    if card["check"]["tolerance"] > 1e-6:  # a Monte Carlo prediction: its spread over seeds
        draws = [value] + [P.check_posterior(folder, seed=s)["value"] for s in range(1, 5)]
        card["check"]["mc_sd_over_5_seeds"] = float(np.std(draws, ddof=1))
    atomic_write_text(folder / "card.json", json.dumps(card, indent=2, allow_nan=False))
    from .pretrained_docs import render_card

    atomic_write_text(folder / "card.md", render_card(card))
    return folder


__all__ = ["RECIPES", "add_export_command", "cmd_export", "export"]
