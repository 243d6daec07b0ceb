"""Command line: ``python -m experiments list | pairs | run NAME | reproduce | report | fit |
predict | compare``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import time
from pathlib import Path

from experiments.harness.table_cli import TABLE_COMMANDS, add_table_commands

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


def prepare_config(name: str, *, smoke: bool, overrides: list[str]):
    """The experiment's config with ``--set`` overrides applied and the whole of it validated,
    before any run folder exists or anything trains."""
    from experiments.harness.spec import apply_overrides, validate_config

    from .registry import get_experiment

    exp = get_experiment(name)
    config = apply_overrides(exp.get_config(smoke=smoke), overrides)
    validate_config(config)
    return exp, config


def run_one(name: str, *, smoke: bool, device: str, seed: int, out: str, data_dir: str | None,
            overrides: list[str], progress: bool = True,
            resume_dir: str | None = None,
            resume_allow: tuple[str, ...] = ()) -> tuple[Path, dict, float]:
    """Run one experiment into a new run folder. A failure is recorded there before it is
    re-raised: metrics.json holds ``status: failed`` and run.log ends with the traceback and a
    last line ``NAME failed after ...``; a run that finishes ends run.log with ``finished NAME in
    ... s: metrics.json written``."""
    from experiments.engine import distributed
    from experiments.harness.runner import RunLog, code_version, hardware, make_run_dir, write_json
    from experiments.harness.spec import RunContext, config_dict

    exp, config = prepare_config(name, smoke=smoke, overrides=overrides)
    parallel = distributed.describe()
    if parallel["processes"] > 1 and exp.not_distributed:
        raise ValueError(f"{name} cannot run data-parallel: {exp.not_distributed}; run it in one "
                         "process (without torchrun / --nproc)")
    if not distributed.is_main():  # [distributed] rank 0 alone writes the run folder
        return _run_other_rank(exp, config, seed=seed, device=device, data_dir=data_dir,
                               resume=resume_dir is not None, resume_allow=resume_allow)
    run_dir = Path(resume_dir) if resume_dir else make_run_dir(out, name, seed)
    ctx = RunContext(seed=seed, device=device, out_dir=run_dir, data_dir=data_dir,
                     progress=progress, logger=log, resume=resume_dir is not None,
                     resume_allow=tuple(resume_allow))
    command = " ".join(["python -m experiments run", name] + (["--smoke"] if smoke else [])
                       + [f"--device {device}", f"--seed {seed}"]
                       + ([] if progress else ["--no-progress"])
                       + ([f"--data-dir {shlex.quote(data_dir)}"] if data_dir else [])
                       + [f"--set {shlex.quote(o)}" for o in overrides])
    if resume_dir:
        command += f" --resume {shlex.quote(str(resume_dir))}"
    if parallel["processes"] > 1:
        command += f" --nproc {parallel['processes']}"
    write_json(run_dir / "config.json", {"experiment": name, "smoke": smoke, "device": device,
                                          "seed": ctx.seed, "data_dir": data_dir, "command": command,
                                          "commit": code_version(),
                                          "threads": _torch_threads(), **parallel,
                                          "overrides": list(overrides),
                                          "config": config_dict(config)})
    t0 = time.perf_counter()
    with RunLog(run_dir) as run_log:
        log.info("running %s (smoke=%s, seed=%d) into %s", name, smoke, seed, run_dir)
        try:
            ctx.seed_everything()
            metrics = exp.run(config, ctx)
        except BaseException as exc:
            if _expected(exc):  # its message says what to do: the traceback in run.log only
                run_log.traceback(log, f"{name} failed after {time.perf_counter() - t0:.1f} s",
                                  exc)
            else:
                log.exception("%s failed after %.1f s", name, time.perf_counter() - t0)
            error = f"{type(exc).__name__}: {exc}"
            kept = _succeeded(run_dir)  # a failed --resume of a finished run keeps its result
            if not kept:
                write_json(run_dir / "metrics.json", {
                    "status": "failed", "error": error,
                    "wall_time_s": round(time.perf_counter() - t0, 2),
                    "hardware": _hardware(hardware(), parallel), **_parallel_metrics(parallel)})
            _record_attempt(run_dir, command, "failed", time.perf_counter() - t0, error)
            # the last line of run.log says how the run ended (the traceback is above it)
            log.error("%s failed after %.1f s: %s (traceback %s; %s; attempts.jsonl records "
                      "it)", name, time.perf_counter() - t0, error.splitlines()[0],
                      "in run.log" if _expected(exc) else "above",
                      "metrics.json keeps the earlier successful result" if kept
                      else "metrics.json has status failed")
            raise
        wall = time.perf_counter() - t0
        metrics = {"status": "ok", **dict(metrics)}
        metrics["wall_time_s"] = round(wall, 2)
        metrics["hardware"] = _hardware(hardware(), parallel)
        metrics.update(_parallel_metrics(parallel))
        write_json(run_dir / "metrics.json", metrics)
        _record_attempt(run_dir, command, "ok", wall)
        log.info("finished %s in %.1f s: metrics.json written", name, wall)
    return run_dir, metrics, wall


def _succeeded(run_dir: Path) -> bool:
    """Whether ``run_dir/metrics.json`` holds a finished run's result (status ok)."""
    try:
        return json.loads((run_dir / "metrics.json").read_text()).get("status") == "ok"
    except (OSError, ValueError, AttributeError):
        return False


def _record_attempt(run_dir: Path, command: str, status: str, seconds: float,
                    error: str | None = None) -> None:
    """Append one line to ``run_dir/attempts.jsonl``: every run and resume of the folder, its
    outcome and error, so that a failed attempt never has to overwrite a good ``metrics.json``."""
    from datetime import datetime, timezone

    line = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": command, "status": status, "wall_time_s": round(seconds, 2)}
    if error is not None:
        line["error"] = error
    with open(run_dir / "attempts.jsonl", "a") as fh:
        fh.write(json.dumps(line) + "\n")


def _expected(exc: BaseException) -> bool:
    """A failure whose message names the problem and what to do (a checksum or missing data
    file, a non-finite or implausible fit): the terminal gets one line, run.log the traceback."""
    from experiments.data import DataError
    from experiments.engine.checkpoint import CheckpointError

    return isinstance(exc, (CheckpointError, DataError, ArithmeticError))


def _hardware(text: str, parallel: dict) -> str:
    """The hardware line, with the processes and backend of a data-parallel run."""
    if parallel["processes"] > 1:
        return f"{text}; {parallel['processes']} processes ({parallel['backend']})"
    return text


def _parallel_metrics(parallel: dict) -> dict:
    """metrics.json's record of a data-parallel run (a dict, so that the report lists it on the
    hardware line rather than as a metric); nothing for one process."""
    return {"distributed": parallel} if parallel["processes"] > 1 else {}


def _run_other_rank(exp, config, *, seed, device, data_dir, resume, resume_allow):
    """A rank other than 0 of a data-parallel run: the same experiment (its fits are collective)
    in a scratch folder that is removed afterwards; rank 0 writes the run folder, and every fit
    resumes from rank 0's checkpoints (train_pair asks rank 0)."""
    import shutil
    import tempfile

    from experiments.engine import distributed
    from experiments.harness.spec import RunContext

    scratch = Path(tempfile.mkdtemp(prefix=f"vbzoo-{exp.name}-rank{distributed.rank()}-"))
    try:
        ctx = RunContext(seed=seed, device=device, out_dir=scratch, data_dir=data_dir,
                         progress=False, logger=log, resume=resume,
                         resume_allow=tuple(resume_allow))
        t0 = time.perf_counter()
        ctx.seed_everything()
        metrics = exp.run(config, ctx)
        return scratch, {"status": "ok", **dict(metrics)}, time.perf_counter() - t0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].strip()


def _resume_settings(args) -> tuple[bool, int, list[str], tuple[str, ...]]:
    """The recorded (smoke, seed, overrides) of the run folder ``args.resume``, plus the fit keys
    this command changes on purpose. ``--set`` on a resume may change, in a fit section, a key of
    :data:`~experiments.engine.training.RESUME_OVERRIDABLE` (``lr``, ``clip_norm``, ``epochs``)
    or one that does not change the optimisation (``progress``, ``log_every``, ...); any other
    difference from the recorded settings is an error listing the differences."""
    from experiments.engine.state import RESUME_KEYS, RESUME_OVERRIDABLE

    path = Path(args.resume)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"--resume {path}: not a run folder (no config.json); pass the "
                                "folder an interrupted `python -m experiments run` wrote")
    saved = json.loads((path / "config.json").read_text())
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


def _launch(args, argv: list[str]) -> int:
    """``--nproc N``: this command again in N local processes through torchrun's elastic launcher
    (``torch.distributed.run``, ``--standalone``: a free port on this machine)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    from .registry import get_experiment

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
        print(f"error: a process of the data-parallel run failed:\n{exc}", file=sys.stderr)
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
    from experiments.harness.report import SMOKE_MARK, SUMMARY_HEADER, run_section, summary_rows, write_report
    from experiments.harness.runner import hardware

    from .registry import list_experiments

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
    from experiments.harness.report import latest_runs, read_run, run_section, write_report
    from experiments.harness.runner import hardware

    from .registry import get_experiment, list_experiments

    if args.runs:
        runs = [Path(r) for r in args.runs]
    else:
        runs = latest_runs(Path(args.out), [e.name for e in list_experiments()],
                           include_smoke=args.include_smoke)
        if not runs:
            raise FileNotFoundError(f"no finished runs under {args.out}/; run experiments first "
                                    "(python -m experiments run NAME) or pass run directories")
    report = Path(args.report) if args.report else Path(args.out) / "REPORT-runs.md"
    sections = []
    for run_dir in runs:
        config, _ = read_run(run_dir)
        sections.append(run_section(get_experiment(config["experiment"]), run_dir, report.parent))
    header = ["# Report of finished runs", "",
              f"Command: `python -m experiments report {' '.join(map(str, args.runs))}`".rstrip()
              + "  ", f"Written on: {hardware()}, {time.strftime('%Y-%m-%d %H:%M')}  ",
              "Each section names the command of its run; wall times and hardware are the run's.", ""]
    write_report(report, header, sections)
    print(f"wrote {report} ({len(sections)} runs)")
    return 0


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


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
    except BrokenPipeError:  # output piped into a reader that stopped (| head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
