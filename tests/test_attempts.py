"""A run folder keeps its good result: a failed --resume of a finished run does not overwrite
metrics.json, and every attempt is recorded in attempts.jsonl (issue 25, item 2)."""

import json

import pytest

from experiments.__main__ import main
from guides.base import ImplausibleSettingWarning


@pytest.mark.experiments
def test_a_failed_resume_of_a_finished_run_keeps_its_metrics(tmp_path):
    args = ["--smoke", "--no-progress", "--device", "cpu"]
    assert main(["run", "blundell-regression", *args, "--out", str(tmp_path)]) == 0
    (run,) = (tmp_path / "blundell-regression").iterdir()
    good = (run / "metrics.json").read_text()
    assert json.loads(good)["status"] == "ok"
    ckpt = next(run.rglob("checkpoint.pt"))
    data = bytearray(ckpt.read_bytes())
    data[-10] ^= 0xFF  # the checksum refuses it on resume
    ckpt.write_bytes(bytes(data))
    assert main(["run", "blundell-regression", "--resume", str(run), "--no-progress",
                 "--device", "cpu"]) == 2
    assert (run / "metrics.json").read_text() == good
    attempts = [json.loads(line) for line in (run / "attempts.jsonl").read_text().splitlines()]
    assert [a["status"] for a in attempts] == ["ok", "failed"]
    assert "corrupted" in attempts[1]["error"] and "--resume" in attempts[1]["command"]


@pytest.mark.experiments
def test_a_failed_first_run_still_says_failed(tmp_path):
    """A run with nothing good to keep: metrics.json says failed, as before."""
    with pytest.warns(ImplausibleSettingWarning, match=r"lr=1e\+06 is above the plausible range"):
        code = main(["run", "blundell-regression", "--smoke", "--no-progress", "--device", "cpu",
                     "--set", "bbb.fit.lr=1e6", "--out", str(tmp_path)])
    assert code == 2
    (run,) = (tmp_path / "blundell-regression").iterdir()
    assert json.loads((run / "metrics.json").read_text())["status"] == "failed"
    (attempt,) = [json.loads(x) for x in (run / "attempts.jsonl").read_text().splitlines()]
    assert attempt["status"] == "failed" and attempt["error"]
