"""GPyTorch kernels from plain-dict configurations (so experiments can name them in JSON/``--set``).

A *kernel spec* is a dict with a ``"type"`` and that kernel's hyperparameters; a spec with an
``"outputscale"`` is wrapped in :class:`gpytorch.kernels.ScaleKernel`. Composite kernels nest:

.. code-block:: python

    {"type": "rbf", "ard": True, "lengthscale": 0.5, "outputscale": 1.0}
    {"type": "sum", "terms": [spec, spec, ...]}
    {"type": "product", "terms": [spec, spec], "outputscale": 5.76}

Base types and their GPyTorch classes (hyperparameters are GPyTorch's own parameterisation):

========== ============================== ===========================================================
type       class                          k(x, x') (r = |x - x'|)
========== ============================== ===========================================================
rbf        ``RBFKernel``                  exp(-r²/(2ℓ²))
matern12   ``MaternKernel(nu=0.5)``       exp(-r/ℓ)
matern32   ``MaternKernel(nu=1.5)``       (1 + √3 r/ℓ) exp(-√3 r/ℓ)
matern52   ``MaternKernel(nu=2.5)``       (1 + √5 r/ℓ + 5r²/(3ℓ²)) exp(-√5 r/ℓ)
rq         ``RQKernel``                   (1 + r²/(2αℓ²))^(-α)
periodic   ``PeriodicKernel``             exp(-2 Σ_d sin²(π r_d / p) / ℓ)  — note ℓ, not ℓ²: GPML's
                                          exp(-2 sin²(π r/p)/θ²) is ``lengthscale = θ²``
linear     ``LinearKernel``               σ² x·x'
========== ============================== ===========================================================

Keys: ``lengthscale`` (float, or a list of D floats with ``ard``), ``ard`` (one lengthscale per
input dimension), ``period`` (periodic), ``alpha`` (rq), ``variance`` (linear), ``active_dims``
(list of input columns), ``fixed`` (list of hyperparameter names not to learn, e.g. ``["period"]``).
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Any

import gpytorch
import torch
from gpytorch.kernels.kernel import dist as _gpytorch_dist
from gpytorch.kernels.kernel import sq_dist as _gpytorch_sq_dist

from .base import _flag

BASE_TYPES = ("rbf", "matern12", "matern32", "matern52", "rq", "periodic", "linear")
TYPES = BASE_TYPES + ("sum", "product")
_KEYS = {"type", "lengthscale", "ard", "period", "alpha", "variance", "active_dims", "fixed",
         "outputscale", "terms"}
# spec key -> (attribute on the GPyTorch kernel, raw parameter name)
_HYPERS = {"lengthscale": ("lengthscale", "raw_lengthscale"), "period": ("period_length",
           "raw_period_length"), "alpha": ("alpha", "raw_alpha"),
           "variance": ("variance", "raw_variance"), "outputscale": ("outputscale",
                                                                     "raw_outputscale")}


def _positive(spec: dict, key: str, path: str) -> Any:
    value = spec[key]
    values = value if isinstance(value, (list, tuple)) else [value]
    try:
        ok = all(float(v) > 0 for v in values)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"kernel {path}: {key}={value!r} must be a positive number (or a list of "
                         "positive numbers for ARD lengthscales)")
    return value


def build_kernel(spec: dict | str, input_dim: int, path: str = "kernel") -> gpytorch.kernels.Kernel:
    """The GPyTorch kernel described by ``spec`` (see the module docstring) on ``input_dim`` inputs.

    :raises ValueError: on an unknown type or key, a non-positive hyperparameter, or ARD
        lengthscales of the wrong length — naming the offending entry.
    """
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, dict) or "type" not in spec:
        raise ValueError(f"{path} must be a dict with a 'type' (one of {TYPES}), got {spec!r}")
    unknown = set(spec) - _KEYS
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; valid keys are {sorted(_KEYS)}")
    kind = spec["type"]
    if kind not in TYPES:
        raise ValueError(f"{path}: type={kind!r} is not one of {TYPES}")
    for key in ("lengthscale", "period", "alpha", "variance", "outputscale"):
        if key in spec:
            _positive(spec, key, path)

    if kind in ("sum", "product"):
        terms = spec.get("terms")
        if not isinstance(terms, (list, tuple)) or len(terms) < 1:
            raise ValueError(f"{path}: a {kind} kernel needs a non-empty list 'terms'")
        parts = [build_kernel(t, input_dim, f"{path}.terms[{i}]") for i, t in enumerate(terms)]
        kernel = gpytorch.kernels.AdditiveKernel(*parts) if kind == "sum" else \
            gpytorch.kernels.ProductKernel(*parts)
    else:
        active = spec.get("active_dims")
        dims = len(active) if active is not None else input_dim
        kwargs: dict[str, Any] = {}
        if active is not None:
            kwargs["active_dims"] = torch.as_tensor(active, dtype=torch.long)
        if spec.get("ard") and kind != "linear":
            kwargs["ard_num_dims"] = dims
        cls = {"rbf": gpytorch.kernels.RBFKernel, "rq": gpytorch.kernels.RQKernel,
               "periodic": gpytorch.kernels.PeriodicKernel,
               "linear": gpytorch.kernels.LinearKernel}.get(kind)
        if kind.startswith("matern"):
            kernel = gpytorch.kernels.MaternKernel(nu={"12": 0.5, "32": 1.5, "52": 2.5}[kind[-2:]],
                                                   **kwargs)
        else:
            kernel = cls(**kwargs)
        if "lengthscale" in spec:
            ls = torch.as_tensor(spec["lengthscale"], dtype=torch.get_default_dtype())
            if ls.dim() == 1 and ls.numel() not in (1, kernel.lengthscale.shape[-1]):
                raise ValueError(f"{path}: {ls.numel()} lengthscales given for "
                                 f"{kernel.lengthscale.shape[-1]} ARD dimensions")
            kernel.lengthscale = ls.expand_as(kernel.lengthscale).clone()
        for key in ("period", "alpha", "variance"):
            if key in spec:
                setattr(kernel, _HYPERS[key][0], float(spec[key]))
    if "outputscale" in spec:
        kernel = _Scale(kernel, float(spec["outputscale"]), spec.get("fixed", ()))
    _fix(kernel.base_kernel if isinstance(kernel, _Scale) else kernel, spec.get("fixed", ()), path)
    return kernel


class _Scale(gpytorch.kernels.ScaleKernel):
    def __init__(self, base, outputscale: float, fixed):
        super().__init__(base)
        self.outputscale = outputscale
        if "outputscale" in fixed:
            self.raw_outputscale.requires_grad_(False)


def _fix(kernel, fixed, path: str) -> None:
    for name in fixed:
        if name == "outputscale":
            continue
        if name not in _HYPERS or not hasattr(kernel, _HYPERS[name][1]):
            raise ValueError(f"{path}: cannot fix {name!r} on a {type(kernel).__name__}")
        getattr(kernel, _HYPERS[name][1]).requires_grad_(False)


# ------------------------------------------------------------------ sync-free distances
# GPyTorch's Kernel.covar_dist starts with ``x1_eq_x2 = torch.equal(x1, x2)``: a read of a bool to
# the host on every kernel evaluation. On a GPU it stalls the launch queue three times per SVGP
# step, and it makes CUDA-graph capture fail ("operation not permitted when stream is capturing").
# The caller usually knows the answer (K_ZZ and diag K_XX: equal; K_XZ: not), so it can say so with
# ``inputs_equal``; without that hint covar_dist is GPyTorch's own, unchanged.
_INPUTS_EQUAL: ContextVar[bool | None] = ContextVar("vbzoo_kernel_inputs_equal", default=None)
_gpytorch_covar_dist = gpytorch.kernels.Kernel.covar_dist


def inputs_equal(equal: bool) -> contextlib.AbstractContextManager[None]:
    """Inside, every ``Kernel.covar_dist`` takes ``x1 == x2`` to be ``equal`` instead of asking
    ``torch.equal`` (a host read). Use it around ``kernel(z)`` or ``kernel(x, diag=True)``
    (``True``) and ``kernel(x, z)`` (``False``). Only kernels whose distances go through
    ``covar_dist`` (RBF, Matérn, RQ, and sums and output scales of them) are covered: a
    product or linear kernel compares its inputs in its own ``forward`` (see
    :func:`host_comparing_kernels`)."""
    return _flag(_INPUTS_EQUAL, bool(equal))


def _covar_dist(self, x1, x2, diag=False, last_dim_is_batch=False, square_dist=False, **params):
    """GPyTorch 1.15's ``Kernel.covar_dist`` with ``x1_eq_x2`` from :func:`inputs_equal` when a
    hint is set (the same branches: zeros on an equal diagonal, ``sq_dist``/``dist`` otherwise)."""
    equal = _INPUTS_EQUAL.get()
    if equal is None:
        return _gpytorch_covar_dist(self, x1, x2, diag=diag, last_dim_is_batch=last_dim_is_batch,
                                    square_dist=square_dist, **params)
    if last_dim_is_batch:
        x1 = x1.transpose(-1, -2).unsqueeze(-1)
        x2 = x2.transpose(-1, -2).unsqueeze(-1)
    if diag:
        if equal:
            return torch.zeros(*x1.shape[:-2], x1.shape[-2], dtype=x1.dtype, device=x1.device)
        res = torch.linalg.norm(x1 - x2, dim=-1)
        return res.pow(2) if square_dist else res
    return (_gpytorch_sq_dist if square_dist else _gpytorch_dist)(x1, x2, equal)


gpytorch.kernels.Kernel.covar_dist = _covar_dist  # GPyTorch's own unless a hint is set


def host_comparing_kernels(kernel: gpytorch.kernels.Kernel) -> list[str]:
    """Class names of the parts of ``kernel`` whose ``forward`` calls ``torch.equal`` itself
    (``ProductKernel``, ``LinearKernel``): their evaluation reads to the host whatever
    :func:`inputs_equal` says, so their step cannot be captured in a CUDA graph."""
    comparing = (gpytorch.kernels.ProductKernel, gpytorch.kernels.LinearKernel)
    return sorted({type(m).__name__ for m in kernel.modules() if isinstance(m, comparing)})


def build_mean(name: str) -> gpytorch.means.Mean:
    """GPyTorch's ``ZeroMean`` (``"zero"``) or ``ConstantMean`` (``"constant"``)."""
    if name == "zero":
        return gpytorch.means.ZeroMean()
    if name == "constant":
        return gpytorch.means.ConstantMean()
    raise ValueError(f"mean must be 'zero' or 'constant', got {name!r}")


def hyperparameters(kernel: gpytorch.kernels.Kernel, prefix: str = "") -> dict[str, Any]:
    """Constrained hyperparameter values by dotted module path, e.g. ``{"kernels.0.outputscale":
    4356.0, "kernels.0.base_kernel.lengthscale": 67.0}`` (lists for ARD), for reports."""
    out: dict[str, Any] = {}
    for name, module in kernel.named_modules(prefix=prefix):
        for attr in ("outputscale", "lengthscale", "period_length", "alpha", "variance"):
            raw = f"raw_{attr}"
            if raw in module._parameters:
                value = getattr(module, attr).detach().cpu().reshape(-1)
                key = f"{name}.{attr}" if name else attr
                out[key] = value.item() if value.numel() == 1 else value.tolist()
    return out
