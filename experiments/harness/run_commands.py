"""The ``run``, ``reproduce`` and ``report`` commands of ``python -m experiments``
(:mod:`experiments.__main__` parses the arguments and dispatches here): ``--resume``'s recorded
settings, ``--nproc``'s launch through torchrun, and the reproduction report."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

from .running import run_one

log = logging.getLogger("experiments")


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].strip()


def _resume_settings(args) -> tuple[bool, int, list[str], tuple[str, ...]]:
    """The recorded (smoke, seed, overrides) of the run folder ``args.resume``, plus the fit keys
    this command changes on purpose. ``--set`` on a resume may change, in a fit section, a key of
    :data:`~experiments.engine.training.RESUME_OVERRIDABLE` (``lr``, ``clip_norm``, ``epochs``)
    or one that does not change the optimisation (``progress``, ``log_every``, ...); any other
    difference from the recorded settings is an error listing the differences."""
    from experiments.engine.settings import RESUME_KEYS
    from experiments.engine.state import RESUME_OVERRIDABLE

    path = Path(args.resume)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"--resume {path}: not a run folder (no config.json); pass the "
                                "folder an interrupted `python -m experiments run` wrote")
    from experiments.engine.manifest import read_json

    saved = read_json(path / "config.json")  # verified: an edited config.json is refused
    if saved.get("experiment") != args.name:
        raise ValueError(f"--resume {path}: that folder is a run of {saved.get('experiment')!r}, "
                         f"not {args.name!r}")
    recorded = (bool(saved.get("smoke")), int(saved.get("seed", 0)), list(saved.get("overrides", [])))
    diffs = [f"{k}: recorded {r!r}, given {g!r}" for k, r, g, d in
             zip(("--smoke", "--seed"), recorded, (args.smoke, args.seed), (False, 0))
             if g != d and g != r]
    processes = _processes(args)  # [distributed] the global batch is processes x batch_size
    if int(saved.get("processes", 1)) != processes:
        diffs.append(f"processes: recorded {saved.get('processes', 1)}, now {processes} (the "
                     "global batch is processes x batch_size; resume with --nproc "
                     f"{saved.get('processes', 1)})")
    allow, extra = set(), []
    for override in args.overrides:
        if override in recorded[2]:
            continue
        key = _override_key(override)
        parts = key.split(".")
        fit_key = parts[-1] if len(parts) >= 2 and parts[-2] == "fit" else None
        if fit_key in RESUME_OVERRIDABLE:
            allow.add(fit_key)
        elif fit_key is None or fit_key in RESUME_KEYS:
            diffs.append(f"--set {override}: a resume may change only "
                         f"{', '.join(f'ARM.fit.{k}' for k in RESUME_OVERRIDABLE)} and fit keys "
                         "that do not change the optimisation")
            continue
        extra.append(override)
    if diffs:
        raise ValueError(f"--resume {path} continues the run with its recorded settings; this "
                         f"command differs: {'; '.join(diffs)} (leave them out, or start a new run)")
    if extra:
        log.info("resuming with changed settings: %s", ", ".join(extra))
    return recorded[0], recorded[1], recorded[2] + extra, tuple(sorted(allow))


def _processes(args) -> int:
    """Processes of this run: torchrun's WORLD_SIZE, else ``--nproc``, else 1."""
    from experiments.engine import distributed

    if distributed.launched_by_torchrun():
        return int(os.environ["WORLD_SIZE"])
    return getattr(args, "nproc", None) or 1


def _failed_ranks(exc) -> str:
    """What torchrun's ChildFailedError says of each failed rank, in one line: a rank killed by a
    signal has no error file (its "root cause" is empty), so name the signal and the PID."""
    parts = []
    for rank, failure in sorted(exc.failures.items()):
        if failure.exitcode < 0:
            how = f"was killed by {failure.signal_name()}"
        else:
            first = str(failure.message).strip().splitlines()[:1]
            how = f"exited with status {failure.exitcode}" + (f" ({first[0][:200]})" if first
                                                              and first[0] != "<N/A>" else "")
        parts.append(f"rank {rank} (PID {failure.pid}) {how}")
    return "a process of the data-parallel run failed: " + "; ".join(parts or ["(no details)"])


def _launch(args, argv: list[str]) -> int:
    """``--nproc N``: this command again in N local processes through torchrun's elastic launcher
    (``torch.distributed.run``, ``--standalone``: a free port on this machine)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    from experiments.registry import get_experiment

    if args.nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {args.nproc}")
    reason = get_experiment(args.name).not_distributed
    if reason:
        raise ValueError(f"{args.name} cannot run data-parallel: {reason}; run it without --nproc")
    rest, skip = [], False
    for a in argv:  # the command without --nproc
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            rest.append(a)
    launch = get_args_parser().parse_args(["--standalone", f"--nproc_per_node={args.nproc}",
                                           "--module", "experiments", *rest])
    try:
        run(launch)
    except ChildFailedError as exc:
        print(f"error: {_failed_ranks(exc)}; the other processes were stopped (continue with "
              "--resume RUN_DIR; run.log of the run folder has rank 0's side)", file=sys.stderr)
        return 1
    except SignalException as exc:  # the launcher stopped its workers (SIGTERM, SIGINT)
        print(f"error: stopped by signal {exc.sigval}; the launcher stopped every process "
              "(continue with --resume RUN_DIR)", file=sys.stderr)
        return 128 + int(exc.sigval)
    return 0


def cmd_run(args, argv: list[str] | None = None) -> int:
    from experiments.engine import distributed

    if args.nproc and not distributed.launched_by_torchrun() and args.nproc > 1:
        return _launch(args, argv if argv is not None else sys.argv[1:])
    if args.nproc and distributed.launched_by_torchrun() \
            and args.nproc != int(os.environ["WORLD_SIZE"]):
        raise ValueError(f"--nproc {args.nproc} under torchrun with WORLD_SIZE="
                         f"{os.environ['WORLD_SIZE']}: leave --nproc out under torchrun")
    main_rank = not distributed.init_from_env(args.device) or distributed.is_main()
    if not main_rank:
        logging.getLogger().setLevel(logging.WARNING)  # rank 0 logs the run
    try:
        smoke, seed, overrides, allow = (_resume_settings(args) if args.resume
                                         else (args.smoke, args.seed, args.overrides, ()))
        run_dir, metrics, wall = run_one(args.name, smoke=smoke, device=args.device,
                                         seed=seed, out=args.out, data_dir=args.data_dir,
                                         overrides=overrides, progress=not args.no_progress,
                                         resume_dir=args.resume, resume_allow=allow)
    finally:
        distributed.shutdown()
    if main_rank:
        print(json.dumps(metrics, indent=2, default=str))
        print(f"wrote {run_dir} in {wall:.1f} s")
    return 0


def cmd_reproduce(args) -> int:
    if getattr(args, "pretrained", False):  # no training: experiments/harness/reproduce_pretrained.py
        return __import__("experiments.harness.reproduce_pretrained", fromlist=["main"]).main(args)
    from experiments.harness.report import SMOKE_MARK, SUMMARY_HEADER, run_section, summary_rows, write_report
    from experiments.harness.runner import hardware
    from experiments.registry import list_experiments

    lines = ["# Reproduction report", "",
             f"Command: `python -m experiments reproduce{' --smoke' if args.smoke else ''}"
             f" --seed {args.seed}`  ", f"Hardware: {hardware()}  ",
             f"Date: {time.strftime('%Y-%m-%d %H:%M')}", "",
             "Headline metrics: those with a published value (else an experiment's first few); "
             "every metric is in the experiment's section." + (
                 f" Smoke runs: every number beside a published one is marked \"{SMOKE_MARK}\"."
                 if args.smoke else ""), "",
             *SUMMARY_HEADER]
    failures = 0
    sections = []
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
        if metrics.get("failed_fits"):  # an experiment that keeps going past failed fits
            failures += 1
            lines.append(f"| {exp.name} | {exp.figure} | FAILED | {metrics['failed_fits']} fits "
                         f"failed (see {run_dir}/run.log) | | |")
        lines += summary_rows(exp, metrics, wall, smoke=args.smoke)
        sections.append((exp, run_dir))
    report = Path(args.out) / ("REPORT-smoke.md" if args.smoke else "REPORT.md")
    lines.append("")
    write_report(report, lines, [run_section(exp, d, report.parent) for exp, d in sections])
    print(f"wrote {report}")
    return 1 if failures else 0


def cmd_report(args) -> int:
    """The report of runs already made, ``--publish`` and ``--docs``
    (:mod:`experiments.harness.pages`)."""
    from experiments.harness.pages import report_command

    return report_command(args)

