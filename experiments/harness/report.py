"""The reproduction report: one markdown file with, per experiment run, the command, our metrics
beside the published ones, the tables the experiment wrote (``*.md`` in its run directory) and its
figures (``*.png``).

``python -m experiments reproduce`` writes it after running everything; ``python -m experiments
report`` writes it from runs already made (by default the newest non-smoke run of every
experiment under the results root), so that runs of hours need not be repeated to be reported.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def read_run(run_dir: Path) -> tuple[dict, dict]:
    """``(config.json, metrics.json)`` of a run directory; a missing metrics.json is an error
    (the run did not finish)."""
    run_dir = Path(run_dir)
    cfg_path, met_path = run_dir / "config.json", run_dir / "metrics.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no config.json); pass "
                                "directories written by `python -m experiments run`")
    if not met_path.is_file():
        raise FileNotFoundError(f"{run_dir} has no metrics.json: the run did not finish")
    return json.loads(cfg_path.read_text()), json.loads(met_path.read_text())


def latest_runs(root: Path, names, include_smoke: bool = False) -> list[Path]:
    """The newest finished run directory of each experiment in ``names`` under ``root``
    (run directories are named ``YYYYmmdd-HHMMSS-seedS``, so the name orders them)."""
    out = []
    for name in names:
        runs = sorted(p for p in (Path(root) / name).glob("*/") if (p / "metrics.json").is_file())
        runs = [p for p in runs if include_smoke
                or not json.loads((p / "config.json").read_text()).get("smoke", False)]
        if runs:
            out.append(runs[-1])
    return out


#: beside our number wherever a smoke run's metric stands next to a published value
SMOKE_MARK = "smoke — not comparable"
#: metrics of the summary table when no published value names one of the run's metrics
FALLBACK_HEADLINES = 3


def _numeric(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items()
            if k != "wall_time_s" and isinstance(v, (int, float))}


def _ours(value, paper: str, smoke: bool) -> str:
    return f"{_fmt(value)} ({SMOKE_MARK})" if smoke and paper != "" else _fmt(value)


def metric_rows(metrics: dict[str, Any], paper: dict[str, Any],
                smoke: bool = False) -> list[tuple[str, str, str]]:
    """``(metric, ours, paper)`` for every numeric (or boolean) metric, then published values we
    lack; with ``smoke``, our number beside a published one is marked :data:`SMOKE_MARK`."""
    rows = []
    for k, v in _numeric(metrics).items():
        published = _fmt(paper.get(k, ""))
        rows.append((k, _ours(v, published, smoke), published))
    rows += [(k, "", _fmt(v)) for k, v in paper.items() if k not in metrics]
    return rows


def headline_rows(metrics: dict[str, Any], paper: dict[str, Any],
                  smoke: bool = False) -> list[tuple[str, str, str]]:
    """The summary table's ``(metric, ours, paper)`` rows of one run: the metrics its published
    values (the experiment's ``paper_numbers``) name, a published key standing for every metric
    it prefixes (``blr_var_rms`` for ``blr_var_rms_R10``, ...). When none of them was measured:
    the first :data:`FALLBACK_HEADLINES` metrics, then the published values. Every metric stays
    in the run's section (:func:`run_section`)."""
    numeric = _numeric(metrics)
    rows, missing = [], []
    for key, value in paper.items():
        published = _fmt(value)
        names = [key] if key in numeric else [k for k in numeric if k.startswith(key + "_")]
        for i, name in enumerate(names):  # the published value once, on the first row
            rows.append((name, _ours(numeric[name], published, smoke), published if i == 0 else
                         "(as above)"))
        if not names:
            missing.append((key, "", published))
    if rows:
        return rows
    return [(k, _fmt(v), "") for k, v in list(numeric.items())[:FALLBACK_HEADLINES]] + missing


SUMMARY_HEADER = ["| experiment | figure | metric | ours | paper | wall time (s) |",
                  "|---|---|---|---|---|---|"]


def summary_rows(exp, metrics: dict[str, Any], wall: float, smoke: bool = False) -> list[str]:
    """The summary table's lines of one run of ``exp``: its :func:`headline_rows`; the
    experiment, figure and wall time on the first."""
    lines = []
    rows = headline_rows(metrics, exp.paper_numbers, smoke) or [("(no numeric metrics)", "", "")]
    for i, (k, ours, paper) in enumerate(rows):
        first = i == 0
        lines.append(f"| {exp.name if first else ''} | {exp.figure if first else ''} | {k} "
                     f"| {ours} | {paper} | {f'{wall:.1f}' if first else ''} |")
    return lines


def run_section(exp, run_dir: Path, report_dir: Path) -> list[str]:
    """Markdown for one run of ``exp`` (an :class:`~experiments.registry.Experiment`)."""
    run_dir = Path(run_dir)
    config, metrics = read_run(run_dir)
    smoke = bool(config.get("smoke"))
    command = config.get("command") or (
        f"(written before commands were recorded; its configuration is {run_dir}/config.json)")
    lines = [f"## {exp.name}: {exp.paper}, {exp.figure}", "",
             f"- run: `{run_dir}`" + (" (**smoke run**: a tiny configuration, not comparable "
                                      "with the published numbers)" if smoke else ""),
             f"- command: `{command}`" if config.get("command") else f"- command: {command}",
             f"- wall time: {_fmt(metrics.get('wall_time_s', ''))} s on "
             f"{metrics.get('hardware', 'unknown hardware')}", ""]
    if metrics.get("status") == "failed":
        lines += [f"**FAILED**: {metrics.get('error', 'no error recorded')} (the traceback ends "
                  f"`{run_dir}/run.log`)", ""]
    rows = metric_rows(metrics, exp.paper_numbers, smoke)
    if rows:
        lines += ["| metric | ours | paper |", "|---|---|---|"]
        lines += [f"| {k} | {ours} | {paper} |" for k, ours, paper in rows]
        lines.append("")
    texts = [v for k, v in metrics.items()
             if isinstance(v, str) and k not in ("hardware", "status", "error")]
    lines += [f"- {t}" for t in texts]
    if texts:
        lines.append("")
    for table in sorted(run_dir.glob("*.md")):
        body = table.read_text().rstrip()
        # the experiment's own headings sit one level below the run's
        body = "\n".join("#" + line if line.startswith("#") else line for line in body.splitlines())
        lines += [body, ""]
    for fig in sorted(run_dir.glob("*.png")):
        rel = os.path.relpath(fig, report_dir)
        lines += [f"![{exp.name}: {fig.stem}]({rel})", ""]
    return lines


def write_report(path: Path, header: list[str], sections: list[list[str]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = list(header)
    for s in sections:
        body += s
    path.write_text("\n".join(body).rstrip() + "\n")
    return path
