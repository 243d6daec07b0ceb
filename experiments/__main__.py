"""Command line: ``python -m experiments list | pairs | run NAME | reproduce | report | fit |
predict | compare``: the parser and the dispatch. The commands live in :mod:`experiments.harness`
(``run``, ``reproduce``, ``report``: :mod:`~experiments.harness.run_commands`, one run:
:mod:`~experiments.harness.running`; ``fit``, ``predict``, ``compare``:
:mod:`~experiments.harness.table_cli`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from experiments.harness.pages import add_report_arguments
from experiments.harness.run_commands import cmd_report, cmd_reproduce, cmd_run
from experiments.harness.running import prepare_config, run_one
from experiments.harness.table_cli import TABLE_COMMANDS, add_table_commands

__all__ = ["build_parser", "cmd_report", "cmd_reproduce", "cmd_run", "default_threads", "main",
           "prepare_config", "run_one"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--smoke", action="store_true", help="tiny configuration (seconds)")
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda[:i]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results", help="results root (default ./results)")
    p.add_argument("--data-dir", default=None,
                   help="offline data folder laid out like shared/data (default: $VBZOO_DATA_DIR, "
                        "then the download cache)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: 1 on machines with up to 4 cores, where "
                        "more threads fight other jobs and small models gain little; else "
                        "torch's default; $OMP_NUM_THREADS, when set, is the default instead)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__)
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of an error on the terminal too (it is always "
                             "in the run's run.log)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="experiments with paper, figure and data needed")
    sub.add_parser("pairs", help="registered (model, guide) pairs")
    run = sub.add_parser("run", help="run one experiment")
    run.add_argument("name")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config entry, parsed against its declared type, e.g. "
                          "--set bbb.fit.epochs=5 (repeatable)")
    run.add_argument("--resume", metavar="RUN_DIR", default=None,
                     help="continue an interrupted run of NAME in RUN_DIR with its recorded "
                          "settings (--smoke, --seed, --set): each arm restarts from its last "
                          "checkpoint, finished arms are not trained again; --set may change "
                          "ARM.fit.lr, ARM.fit.clip_norm or ARM.fit.epochs on purpose (e.g. a "
                          "smaller lr after a NaN stop)")
    run.add_argument("--nproc", type=int, default=None, metavar="N",
                     help="data-parallel over N processes on this machine, launched by torchrun's "
                          "elastic launcher (one per GPU on CUDA; gloo on the CPU); each fit's "
                          "batch_size is per process, so the global batch is N x batch_size. "
                          "Same as `torchrun --nproc_per_node=N -m experiments run NAME ...`")
    _common(run)
    rep = sub.add_parser("reproduce", help="run every experiment and write a report")
    _common(rep)
    rep.add_argument("--pretrained", action="store_true", help="score the shipped posteriors, no training")
    report = sub.add_parser(
        "report", help="write the report from runs already made (default: the newest non-smoke "
                       "run of every experiment under --out)")
    report.add_argument("runs", nargs="*", metavar="RUN_DIR",
                        help="run directories to report (several runs of one experiment allowed)")
    report.add_argument("--out", default="results", help="results root (default ./results)")
    report.add_argument("--report", default=None,
                        help="report file (default: <out>/REPORT-runs.md)")
    report.add_argument("--include-smoke", action="store_true",
                        help="let smoke runs count as the newest run")
    add_report_arguments(report)  # --publish, --docs (experiments/harness/pages.py)
    add_table_commands(sub)
    return parser


def cmd_list() -> int:
    from .registry import list_experiments

    rows = [(e.name, e.paper, e.figure, ", ".join(e.data)) for e in list_experiments()]
    _print_table(("name", "paper", "figure", "data"), rows)
    return 0


def cmd_pairs() -> int:
    import guides
    import models

    rows = [(models.MODELS.meta(m).get("family", ""), m, g) for m, g in guides.list_pairs()]
    _print_table(("family", "model", "guide"), sorted(rows))
    return 0


def _print_table(header, rows) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


def default_threads() -> int | None:
    """1 on machines with up to 4 cores unless $OMP_NUM_THREADS is set; else ``None`` (torch's
    default). Measured on a busy 2-core machine: the quick start took 38 min with torch's default
    threads and about 5x less with one thread; an idle one loses little with one thread."""
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    return 1 if (os.cpu_count() or 1) <= 4 else None


def _set_threads(threads: int | None) -> None:
    import torch

    if threads is not None and threads < 1:
        raise SystemExit(f"error: --threads must be >= 1, got {threads}")
    n = threads if threads is not None else default_threads()
    if n is not None:
        torch.set_num_threads(n)


def main(argv=None) -> int:
    from experiments.data import DataError
    from experiments.engine.checkpoint import CheckpointError
    from experiments.engine.signals import Stopped
    from experiments.harness.lock import RunLockedError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    if getattr(args, "data_dir", None):
        args.data_dir = os.path.abspath(args.data_dir)
    if hasattr(args, "threads"):
        _set_threads(args.threads)
    try:
        if getattr(args, "device", None) is not None:
            from experiments.engine.loader import resolve_device

            resolve_device(args.device)  # a bad --device fails here, before any run folder
        if args.command == "list":
            return cmd_list()
        if args.command == "pairs":
            return cmd_pairs()
        if args.command == "run":
            return cmd_run(args, argv)
        from experiments.engine.distributed import launched_by_torchrun

        if launched_by_torchrun() and args.command in ("reproduce", "fit", "compare"):
            raise ValueError(f"`{args.command}` does not run data-parallel; under torchrun use "
                             "`-m experiments run NAME` (or `run NAME --nproc N`)")
        if args.command == "report":
            return cmd_report(args)
        if args.command in TABLE_COMMANDS:
            return TABLE_COMMANDS[args.command](args)
        return cmd_reproduce(args)
    except (KeyError, ValueError, FileNotFoundError, DataError, CheckpointError,
            ArithmeticError) as exc:  # (ArithmeticError: a non-finite or implausible fit)
        # (ConfigError is a ValueError)
        # configuration and data errors: one clear line instead of a traceback (other errors,
        # e.g. a torch shape error in an experiment, keep their traceback)
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        if args.debug:
            import traceback

            traceback.print_exc()
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except Stopped as exc:  # SIGINT / SIGTERM / SIGHUP: a clean stop; how to resume is in exc
        print(f"stopped: {exc}", file=sys.stderr)
        return exc.exit_code
    except RunLockedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into a reader that stopped (| head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
