"""Shared test setup: seed every test, clear Pyro's param store, keep Pyro's validation on, point
the data layer at the staged offline data, and skip ``gpu`` tests without CUDA."""

from __future__ import annotations

import os
from pathlib import Path

import pyro
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# fit() switches Pyro's validation off for speed unless this is set: tests keep it on
os.environ.setdefault("VBZOO_PYRO_VALIDATION", "1")

if "VBZOO_DATA_DIR" not in os.environ and SHARED_DATA.is_dir():
    os.environ["VBZOO_DATA_DIR"] = str(SHARED_DATA)

import models  # noqa: E402,F401  (module-local params before any module is built)


@pytest.fixture(autouse=True)
def _seed_and_clean():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    with pyro.validation_enabled(True):
        yield
    pyro.clear_param_store()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
