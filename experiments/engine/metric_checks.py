r"""The input checks and small tensor helpers that every metric of :mod:`experiments.engine.metrics`
shares: conversion to float tensors on the predictions' device, shape checks that name the shapes
received and expected, probability checks (within :data:`PROB_ATOL`), label conversion, entropy
and quantiles along the sample dimension."""

from __future__ import annotations

import math
from typing import Any

import torch

#: Tolerance on :math:`|\sum_c p_c - 1|` accepted by the classification metrics.
PROB_ATOL = 1e-3


def _float_tensor(x: Any, name: str, like: torch.Tensor | None = None) -> torch.Tensor:
    """``x`` as a floating-point tensor (integer/bool input is cast to the default dtype); with
    ``like``, on ``like``'s device (targets follow the predictions)."""
    t = torch.as_tensor(x)
    if like is not None:
        t = t.to(like.device)
    if not (t.is_floating_point() or t.is_complex()):
        t = t.to(torch.get_default_dtype())
    if t.is_complex():
        raise ValueError(f"{name} must be real-valued, got dtype {t.dtype}")
    return t


def _check_nonempty(t: torch.Tensor, name: str) -> None:
    if t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)}); need at least one element")


def _check_samples_and_targets(x: torch.Tensor, y: torch.Tensor, name: str, expected: str) -> None:
    """(S, N) samples against (N,) targets: ranks, non-empty, matching N."""
    _check_ndim(x, name, (2,), expected)
    _check_ndim(y, "y", (1,), "(N,)")
    _check_nonempty(x, name)
    if x.shape[1] != y.shape[0]:
        raise ValueError(
            f"{name} must have shape (S, N) with N = len(y) = {y.shape[0]}, "
            f"got {name} {tuple(x.shape)} and y {tuple(y.shape)}"
        )


def _check_broadcastable(t: torch.Tensor, target: torch.Tensor, names: tuple[str, str],
                         label: str) -> None:
    """``t`` must broadcast to exactly ``target``'s shape."""
    try:
        shape = torch.broadcast_shapes(t.shape, target.shape)
    except RuntimeError:
        shape = None
    if shape != target.shape:
        raise ValueError(
            f"{names[0]} must be broadcastable to {names[1]}'s shape {label} = "
            f"{tuple(target.shape)}, got {names[0]} {tuple(t.shape)}"
        )

def _check_ndim(t: torch.Tensor, name: str, ndims: tuple[int, ...], expected: str) -> None:
    if t.dim() not in ndims:
        raise ValueError(f"{name} must have shape {expected}, got shape {tuple(t.shape)}")


def _check_same_shape(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str]) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape (N,), got "
            f"{names[0]} {tuple(a.shape)} and {names[1]} {tuple(b.shape)}"
        )


def _check_level(level: float) -> float:
    level = float(level)
    if not (0.0 < level < 1.0):
        raise ValueError(f"level must lie strictly inside (0, 1), got {level}")
    return level


def _labels(y: Any, n: int, num_classes: int) -> torch.Tensor:
    """Validate integer class labels of shape ``(n,)`` with values in ``[0, num_classes)``."""
    y = torch.as_tensor(y)
    if y.dim() != 1 or y.shape[0] != n:
        raise ValueError(
            f"labels y must have shape (N,) = ({n},) to match the probabilities, "
            f"got shape {tuple(y.shape)}"
        )
    if y.is_floating_point():
        if not torch.equal(y, torch.round(y)):
            raise ValueError("labels y must be integer class indices, got non-integral floats")
        y = y.long()
    elif y.dtype == torch.bool or y.is_complex():
        raise ValueError(f"labels y must be integer class indices, got dtype {y.dtype}")
    y = y.long()
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"labels y must lie in [0, C) = [0, {num_classes}), "
            f"got values in [{int(y.min())}, {int(y.max())}]"
        )
    return y


def _check_probs(p: torch.Tensor, name: str) -> None:
    """Probabilities along the last dim: finite, non-negative, summing to 1 within PROB_ATOL."""
    if not torch.isfinite(p).all():
        raise ValueError(f"{name} contains non-finite values")
    if (p < 0).any():
        raise ValueError(f"{name} contains negative probabilities (min {float(p.min()):.3g})")
    err = (p.sum(-1) - 1.0).abs().max()
    if float(err) > PROB_ATOL:
        raise ValueError(
            f"{name} of shape {tuple(p.shape)} must sum to 1 over the last (class) dimension "
            f"within {PROB_ATOL:g}; the largest deviation is {float(err):.3g}"
        )


def _mean_probs(probs: Any, name: str = "mean_probs") -> torch.Tensor:
    """Validated ``(N, C)`` predictive mean from ``(N, C)`` or ``(S, N, C)`` input."""
    p = _float_tensor(probs, name)
    _check_ndim(p, name, (2, 3), "(N, C) or (S, N, C)")
    _check_nonempty(p, name)
    _check_probs(p, name)
    return p.mean(0) if p.dim() == 3 else p


def _prob_samples(probs: Any) -> torch.Tensor:
    """Validated ``(S, N, C)`` probability samples."""
    p = _float_tensor(probs, "probs")
    _check_ndim(p, "probs", (3,), "(S, N, C)")
    _check_nonempty(p, "probs")
    _check_probs(p, "probs")
    return p


def _entropy(p: torch.Tensor) -> torch.Tensor:
    r""":math:`-\sum_c p_c \log p_c` over the last dim, with :math:`0 \log 0 = 0`."""
    return -torch.special.xlogy(p, p).sum(-1)


def _quantile_dim0(x: torch.Tensor, q: float) -> torch.Tensor:
    """Linear-interpolation empirical quantile along dim 0 (as ``torch.quantile``'s default),
    without ``torch.quantile``'s limit on the input size."""
    s = x.shape[0]
    xs = torch.sort(x, dim=0).values
    pos = q * (s - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, s - 1)
    w = pos - lo
    return xs[lo] + w * (xs[hi] - xs[lo])
