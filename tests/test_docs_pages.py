"""The experiment pages (docs/experiments/) and the README's table of experiments are what
``python -m experiments report --docs`` renders from the committed results (docs/results/), so
a stale page fails here; ``report --publish`` copies a run and refuses what must not be shown."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import experiments.__main__ as cli
from experiments.harness import pages
from experiments.harness import report as R

REPO = Path(__file__).resolve().parents[1]


def test_committed_pages_are_the_rendered_ones():
    rendered = pages.render_all(REPO / pages.DOCS_DIR, REPO / pages.RESULTS_DIR,
                                readme=REPO / "README.md")
    stale = [str(p.relative_to(REPO)) for p, text in rendered.items()
             if not p.is_file() or p.read_text() != text]
    assert not stale, (f"stale or missing: {stale}; re-render with `{pages.RENDER_COMMAND}` "
                       "(never edit them by hand)")
    # every page is in the site's toctree, and every published figure is PNG and small
    assert "experiments/index" in (REPO / "docs" / "index.rst").read_text()
    for fig in (REPO / pages.RESULTS_DIR).glob("*/*"):
        if fig.parent.name in rendered and fig.suffix not in (".json", ".md"):
            assert fig.suffix == ".png" and fig.stat().st_size <= pages.MAX_FIGURE_BYTES, fig


def test_pages_without_results_say_so_and_invent_no_number(tmp_path):
    docs = tmp_path / "docs"
    rendered = pages.render_all(docs, tmp_path / "no-results")
    page = rendered[docs / "co2.md"]
    assert "No result of this experiment is committed" in page
    assert "python -m experiments run co2" in page
    assert "| exact_log_marginal_likelihood |  | GPML -108.5 (their data and cut) |" in page
    assert "(not run)" in rendered[docs / "index.md"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    proc = subprocess.run([sys.executable, "-m", "experiments", "run", "nngp-limit", "--smoke",
                           "--device", "cpu", "--no-progress", "--threads", "1", "--out",
                           str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (out / "nngp-limit").iterdir()
    return run_dir


@pytest.mark.experiments
def test_publish_refuses_a_smoke_run_in_one_line(smoke_run, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "experiments", "report", "--publish",
                           str(smoke_run), "--results-dir", str(tmp_path / "results")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {smoke_run} is a smoke run (a tiny configuration, not comparable with the paper); "
        "pass --allow-smoke to publish it anyway"]
    assert not (tmp_path / "results").exists()


@pytest.mark.experiments
def test_published_smoke_run_renders_a_page_with_its_numbers(smoke_run, tmp_path):
    results, docs, readme = tmp_path / "results", tmp_path / "docs", tmp_path / "README.md"
    readme.write_text(f"intro\n{pages.README_START}\nSTALE-ROW\n{pages.README_END}\nend\n")
    assert cli.main(["report", "--publish", str(smoke_run), "--allow-smoke", "--results-dir",
                     str(results), "--docs", str(docs), "--readme", str(readme)]) == 0
    published = json.loads((results / "nngp-limit" / pages.PUBLISHED).read_text())
    config = json.loads((smoke_run / "config.json").read_text())
    assert published["command"] == config["command"] and published["commit"] == config["commit"]
    assert published["smoke"] is True and published["figures"] == ["nngp_limit.png"]
    page = (docs / "nngp-limit.md").read_text()
    metrics = json.loads((smoke_run / "metrics.json").read_text())
    for key in ("ks_distance_H1", "cov_max_abs_err"):
        assert f"| {key} | {R._fmt(metrics[key])}" in page
    assert f"({R.SMOKE_MARK})" in page and "**Smoke run**" in page
    assert "![nngp-limit: nngp_limit](../results/nngp-limit/nngp_limit.png)" in page
    assert config["command"] in page
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("end\n") and "STALE-ROW" not in text
    assert "| [nngp-limit](docs/nngp-limit.md) |" in text
    # rendering again changes nothing
    assert pages.write_docs(docs, results, readme) == []


def test_publish_refuses_a_failed_run(tmp_path):
    run_dir = tmp_path / "co2" / "20260101-000000-seed0"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"experiment": "co2", "smoke": False}))
    (run_dir / "metrics.json").write_text(json.dumps({"status": "failed", "error": "boom"}))
    with pytest.raises(ValueError, match="the run did not succeed .*boom"):
        pages.publish(run_dir, tmp_path / "results")
    (run_dir / "metrics.json").write_text('{"status": "ok", ')
    with pytest.raises(ValueError, match="metrics.json is not valid JSON"):
        pages.publish(run_dir, tmp_path / "results")
    assert not (tmp_path / "results").exists()


def test_large_figures_are_reduced(tmp_path):
    import numpy as np
    from PIL import Image

    src = tmp_path / "big.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (600, 800, 3), dtype=np.uint8)).save(src)
    assert src.stat().st_size > pages.MAX_FIGURE_BYTES
    assert pages._small_png(src, tmp_path / "small.png")
    assert (tmp_path / "small.png").stat().st_size <= pages.MAX_FIGURE_BYTES
