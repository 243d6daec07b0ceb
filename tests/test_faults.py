"""Nothing lost, nothing silently wrong: every model file the zoo writes (training checkpoint,
iwae-nll's vae.pt, blundell-mnist's best.pt, a fit run's model.pt) is checksummed, refused with a
clear error naming the file when corrupted, truncated, of another kind or a crafted pickle, and
written atomically; history.json is strict JSON."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import guides
import models
from experiments import blundell_mnist as bm
from experiments import blundell_pruning as bp
from experiments import iwae_nll
from experiments.__main__ import main
from experiments.engine import checkpoint as ck
from experiments.engine.checkpoint import CheckpointError, load_zoo_file, save_zoo_file
from experiments.engine.settings import FitConfig, RunOptions
from experiments.engine.state import restore
from experiments.engine.training import fit, setup
from experiments.harness import userpredict
from experiments.harness.spec import config_dict


def _pair():
    model = models.create_model("bnn", in_features=2, widths=(4,))
    return model, guides.create_guide("mean-field", model)


def _data(n=24):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 2, generator=g)
    return x, x.sum(-1).sin()


QUIET = {"epochs": 1, "batch_size": 8, "tensorboard": False}


def _checkpoint(d: Path) -> tuple[Path, callable]:
    model, guide = _pair()
    fit(model, guide, _data(), FitConfig.from_dict(QUIET), RunOptions(progress=False, out_dir=str(d)))

    def load(path):
        m, g = _pair()
        restore(setup(m, g, _data(), FitConfig.from_dict(QUIET)), path)

    return d / "checkpoint.pt", load


def _vae(d: Path):
    path = save_zoo_file(d / "vae.pt", "vae", {"model": {"w": torch.randn(5, 3)}, "guide": {},
                                               "config": {"vae": {}}}, {"experiment": "iwae-nll"})
    return path, lambda p: iwae_nll._load(str(p), None, "cpu")  # refused before the data is used


def _best(d: Path):
    spec = bm.default_arm("bbb-gaussian")
    model, guide = bm.build_pair(spec, 4, 1)
    guide(torch.zeros(2, 784), torch.zeros(2, dtype=torch.long))
    data = bm.MnistData(num_train=100, num_val=10, num_test=20)
    path = save_zoo_file(d / "best.pt", "best",
                         {"arm": "bbb-gaussian", "width": 4, "depth": 1, "spec": config_dict(spec),
                          "data": config_dict(data), "model": model.state_dict(),
                          "guide": guide.state_dict(), "best_epoch": 1},
                         {"experiment": "blundell-mnist"})
    return path, bp.load_guide


@pytest.fixture(scope="module")
def fit_run(tmp_path_factory):
    """A tiny ``python -m experiments fit`` run folder."""
    d = tmp_path_factory.mktemp("fit")
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (60, 2))
    rows = ["a,b,y"] + [f"{a},{b},{a - b}" for a, b in x]
    (d / "data.csv").write_text("\n".join(rows) + "\n")
    assert main(["fit", "--model", "bnn", "--guide", "mean-field", "--data", str(d / "data.csv"),
                 "--target", "y", "--set", "model_cfg.widths=[]", "--set", "fit.epochs=2",
                 "--device", "cpu", "--no-progress", "--out", str(d / "out")]) == 0
    (run,) = (d / "out" / "fit").iterdir()
    return run


KINDS = ["checkpoint", "vae", "best", "fit-model"]


@pytest.fixture(params=KINDS)
def zoo_file(request, tmp_path):
    """``(kind, path, load)``: a valid file of each kind in ``tmp_path`` and the zoo's own loader."""
    kind = request.param
    if kind == "fit-model":
        run = tmp_path / "run"
        shutil.copytree(request.getfixturevalue("fit_run"), run)
        return kind, run / "model.pt", lambda p: userpredict.load_run(p.parent)
    path, load = {"checkpoint": _checkpoint, "vae": _vae, "best": _best}[kind](tmp_path)
    return kind, path, load


def test_valid_files_load_and_carry_their_kind(zoo_file):
    kind, path, load = zoo_file
    if kind != "vae":  # a real vae.pt is loaded and evaluated in tests/test_vae.py
        load(path)
    _, meta = load_zoo_file(path, kind)
    assert meta["kind"] == kind and "torch" in meta["versions"]
    assert path.read_bytes().startswith(ck.MAGIC)


def test_a_flipped_byte_in_the_payload_is_a_checksum_error(zoo_file):
    _, path, load = zoo_file
    data = bytearray(path.read_bytes())
    for i in range(len(data) - 64, len(data)):  # the end of the payload
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"(?s)corrupted.*checksum") as err:
        load(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("keep", [0, 5, 20, 200, -10])
def test_a_truncated_file_is_a_clear_error(zoo_file, keep):
    _, path, load = zoo_file
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[:keep])
    with pytest.raises(CheckpointError, match="truncated") as err:
        load(path)
    assert str(path) in str(err.value)


def test_garbage_and_missing_files_are_clear_errors(zoo_file, tmp_path):
    _, path, load = zoo_file
    path.write_bytes(b"this is not a model file at all" * 10)
    with pytest.raises(CheckpointError, match="not a vbzoo file") as err:
        load(path)
    assert str(path) in str(err.value)
    with pytest.raises((CheckpointError, FileNotFoundError), match="nowhere"):
        load(tmp_path / "nowhere" / "missing.pt")


def test_a_file_of_another_kind_is_refused(zoo_file, tmp_path):
    kind, path, load = zoo_file
    other = "best" if kind != "best" else "vae"
    save_zoo_file(path, other, {"x": torch.zeros(1)}, {"experiment": "somewhere-else"})
    with pytest.raises(CheckpointError, match=f"is a '{other}' file \\(experiment somewhere-else\\),"
                                              f" not a '{kind}' file") as err:
        load(path)
    assert str(path) in str(err.value)


class _Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_crafted_pickle_is_refused_and_runs_nothing(zoo_file, tmp_path):
    _, path, load = zoo_file
    marker = tmp_path / "pwned"
    torch.save({"model": _Evil(str(marker)), "arm": "bbb-gaussian"}, path)
    with pytest.raises(CheckpointError, match="plain torch.save file") as err:
        load(path)
    assert str(path) in str(err.value) and not marker.exists()


def test_an_old_plain_torch_save_file_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "vae.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "guide": {}, "config": {}}, path)
    with pytest.raises(CheckpointError, match="(?s)before checksummed files.*re-run"):
        load_zoo_file(path, "vae")


def test_a_payload_that_is_not_plain_data_is_refused_at_save(tmp_path):
    with pytest.raises(CheckpointError, match="tensors and plain containers"):
        save_zoo_file(tmp_path / "x.pt", "vae", {"bad": _Evil(str(tmp_path / "m"))})
    assert list(tmp_path.iterdir()) == []


def _temps(folder: Path, name: str) -> list[Path]:
    return sorted(folder.glob(f".{name}.*.tmp"))


def test_a_failed_save_leaves_the_previous_file_and_no_temp(tmp_path, monkeypatch):
    path = save_zoo_file(tmp_path / "vae.pt", "vae", {"w": torch.ones(3)})
    before = path.read_bytes()

    def fail_after_writing(fd):  # the bytes are in the temp file, then the disk fails
        raise OSError("disk on fire")

    monkeypatch.setattr(ck.os, "fsync", fail_after_writing)
    with pytest.raises(OSError, match="disk on fire"):
        save_zoo_file(path, "vae", {"w": torch.zeros(3)})
    monkeypatch.undo()
    assert path.read_bytes() == before and _temps(tmp_path, "vae.pt") == []

    real_save = torch.save

    def save_then_fail(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        raise RuntimeError("killed mid-save")

    monkeypatch.setattr(torch, "save", save_then_fail)
    with pytest.raises(RuntimeError, match="killed mid-save"):
        save_zoo_file(path, "vae", {"w": torch.zeros(3)})
    monkeypatch.undo()
    assert path.read_bytes() == before and _temps(tmp_path, "vae.pt") == []
    assert torch.equal(load_zoo_file(path, "vae")[0]["w"], torch.ones(3))


def test_temps_of_a_crashed_save_are_removed_by_the_next(tmp_path):
    stale = tmp_path / ".checkpoint.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    other = tmp_path / ".other.pt.abc123.tmp"
    other.write_bytes(b"not ours")
    save_zoo_file(tmp_path / "checkpoint.pt", "checkpoint", {"epoch": 1})
    assert not stale.exists() and other.exists()
    assert _temps(tmp_path, "checkpoint.pt") == []


def test_history_json_is_strict_json_with_non_finite_values(tmp_path):
    from experiments.engine.writers import Writers

    history = [{"epoch": 1, "elbo": float("nan"), "kl": float("inf"), "ll": -float("inf"),
                "loss": 1.5}]
    writers = Writers(str(tmp_path), tensorboard=False)
    writers.write(history)

    def refuse(const):
        raise ValueError(f"bare {const} in history.json")

    rows = json.loads((tmp_path / "history.json").read_text(), parse_constant=refuse)
    assert rows == [{"epoch": 1, "elbo": "nan", "kl": "inf", "ll": "-inf", "loss": 1.5}]
    assert (tmp_path / "history.csv").read_text().splitlines()[0] == "epoch,elbo,kl,ll,loss"
    assert _temps(tmp_path, "history.json") == [] and _temps(tmp_path, "history.csv") == []
    assert math.isnan(history[0]["elbo"])  # the in-memory history is left as it was


# --- kill -9 mid-training, then --resume ------------------------------------------------------------
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    """A real CLI run of blundell-regression (smoke, its BbB arm long and checkpointed every
    epoch) is killed with SIGKILL mid-training and continued with --resume: metrics and final
    parameters equal an uninterrupted run's (max |Δparam| = 0); the arms not yet started are
    trained from scratch, the interrupted one from its last checkpoint."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from experiments.engine.checkpoint import load_checkpoint

    repo = Path(__file__).resolve().parents[1]
    args = ["run", "blundell-regression", "--smoke", "--no-progress", "--device", "cpu",
            "--threads", "1", "--set", "bbb.fit.epochs=120", "--set",
            "bbb.fit.checkpoint_every_s=0"]

    def cli(*extra, wait=True):
        cmd = [sys.executable, "-m", "experiments", *args, *extra]
        if wait:
            return subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=300)
        return subprocess.Popen(cmd, cwd=repo, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    full = cli("--out", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr[-2000:]

    proc = cli("--out", str(tmp_path / "killed"), wait=False)
    killed_at = None
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        ckpts = list((tmp_path / "killed").glob("blundell-regression/*/bbb/checkpoint.pt"))
        if ckpts:
            try:
                killed_at = load_checkpoint(ckpts[0])["epoch"]
            except Exception:  # being replaced right now: read it again
                killed_at = None
            if killed_at is not None and killed_at >= 15:
                os.kill(proc.pid, signal.SIGKILL)
                break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    (run_dir,) = (tmp_path / "killed" / "blundell-regression").iterdir()
    assert not (run_dir / "metrics.json").exists()

    resumed = subprocess.run([sys.executable, "-m", "experiments", "run", "blundell-regression",
                              "--resume", str(run_dir), "--device", "cpu", "--no-progress",
                              "--threads", "1"], cwd=repo, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "bbb: resumed from" in resumed.stderr

    (full_dir,) = (tmp_path / "full" / "blundell-regression").iterdir()

    def stable(d):
        m = json.loads((d / "metrics.json").read_text())
        return {k: v for k, v in m.items() if k not in ("wall_time_s", "hardware", "figure")}

    assert stable(run_dir) == stable(full_dir)
    for arm in ("bbb", "dropout", "plain"):
        a, b = load_checkpoint(run_dir / arm / "checkpoint.pt"), load_checkpoint(
            full_dir / arm / "checkpoint.pt")
        for part in ("model", "guide"):
            for key, value in a[part].items():
                assert torch.equal(value, b[part][key]), (arm, part, key)  # max |Δparam| = 0


def test_resume_refuses_other_settings_and_other_folders(tmp_path, capsys):
    from experiments.__main__ import main

    assert main(["run", "blundell-regression", "--smoke", "--no-progress", "--device", "cpu",
                 "--threads", str(torch.get_num_threads()), "--out", str(tmp_path)]) == 0
    (run_dir,) = (tmp_path / "blundell-regression").iterdir()
    capsys.readouterr()
    assert main(["run", "blundell-regression", "--resume", str(run_dir), "--seed", "4"]) == 2
    assert "--seed: recorded 0, given 4" in capsys.readouterr().err
    assert main(["run", "co2", "--resume", str(run_dir)]) == 2
    assert "is a run of 'blundell-regression', not 'co2'" in capsys.readouterr().err
    assert main(["run", "co2", "--resume", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


# --- SIGKILL while writing a file ------------------------------------------------------------------
_KILL_MID_WRITE = """
import os, signal, sys
sys.path.insert(0, {repo!r})
import torch
from experiments.engine import checkpoint as ck
from experiments.engine.writers import Writers

def killed(fd):  # the new bytes are in the temp file, not yet renamed: die here, as kill -9 would
    os.kill(os.getpid(), signal.SIGKILL)

ck.os.fsync = killed
if {what!r} == "checkpoint":
    ck.save_zoo_file({path!r}, "checkpoint", {{"epoch": 2, "w": torch.zeros(3)}})
else:
    Writers({folder!r}, tensorboard=False).write([{{"epoch": 1, "loss": 1.0}},
                                                  {{"epoch": 2, "loss": 0.5}}])
"""


@pytest.mark.parametrize("what", ["checkpoint", "history"])
def test_sigkill_while_writing_leaves_the_previous_file_and_the_next_save_cleans_up(tmp_path,
                                                                                   what):
    import signal
    import subprocess
    import sys

    from experiments.engine.writers import Writers

    repo = str(Path(__file__).resolve().parents[1])
    ckpt = tmp_path / "checkpoint.pt"
    writers = Writers(str(tmp_path), tensorboard=False)
    if what == "checkpoint":
        save_zoo_file(ckpt, "checkpoint", {"epoch": 1, "w": torch.ones(3)})
        names, before = ["checkpoint.pt"], ckpt.read_bytes()
    else:
        writers.write([{"epoch": 1, "loss": 1.0}])
        names = ["history.json", "history.csv"]
        before = (tmp_path / "history.json").read_bytes()
    code = _KILL_MID_WRITE.format(repo=repo, what=what, path=str(ckpt), folder=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert _temps(tmp_path, names[0]), "the kill should have left the half-written temp file"
    if what == "checkpoint":
        assert ckpt.read_bytes() == before
        assert torch.equal(load_zoo_file(ckpt, "checkpoint")[0]["w"], torch.ones(3))
        save_zoo_file(ckpt, "checkpoint", {"epoch": 3, "w": torch.zeros(3)})  # the next save
    else:
        assert (tmp_path / "history.json").read_bytes() == before
        assert json.loads(before) == [{"epoch": 1, "loss": 1.0}]
        writers.write([{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5}])
    for name in names:
        assert _temps(tmp_path, name) == [], name


# --- a NaN at step k, then a resume with a smaller lr ---------------------------------------------------
def test_a_nan_stop_keeps_the_last_good_checkpoint_and_resumes_with_a_smaller_lr(tmp_path,
                                                                                monkeypatch):
    """A NaN injected at step 7 (epoch 3 of 3-step epochs): fit stops naming the step, and
    checkpoint.pt holds the finite state before it (written on the way out). The same lr is
    refused nowhere, a changed lr is refused unless allowed; allowed, a tenth of the lr resumes
    (rescaling the schedule) and finishes with finite parameters."""
    from experiments.engine import loop
    from experiments.engine.checkpoint import load_checkpoint

    cfg = {**QUIET, "epochs": 5, "checkpoint_every_s": 0.0,
           "lr": 0.01, "validate": False}  # (validation would refuse the NaN input itself)
    run = RunOptions(progress=False, out_dir=str(tmp_path))
    real = loop.train_step

    def poisoned(state, batch, **kwargs):
        if state.step == 6:  # the 7th step
            batch = (torch.full_like(batch[0], float("nan")),) + tuple(batch[1:])
        return real(state, batch, **kwargs)

    monkeypatch.setattr(loop, "train_step", poisoned)
    with pytest.raises(FloatingPointError, match="epoch 3, step 7"):
        fit(*_pair(), _data(), FitConfig.from_dict(cfg), run)
    monkeypatch.undo()
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 6 and ckpt["epoch"] == 2  # mid-epoch stop: epoch 3 runs again
    assert all(torch.isfinite(v).all() for v in ckpt["guide"].values())

    smaller = {**cfg, "lr": 0.001}
    with pytest.raises(CheckpointError, match="lr: checkpoint 0.01, now 0.001"):
        restore(setup(*_pair(), _data(), FitConfig.from_dict(smaller)), tmp_path / "checkpoint.pt")
    model, guide = _pair()
    state = restore(setup(model, guide, _data(), FitConfig.from_dict(smaller), run),
                    tmp_path / "checkpoint.pt", allow=("lr",))
    assert state.optimizer.param_groups[0]["lr"] == pytest.approx(0.001)
    state = fit(model, guide, _data(), FitConfig.from_dict(smaller), state=state)
    assert state.epoch == 5 and state.history[-1]["lr"] == pytest.approx(0.001)
    assert all(torch.isfinite(p).all() for p in state.loss_fn.parameters())
    with pytest.raises(ValueError, match="cannot change on resume"):
        restore(setup(*_pair(), _data(), FitConfig.from_dict(smaller)), tmp_path / "checkpoint.pt",
                allow=("seed",))


def test_a_cosine_run_extended_on_purpose_recomputes_its_schedule(tmp_path):
    cfg = {**QUIET, "epochs": 4, "lr_schedule": "cosine", "lr": 0.01}
    run = RunOptions(progress=False, out_dir=str(tmp_path))
    fit(*_pair(), _data(), FitConfig.from_dict(cfg), run)
    longer = {**cfg, "epochs": 8}
    with pytest.raises(CheckpointError, match="anneals to 0 over exactly epochs=4"):
        restore(setup(*_pair(), _data(), FitConfig.from_dict(longer)), tmp_path / "checkpoint.pt")
    model, guide = _pair()
    state = restore(setup(model, guide, _data(), FitConfig.from_dict(longer), run),
                    tmp_path / "checkpoint.pt", allow=("epochs",))
    state = fit(model, guide, _data(), FitConfig.from_dict(longer), state=state)
    lrs = [row["lr"] for row in state.history]
    # (a row's lr is the one its epoch ran with) epochs 1-4 under T=4, then from epoch 5 on the
    # cosine over T=8 at t = 4..7, as if the run had been planned with 8 epochs
    assert lrs[3] == pytest.approx(0.01 * (1 + math.cos(math.pi * 3 / 4)) / 2, abs=1e-12)
    expected = [0.01 * (1 + math.cos(math.pi * t / 8)) / 2 for t in range(4, 8)]
    assert lrs[4:] == pytest.approx(expected, abs=1e-12)


def test_resume_accepts_the_allowed_overrides_only(tmp_path, capsys):
    assert main(["run", "blundell-regression", "--smoke", "--no-progress", "--device", "cpu",
                 "--threads", str(torch.get_num_threads()), "--out", str(tmp_path)]) == 0
    (run_dir,) = (tmp_path / "blundell-regression").iterdir()
    capsys.readouterr()
    assert main(["run", "blundell-regression", "--resume", str(run_dir), "--no-progress",
                 "--set", "bbb.model.widths=[8]"]) == 2
    assert "a resume may change only bbb.fit.lr" in capsys.readouterr().err.replace(
        "ARM", "bbb")
    assert main(["run", "blundell-regression", "--resume", str(run_dir), "--no-progress",
                 "--set", "bbb.fit.seed=3"]) == 2
    assert main(["run", "blundell-regression", "--resume", str(run_dir), "--no-progress",
                 "--threads", str(torch.get_num_threads()),
                 "--set", "bbb.fit.lr=0.001"]) == 0
    saved = json.loads((run_dir / "config.json").read_text())
    assert "bbb.fit.lr=0.001" in saved["overrides"]
