"""Command line: ``python -m experiments list | pairs | run NAME | reproduce``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

log = logging.getLogger("experiments")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--smoke", action="store_true", help="tiny configuration (seconds)")
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda[:i]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results", help="results root (default ./results)")
    p.add_argument("--data-dir", default=None,
                   help="offline data folder laid out like shared/data (default: $VBZOO_DATA_DIR, "
                        "then the download cache)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="experiments with paper, figure and data needed")
    sub.add_parser("pairs", help="registered (model, guide) pairs")
    run = sub.add_parser("run", help="run one experiment")
    run.add_argument("name")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config entry, e.g. --set fit.epochs=5 (repeatable)")
    _common(run)
    rep = sub.add_parser("reproduce", help="run every experiment and write a report")
    _common(rep)
    return parser


def cmd_list() -> int:
    from .registry import list_experiments

    rows = [(e.name, e.paper, e.figure, ", ".join(e.data)) for e in list_experiments()]
    _print_table(("name", "paper", "figure", "data"), rows)
    return 0


def cmd_pairs() -> int:
    import guides

    rows = [(m, g) for m, g in guides.list_pairs()]
    _print_table(("model", "guide"), rows)
    return 0


def _print_table(header, rows) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


def _no_progress(config: dict) -> None:
    for key, section in config.items():
        if isinstance(section, dict):
            if key.startswith("fit"):
                section["progress"] = False
            else:
                _no_progress(section)


def run_one(name: str, *, smoke: bool, device: str, seed: int, out: str, data_dir: str | None,
            overrides: list[str], progress: bool = True) -> tuple[Path, dict, float]:
    from .common.config import apply_overrides
    from .common.runner import RunLog, hardware, make_run_dir, write_json
    from .registry import get_experiment

    exp = get_experiment(name)
    config = exp.get_config(smoke=smoke)
    config["seed"] = seed
    config = apply_overrides(config, overrides)
    if not progress:  # every fit section is named fit or fit_<something>, at any depth
        _no_progress(config)
    run_dir = make_run_dir(out, name, seed)
    write_json(run_dir / "config.json", {"experiment": name, "smoke": smoke, "device": device,
                                          "data_dir": data_dir, "config": config})
    t0 = time.perf_counter()
    with RunLog(run_dir):
        log.info("running %s (smoke=%s) into %s", name, smoke, run_dir)
        metrics = exp.run(config, out_dir=run_dir, device=device, data_dir=data_dir)
    wall = time.perf_counter() - t0
    metrics = dict(metrics)
    metrics["wall_time_s"] = round(wall, 2)
    metrics["hardware"] = hardware()
    write_json(run_dir / "metrics.json", metrics)
    return run_dir, metrics, wall


def cmd_run(args) -> int:
    run_dir, metrics, wall = run_one(args.name, smoke=args.smoke, device=args.device,
                                     seed=args.seed, out=args.out, data_dir=args.data_dir,
                                     overrides=args.overrides, progress=not args.no_progress)
    print(json.dumps(metrics, indent=2, default=str))
    print(f"wrote {run_dir} in {wall:.1f} s")
    return 0


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def cmd_reproduce(args) -> int:
    from .common.runner import hardware
    from .registry import list_experiments

    lines = ["# Reproduction report", "",
             f"Command: `python -m experiments reproduce{' --smoke' if args.smoke else ''}"
             f" --seed {args.seed}`  ", f"Hardware: {hardware()}  ",
             f"Date: {time.strftime('%Y-%m-%d %H:%M')}", "",
             "| experiment | figure | metric | ours | paper | wall time (s) |",
             "|---|---|---|---|---|---|"]
    failures = 0
    for exp in list_experiments():
        try:
            run_dir, metrics, wall = run_one(exp.name, smoke=args.smoke, device=args.device,
                                             seed=args.seed, out=args.out, data_dir=args.data_dir,
                                             overrides=[], progress=not args.no_progress)
        except Exception as exc:  # keep going: one broken experiment must not hide the others
            failures += 1
            log.exception("experiment %s failed", exp.name)
            lines.append(f"| {exp.name} | {exp.figure} | FAILED | {type(exc).__name__}: {exc} | | |")
            continue
        keys = [k for k in metrics if k not in ("wall_time_s", "hardware")
                and isinstance(metrics[k], (int, float))]
        for i, k in enumerate(keys):
            paper = exp.paper_numbers.get(k, "")
            lines.append(f"| {exp.name if i == 0 else ''} | {exp.figure if i == 0 else ''} | {k} "
                         f"| {_fmt(metrics[k])} | {_fmt(paper)} | {f'{wall:.1f}' if i == 0 else ''} |")
        for k, text in exp.paper_numbers.items():
            if k not in metrics:
                lines.append(f"| | | {k} | | {_fmt(text)} | |")
    report = Path(args.out) / ("REPORT-smoke.md" if args.smoke else "REPORT.md")
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines) + "\n")
    print(f"wrote {report}")
    return 1 if failures else 0


def main(argv=None) -> int:
    from .common.checkpoint import CheckpointError
    from .common.data import DataError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    if getattr(args, "data_dir", None):
        args.data_dir = os.path.abspath(args.data_dir)
    try:
        if args.command == "list":
            return cmd_list()
        if args.command == "pairs":
            return cmd_pairs()
        if args.command == "run":
            return cmd_run(args)
        return cmd_reproduce(args)
    except (KeyError, ValueError, DataError, CheckpointError) as exc:
        # configuration and data errors: one clear line instead of a traceback (other errors,
        # e.g. a torch shape error in an experiment, keep their traceback)
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
