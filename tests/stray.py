"""A CPU stand-in for "a tensor was left on the wrong device": the *stray-dtype* guard.

CI has no GPU, so a model that keeps a tensor outside its parameters and buffers (a prior built
from a Python-side constant, random features drawn at build time, initial values computed before
``fit`` moved the model) passes every CPU test and then fails on CUDA with "Expected all tensors to
be on the same device". Moving a module with ``.to(torch.float64)`` moves exactly what
``.to("cuda")`` moves (its parameters and buffers), and a tensor that did not move stays float32
(the default dtype) just as it would stay on the CPU. So we run a pair in float64 with float32 as
the default dtype, under :class:`StrayDtypeMode`, which raises at the first torch call that mixes a
float64 tensor with a float32 tensor of one or more dimensions. Zero-dimensional float32 tensors
are allowed, as CUDA kernels accept zero-dimensional CPU tensors too.

This catches what the device bug catches, in the place where it happens, on a CPU. It misses a
stray tensor created with an explicit ``dtype=torch.float64`` but no device (rare: we grep for it).
"""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

WIDE, NARROW = torch.float64, torch.float32


# calls that legitimately take tensors of two devices: moving and copying between them (and what
# nn.Module._apply calls while it moves a module)
_MOVES = {torch.Tensor.to, torch.Tensor.copy_, torch._has_compatible_shallow_copy_type,
          torch.Tensor.set_, torch.Tensor.data.__set__,
          # GradScaler's non-finite check takes its float32 flag with gradients of any dtype
          torch._amp_foreach_non_finite_check_and_unscale_}


class StrayTensorError(AssertionError):
    pass


class StrayDtypeMode(TorchFunctionMode):
    """Raise :class:`StrayTensorError` when one torch call sees a float64 tensor and a float32
    tensor with ``dim() > 0``, naming the function and the shapes."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _MOVES:
            return func(*args, **kwargs)
        leaves, _ = tree_flatten((args, kwargs))
        tensors = [t for t in leaves if isinstance(t, torch.Tensor)]
        wide = [t for t in tensors if t.dtype == WIDE]
        narrow = [t for t in tensors if t.dtype == NARROW and t.dim() > 0]
        if wide and narrow:
            name = getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func))
            raise StrayTensorError(
                f"{name} mixes float64 {[tuple(t.shape) for t in wide]} with float32 "
                f"{[tuple(t.shape) for t in narrow]}: a tensor did not follow the module's "
                ".to(...); on CUDA this is a CPU tensor meeting a GPU one. Keep it in a parameter "
                "or a registered buffer, or create it from one (x.new_zeros, device=/dtype= of "
                "an input)")
        return func(*args, **kwargs)
