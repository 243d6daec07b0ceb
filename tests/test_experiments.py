"""Every registered experiment smoke-runs from the CLI, and no experiment script escapes that."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from experiments.registry import list_experiments
from tests.helpers import require_data

EXPERIMENTS = {e.name: e for e in list_experiments()}

REPO = Path(__file__).resolve().parents[1]
NOT_EXPERIMENTS = {"__init__.py", "__main__.py", "registry.py"}


def _cli(*args, cwd=REPO, timeout=300):
    return subprocess.run([sys.executable, "-m", "experiments", *args], cwd=cwd, timeout=timeout,
                          capture_output=True, text=True)


@pytest.mark.experiments
@pytest.mark.parametrize("name", [e.name for e in list_experiments()])
def test_smoke_run_from_cli(name, tmp_path):
    require_data(*EXPERIMENTS[name].data)
    proc = _cli("run", name, "--smoke", "--no-progress", "--device", "cpu", "--out",
                str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / name).iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["wall_time_s"] > 0
    assert not metrics.get("failed_fits"), "an experiment swallowed a failed fit (see run.log)"
    assert (run_dir / "config.json").is_file() and (run_dir / "run.log").is_file()
    assert list(run_dir.glob("*.png")), "an experiment writes at least one figure"


def test_every_experiment_script_is_registered():
    """Guard: an experiment module that registers nothing would escape the smoke tests above."""
    registered = {e.module for e in list_experiments()}
    for path in sorted((REPO / "experiments").glob("*.py")):
        if path.name in NOT_EXPERIMENTS:
            continue
        module = f"experiments.{path.stem}"
        assert module in registered, (
            f"{path} registers no experiment (@register_experiment), so it has no smoke test")
        tree = ast.parse(path.read_text())
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert {"get_config", "run"} <= names, f"{path} must define get_config() and run()"
        assert ast.get_docstring(tree), f"{path} needs a docstring (paper, figure, time)"


def test_cli_list_and_pairs():
    proc = _cli("list")
    assert proc.returncode == 0, proc.stderr
    assert "blundell-regression" in proc.stdout and "Fig. 5" in proc.stdout
    proc = _cli("pairs")
    assert proc.returncode == 0, proc.stderr
    assert "mean-field" in proc.stdout and "deterministic" in proc.stdout


def test_cli_bad_override_is_a_clear_error(tmp_path):
    proc = _cli("run", "blundell-regression", "--smoke", "--out", str(tmp_path),
                "--set", "bbb.fit.epochz=3")
    assert proc.returncode == 2
    assert "epochz" in proc.stderr and "epochs" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_unknown_experiment(tmp_path):
    proc = _cli("run", "blundel-regression", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert "blundell-regression" in proc.stderr  # the close match is suggested


@pytest.mark.slow  # a second smoke run of every experiment: the default suite runs each once
@pytest.mark.experiments
def test_reproduce_smoke_writes_a_report(tmp_path):
    proc = _cli("reproduce", "--smoke", "--no-progress", "--device", "cpu", "--out",
                str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (tmp_path / "REPORT-smoke.md").read_text()
    assert "| experiment | figure | metric | ours | paper | wall time (s) |" in report
    for exp in list_experiments():
        assert f"| {exp.name} |" in report
        assert f"## {exp.name}: " in report  # its section: command, metrics, tables, figures
    assert "FAILED" not in report
    assert report.count("- command: `python -m experiments run ") == len(list_experiments())
    assert "![" in report


def test_report_from_finished_runs(tmp_path):
    """``report`` renders runs already made: explicit directories, or the newest non-smoke run of
    each experiment (a smoke run counts only with --include-smoke)."""
    proc = _cli("run", "blundell-regression", "--smoke", "--no-progress", "--device", "cpu",
                "--out", str(tmp_path), "--seed", "3", "--set", "bbb.fit.epochs=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "blundell-regression").iterdir()
    assert run_dir.name.endswith("-seed3")
    config = json.loads((run_dir / "config.json").read_text())
    assert config["command"] == ("python -m experiments run blundell-regression --smoke "
                                 "--device cpu --seed 3 --no-progress --set bbb.fit.epochs=2")
    assert config["seed"] == 3 and config["config"]["bbb"]["fit"]["epochs"] == 2
    out = tmp_path / "rep" / "R.md"
    proc = _cli("report", str(run_dir), "--report", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert "## blundell-regression: " in text and config["command"] in text
    assert "| metric | ours | paper |" in text
    figure = next(run_dir.glob("*.png"))
    assert f"({Path('..') / run_dir.name / figure.name})" not in text  # relative to the report
    assert f"]({Path('..') / 'blundell-regression' / run_dir.name / figure.name})" in text

    proc = _cli("report", "--out", str(tmp_path))  # only a smoke run there
    assert proc.returncode == 2 and "no finished runs" in proc.stderr
    proc = _cli("report", "--out", str(tmp_path), "--include-smoke")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "## blundell-regression: " in (tmp_path / "REPORT-runs.md").read_text()

    (run_dir / "metrics.json").unlink()  # an unfinished run is named, not skipped silently
    proc = _cli("report", str(run_dir), "--report", str(out))
    assert proc.returncode == 1 and "did not finish" in proc.stderr
    assert "| FAILED |" in out.read_text() and "did not finish" in out.read_text()


@pytest.mark.parametrize("device, match", [
    ("tpu", "is not a torch device"),
    ("mps", "the zoo runs on 'cpu' or 'cuda"),
    pytest.param("cuda", "CUDA is not available", marks=pytest.mark.skipif(
        __import__("torch").cuda.is_available(), reason="CUDA is available here")),
])
def test_cli_bad_device_is_one_line(device, match, tmp_path):
    """A device the zoo cannot use is one line on stderr, exit 2, no traceback and no run folder."""
    proc = _cli("run", "blundell-regression", "--smoke", "--device", device, "--out",
                str(tmp_path))
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and match in lines[0] and device in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "blundell-regression").exists()



def _stable(metrics: dict) -> dict:
    """metrics.json without what legitimately differs between two runs: times, hardware, paths."""
    return {k: v for k, v in metrics.items()
            if k not in ("wall_time_s", "hardware", "figure")
            and not k.endswith(("seconds", "_s", "_time")) and "seconds" not in k}


@pytest.mark.experiments
@pytest.mark.parametrize("name", ["blundell-regression", "weight-space-gp", "iwae-nll"])
def test_same_command_twice_gives_the_same_metrics(name, tmp_path):
    """One experiment of each family (BNN, GP, VAE): the same command and seed give identical
    metrics, module initialisation included, in a folder named after the seed."""
    from experiments.__main__ import main

    require_data(*EXPERIMENTS[name].data)
    runs = []
    for out in ("a", "b"):  # in this process (the CLI's own path, minus an interpreter start-up)
        torch.manual_seed(int(out == "b"))  # different leftovers in the global stream each time
        code = main(["run", name, "--smoke", "--no-progress", "--device", "cpu", "--seed", "3",
                     "--threads", str(torch.get_num_threads()), "--out", str(tmp_path / out)])
        assert code == 0
        (run_dir,) = (tmp_path / out / name).iterdir()
        assert run_dir.name.endswith("-seed3")
        runs.append(_stable(json.loads((run_dir / "metrics.json").read_text())))
    assert runs[0] == runs[1]
    assert any(isinstance(v, float) for v in runs[0].values())


def test_threads_default_and_flag(tmp_path, monkeypatch):
    """--threads sets torch's CPU threads (recorded in config.json); the default is one thread on
    machines with up to 4 cores unless $OMP_NUM_THREADS is set."""
    import experiments.__main__ as cli

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cli.os, "cpu_count", lambda: 2)
    assert cli.default_threads() == 1
    monkeypatch.setattr(cli.os, "cpu_count", lambda: 16)
    assert cli.default_threads() is None
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setattr(cli.os, "cpu_count", lambda: 2)
    assert cli.default_threads() is None
    proc = _cli("run", "blundell-regression", "--smoke", "--no-progress", "--device", "cpu",
                "--threads", "2", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = (tmp_path / "blundell-regression").iterdir()
    assert json.loads((run_dir / "config.json").read_text())["threads"] == 2
    proc = _cli("run", "blundell-regression", "--smoke", "--threads", "0", "--out", str(tmp_path))
    assert proc.returncode != 0 and "--threads must be >= 1" in proc.stderr


def test_a_users_own_models_and_guides_do_not_shadow_the_zoo(tmp_path):
    """Run from a folder holding its own models.py and guides.py: the CLI (pairs, an experiment's
    smoke run, fit) still finds the zoo's packages; a script that imported its own ``models``
    first gets an error that says what to do."""
    import os

    (tmp_path / "models.py").write_text("raise RuntimeError('the user models.py was imported')\n")
    (tmp_path / "guides.py").write_text("X = 1\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    for args in (["pairs"],
                 ["run", "blundell-regression", "--smoke", "--no-progress", "--device", "cpu",
                  "--out", "runs"],
                 ["fit", "--model", "bnn", "--guide", "mean-field", "--data", "table.csv",
                  "--target", "y", "--set", "fit.epochs=2", "--device", "cpu", "--no-progress",
                  "--out", "runs"]):
        if args[0] == "fit":
            (tmp_path / "table.csv").write_text(
                "a,y\n" + "".join(f"{i / 10},{i / 5}\n" for i in range(40)))
        proc = subprocess.run([sys.executable, "-m", "experiments", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (args[0], proc.stderr[-2000:])
    assert (tmp_path / "runs" / "blundell-regression").is_dir()
    assert (tmp_path / "runs" / "fit").is_dir()
    (tmp_path / "models.py").write_text("MINE = True\n")
    proc = subprocess.run([sys.executable, "-c", "import models, experiments"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "was imported before the zoo" in proc.stderr and "rename your module" in proc.stderr
