"""The reproduction report: one markdown file with, per experiment run, the command, our metrics
beside the published ones, the tables the experiment wrote (``*.md`` in its run directory) and its
figures (``*.png``).

``python -m experiments reproduce`` writes it after running everything; ``python -m experiments
report`` writes it from runs already made (by default the newest non-smoke run of every
experiment under the results root), so that runs of hours need not be repeated to be reported.

What a run folder holds is text from outside the zoo's code: names, tables and error messages are
escaped before they enter the markdown (:func:`md_escape`, :func:`md_code`, :func:`paste_table`),
symlinks pointing out of a run folder are skipped with a note (:func:`run_files`), and a file that
cannot be read (a truncated ``metrics.json``, a missing ``config.json``) is one FAILED row naming
it (:class:`RunReadError`) while the rest of the report renders.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from experiments.engine import manifest


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class RunReadError(ValueError):
    """A run folder, or a file in it, that cannot be read; the message names the file."""


def md_escape(text: Any) -> str:
    """``text`` as inline markdown that shows as itself: one line, and the characters that make
    links, images, emphasis, code, HTML or table cells escaped with a backslash."""
    out = " ".join(str(text).splitlines())
    return "".join("\\" + c if c in "\\`*[]<>|!" else c for c in out)


def md_code(text: Any) -> str:
    """``text`` as one inline code span (a fence longer than any run of backticks in it)."""
    text = " ".join(str(text).splitlines())
    longest = max((len(r) for r in text.replace("`", " ` ").split() if set(r) == {"`"}), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def paste_table(text: str, level: int) -> list[str]:
    """An experiment's own markdown (a ``*.md`` of its run folder) to paste into a page: its
    top heading at ``level`` and the others below it in order (outside code fences), HTML
    made inert (``<`` and ``>`` as entities) and images shown as text."""
    lines = text.rstrip().splitlines()
    fenced, levels = False, []
    for line in lines:
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            levels.append(len(line) - len(line.lstrip("#")))
    shift = level - min(levels) if levels else 0
    out, fenced = [], False
    for line in lines:
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            n = len(line) - len(line.lstrip("#"))
            line = "#" * max(1, min(6, n + shift)) + line[n:]
        if not fenced:
            line = line.replace("<", "&lt;").replace(">", "&gt;").replace("![", "!\\[")
        out.append(line)
    return out


def run_files(run_dir: Path, pattern: str) -> tuple[list[Path], list[str]]:
    """The regular files of ``run_dir`` matching ``pattern``, sorted, and a note for each one
    skipped: a symlink that leads out of the run folder (it is not followed) or not a file."""
    run_dir = Path(run_dir)
    root = run_dir.resolve()
    files, notes = [], []
    for path in sorted(run_dir.glob(pattern)):
        target = path.resolve()
        if path.is_symlink() and not target.is_relative_to(root):
            notes.append(f"skipped {md_code(path.name)}: a symlink pointing outside the run folder")
        elif not target.is_file():
            notes.append(f"skipped {md_code(path.name)}: not a regular file")
        else:
            files.append(path)
    return files, notes


def _read_json(run_dir: Path, name: str) -> dict:
    path = run_dir / name
    if path.is_symlink() and not path.resolve().is_relative_to(run_dir.resolve()):
        raise RunReadError(f"{path}: a symlink pointing outside the run folder (not followed)")
    try:
        obj = manifest.read_json(path)  # checked against the folder's checksums.sha256
    except FileNotFoundError:
        raise RunReadError(f"{path} is missing") from None
    except manifest.FileIntegrityError as exc:
        raise RunReadError(str(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunReadError(f"{path} cannot be read ({exc})") from None
    except ValueError as exc:
        raise RunReadError(f"{path} is not valid JSON ({exc}; truncated?)") from None
    if not isinstance(obj, dict):
        raise RunReadError(f"{path} holds a JSON {type(obj).__name__}, not an object")
    return obj


def read_run(run_dir: Path) -> tuple[dict, dict]:
    """``(config.json, metrics.json)`` of a run directory; a missing, unreadable or non-JSON file
    is a :class:`RunReadError` naming it (a missing metrics.json: the run did not finish)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise RunReadError(f"{run_dir} is not a run directory ({run_dir / 'config.json'} is "
                           "missing); pass directories written by `python -m experiments run`")
    config = _read_json(run_dir, "config.json")
    if not (run_dir / "metrics.json").exists():
        raise RunReadError(f"{run_dir / 'metrics.json'} is missing: the run did not finish")
    return config, _read_json(run_dir, "metrics.json")


def run_failed(metrics: dict) -> bool:
    """Whether a run's metrics.json records a failure (or fits that failed)."""
    return metrics.get("status") == "failed" or bool(metrics.get("failed_fits"))


def scan_runs(root: Path, names, include_smoke: bool = False
              ) -> tuple[list[Path], list[tuple[str, Path, str]]]:
    """``(newest successful run of each experiment in names, problems)`` under ``root`` (run
    directories are named ``YYYYmmdd-HHMMSS-seedS``, so the name orders them). ``problems``:
    ``(experiment, run_dir, reason)`` for every failed or unreadable run newer than the one
    chosen (all of them when none succeeded), so that a newer failure never hides an older good
    run. Runs without metrics.json that have a config.json (unfinished, or running) are left out,
    and so are smoke runs unless ``include_smoke``; a folder that is a symlink is not followed."""
    good, problems = [], []
    for name in names:
        folder = Path(root) / name
        runs = sorted((p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()),
                      reverse=True) if folder.is_dir() else []
        for run_dir in runs:
            if not (run_dir / "metrics.json").exists() and (run_dir / "config.json").exists():
                continue  # unfinished, or still running
            if not (run_dir / "metrics.json").exists():
                continue  # not a run folder
            try:
                config, metrics = read_run(run_dir)
            except RunReadError as exc:
                problems.append((name, run_dir, str(exc)))
                continue
            if config.get("smoke", False) and not include_smoke:
                continue
            if run_failed(metrics):
                problems.append((name, run_dir, failure_reason(run_dir, metrics)))
                continue
            good.append(run_dir)
            break
    return good, problems


def latest_runs(root: Path, names, include_smoke: bool = False) -> list[Path]:
    """The newest successful run directory of each experiment in ``names`` under ``root``
    (:func:`scan_runs`)."""
    return scan_runs(root, names, include_smoke)[0]


def failure_reason(run_dir: Path, metrics: dict) -> str:
    """One line on why a run failed, from its metrics.json."""
    if metrics.get("failed_fits"):
        return f"{metrics['failed_fits']} fits failed (see {run_dir / 'run.log'})"
    return f"{metrics.get('error', 'no error recorded')} (see {run_dir / 'run.log'})"


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
        lines.append(f"| {exp.name if first else ''} | {exp.figure if first else ''} | "
                     f"{md_escape(k)} | {ours} | {paper} | {_wall(wall) if first else ''} |")
    return lines


def _wall(wall) -> str:
    return f"{wall:.1f}" if isinstance(wall, (int, float)) else md_escape(wall)


def failed_row(name: str, figure: str, reason: str) -> str:
    """The summary table's row of a failed or unreadable run."""
    return f"| {md_escape(name)} | {figure} | FAILED | {md_escape(reason)} | | |"


def metrics_table(metrics: dict[str, Any], paper: dict[str, Any], smoke: bool = False) -> list[str]:
    """``| metric | ours | paper |`` of :func:`metric_rows` (nothing when there are no rows)."""
    rows = metric_rows(metrics, paper, smoke)
    if not rows:
        return []
    return (["| metric | ours | paper |", "|---|---|---|"]
            + [f"| {md_escape(k)} | {md_escape(ours)} | {paper} |" for k, ours, paper in rows]
            + [""])


def text_metrics(metrics: dict[str, Any]) -> list[str]:
    """The run's text metrics (not hardware, status, error) as a list, escaped."""
    texts = [v for k, v in metrics.items()
             if isinstance(v, str) and k not in ("hardware", "status", "error")]
    return [f"- {md_escape(t)}" for t in texts] + ([""] if texts else [])


def tables_and_figures(exp, run_dir: Path, page_dir: Path, level: int) -> list[str]:
    """The run's own tables (``*.md``, top heading at ``level``) and figures (``*.png``, linked
    relative to ``page_dir``), symlinks out of the folder skipped with a note."""
    lines = []
    tables, notes = run_files(run_dir, "*.md")
    figures, fig_notes = run_files(run_dir, "*.png")
    for table in tables:
        try:
            lines += paste_table(table.read_text(errors="replace"), level) + [""]
        except OSError as exc:
            notes.append(f"skipped {md_code(table.name)}: cannot be read ({md_escape(exc)})")
    for fig in figures:
        rel = quote(os.path.relpath(fig, page_dir).replace(os.sep, "/"))
        lines += [f"![{md_escape(exp.name)}: {md_escape(fig.stem)}]({rel})", ""]
    lines += [f"- {n}" for n in notes + fig_notes] + ([""] if notes or fig_notes else [])
    return lines


def run_section(exp, run_dir: Path, report_dir: Path) -> list[str]:
    """Markdown for one run of ``exp`` (an :class:`~experiments.registry.Experiment`)."""
    run_dir = Path(run_dir)
    config, metrics = read_run(run_dir)
    smoke = bool(config.get("smoke"))
    command = (f"- command: {md_code(config['command'])}" if config.get("command") else
               f"- command: (written before commands were recorded; its configuration is "
               f"{md_code(run_dir / 'config.json')})")
    lines = [f"## {exp.name}: {exp.paper}, {exp.figure}", "",
             f"- run: {md_code(run_dir)}" + (" (**smoke run**: a tiny configuration, not "
                                             "comparable with the published numbers)"
                                             if smoke else ""),
             command,
             f"- wall time: {md_escape(_fmt(metrics.get('wall_time_s', '')))} s on "
             f"{md_escape(metrics.get('hardware', 'unknown hardware'))}", ""]
    if run_failed(metrics):
        lines += [f"**FAILED**: {md_escape(failure_reason(run_dir, metrics))}", ""]
    lines += metrics_table(metrics, exp.paper_numbers, smoke)
    lines += text_metrics(metrics)
    # the experiment's own headings sit one level below the run's
    lines += tables_and_figures(exp, run_dir, report_dir, level=3)
    return lines


def write_report(path: Path, header: list[str], sections: list[list[str]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = list(header)
    for s in sections:
        body += s
    path.write_text("\n".join(body).rstrip() + "\n")
    return path


def report_runs(report: Path, header: list[str], runs: list[Path] | None = None, *,
                root: Path | None = None, include_smoke: bool = False
                ) -> tuple[Path, int, list[tuple[str, Path, str]]]:
    """Write the report of ``runs`` (every one of them, failed ones included), or without
    ``runs`` of the newest successful run of every experiment under ``root`` with the failed or
    unreadable runs newer than it listed apart (:func:`scan_runs`). Each run that cannot be read
    is one FAILED row naming the file; the others render. Returns ``(path, runs reported,
    [(experiment, run_dir, reason) of each failed or unreadable run])``."""
    from experiments.registry import get_experiment, list_experiments

    figures = {e.name: e.figure for e in list_experiments()}
    problems: list[tuple[str, Path, str]] = []
    if runs is None:
        runs, problems = scan_runs(Path(root), list(figures), include_smoke)
        if not runs and not problems:
            raise FileNotFoundError(f"no finished runs under {root}/; run experiments first "
                                    "(python -m experiments run NAME) or pass run directories")
    summary, sections, failed = [], [], list(problems)
    for run_dir in runs:
        run_dir = Path(run_dir)
        try:
            config, metrics = read_run(run_dir)
        except RunReadError as exc:  # named by its folder: results/<name>/<time>-seed<s>
            failed.append((run_dir.parent.name, run_dir, str(exc)))
            continue
        try:
            exp = get_experiment(str(config.get("experiment")))
        except KeyError as exc:
            failed.append((str(config.get("experiment")), run_dir,
                           f"{run_dir / 'config.json'}: {exc.args[0] if exc.args else exc}"))
            continue
        if run_failed(metrics):
            failed.append((exp.name, run_dir, failure_reason(run_dir, metrics)))
        else:
            summary += summary_rows(exp, metrics, metrics.get("wall_time_s", ""),
                                    smoke=bool(config.get("smoke")))
        sections.append(run_section(exp, run_dir, Path(report).parent))
    summary += [failed_row(name, figures.get(name, ""), reason) for name, _, reason in failed]
    body = list(header) + SUMMARY_HEADER + summary + [""]
    if failed:
        body += ["## Failed or unreadable runs", "",
                 "Newer than the run reported for their experiment (or the only runs of it):"
                 if problems else "", ""]
        body += [f"- {md_escape(name)}: {md_code(run_dir)}: {md_escape(reason)}"
                 for name, run_dir, reason in failed] + [""]
    return write_report(report, body, sections), len(sections), failed
