"""The command line's commands for your own table: ``fit``, ``predict`` and ``compare``
(:mod:`experiments.__main__` adds them to its parser and dispatches to them)."""

from __future__ import annotations

import argparse
import json

from .export import add_export_command, cmd_export


def _fit_defaults_text() -> str:
    """The per-family defaults of ``fit`` (:func:`experiments.harness.fitjob.describe_defaults`)."""
    from .fitjob import describe_defaults

    return describe_defaults()


def _table_arguments(p: argparse.ArgumentParser) -> None:
    """The table and its split, as ``fit`` and ``compare`` take them."""
    p.add_argument("--data", required=True, help="CSV with a header row, .npz or .pt (x, y, "
                                                 "optional x_test, y_test)")
    p.add_argument("--target", default=None, help="the target column of a CSV")
    held = p.add_mutually_exclusive_group()
    held.add_argument("--test", default=None, help="a file of test rows (same columns)")
    held.add_argument("--test-fraction", type=float, default=None,
                      help="hold out this random fraction of the rows (default 0.1)")
    p.add_argument("--task", choices=("regression", "classification"), default=None,
                   help="default: regression")


def _run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda[:i]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results", help="results root (default ./results)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_table_commands(sub) -> None:
    """Add ``fit``, ``predict`` and ``compare`` to the subparsers ``sub``."""
    fit = sub.add_parser("fit", help="train a registered pair on your own table (CSV, .npz, .pt)",
                         epilog=_fit_defaults_text(),
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    fit.add_argument("--model", required=True, help="registered model (bnn, mlp, rff-gp, svgp)")
    fit.add_argument("--guide", required=True, help="one of the model's guides "
                                                    "(python -m experiments pairs)")
    _table_arguments(fit)
    fit.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="model_cfg.*, guide_cfg.*, fit.*, num_samples or ensemble, e.g. "
                          "--set fit.epochs=50 --set model_cfg.widths=[32] (repeatable)")
    fit.add_argument("--ensemble", type=int, default=1, metavar="K",
                     help="train a deep ensemble of K members of the pair (each from its own "
                          "seeded start) and predict with their mixture (default 1: one fit; "
                          "same as --set ensemble=K)")
    _run_arguments(fit)
    pred = sub.add_parser("predict", help="predict with a fit run at new inputs, in original "
                                          "units, to CSV")
    pred.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by fit, or "
                                                      "pretrained:NAME (a shipped posterior)")
    pred.add_argument("--data", required=True, help="CSV with the training feature columns, "
                                                   ".npz or .pt with x")
    pred.add_argument("--out", default=None, help="CSV to write (default RUN_DIR/predictions.csv)")
    pred.add_argument("--device", default="cpu", help="cpu (default), auto or cuda[:i]")
    pred.add_argument("--seed", type=int, default=0, help="seed of the predictive draws")
    cmp_ = sub.add_parser("compare", help="fit a panel of methods on one split of your table "
                                          "and write a leaderboard")
    _table_arguments(cmp_)
    cmp_.add_argument("--budget", type=float, default=60.0, metavar="SECONDS",
                      help="training seconds per method (default 60; a deep ensemble's covers "
                           "all its members): epochs = min(default, budget / seconds per epoch "
                           "of a one-epoch pilot), at least 1")
    cmp_.add_argument("--pairs", default=None, metavar="M/G[,M/G...]",
                      help="comma-separated methods: model/guide, ensemble:model/guide, or a "
                           "default-panel name (plain, mc-dropout, bbb, ensemble, svgp; the "
                           "default is all five)")
    cmp_.add_argument("--ensemble-size", type=int, default=5, metavar="K",
                      help="members of each deep ensemble (default 5)")
    cmp_.add_argument("--set", dest="overrides", action="append", default=[],
                      metavar="[METHOD.]KEY=VALUE",
                      help="for every method (fit.*, model_cfg.*, guide_cfg.*, num_samples), or "
                           "for one with its name first, e.g. --set svgp.model_cfg.num_inducing=32 "
                           "(repeatable)")
    _run_arguments(cmp_)
    add_export_command(sub)


def cmd_fit(args) -> int:
    from .userfit import FitArgs, run_fit

    run_dir, metrics = run_fit(FitArgs(
        model=args.model, guide=args.guide, data=args.data, target=args.target, test=args.test,
        test_fraction=args.test_fraction, task=args.task, overrides=args.overrides,
        device=args.device, seed=args.seed, out=args.out, progress=not args.no_progress,
        ensemble=args.ensemble))
    print(json.dumps(metrics, indent=2, default=str))
    print(f"wrote {run_dir}")
    return 0


def cmd_predict(args) -> int:
    from .userpredict import run_predict

    if args.run_dir.startswith("pretrained:"):  # a shipped posterior (experiments/harness/pretrained.py)
        from .pretrained import run_predict

    path, summary = run_predict(args.run_dir, args.data, out=args.out, device=args.device,
                                seed=args.seed)
    extra = {k: v for k, v in summary.items() if k not in ("rows", "out")}
    if extra:
        print(json.dumps(extra, indent=2))
    print(f"wrote {path} ({summary['rows']} rows)")
    return 0


def cmd_compare(args) -> int:
    from .compare import CompareArgs, run_compare

    run_dir, rows = run_compare(CompareArgs(
        data=args.data, target=args.target, test=args.test, test_fraction=args.test_fraction,
        task=args.task, budget=args.budget, pairs=args.pairs, ensemble_size=args.ensemble_size,
        overrides=args.overrides, device=args.device, seed=args.seed, out=args.out,
        progress=not args.no_progress))
    print((run_dir / "leaderboard.md").read_text())
    failed = [r["method"] for r in rows if r["status"] != "ok"]
    if failed:
        print(f"wrote {run_dir}; {len(failed)} of {len(rows)} methods did not finish: "
              f"{', '.join(failed)} (see leaderboard.md and run.log)")
        return 1
    print(f"wrote {run_dir}")
    return 0


TABLE_COMMANDS = {"fit": cmd_fit, "predict": cmd_predict, "compare": cmd_compare,
                  "export": cmd_export}
