"""What a run shows people: progress named per fit and quiet when stderr is redirected, run.log's
last line, the report's headline table and its smoke marks, markers on short curves, log ticks."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from experiments.engine import loop as L
from experiments.engine.settings import FitConfig
from experiments.harness import plotting as P
from experiments.harness import report as R
from experiments.harness.spec import PairSpec, RunContext, train_pair

REPO = Path(__file__).resolve().parents[1]


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "experiments", *args], cwd=REPO,
                          timeout=timeout, capture_output=True, text=True)


@pytest.fixture(scope="module")
def redirected_run(tmp_path_factory):
    """One smoke run with progress on and stderr a pipe (not a terminal), 300 epochs per arm:
    before, every epoch redrew a bar (about 70 bytes each, ~60 KB here)."""
    out = tmp_path_factory.mktemp("runs")
    proc = _cli("run", "blundell-regression", "--smoke", "--device", "cpu", "--out", str(out),
                "--set", "bbb.fit.epochs=300", "--set", "dropout.fit.epochs=300",
                "--set", "plain.fit.epochs=300")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (out / "blundell-regression").iterdir()
    return proc, run_dir


@pytest.mark.experiments
def test_redirected_progress_is_a_few_lines(redirected_run):
    proc, _ = redirected_run
    assert len(proc.stderr.encode()) < 4000, proc.stderr[-2000:]
    assert "\r" not in proc.stderr and "%|" not in proc.stderr  # no bar redraws
    # each fit is named by its arm and its index in the run, and says how it ended
    for i, arm in enumerate(("bbb", "dropout", "plain"), 1):
        assert f"{arm} #{i}: epoch 1/300" in proc.stderr
        assert f"{arm} #{i}: done after epoch 300/300" in proc.stderr


@pytest.mark.experiments
def test_run_log_ends_with_the_completion_line(redirected_run):
    _, run_dir = redirected_run
    last = (run_dir / "run.log").read_text().splitlines()[-1]
    assert "finished blundell-regression in " in last and "metrics.json written" in last


@pytest.mark.experiments
def test_report_of_a_smoke_run_marks_it(redirected_run, tmp_path):
    _, run_dir = redirected_run
    out = tmp_path / "R.md"
    proc = _cli("report", str(run_dir), "--report", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert "(**smoke run**: a tiny configuration, not comparable with the published" in text
    # the numbers beside a published value carry the mark; the others do not
    row = next(line for line in text.splitlines() if line.startswith("| std_ratio_bbb |"))
    assert R.SMOKE_MARK in row
    row = next(line for line in text.splitlines() if line.startswith("| test_rmse_bbb |"))
    assert R.SMOKE_MARK not in row


def test_headline_rows():
    metrics = {"status": "ok", "a": 1.0, "b": 2.0, "c_R10": 0.5, "c_R50": 0.25, "d": 4,
               "e": 5.0, "wall_time_s": 3.0, "figure": ["x.png"]}
    rows = R.headline_rows(metrics, {"a": 1.1, "c": "R^-1/2"})
    assert rows == [("a", "1", "1.1"), ("c_R10", "0.5", "R^-1/2"), ("c_R50", "0.25", "(as above)")]
    rows = R.headline_rows(metrics, {"a": 1.1, "missing": 3}, smoke=True)
    assert rows == [("a", f"1 ({R.SMOKE_MARK})", "1.1")]  # unmeasured ones: the section only
    # no published value names a measured metric: the first few metrics, then the published ones
    rows = R.headline_rows(metrics, {"figure": "qualitative"}, smoke=True)
    assert rows == [("a", "1", ""), ("b", "2", ""), ("c_R10", "0.5", ""),
                    ("figure", "", "qualitative")]
    exp = SimpleNamespace(name="exp", figure="Fig. 1", paper_numbers={"b": 2.1})
    assert R.summary_rows(exp, metrics, 12.34, smoke=True) == [
        f"| exp | Fig. 1 | b | 2 ({R.SMOKE_MARK}) | 2.1 | 12.3 |"]
    # every metric stays in the section's table
    assert len(R.metric_rows(metrics, {})) == 6


def test_fit_names_itself_and_logs_lines_when_stderr_is_not_a_terminal(tmp_path, caplog,
                                                                       monkeypatch):
    x = torch.linspace(-1, 1, 16).unsqueeze(-1)
    spec = PairSpec("mlp", "deterministic", model_cfg={"widths": [4]},
                    fit=FitConfig(epochs=3, batch_size=16, checkpoint=False, tensorboard=False))
    ctx = RunContext(seed=0, device="cpu", out_dir=tmp_path, progress=True)
    monkeypatch.setattr(L, "PROGRESS_LOG_EVERY_S", 0.0)  # a line after every epoch
    with caplog.at_level(logging.INFO, logger="experiments.engine.training"):
        states = [train_pair(spec, (x, x[:, 0]), ctx, name, model_args={"in_features": 1})[2]
                  for name in ("one", "two")]
    assert [s.run.desc for s in states] == ["one #1", "two #2"]
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(",")[0] for line in lines] == [
        "one #1: epoch 1/3", "one #1: epoch 2/3", "one #1: done after epoch 3/3",
        "two #2: epoch 1/3", "two #2: epoch 2/3", "two #2: done after epoch 3/3"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="experiments.engine.training"):
        train_pair(spec, (x, x[:, 0]), RunContext(seed=0, device="cpu", out_dir=tmp_path,
                                                  progress=False), "quiet",
                   model_args={"in_features": 1})
    assert [r.getMessage().split(",")[0] for r in caplog.records] == [
        "quiet #1: epoch 1/3", "quiet #1: epoch 2/3",
        "quiet #1: done after epoch 3/3"]  # --no-progress: no bar, the same lines


def test_failed_run_log_ends_with_the_failure(tmp_path):
    proc = _cli("run", "blundell-regression", "--smoke", "--no-progress", "--device", "cpu",
                "--out", str(tmp_path), "--set", "data.num_train=0")
    assert proc.returncode != 0
    (run_dir,) = (tmp_path / "blundell-regression").iterdir()
    error = json.loads((run_dir / "metrics.json").read_text())["error"]
    last = (run_dir / "run.log").read_text().splitlines()[-1]
    assert "blundell-regression failed after" in last and error.splitlines()[0] in last


def test_short_curves_get_markers():
    fig, ax = P.new_figure()
    try:
        (one,) = P.plot_curve(ax, [1], [0.5])
        (styled,) = P.plot_curve(ax, [1, 2], [0.5, 0.4], "s:")
        (plain,) = P.plot_curve(ax, [1, 2], [0.5, 0.4], marker=None)
        (long,) = P.plot_curve(ax, list(range(100)), list(range(100)))
        assert one.get_marker() == "o" and styled.get_marker() == "s"
        assert plain.get_marker() in ("None", None) and long.get_marker() in ("None", None)
    finally:
        P.plt.close(fig)


@pytest.mark.parametrize("lo, hi, expected", [
    (300, 600, None),  # under a decade: labels all the same (matplotlib's fallback ticks)
    (10, 1000, ["10", "20", "50", "100", "200", "500", "1k"]),
    (6e4, 6e5, ["100k", "200k", "500k"]),
    (0.02, 1.0, ["0.02", "0.05", "0.1", "0.2", "0.5", "1"]),
])
def test_log_ticks_label_short_ranges(lo, hi, expected):
    fig, ax = P.new_figure()
    try:
        ax.loglog([lo, hi], [lo, hi])
        P.log_ticks(ax, "x")
        P.log_ticks(ax, "y")
        fig.canvas.draw()
        for axis in (ax.xaxis, ax.yaxis):
            lo_, hi_ = sorted(axis.get_view_interval())
            labels = [t.get_text() for t in axis.get_ticklabels()
                      if lo_ <= t.get_position()[axis is ax.yaxis] <= hi_]
            assert len([t for t in labels if t]) >= 2, labels
            if expected is not None:
                assert labels == expected
            assert not [t.get_text() for t in axis.get_ticklabels(minor=True) if t.get_text()]
    finally:
        P.plt.close(fig)


def test_desc_is_the_runs_not_an_override():
    from experiments.harness.spec import ConfigError, apply_overrides
    from experiments.registry import get_experiment

    config = get_experiment("blundell-regression").get_config(smoke=True)
    with pytest.raises(ConfigError, match="desc is the run's"):
        apply_overrides(config, ["bbb.fit.desc=mine"])


def test_reproduce_summary_holds_headlines_marked_smoke(tmp_path, monkeypatch):
    """``reproduce``'s summary table (here of one experiment): its headline metrics only, marked
    as a smoke run's; every metric stays in its section."""
    import experiments.__main__ as cli
    import experiments.registry as registry

    exp = registry.get_experiment("blundell-regression")
    monkeypatch.setattr(registry, "list_experiments", lambda: [exp])
    args = cli.build_parser().parse_args(["reproduce", "--smoke", "--no-progress", "--device",
                                          "cpu", "--out", str(tmp_path)])
    assert cli.cmd_reproduce(args) == 0
    text = (tmp_path / "REPORT-smoke.md").read_text()
    summary, sections = text.split("\n## ", 1)
    rows = [line for line in summary.splitlines() if line.startswith("| blundell") or
            line.startswith("|  |")]
    assert [row.split(" | ")[2] for row in rows] == ["std_ratio_bbb", "std_ratio_plain"]
    assert all(R.SMOKE_MARK in row for row in rows)
    assert "| test_rmse_bbb |" in sections and "| test_rmse_bbb |" not in summary
