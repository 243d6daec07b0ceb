"""Helpers shared by the test modules (test modules import from here, never from each other;
the pair test base is :mod:`tests.pair_base`, the float64 stand-in for a device :mod:`tests.stray`).

* data on disk: :func:`require_data`;
* tables: :func:`write_csv`, :func:`csv_rows`;
* experiment configs and the README: :func:`experiment_config`, :func:`readme_quickstart`;
* pairs moved to another dtype as ``fit`` moves them to a device: :data:`VARIANTS`,
  :func:`moved_pair`, :func:`wide`;
* the host-read guard of the training step: :func:`no_host_reads`, :class:`HostReadError`,
  :func:`step_pair`, :func:`step_without_host_reads`;
* fixed Monte Carlo noise for cross-device comparisons: :data:`CASES`, :class:`FixedNoise`.
"""

from __future__ import annotations

import contextlib
import csv
import re
from pathlib import Path

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.poutine.messenger import Messenger

import guides
import models
from experiments.engine.guards import check_finite
from experiments.engine.settings import FitConfig, RunOptions
from experiments.engine.step import train_step
from experiments.engine.training import setup, step_mode
from models.base import is_subsample

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------
# data on disk


def require_data(*datasets: str) -> None:
    """Skip, naming the first missing file, unless every file of ``datasets`` (keys of
    :data:`experiments.data.DATASETS`, or a prefix such as ``"uci-large"``) is on disk
    ($VBZOO_DATA_DIR, ../shared/data or the cache): the suite never downloads."""
    from experiments.data import DATASETS, DataError, fetch

    for name in datasets:
        keys = [name] if name in DATASETS else sorted(k for k in DATASETS
                                                      if k.startswith(name + "/"))
        for key in keys:
            try:
                fetch(key, download=False)
            except (DataError, FileNotFoundError) as exc:
                pytest.skip(f"needs the {key} data, not on disk and not downloaded by the tests "
                            f"({str(exc).splitlines()[0][:200]}); stage it with $VBZOO_DATA_DIR")


# ------------------------------------------------------------------------------------------------
# tables


def write_csv(path: Path, header, rows) -> Path:
    """Write a CSV table (``header`` then ``rows``) to ``path``; returns ``path``."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def csv_rows(path: Path) -> list[dict]:
    """The rows of a CSV file with a header line, as dicts."""
    with open(path) as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------------------------------------
# experiment configs and the README

BLOCK = re.compile(r"<!-- quickstart -->\s*```python\n(?P<code>.*?)```", re.S)


def experiment_config(module, *overrides):
    """An experiment module's smoke config with ``--set``-style overrides, validated."""
    from experiments.harness.spec import apply_overrides, validate_config

    config = apply_overrides(module.get_config(smoke=True), list(overrides))
    validate_config(config)
    return config


def readme_quickstart() -> str:
    """The python block of README.md's quick start (``<!-- quickstart -->``)."""
    blocks = BLOCK.findall((REPO / "README.md").read_text())
    assert len(blocks) == 1, "README.md needs exactly one <!-- quickstart --> python block"
    return blocks[0]


# ------------------------------------------------------------------------------------------------
# pairs moved to another dtype (tests/test_device_guard.py and the pair tests of other modules)


def wide(t: torch.Tensor) -> torch.Tensor:
    return t.double() if t.is_floating_point() else t


# configurations beyond each model's test_config whose code paths hold tensors of their own
_MIXTURE = dict(in_features=2, widths=(4,), prior={"kind": "scale-mixture"})
VARIANTS = [
    ("bnn", _MIXTURE, "mean-field", {}),
    ("bnn", _MIXTURE, "mean-field", {"flipout": True}),
    ("bnn", _MIXTURE, "auto-normal", {}),
    ("bnn", dict(in_features=2, widths=(4,)), "mean-field", {"local_reparam": True}),
    ("bnn", dict(in_features=2, widths=(4,), out_features=3, task="classification",
                 bayesian_layers="last"), "mean-field", {"local_reparam": True}),
    ("mlp", dict(in_features=2, widths=(4,), dropout=0.2), "deterministic", {}),
    ("svgp", dict(input_dim=2, num_inducing=4, whiten=False, mean="constant"), "cholesky", {}),
    ("svgp", dict(input_dim=2, num_inducing=4, whiten=False, mean="constant"), "cholesky",
     {"natural_gradient": True}),
    ("svgp", dict(input_dim=2, num_inducing=4, likelihood="bernoulli"), "mean-field-u", {}),
    ("svgp", dict(input_dim=2, num_inducing=4, likelihood="student-t", learn_inducing=False),
     "cholesky", {}),
    ("svgp", dict(input_dim=2, num_inducing=4, likelihood="softmax", num_classes=3), "delta", {}),
    ("vae", dict(image_shape=(8, 4), z_dim=2, hidden=(5,), arch="conv"), "encoder", {}),
    ("vae", dict(image_shape=(4, 3), z_dim=2, hidden=(5,), likelihood="gaussian",
                 gaussian_scale="pixel"), "flow-encoder", {}),
    ("vae", dict(image_shape=(4, 3), z_dim=2, hidden=(5,), likelihood="continuous-bernoulli"),
     "encoder", {}),
]


def moved_pair(model_name, guide_name, num_data=6, model_cfg=None, guide_cfg=None):
    """A pair built as a user builds it (float32) and moved with ``.to(torch.float64)``, the way
    ``fit`` moves it with ``.to("cuda")``, with its example data widened the same way."""
    if model_cfg is None:
        model_cfg = models.MODELS.meta(model_name)["test_config"]
    model = models.create_model(model_name, **model_cfg)
    guide = guides.create_guide(guide_name, model, **(guide_cfg or {}))
    data = model.example_data(num_data, generator=torch.Generator().manual_seed(0))
    model.double()
    guide.double()
    return model, guide, tuple(wide(t) for t in data)


# ------------------------------------------------------------------------------------------------
# the host-read guard of the training step (tests/test_no_sync.py)

HOST_READS = ("item", "__bool__", "__float__", "__int__", "__index__", "tolist", "cpu", "numpy")
HOST_READ_FUNCTIONS = ("equal", "is_nonzero")  # torch.<name>(tensor, ...) -> a Python bool
# torch.tensor(data, ...) copies host data to the device: a copy CUDA-graph capture refuses (and
# that torch.distributions makes for every plain number given to a distribution, broadcast_all)
HOST_COPY_FUNCTIONS = ("tensor",)


class HostReadError(AssertionError):
    pass


@contextlib.contextmanager
def no_host_reads():
    """Every tensor-to-host read raises :class:`HostReadError` naming the method."""
    saved = {name: getattr(torch.Tensor, name) for name in HOST_READS}
    saved_functions = {name: getattr(torch, name)
                       for name in HOST_READ_FUNCTIONS + HOST_COPY_FUNCTIONS}

    def refuse(name):
        def method(*args, **kwargs):
            raise HostReadError(f"host read: {name}() inside the training step")
        return method

    def refuse_copy(name, original):
        def function(*args, **kwargs):
            if kwargs.get("device") is not None:  # on a GPU run: host data copied to the GPU
                raise HostReadError(f"host-to-device copy: {name}(..., device=...) inside the "
                                    "training step")
            return original(*args, **kwargs)
        return function

    try:
        for name in HOST_READS:
            setattr(torch.Tensor, name, refuse(f"Tensor.{name}"))
        for name in HOST_READ_FUNCTIONS:
            setattr(torch, name, refuse(f"torch.{name}"))
        for name in HOST_COPY_FUNCTIONS:
            setattr(torch, name, refuse_copy(f"torch.{name}", saved_functions[name]))
        yield
    finally:
        for name, method in saved.items():
            setattr(torch.Tensor, name, method)
        for name, function in saved_functions.items():
            setattr(torch, name, function)


def step_pair(model_name, guide_name, model_cfg=None, guide_cfg=None, **fit):
    """A pair set up for training on the CPU (fused optimiser, validation off), and its data."""
    if model_cfg is None:
        model_cfg = models.MODELS.meta(model_name)["test_config"]
    model = models.create_model(model_name, **model_cfg)
    guide = guides.create_guide(guide_name, model, **(guide_cfg or {}))
    data = model.example_data(6, generator=torch.Generator().manual_seed(0))
    # fused: the optimiser fit uses on CUDA, whose non-finite gate runs on the device
    state = setup(model, guide, data, FitConfig.from_dict({"batch_size": 6, "validate": False, "fused": True,
                                                           **fit}),
                                      RunOptions(device="cpu", progress=False))
    return state, data


def step_without_host_reads(state, data):
    """One unpatched step, then one under :func:`no_host_reads`: it must train."""
    train_step(state, data)  # the first step may set things up lazily
    before = [p.detach().clone() for p in state.loss_fn.parameters()]
    # argument validation reads values by design: fit runs with it off unless asked (validate)
    # and fit on CUDA steps under step_mode(host_reads=False) (no host read inside the model)
    with pyro.validation_enabled(False), step_mode(state.model, False, True), no_host_reads():
        loss = train_step(state, data)
    check_finite(state)  # the host read fit makes every log_every steps
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, p) for a, p in zip(before, state.loss_fn.parameters()))


# ------------------------------------------------------------------------------------------------
# fixed Monte Carlo noise (tests/test_device_parity.py, tests/test_distributed.py)

CASES = [  # one pair of each family, with the ELBO that family trains with
    ("bnn", dict(in_features=2, widths=(8,)), "mean-field", "meanfield"),
    ("svgp", dict(input_dim=2, num_inducing=6), "cholesky", "meanfield"),
    ("vae", dict(image_shape=(4, 3), z_dim=2, hidden=(5,)), "encoder", "trace"),
]


class FixedNoise(Messenger):
    """Draw unobserved ``Normal`` / ``MultivariateNormal`` sites (possibly ``.to_event``-ed) from
    shared standard-normal noise ``noise[name]`` (created from a seeded CPU generator on first
    use). Any other unobserved site is an error: its noise would not be shared."""

    def __init__(self, noise: dict, seed: int = 0):
        super().__init__()
        self.noise = noise
        self.generator = torch.Generator().manual_seed(seed)

    def _eps(self, name, shape, like):
        if name not in self.noise:
            self.noise[name] = torch.randn(shape, generator=self.generator, dtype=torch.float64)
        return self.noise[name].to(like.device, like.dtype)

    def _pyro_sample(self, msg):
        if msg["is_observed"] or msg["value"] is not None or msg["infer"].get("_deterministic"):
            return  # observed, replayed from the guide, or a pyro.deterministic site
        fn = msg["fn"]
        if is_subsample(msg):
            return
        base = fn
        while isinstance(base, dist.Independent):
            base = base.base_dist
        if isinstance(base, dist.Normal):
            loc, scale = base.loc.expand(fn.shape()), base.scale.expand(fn.shape())
            msg["value"] = loc + scale * self._eps(msg["name"], fn.shape(), loc)
        elif isinstance(base, dist.MultivariateNormal):
            loc = base.loc.expand(fn.shape())
            eps = self._eps(msg["name"], fn.shape(), loc)
            msg["value"] = loc + (base.scale_tril @ eps.unsqueeze(-1)).squeeze(-1)
        else:
            raise TypeError(f"FixedNoise cannot fix the noise of site {msg['name']!r} "
                            f"({type(base).__name__})")
