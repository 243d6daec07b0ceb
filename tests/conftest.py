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

# two xdist workers on two cores: one torch thread each, or their thread pools fight (10x slower)
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

if "VBZOO_DATA_DIR" not in os.environ and SHARED_DATA.is_dir():
    os.environ["VBZOO_DATA_DIR"] = str(SHARED_DATA)

import models  # noqa: E402,F401  (module-local params before any module is built)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The staged data folder: $VBZOO_DATA_DIR, else ../shared/data next to the repo."""
    env = os.environ.get("VBZOO_DATA_DIR")
    for candidate in (env, SHARED_DATA):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    pytest.skip(f"no staged data: $VBZOO_DATA_DIR is unset or missing and {SHARED_DATA} "
                "does not exist")


@pytest.fixture(autouse=True)
def _seed_and_clean():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    with pyro.validation_enabled(True):
        yield
    pyro.clear_param_store()


def pytest_collection_modifyitems(config, items):
    """``slow`` tests run only when selected (``-m slow``); ``gpu`` tests only with CUDA."""
    run_slow = "slow" in (config.getoption("-m") or "")
    skip_slow = pytest.mark.skip(reason="long convergence run: select it with -m slow")
    skip_gpu = pytest.mark.skip(reason="needs CUDA (torch.cuda.is_available() is False)")
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)
