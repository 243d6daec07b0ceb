"""Progress you can see without a bar (issue 23): with ``progress=False`` (``--no-progress``) or
stderr not a terminal, ``fit`` logs a line after the first epoch, then at most one every
``PROGRESS_LOG_EVERY_S`` seconds (within a long epoch too), and one at the end."""

from __future__ import annotations

import logging
import re
from types import SimpleNamespace

import torch

import guides
import models
from experiments.engine import loop as L
from experiments.engine import training as T
from experiments.engine.settings import FitConfig, RunOptions

LOGGER = "experiments.engine.training"


def _pair():
    model = models.create_model("bnn", in_features=2, widths=(4,))
    return model, guides.create_guide("mean-field", model)


def _data(n=32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g)
    return x, x.sum(-1) + 0.1 * torch.randn(n, generator=g)


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def _fit(caplog, epochs, batch_size, **cfg):
    with caplog.at_level(logging.INFO, logger=LOGGER):
        T.fit(*_pair(), _data(), FitConfig.from_dict({"epochs": epochs, "batch_size": batch_size,
                                                      "checkpoint": False, "tensorboard": False, **cfg}),
                                 RunOptions(progress=False, device="cpu", desc="quiet"))
    return _lines(caplog)


def test_no_progress_logs_the_first_epoch_and_the_end(caplog):
    # a fast fit under the default PROGRESS_LOG_EVERY_S (60 s): the first epoch and the end only
    lines = _fit(caplog, epochs=3, batch_size=16)
    assert [line.split(",")[0] for line in lines] == ["quiet: epoch 1/3",
                                                      "quiet: done after epoch 3/3"]


def test_no_progress_logs_every_period(caplog, monkeypatch):
    monkeypatch.setattr(L, "PROGRESS_LOG_EVERY_S", 0.0)  # every epoch is a period
    lines = _fit(caplog, epochs=3, batch_size=32)
    assert [line.split(",")[0] for line in lines] == [
        "quiet: epoch 1/3", "quiet: epoch 2/3", "quiet: done after epoch 3/3"]


def test_a_long_epoch_logs_within_itself(caplog, monkeypatch):
    """A fake clock of fit's own (each read is one second later): epochs of 32 steps, a line
    due every 10 s, the clock read every step."""
    clock = iter(range(10**6))
    monkeypatch.setattr(L, "time", SimpleNamespace(perf_counter=lambda: float(next(clock))))
    monkeypatch.setattr(L, "PROGRESS_LOG_EVERY_S", 10.0)
    monkeypatch.setattr(L, "PROGRESS_CHECK_STEPS", 1)
    lines = _fit(caplog, epochs=2, batch_size=1)
    within = [re.fullmatch(r"quiet: epoch (\d+): step (\d+)/32 \((\d+\.\d) s\)", line)
              for line in lines if ": step " in line]
    assert all(within) and len(within) >= 4, lines
    epochs = [int(m[1]) for m in within]
    assert epochs[0] == 1 and 2 in epochs
    # the first once the epoch has run 10 s (one step a second here), then 10 s or more apart
    assert int(within[0][2]) >= 10
    seconds = [float(m[3]) for m in within]
    assert all(b - a >= 10 for a, b in zip(seconds, seconds[1:])), seconds
    # the first epoch's line and the last line are still there
    assert lines[-1].startswith("quiet: done after epoch 2/2")
    assert any(line.startswith("quiet: epoch 1/2, loss") for line in lines), lines


def test_the_clock_is_read_every_check_steps_only(caplog, monkeypatch):
    reads = []

    def perf_counter():
        reads.append(1)
        return float(len(reads))

    monkeypatch.setattr(L, "time", SimpleNamespace(perf_counter=perf_counter))
    monkeypatch.setattr(L, "PROGRESS_CHECK_STEPS", 8)
    _fit(caplog, epochs=1, batch_size=1)  # 32 steps
    n_checked = len(reads)
    reads.clear()
    monkeypatch.setattr(L, "PROGRESS_CHECK_STEPS", 1)
    _fit(caplog, epochs=1, batch_size=1)
    assert len(reads) - n_checked == 32 - 32 // 8
