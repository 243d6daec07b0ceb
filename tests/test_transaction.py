"""A run is a transaction (issue 25): one writer per run folder, and files verified on read."""

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from experiments.engine import manifest
from experiments.harness.lock import LOCK_NAME, RunLock, RunLockedError
from experiments.harness.runner import write_json


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    with RunLock(tmp_path, "python -m experiments run co2"):
        holder = json.loads((tmp_path / LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(RunLockedError, match=rf"PID {os.getpid()} on .*run co2"):
            RunLock(tmp_path).acquire()
    assert not (tmp_path / LOCK_NAME).exists()
    with RunLock(tmp_path) as again:  # released: the next writer gets it, and nothing was stale
        assert again.took_over is None


def test_a_dead_holders_lock_is_taken_over_with_a_log_line(tmp_path, caplog):
    code = ("import sys, time; from experiments.harness.lock import RunLock\n"
            f"RunLock({str(tmp_path)!r}, 'the dead one').acquire(); print('held', flush=True)\n"
            "time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match="the dead one"):
            RunLock(tmp_path).acquire()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert (tmp_path / LOCK_NAME).exists()  # kill -9 left the file behind
    with caplog.at_level("WARNING", logger="experiments"), RunLock(tmp_path) as lock:
        assert lock.took_over["pid"] == child.pid
    assert f"stale lock of PID {child.pid}" in caplog.text


def test_lock_holders_exclude_each_other_across_processes(tmp_path):
    """Four processes take turns through one folder's lock; none sees another inside."""
    code = ("import os, sys, time; from pathlib import Path\n"
            "from experiments.harness.lock import RunLock, RunLockedError\n"
            f"d = Path({str(tmp_path)!r}); done = 0\n"
            "while done < 20:\n"
            "    try:\n"
            "        with RunLock(d):\n"
            "            inside = d / 'inside'\n"
            "            assert not inside.exists(), 'two writers at once'\n"
            "            inside.touch(); time.sleep(0.002); inside.unlink(); done += 1\n"
            "    except RunLockedError:\n"
            "        time.sleep(0.001)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]


def test_an_edited_json_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "standardization.json"
    write_json(path, {"y_mean": 1.5, "y_std": 2.0})
    assert manifest.read_json(path) == {"y_mean": 1.5, "y_std": 2.0}
    out = subprocess.run(["sha256sum", "-c", manifest.MANIFEST_NAME], cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 0 and "standardization.json: OK" in out.stdout
    path.write_text(path.read_text().replace("1.5", "11.5"))
    with pytest.raises(manifest.FileIntegrityError, match="standardization.json was changed"):
        manifest.read_json(path)


def test_a_truncated_json_file_names_the_file(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"status": "ok", "rmse": 0.')  # never recorded: a folder from before checksums
    with pytest.raises(manifest.FileIntegrityError, match="metrics.json is not valid JSON"):
        manifest.read_json(path)


def test_rewriting_a_file_updates_its_record(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"status": "failed"})
    write_json(tmp_path / "config.json", {"seed": 0})
    write_json(path, {"status": "ok"})
    assert manifest.read_json(path) == {"status": "ok"}
    assert manifest.read_json(tmp_path / "config.json") == {"seed": 0}
    assert len((tmp_path / manifest.MANIFEST_NAME).read_text().splitlines()) == 2


def _cli(*args, **kw):
    import sys

    return subprocess.run([sys.executable, "-m", "experiments", *args], capture_output=True,
                          text=True, **kw)


def test_an_edited_standardisation_is_refused_by_predict_in_one_line(tmp_path):
    """Editing y_mean in standardization.json would shift every prediction: predict refuses the
    folder, naming the file (issue 25)."""
    import numpy as np

    from tests.helpers import write_csv

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 2))
    data = write_csv(tmp_path / "t.csv", ["a", "b", "y"], np.column_stack([x, x.sum(1)]))
    fit = _cli("fit", "--model", "mlp", "--guide", "deterministic", "--data", str(data),
               "--target", "y", "--set", "fit.epochs=2", "--out", str(tmp_path / "runs"),
               "--no-progress")
    assert fit.returncode == 0, fit.stderr[-2000:]
    run = next((tmp_path / "runs").glob("*/*/standardization.json")).parent
    assert _cli("predict", str(run), "--data", str(data), "--out",
                str(tmp_path / "p.csv")).returncode == 0
    std = run / "standardization.json"
    saved = json.loads(std.read_text())
    std.write_text(json.dumps({**saved, "y_mean": saved["y_mean"] + 10}))
    out = _cli("predict", str(run), "--data", str(data), "--out", str(tmp_path / "q.csv"))
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "standardization.json was changed after the zoo wrote it" in out.stderr.splitlines()[-1]
    assert not (tmp_path / "q.csv").exists()


def test_a_second_resume_of_a_run_folder_is_refused_while_the_first_runs(tmp_path):
    """Two `--resume` of one folder at once: the second is refused, naming the first (its PID),
    and writes nothing into the folder (issue 25)."""
    import sys

    first = _cli("run", "blundell-regression", "--smoke", "--out", str(tmp_path), "--no-progress")
    assert first.returncode == 0, first.stderr[-2000:]
    run = next((tmp_path / "blundell-regression").iterdir())
    config = (run / "config.json").read_bytes()
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; from experiments.harness.lock import RunLock\n"
                               f"RunLock({str(run)!r}, 'the first resume').acquire()\n"
                               "print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        second = _cli("run", "blundell-regression", "--resume", str(run), "--set",
                      "bbb.fit.lr=5e-4", "--no-progress")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert f"is being written by PID {holder.pid}" in second.stderr
    assert "the first resume" in second.stderr
    assert (run / "config.json").read_bytes() == config  # nothing written by the refused one
