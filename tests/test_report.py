"""``python -m experiments report`` on run folders as they are found: the newest successful run of
each experiment with newer failures listed apart, a bad file as one FAILED row, and the text of a
run folder escaped, its symlinks out of the folder not followed (issue 25)."""

from __future__ import annotations

import json
from pathlib import Path

import experiments.__main__ as cli
from experiments.harness import report as R


def _run(root: Path, name: str, stamp: str, metrics: dict | str | None, *, smoke=False,
         config: bool = True) -> Path:
    run_dir = root / name / f"{stamp}-seed0"
    run_dir.mkdir(parents=True)
    if config:
        (run_dir / "config.json").write_text(json.dumps({
            "experiment": name, "smoke": smoke, "command": f"python -m experiments run {name}",
            "config": {}}))
    if metrics is not None:
        (run_dir / "metrics.json").write_text(metrics if isinstance(metrics, str)
                                              else json.dumps(metrics))
    return run_dir


GOOD = {"status": "ok", "std_ratio_bbb": 7.5, "test_rmse_bbb": 0.1, "wall_time_s": 3.0,
        "hardware": "test CPU"}
FAILED = {"status": "failed", "error": "RuntimeError: boom", "wall_time_s": 1.0,
          "hardware": "test CPU"}


def _report(tmp_path, *args) -> tuple[int, str]:
    out = tmp_path / "REPORT.md"
    rc = cli.main(["report", "--out", str(tmp_path / "results"), "--report", str(out), *args])
    return rc, out.read_text() if out.is_file() else ""


def test_newest_successful_run_is_reported_and_newer_failures_listed(tmp_path):
    root = tmp_path / "results"
    good = _run(root, "blundell-regression", "20260101-000000", GOOD)
    bad = _run(root, "blundell-regression", "20260102-000000", FAILED)
    _run(root, "blundell-regression", "20260103-000000", None)  # unfinished: left out
    _run(root, "blundell-regression", "20250101-000000", FAILED)  # older than the good run
    assert R.latest_runs(root, ["blundell-regression"]) == [good]
    rc, text = _report(tmp_path)
    assert rc == 1  # the report is written; the exit status says a run failed
    assert f"- run: `{good}`" in text and "| std_ratio_bbb | 7.5 |" in text
    summary = text.split("\n## ", 1)[0]
    assert "| blundell-regression | Fig. 5 | std_ratio_bbb | 7.5 |" in summary
    assert "| blundell-regression | Fig. 5 | FAILED | RuntimeError: boom" in summary
    failed = text.split("## Failed or unreadable runs", 1)[1]
    assert str(bad) in failed and "20250101" not in text


def test_bad_files_are_failed_rows_and_the_rest_renders(tmp_path):
    root = tmp_path / "results"
    _run(root, "blundell-regression", "20260101-000000", GOOD)
    truncated = _run(root, "co2", "20260101-000000", '{"status": "ok", "rmse": 0.')
    no_config = _run(root, "nngp-limit", "20260101-000000", GOOD, config=False)
    not_object = _run(root, "weight-space-gp", "20260101-000000", "[1, 2]")
    rc, text = _report(tmp_path)
    assert rc == 1
    summary = text.split("\n## ", 1)[0]
    rows = [line for line in summary.splitlines() if "| FAILED |" in line]
    assert len(rows) == 3, rows
    assert any(f"{truncated / 'metrics.json'} is not valid JSON" in r for r in rows)
    assert any(f"{no_config / 'config.json'} is missing" in r for r in rows)
    assert any(f"{not_object / 'metrics.json'} holds a JSON list" in r for r in rows)
    assert "## blundell-regression: " in text and "| std_ratio_bbb | 7.5 |" in text
    # the same bad folders passed by name: one FAILED row each, the good one still reported
    good = next((root / "blundell-regression").iterdir())
    rc, text = _report(tmp_path, str(truncated), str(no_config), str(good))
    assert rc == 1 and text.count("| FAILED |") == 2 and "| std_ratio_bbb | 7.5 |" in text


def test_run_folder_text_is_escaped_and_symlinks_out_are_not_followed(tmp_path):
    root = tmp_path / "results"
    run_dir = _run(root, "blundell-regression", "20260101-000000",
                   {**GOOD, "note": "see <b>this</b> [link](http://x) | cell"})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("SECRET TABLE\n")
    (outside / "secret.png").write_bytes(b"\x89PNG not really")
    (run_dir / "stolen.md").symlink_to(outside / "secret.md")
    (run_dir / "stolen.png").symlink_to(outside / "secret.png")
    (run_dir / "own.md").write_text("# Table\n\n| a | b |\n|---|---|\n| <script>x</script> | "
                                    "![i](http://e/i.png) |\n")
    (run_dir / "inside.md").symlink_to(run_dir / "own.md")  # inside the folder: followed
    (run_dir / "a](http:evil) x.png").write_bytes(b"\x89PNG")
    rc, text = _report(tmp_path)
    assert rc == 0
    assert "SECRET" not in text and "secret.png" not in text
    assert "skipped `stolen.md`: a symlink pointing outside the run folder" in text
    assert "skipped `stolen.png`: a symlink pointing outside the run folder" in text
    assert "<script>" not in text and "&lt;script&gt;x&lt;/script&gt;" in text
    assert "!\\[i](http://e/i.png)" in text
    assert text.count("&lt;script&gt;") == 2  # own.md and the link to it
    assert "### Table" in text  # one level below the run's section
    fig = next(line for line in text.splitlines() if line.startswith("![blundell-regression: a"))
    assert fig.startswith("![blundell-regression: a\\](http:evil) x](")
    assert fig.endswith("/20260101-000000-seed0/a%5D%28http%3Aevil%29%20x.png)")
    assert "- see \\<b\\>this\\</b\\> \\[link\\](http://x) \\| cell" in text


def test_md_code_holds_backticks():
    assert R.md_code("a`b") == "``a`b``"
    assert R.md_code("`x") == "`` `x ``"
