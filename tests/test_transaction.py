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
