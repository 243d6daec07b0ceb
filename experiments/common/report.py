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


def metric_rows(metrics: dict[str, Any], paper: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(metric, ours, paper)`` for every numeric (or boolean) metric, then published values we
    lack."""
    rows = [(k, _fmt(v), _fmt(paper.get(k, ""))) for k, v in metrics.items()
            if k != "wall_time_s" and isinstance(v, (int, float))]
    rows += [(k, "", _fmt(v)) for k, v in paper.items() if k not in metrics]
    return rows


def run_section(exp, run_dir: Path, report_dir: Path) -> list[str]:
    """Markdown for one run of ``exp`` (an :class:`~experiments.registry.Experiment`)."""
    run_dir = Path(run_dir)
    config, metrics = read_run(run_dir)
    command = config.get("command") or (
        f"(written before commands were recorded; its configuration is {run_dir}/config.json)")
    lines = [f"## {exp.name}: {exp.paper}, {exp.figure}", "",
             f"- run: `{run_dir}`{' (smoke)' if config.get('smoke') else ''}",
             f"- command: `{command}`" if config.get("command") else f"- command: {command}",
             f"- wall time: {_fmt(metrics.get('wall_time_s', ''))} s on "
             f"{metrics.get('hardware', 'unknown hardware')}", ""]
    if metrics.get("status") == "failed":
        lines += [f"**FAILED**: {metrics.get('error', 'no error recorded')} (the traceback ends "
                  f"`{run_dir}/run.log`)", ""]
    rows = metric_rows(metrics, exp.paper_numbers)
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
