"""CONTRIBUTING.md's pair checklist works as written: its code blocks, dropped into a copy of the
repository, register a pair that the CLI lists and the parametrised pair tests pick up."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- file: (?P<path>\S+) -->\s*```python\n(?P<code>.*?)```", re.S)


def _blocks() -> dict[str, str]:
    return {m["path"]: m["code"] for m in BLOCK.finditer((REPO / "CONTRIBUTING.md").read_text())}


def test_contributing_has_the_three_files():
    assert set(_blocks()) == {"models/toy_student.py", "guides/toy_student.py",
                              "tests/test_toy_student.py"}


def test_documented_pair_is_picked_up_by_cli_and_pair_tests(tmp_path):
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("models", "guides", "experiments", "tests", "setup.cfg"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, copy / name)
    for rel, code in _blocks().items():
        (copy / rel).write_text(code)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(copy), *filter(None, [os.environ.get("PYTHONPATH")])])}

    proc = subprocess.run([sys.executable, "-m", "experiments", "pairs"], cwd=copy, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"toy-student\s+toy-normal", proc.stdout), proc.stdout

    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_pairs.py", "tests/test_toy_student.py", "tests/test_device_guard.py",
         "-k", "toy", "-rA"],
        cwd=copy, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    # the registry-parametrised suite generated a class for the new pair, and it passed
    assert "TestPair_toy_student_toy_normal::test_one_step_gives_every_parameter_a_gradient" \
        in proc.stdout
    assert "TestToyStudent::test_posterior_mean_moves_towards_the_truth" in proc.stdout
    assert "test_pair_follows_to[toy-student-toy-normal]" in proc.stdout  # the device guard
    assert " failed" not in proc.stdout
