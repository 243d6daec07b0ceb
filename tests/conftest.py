"""Shared test setup: seed every test, clear Pyro's param store, keep Pyro's validation on, point
the data layer at the staged offline data, and skip ``gpu`` tests without CUDA."""

from __future__ import annotations

import os
import re
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


DEVICES = [pytest.param("cpu", id="cpu"),
           pytest.param("cuda", id="cuda", marks=pytest.mark.gpu)]


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Every device the suite can run on: the CPU always, CUDA when present (the ``gpu`` mark
    skips it otherwise). Tests that take it run once per device."""
    return torch.device(request.param)


@pytest.fixture(params=DEVICES)
def load_device(request) -> torch.device:
    """A second device axis, for moving state between devices (save on one, load on another)."""
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def _seed_and_clean():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    with pyro.validation_enabled(True):
        yield
    pyro.clear_param_store()


def pytest_collection_modifyitems(config, items):
    """``slow`` tests run only when selected (``-m slow``); ``gpu`` tests only with CUDA."""
    # the word "slow" in the -m expression (not a substring of another marker name): pytest's
    # own -m filter then decides, e.g. "-m slow" runs them and "-m 'not slow'" deselects them
    run_slow = re.search(r"(?<![\w-])slow(?![\w-])", config.getoption("-m") or "") is not None
    skip_slow = pytest.mark.skip(reason="long convergence run: select it with -m slow")
    skip_gpu = pytest.mark.skip(reason="needs CUDA (torch.cuda.is_available() is False)")
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


# ------------------------------------------------------------------------------------------------
# VBZOO_SIMULATE_GPU=1: a CPU rehearsal of the suite on a CUDA machine, where device="auto" moves
# model and guide away from the test's CPU tensors. Here "auto" resolves to tests.stray's
# SIMULATED_GPU, a CPU device that compares unequal to "cpu"; under SimulatedGPUMode a move to it
# makes floating tensors float64 (and so does a factory given device=SIMULATED_GPU), and a float32
# tensor of a test that meets a float64 one fails (StrayTensorError) where it would have met a GPU
# tensor. models.base.module_device answers SIMULATED_GPU for a float64 module, so that callers'
# x.to(module_device(model)) is a move there. Not part of CI: an audit of test code (helpers that
# build data on the CPU and call the model after fit) for contributors without a GPU. It cannot
# see code that moves data by other means, and CUDA's own behaviour (graphs, nondeterminism).
if os.environ.get("VBZOO_SIMULATE_GPU") == "1":
    import sys

    import models.base as _base  # noqa: E402
    from experiments.engine import training as _training  # noqa: E402
    from tests.stray import SIMULATED_GPU, WIDE, SimulatedGPUMode  # noqa: E402

    _real_resolve, _real_device = _training.resolve_device, _base.module_device

    def _resolve(device):
        if isinstance(device, str) and device == "auto":
            return SIMULATED_GPU
        return _real_resolve(device)

    def _module_device(module):
        t = _base.first_tensor(module)
        if t is not None and t.dtype == WIDE:
            return SIMULATED_GPU
        return _real_device(module)

    def _patch_movers():
        """Point every imported ``module_device`` and ``resolve_device`` at the simulation
        (modules import them by name)."""
        for mod in list(sys.modules.values()):
            if getattr(mod, "module_device", None) is _real_device:
                mod.module_device = _module_device
            if getattr(mod, "resolve_device", None) is _real_resolve:
                mod.resolve_device = _resolve

    _patch_movers()

    @pytest.fixture(autouse=True)
    def _simulate_gpu():
        _patch_movers()  # modules imported since
        with SimulatedGPUMode():
            yield
