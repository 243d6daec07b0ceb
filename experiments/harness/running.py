"""One experiment run into its run folder (``python -m experiments run NAME`` and each run of
``reproduce``): the config with ``--set`` applied and validated, config.json, run.log,
metrics.json and attempts.jsonl, a failure recorded before it is re-raised, and the ranks other
than 0 of a data-parallel run."""

from __future__ import annotations

import json
import logging
import shlex
import time
from pathlib import Path

log = logging.getLogger("experiments")


def prepare_config(name: str, *, smoke: bool, overrides: list[str]):
    """The experiment's config with ``--set`` overrides applied and the whole of it validated,
    before any run folder exists or anything trains."""
    from experiments.harness.spec import apply_overrides, validate_config
    from experiments.registry import get_experiment

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
    from experiments.engine.signals import Stopped, StopSignals
    from experiments.harness.lock import RunLock
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
    # one writer per run folder (a second run or --resume of it is refused, naming the holder);
    # SIGTERM and SIGHUP stop the run like Ctrl-C (fit itself stops after a step, at a checkpoint)
    with RunLock(run_dir, command), StopSignals(deferred=False, what=name):
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
            except Stopped as exc:
                raise _stopped(exc, name, run_dir, command, time.perf_counter() - t0,
                               parallel) from exc
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


def _stopped(exc, name: str, run_dir: Path, command: str, seconds: float, parallel: dict):
    """Record a run stopped by a signal (attempts.jsonl; metrics.json unless it holds an earlier
    success; run.log's last line) and return the :class:`Stopped` to raise, whose message says
    how to resume, naming the folder."""
    from experiments.engine.signals import Stopped, signal_name
    from experiments.harness.runner import hardware, write_json

    how = f"python -m experiments run {name} --resume {shlex.quote(str(run_dir))}"
    message = (f"{name} stopped by {signal_name(exc.signum)} after {seconds:.1f} s ({exc}); "
               f"its checkpoints are saved: resume with {how}")
    if not _succeeded(run_dir):
        write_json(run_dir / "metrics.json", {
            "status": "stopped", "error": message, "resume": how,
            "wall_time_s": round(seconds, 2), "hardware": _hardware(hardware(), parallel),
            **_parallel_metrics(parallel)})
    _record_attempt(run_dir, command, "stopped", seconds, message)
    log.warning("%s", message)
    return Stopped(exc.signum, message)


def _succeeded(run_dir: Path) -> bool:
    """Whether ``run_dir/metrics.json`` holds a finished run's result (status ok)."""
    from experiments.engine import manifest

    try:
        return manifest.read_json(run_dir / "metrics.json").get("status") == "ok"
    except (OSError, ValueError, AttributeError, manifest.FileIntegrityError):
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


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()

