"""What every model of the zoo shares: the data plate and the effectful linear layer.

A zoo model is a :class:`~pyro.nn.PyroModule` whose ``forward(x, y=None)`` *is* the Pyro model:
global latents (weights, inducing values) are sampled outside ``pyro.plate("data", ...)``, local
latents and the observation site ``obs`` inside it. The plate is given the full data size
``num_data`` and the minibatch as its subsample, so Pyro scales the minibatch log-likelihood by
``num_data / batch_size`` and the ELBO estimate is unbiased for the full data set.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import os
import warnings
from collections.abc import Sequence

import pyro
import torch
from pyro.nn import PyroModule
from pyro.poutine.runtime import effectful, get_plates
from pyro.poutine.subsample_messenger import _Subsample

_SYNC_FREE = contextvars.ContextVar("vbzoo_sync_free", default=False)


@contextlib.contextmanager
def _flag(var: contextvars.ContextVar, value: bool):
    """``var`` set to ``value`` inside the block, restored after it."""
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def sync_free(on: bool = True):
    """Inside it, model code reads no tensor to the host (``fit`` enters it on CUDA, where every
    read stalls the launch queue and breaks CUDA-graph capture): checks that would branch on a
    value in Python take their device-side form instead. The SVGP's Cholesky then marks a failed
    factorisation with NaN, which ``fit``'s non-finite gate stops and reports, instead of
    retrying with more jitter (:func:`models.sparse_gp.stable_cholesky`)."""
    return _flag(_SYNC_FREE, bool(on))


def is_sync_free() -> bool:
    """Whether model code runs under :func:`sync_free`."""
    return _SYNC_FREE.get()


_LOSS_ONLY = contextvars.ContextVar("vbzoo_loss_only", default=False)


def loss_only():
    """Inside it, a model or guide evaluation is read only by the ELBO
    (:func:`experiments.engine.training.train_step` enters it around the loss; its torch
    optimiser holds ``loss_fn.parameters()``). Zoo modules then skip two
    kinds of trace record that change no loss and no gradient:

    * the ``param`` statements :class:`~pyro.nn.PyroModule` emits for each parameter of a plain
      ``nn.Module`` child and for each plain ``nn.Parameter`` attribute (with module-local
      parameters, the zoo's setting, they serve only handlers that collect parameters from a
      trace, such as Pyro's ``SVI`` with a ``PyroOptim``); ``PyroParam`` and ``PyroSample``
      attributes and child ``PyroModule`` objects are unaffected;
    * the ``pyro.deterministic`` sites (:func:`record`), such as the VAE's mean image ``f``,
      which only :class:`~pyro.infer.Predictive` reads.

    For the 784-400-50 VAE this saves eight param statements and one deterministic site per loss
    evaluation (:mod:`experiments.benchmarks.vae_step`)."""
    return _flag(_LOSS_ONLY, True)


def is_loss_only() -> bool:
    """Whether model code runs under :func:`loss_only`."""
    return _LOSS_ONLY.get()


def record(name: str, value, event_dim: int | None = None):
    """``pyro.deterministic(name, value, event_dim)``, returning the value; ``value`` may be a
    callable that computes it, called only when the site is recorded. Under :func:`loss_only`
    nothing is recorded (the ELBO never reads such a site: its log-density is 0)."""
    if _LOSS_ONLY.get():
        return None if callable(value) else value
    return pyro.deterministic(name, value() if callable(value) else value, event_dim=event_dim)


_MISSING = object()


def held_attribute(module, name: str):
    """``module.<name>`` without Pyro's ``param`` statements under :func:`loss_only` (a plain
    child module or ``nn.Parameter``), else ``_MISSING`` (the caller then takes Pyro's path)."""
    if not _LOSS_ONLY.get():
        return _MISSING
    d = module.__dict__
    pyro_params, pyro_samples = d.get("_pyro_params", ()), d.get("_pyro_samples", ())
    if name in pyro_params or name in pyro_samples:
        return _MISSING
    child = d.get("_modules", {}).get(name, _MISSING)
    if child is not _MISSING:
        return _MISSING if isinstance(child, PyroModule) else child
    return d.get("_parameters", {}).get(name, _MISSING)


def is_subsample(site: dict) -> bool:
    """Whether a trace site is the subsample site a ``pyro.plate(..., subsample=...)`` records
    (not a latent variable)."""
    return isinstance(site.get("fn"), _Subsample)


def first_tensor(module: torch.nn.Module) -> torch.Tensor | None:
    """``module``'s first parameter or buffer (``None`` if it has neither): its device and dtype
    are where the module lives now."""
    return next(itertools.chain(module.parameters(), module.buffers()), None)


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of ``module``'s parameters and buffers (the CPU if it has none). The zoo moves
    data to this device in one place per entry point (``fit``, the predictive, the metrics,
    ``SVGP.predict``, the IWAE bound), so callers may pass inputs on any device."""
    t = first_tensor(module)
    return t.device if t is not None else torch.device("cpu")


class SizeWarning(UserWarning):
    """A model whose training state would fill a sizeable part of this machine's memory."""


#: float32 copies of each number a model trains (its value or a guide's location and scale, their
#: gradients, and Adam's two moments): the memory estimate of :func:`check_size`
TRAINING_COPIES = 8


def machine_memory() -> int | None:
    """This machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_size(numbers: float, what: str, fix: str) -> None:
    """Before a model allocates anything: refuse a configuration whose training state (about
    :data:`TRAINING_COPIES` float32 copies of its ``numbers``) exceeds this machine's memory, and
    warn (:class:`SizeWarning`) above a quarter of it, with the estimate; ``what`` names the
    setting and ``fix`` says what to change."""
    memory = machine_memory()
    need = float(numbers) * 4 * TRAINING_COPIES
    if memory is None or need <= memory / 4:
        return
    text = (f"{what}: about {numbers:.3g} numbers to train, about {need / 2**30:.3g} GiB with their "
            f"gradients and optimiser state, against this machine's {memory / 2**30:.3g} GiB")
    if need > memory:
        raise ValueError(f"{text}; {fix}")
    warnings.warn(f"{text}; training will be slow and may run out of memory ({fix})", SizeWarning,
                  stacklevel=3)


class ZooModel(PyroModule):
    r"""Base class of the zoo's models.

    What code outside a model reads is declared here, never probed with ``hasattr``:

    * :attr:`in_features`: the width D of the inputs :math:`x \in \mathbb R^{N \times D}`
      (``None`` for a model of other inputs, e.g. the VAE's images); the predictive checks ``x``
      against it.
    * :attr:`latent_sites`: the names of the global latent sample sites (weights
      :math:`W \sim p(W)`, outside the data plate); empty for a model whose only latents are
      inducing values or local codes.
    * :attr:`has_inducing` and :meth:`initialize_inducing`: a model with inducing inputs
      :math:`Z \in \mathbb R^{M \times D}` (a sparse GP, :math:`u = f(Z)`) places them on the
      training inputs before training (k-means centres by default).
    * ``likelihood``: a model observing ``y`` through :mod:`models.likelihoods` holds its
      :class:`~models.likelihoods.Likelihood` there (an ``nn.Module`` child, so not declared as
      a class attribute), and records its input as the ``f`` site.

    :param int num_data: size of the full training set, used to scale minibatches. ``None`` means
        "the batch is the whole data set"; :func:`experiments.engine.training.fit` sets it from the
        training data.
    """

    #: the input width D (``None``: not a model of (N, D) inputs)
    in_features: int | None = None
    #: names of the global latent sample sites (weights); none by default
    latent_sites: Sequence[str] = ()
    #: whether the model has inducing inputs :meth:`initialize_inducing` places
    has_inducing: bool = False

    def __init__(self, num_data: int | None = None):
        super().__init__()
        self.num_data = num_data

    def __getattr__(self, name: str):
        value = held_attribute(self, name)  # (fit's steps: see loss_only)
        return super().__getattr__(name) if value is _MISSING else value

    @property
    def device(self) -> torch.device:
        """Where the model's parameters and buffers live (see :func:`module_device`)."""
        return module_device(self)

    def capture_blockers(self) -> list[str]:
        """Why this configuration's step cannot be captured in a CUDA graph (parts that read to
        the host whatever the zoo does), as phrases for ``fit``'s error; none by default."""
        return []

    def data_plate(self, x: torch.Tensor) -> pyro.plate:
        """``pyro.plate("data", num_data, subsample=...)`` over the rows of ``x`` (dim -1)."""
        n = x.shape[0]
        # prediction on more rows than the training set is fine: no rescaling then
        size = max(self.num_data, n) if self.num_data is not None else n
        return pyro.plate("data", size=size, subsample=torch.arange(n, device=x.device), dim=-1)

    def validate_data(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """Check the whole training set once, before training (``fit`` calls it; a batch-level
        check would see a bad label only when its batch comes up): real-valued inputs (integer
        ``x`` is refused with what to do), the targets against the
        likelihood (:meth:`models.likelihoods.Likelihood.check_targets`: label ranges and types,
        Bernoulli labels in {0, 1}). Models without such a likelihood accept anything here."""
        if torch.is_tensor(x) and not (x.is_floating_point() or x.is_complex()):
            raise ValueError(f"inputs x must be real numbers (a floating dtype), got {x.dtype}; "
                             "convert them, e.g. x.float() (8-bit images: x.float() / 255)")
        likelihood = getattr(self, "likelihood", None)
        if y is not None and hasattr(likelihood, "check_targets"):
            likelihood.check_targets(y)

    @contextlib.contextmanager
    def data_validated(self):
        """Inside it the model may skip the per-batch value checks that :meth:`validate_data`
        has already made on the whole training set (``fit`` enters it then)."""
        before = getattr(self, "_data_validated", False)
        self._data_validated = True
        try:
            yield
        finally:
            self._data_validated = before

    def initialize_inducing(self, x: torch.Tensor, method: str = "kmeans", seed: int = 0,
                            max_rows: int = 20000, progress: bool = True) -> torch.Tensor:
        """Place the inducing inputs Z on the training inputs ``x`` (``"kmeans"`` centres,
        ``"random"`` rows or ``"data"``: Z = X) and return them; only for a model with
        :attr:`has_inducing` (:meth:`models.svgp.SVGP.initialize_inducing`)."""
        raise NotImplementedError(f"{type(self).__name__} has no inducing inputs")

    def initial_values(self) -> dict[str, torch.Tensor]:
        """Initial values of the latent sites (e.g. Kaiming-uniform weights) for guides' locations.

        Guides start their means here rather than at a prior draw, which for wide layers would
        explode the activations.
        """
        return {}

    def example_data(self, num_data: int, generator: torch.Generator | None = None):
        """A small synthetic ``(x, y)`` of the right shapes for this configuration (tests, smoke)."""
        raise NotImplementedError


def _drop_data_dim(w: torch.Tensor) -> torch.Tensor:
    """Global weights sampled under a vectorised particle plate have batch shape ``(P, 1)``, the
    trailing 1 standing for the data plate; drop it so that ``w`` is ``(P, out, in)``.
    (:class:`~pyro.infer.Predictive` hands conditioned samples over as ``(P, out, in)`` already.)"""
    if w.dim() > 3 and w.shape[-3] == 1:
        w = w.squeeze(-3)
    return w


def with_ones(h: torch.Tensor) -> torch.Tensor:
    """``[h | 1]``: ``(..., N, in + 1)``, so that ``[h | 1] @ [W | b].T = h @ W.T + b`` is one matrix
    product whose gradient reaches ``[W | b]`` whole (slicing W and b off it would cost two
    full-size zero-fills and additions per parameter in the backward pass)."""
    return torch.cat([h, h.new_ones(h.shape[:-1] + (1,))], dim=-1)


def _affine(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``h @ W.T + b`` for ``w = [W | b]`` of shape ``(*batch, out, in + 1)``; h is ``(..., N, in)``."""
    return with_ones(h) @ _drop_data_dim(w).transpose(-1, -2)  # (*batch, N, out)


@effectful(type="bayes_linear")
def bayes_linear(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Affine layer with a sampled weight ``w = [W | b]`` of shape ``(*batch, out, in + 1)``.

    Call as ``bayes_linear(h, w, name=site)``. It is a Pyro *effect*: without handlers it computes
    ``h @ W.T + b``; under :class:`guides.mean_field.LocalReparameterization` it instead samples the
    pre-activations from their Gaussian marginal (local reparameterisation) or applies flipout, both
    of which need to know which Gaussian produced ``w``.

    :param torch.Tensor h: ``(..., N, in)`` inputs (``...`` = particle dims, possibly none).
    :param torch.Tensor w: ``(*batch, out, in + 1)`` weights with the bias in the last column.
    :returns: ``(*batch, N, out)``.
    """
    return _affine(h, w)


def expand_to_plates(h: torch.Tensor, event_dim: int = 1) -> torch.Tensor:
    """Expand ``h`` with event shape ``h.shape[-event_dim:]`` to the sizes of the enclosing plates
    left of the data plate (vectorised particles / predictive samples), so that noise injected into
    ``h`` (e.g. dropout masks) is independent across particles."""
    lead = [f for f in get_plates() if f.dim is not None and f.dim < -1]
    if not lead:
        return h
    ndim = max(-f.dim for f in lead)
    shape = [1] * ndim
    for f in lead:
        shape[ndim + f.dim] = f.size
    batch_shape = torch.broadcast_shapes(tuple(shape), h.shape[:-event_dim])
    return h.expand(batch_shape + h.shape[-event_dim:])
