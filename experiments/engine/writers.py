"""What a fit writes as it goes: history.json/.csv and TensorBoard scalars (:class:`Writers`),
and its epoch log line (:func:`log_epoch`)."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any

from experiments.harness.runner import write_json

from .checkpoint import atomic_write_text

log = logging.getLogger("experiments.engine.training")  # fit's one log: users filter on its name


class Writers:
    """history.json / history.csv, and TensorBoard scalars when tensorboard is installed."""

    def __init__(self, out_dir: str | None, tensorboard: bool):
        self.out = Path(out_dir) if out_dir else None
        self.tb = None
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:  # tensorboard is optional
                    SummaryWriter = None
                if SummaryWriter is not None:
                    self.tb = SummaryWriter(str(self.out / "tensorboard"))

    def add_row(self, row: dict[str, Any]) -> None:
        """TensorBoard scalars for one epoch (buffered by the writer, cheap)."""
        if self.tb is not None:
            for k, v in row.items():
                if k != "epoch" and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, row["epoch"])

    def write(self, history: list[dict[str, Any]]) -> None:
        """history.json and history.csv with every epoch so far."""
        if self.out is None:
            return
        write_json(self.out / "history.json", history, indent=1)
        keys = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(self.out / "history.csv", text.getvalue())
        if self.tb is not None:
            self.tb.flush()

    def close(self):
        if self.tb is not None:
            self.tb.close()


def log_epoch(desc: str, epochs: int, row: dict[str, Any], what: str, seconds: float) -> None:
    log.info("%s: %s %d/%d, loss %.4g, kl %.3g (%.1f s)", desc, what, row["epoch"],
             epochs, row["loss"], row["kl"], seconds)
