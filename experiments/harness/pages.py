"""One docs page per experiment, rendered from committed result files, never retyped.

``python -m experiments report --publish RUN_DIR`` copies a finished run's ``config.json``,
``metrics.json``, figures (``*.png``, at most :data:`MAX_FIGURE_BYTES` each) and tables (``*.md``)
into ``docs/results/<name>/`` with ``published.json`` (the command, commit, hardware and date of
the run); ``python -m experiments report --docs docs/experiments --readme README.md`` renders
``docs/experiments/<name>.md`` for every registered experiment, ``docs/experiments/index.md`` and
the README's table of experiments (between :data:`README_START` and :data:`README_END`) from
those files alone, through the report's own functions (:mod:`experiments.harness.report`), so
that a re-run and a re-publish update the pages and no number on them is typed by hand. An
experiment without a committed result gets a page that says so, with the commands that would
produce one (``docs/results/pending.json`` may say why it has none).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path

from experiments.harness import report as R

REPO = Path(__file__).resolve().parents[2]
#: where published results live, and the pages, relative to the repository
RESULTS_DIR, DOCS_DIR = Path("docs/results"), Path("docs/experiments")
#: figures larger than this are re-encoded (fewer colours, then smaller) before they are copied
MAX_FIGURE_BYTES = 300_000
PUBLISHED = "published.json"
#: experiments without a committed result, and why (a JSON object: name -> reason)
PENDING = "pending.json"
README_START, README_END = "<!-- experiments: start -->", "<!-- experiments: end -->"
RENDER_COMMAND = "python -m experiments report --docs docs/experiments --readme README.md"


def _label(path: Path) -> str:
    """``path`` as the pages name it: relative to the repository when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


# --- publish ---------------------------------------------------------------------------------


def _run_date(run_dir: Path) -> str:
    """When the run finished: its last successful attempt (attempts.jsonl, UTC), else the time in
    its folder name, else metrics.json's modification time."""
    try:
        lines = (run_dir / "attempts.jsonl").read_text().splitlines()
        ok = [json.loads(x) for x in lines if x.strip() and json.loads(x).get("status") == "ok"]
        if ok:
            return datetime.fromisoformat(ok[-1]["time"]).strftime("%Y-%m-%d %H:%M UTC")
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        return datetime.strptime(run_dir.name[:15], "%Y%m%d-%H%M%S").strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime((run_dir / "metrics.json")
                                                              .stat().st_mtime))


def _small_png(src: Path, dest: Path, limit: int = MAX_FIGURE_BYTES) -> bool:
    """Copy the PNG ``src`` to ``dest``, re-encoded (256 colours, then scaled down) if it is
    larger than ``limit``; False (nothing written) when it cannot be made small enough."""
    if src.stat().st_size <= limit:
        shutil.copyfile(src, dest)
        return True
    from PIL import Image

    with Image.open(src) as img:
        img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
        for scale in (1.0, 0.75, 0.5, 0.35):
            size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
            small = img.resize(size, Image.LANCZOS) if scale < 1 else img
            buf = io.BytesIO()
            small.quantize(256, method=Image.Quantize.FASTOCTREE).save(buf, "PNG", optimize=True)
            if buf.tell() <= limit:
                dest.write_bytes(buf.getvalue())
                return True
    return False


def publish(run_dir: Path, results_dir: Path = RESULTS_DIR, *, allow_smoke: bool = False,
            note: str | None = None) -> Path:
    """Copy the finished run ``run_dir`` into ``results_dir/<experiment>/`` (replacing what was
    there) and return that folder. A failed or unreadable run is refused, and so is a smoke run
    unless ``allow_smoke``: a :class:`ValueError` of one line."""
    from experiments.registry import get_experiment

    run_dir = Path(run_dir)
    config, metrics = R.read_run(run_dir)
    if R.run_failed(metrics) or metrics.get("status") != "ok":
        raise ValueError(f"{run_dir}: the run did not succeed "
                         f"({R.failure_reason(run_dir, metrics)}); publish a successful run")
    if config.get("smoke") and not allow_smoke:
        raise ValueError(f"{run_dir} is a smoke run (a tiny configuration, not comparable with "
                         "the paper); pass --allow-smoke to publish it anyway")
    exp = get_experiment(str(config.get("experiment")))
    dest = Path(results_dir) / exp.name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in ("config.json", "metrics.json"):
        shutil.copyfile(run_dir / name, dest / name)
    figures, skipped = [], []
    pngs, notes = R.run_files(run_dir, "*.png")
    for fig in pngs:
        if _small_png(fig, dest / fig.name):
            figures.append(fig.name)
        else:
            skipped.append(f"{fig.name}: larger than {MAX_FIGURE_BYTES} bytes even when reduced")
    tables, table_notes = R.run_files(run_dir, "*.md")
    for table in tables:
        shutil.copyfile(table, dest / table.name)
    record = {"experiment": exp.name, "run": run_dir.name,
              "command": config.get("command", ""), "commit": config.get("commit", "unknown"),
              "hardware": metrics.get("hardware", "unknown hardware"), "date": _run_date(run_dir),
              "wall_time_s": metrics.get("wall_time_s"), "smoke": bool(config.get("smoke")),
              "figures": figures, "tables": [t.name for t in tables],
              "skipped": skipped + notes + table_notes}
    if note:
        record["note"] = note
    (dest / PUBLISHED).write_text(json.dumps(record, indent=2) + "\n")
    return dest


# --- render ----------------------------------------------------------------------------------


def load_result(results_dir: Path, name: str) -> tuple[dict, dict, dict] | None:
    """``(published.json, config.json, metrics.json)`` of the committed result of ``name``, or
    None when there is none."""
    folder = Path(results_dir) / name
    if not (folder / PUBLISHED).is_file():
        return None
    published = json.loads((folder / PUBLISHED).read_text())
    config, metrics = R.read_run(folder)
    return published, config, metrics


def _pending(results_dir: Path) -> dict:
    path = Path(results_dir) / PENDING
    return json.loads(path.read_text()) if path.is_file() else {}


def _json_block(obj) -> list[str]:
    return ["```json", json.dumps(obj, indent=2, default=str), "```", ""]


def headline(exp, result) -> tuple[str, str, str]:
    """The ``(metric, ours, paper)`` an experiment is summed up by: the first of the report's
    headline rows (:func:`~experiments.harness.report.headline_rows`); without a result, the
    first published value with ours left empty."""
    if result is None:
        key, value = next(iter(exp.paper_numbers.items()), ("", ""))
        return key, "", R._fmt(value)
    _, config, metrics = result
    rows = R.headline_rows(metrics, exp.paper_numbers, bool(config.get("smoke")))
    return rows[0] if rows else ("", "", "")


def render_page(exp, results_dir: Path, docs_dir: Path) -> str:
    """The page ``docs_dir/<name>.md`` of ``exp`` from ``results_dir/<name>/``."""
    from experiments.harness.spec import config_dict

    result = load_result(results_dir, exp.name)
    folder = Path(results_dir) / exp.name
    lines = [f"# {exp.name}", "",
             f"<!-- rendered by `{RENDER_COMMAND}` from {_label(folder)}/: re-publish a run "
             "(`python -m experiments report --publish RUN_DIR`) rather than edit this page -->",
             "", f"Reproduces **{exp.figure}** of {exp.paper}. Data: {', '.join(exp.data)}. "
             f"Code: `{exp.module.replace('.', '/')}.py`.", "",
             "## Our numbers beside the paper's", ""]
    if result is None:
        reason = _pending(results_dir).get(exp.name)
        lines += ["No result of this experiment is committed: the numbers below are the paper's "
                  "only." + (f" {R.md_escape(reason)}" if reason else ""), "",
                  "To produce one and publish it:", "",
                  "```bash", f"python -m experiments run {exp.name}",
                  f"python -m experiments report --publish results/{exp.name}/TIME-seed0",
                  RENDER_COMMAND, "```", ""]
        lines += R.metrics_table({}, exp.paper_numbers)
        lines += ["## Command", "", "```bash", f"python -m experiments run {exp.name}", "```", "",
                  "## Config", "", "The experiment's default configuration (`--set KEY=VALUE` "
                  "overrides any entry):", ""]
        return "\n".join(lines + _json_block(config_dict(exp.get_config(smoke=False))))
    published, config, metrics = result
    smoke = bool(config.get("smoke"))
    wall = published.get("wall_time_s")
    lines += [f"From the run published in `{_label(folder)}/`: commit "
              f"{R.md_code(published.get('commit'))}, {R.md_escape(published.get('hardware'))}, "
              f"{R.md_escape(published.get('date'))}, wall time "
              f"{R.md_escape(R._fmt(wall))} s"
              + (f" ({R.md_escape(published['note'])})" if published.get("note") else "") + ".",
              ""]
    if smoke:
        lines += ["**Smoke run**: a tiny configuration; its numbers are not comparable with the "
                  "paper's.", ""]
    rows = R.headline_rows(metrics, exp.paper_numbers, smoke)
    lines += ["### Headline", "", "The metrics the paper's values name (else the first few):", "",
              "| metric | ours | paper |", "|---|---|---|"]
    lines += [f"| {R.md_escape(k)} | {R.md_escape(ours)} | {paper} |" for k, ours, paper in rows]
    lines += ["", "### Every metric", ""]
    lines += R.metrics_table(metrics, exp.paper_numbers, smoke)
    lines += R.text_metrics(metrics)
    lines += R.tables_and_figures(exp, folder, docs_dir, level=3)
    lines += [f"- not published: {R.md_escape(s)}" for s in published.get("skipped", [])]
    if published.get("skipped"):
        lines.append("")
    lines += ["## Command", "", "```bash", published.get("command") or
              f"python -m experiments run {exp.name}", "```", "",
              "## Config", "", "The configuration of that run (the experiment's default with the "
              "command's `--set` overrides; `--set KEY=VALUE` overrides any entry):", ""]
    return "\n".join(lines + _json_block(config.get("config", {})))


def _table(exps, results_dir: Path, link) -> list[str]:
    lines = ["| experiment | reproduces | metric | ours | paper |", "|---|---|---|---|---|"]
    for exp in exps:
        metric, ours, paper = headline(exp, load_result(results_dir, exp.name))
        lines.append(f"| [{exp.name}]({link(exp)}) | {exp.paper}, {exp.figure} | "
                     f"{R.md_escape(metric)} | {R.md_escape(ours) or '(not run)'} | {paper} |")
    return lines


def render_index(exps, results_dir: Path, docs_dir: Path) -> str:
    """``docs_dir/index.md``: one row per experiment, linked to its page, and the toctree."""
    lines = ["# Experiments", "",
             f"<!-- rendered by `{RENDER_COMMAND}` -->", "",
             "Each registered experiment, what it reproduces and its headline number beside the "
             f"paper's, from the results committed in `{_label(results_dir)}/` (\"(not run)\": "
             "none is committed; its page gives the command). Every page is rendered from those "
             "files by the report's own code.", ""]
    lines += _table(exps, results_dir, lambda e: f"{e.name}.md")
    lines += ["", "```{toctree}", ":hidden:", ":maxdepth: 1", ""]
    lines += [e.name for e in exps] + ["```"]
    return "\n".join(lines) + "\n"


def render_readme_block(exps, results_dir: Path, docs_dir: Path, readme: Path) -> list[str]:
    """The README's table of experiments, its lines between the markers included."""
    rel = os.path.relpath(Path(docs_dir), Path(readme).parent).replace(os.sep, "/")
    return [README_START, *_table(exps, results_dir, lambda e: f"{rel}/{e.name}.md"), README_END]


def with_readme_block(text: str, block: list[str], readme: Path) -> str:
    if README_START not in text or README_END not in text:
        raise ValueError(f"{readme} has no {README_START} ... {README_END} markers for the table "
                         "of experiments")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    return head + "\n".join(block) + tail


def render_all(docs_dir: Path = DOCS_DIR, results_dir: Path = RESULTS_DIR,
               readme: Path | None = None) -> dict[Path, str]:
    """Every rendered file (path -> text): the pages, the index and, with ``readme``, the README
    with its table replaced."""
    from experiments.registry import list_experiments

    docs_dir, exps = Path(docs_dir), list_experiments()
    out = {docs_dir / f"{e.name}.md": render_page(e, results_dir, docs_dir).rstrip() + "\n"
           for e in exps}
    out[docs_dir / "index.md"] = render_index(exps, results_dir, docs_dir)
    if readme is not None:
        block = render_readme_block(exps, results_dir, docs_dir, readme)
        out[Path(readme)] = with_readme_block(Path(readme).read_text(), block, readme)
    return out


def write_docs(docs_dir: Path = DOCS_DIR, results_dir: Path = RESULTS_DIR,
               readme: Path | None = None) -> list[Path]:
    """Render (:func:`render_all`) and write the files that changed; returns them."""
    changed = []
    for path, text in render_all(docs_dir, results_dir, readme).items():
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(path)
    return changed


# --- command line ----------------------------------------------------------------------------


def add_report_arguments(report) -> None:
    """``report``'s options for publishing runs and rendering the pages."""
    report.add_argument("--publish", action="store_true",
                        help="copy the finished RUN_DIRs (metrics, config, figures, tables, with "
                             "command, commit, hardware, date) into --results-dir/<name>/")
    report.add_argument("--allow-smoke", action="store_true", help="let --publish take a smoke run")
    report.add_argument("--note", default=None,
                        help="with --publish: a line shown beside the run on its page (e.g. the "
                             "machine's load)")
    report.add_argument("--docs", metavar="DIR", default=None,
                        help="render one page per experiment, and DIR/index.md, from "
                             "--results-dir (docs/experiments is the site's)")
    report.add_argument("--results-dir", default=str(RESULTS_DIR),
                        help=f"published results (default {RESULTS_DIR})")
    report.add_argument("--readme", default=None,
                        help="with --docs: also render the table of experiments in this README")


def report_command(args) -> int:
    """``python -m experiments report``: publish runs, render the pages, or write the report."""
    from experiments.harness.runner import hardware

    if args.publish:
        if not args.runs:
            raise ValueError("--publish needs the run directories to publish (report --publish "
                             "RUN_DIR ...)")
        for run_dir in args.runs:
            dest = publish(Path(run_dir), Path(args.results_dir), allow_smoke=args.allow_smoke,
                           note=args.note)
            print(f"published {run_dir} to {dest}")
        if not args.docs:
            print(f"render the pages with: {RENDER_COMMAND}")
    if args.docs:
        changed = write_docs(Path(args.docs), Path(args.results_dir),
                             Path(args.readme) if args.readme else None)
        print(f"rendered {args.docs}: {len(changed)} files changed"
              + "".join(f"\n  {p}" for p in changed))
    if args.publish or args.docs:
        return 0
    report = Path(args.report) if args.report else Path(args.out) / "REPORT-runs.md"
    header = ["# Report of finished runs", "",
              f"Command: `python -m experiments report {' '.join(map(str, args.runs))}`".rstrip()
              + "  ", f"Written on: {hardware()}, {time.strftime('%Y-%m-%d %H:%M')}  ",
              "Each section names the command of its run; wall times and hardware are the run's. "
              + ("" if args.runs else "Each experiment's newest successful run is reported; "
                 "failed runs newer than it are listed apart."), ""]
    path, n, failed = R.report_runs(report, header, [Path(r) for r in args.runs] or None,
                                    root=Path(args.out), include_smoke=args.include_smoke)
    print(f"wrote {path} ({n} runs" + (f", {len(failed)} failed or unreadable" if failed else "")
          + ")")
    for name, _, reason in failed:  # (exit status 1: the report lists them as FAILED rows)
        print(f"FAILED {name}: {reason}", file=sys.stderr)
    return 1 if failed else 0
