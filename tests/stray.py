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
        wide = [t for t in tensors if t.dtype == WIDE and self._counts(t)]
        narrow = [t for t in tensors if t.dtype == NARROW and t.dim() > 0 and self._counts(t)]
        if wide and narrow:
            name = getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func))
            raise StrayTensorError(
                f"{name} mixes float64 {[tuple(t.shape) for t in wide]} with float32 "
                f"{[tuple(t.shape) for t in narrow]}: a tensor did not follow the module's "
                ".to(...); on CUDA this is a CPU tensor meeting a GPU one. Keep it in a parameter "
                "or a registered buffer, or create it from one (x.new_zeros, device=/dtype= of "
                "an input)")
        out = func(*args, **kwargs)
        self._after(tensors, out)
        return out

    def _after(self, inputs: list[torch.Tensor], out) -> None:
        """A hook on each call's inputs and result (nothing, here)."""

    def _counts(self, t: torch.Tensor) -> bool:
        """Whether the tensor's dtype says where it is (always, here)."""
        return True


#: the stand-in for a CUDA device in the ``VBZOO_SIMULATE_GPU=1`` rehearsal (tests/conftest.py):
#: a real CPU device (``.type == "cpu"``: code that asks where it is runs as on the CPU), which
#: compares unequal to ``torch.device("cpu")``, so a move *to it* can be told from any other
SIMULATED_GPU = torch.device("cpu", 0)


def _is_sim(device) -> bool:
    return isinstance(device, (torch.device, str)) and torch.device(device) == SIMULATED_GPU


class SimulatedGPUMode(StrayDtypeMode):
    """:class:`StrayDtypeMode` where "on the GPU" is "float64": ``Tensor.to(SIMULATED_GPU)``
    (and so ``Module.to``) returns floating tensors in float64, and a factory given
    ``device=SIMULATED_GPU`` without a dtype makes them in float64, as a tensor made on the GPU
    is on the GPU. A float32 tensor that meets a float64 one is then one that stayed behind.
    Two kinds of tensor say nothing about where they are and are not counted: one made float64 on
    purpose (a factory given ``dtype=torch.float64``, such as fit's float64 epoch sums, or a cast
    by ``.double()`` or ``.to(torch.float64)``, and what is computed from those alone), and one
    moved to another tensor's device (``y.to(pred.device)``: a simulated tensor reports the
    plain CPU, so the move cannot widen it, but on a GPU it follows)."""

    def _counts(self, t: torch.Tensor) -> bool:
        return not getattr(t, "_vbzoo_unplaced", False)

    def _after(self, inputs: list[torch.Tensor], out) -> None:
        # what is computed from unplaced float64 tensors alone is unplaced too
        wide = [t for t in inputs if t.dtype == WIDE]
        if wide and all(getattr(t, "_vbzoo_unplaced", False) for t in wide):
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor) and t.dtype == WIDE:
                    t._vbzoo_unplaced = True

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if kwargs.get("dtype") == WIDE and not any(isinstance(a, torch.Tensor) for a in args):
            out = func(*args, **kwargs)  # a factory asked for float64
            if isinstance(out, torch.Tensor):
                out._vbzoo_unplaced = True
            return out
        if func is torch.Tensor.double:  # a cast to float64 on purpose
            out = func(*args, **kwargs)
            if out is not args[0]:  # (on a float64 tensor a no-op: it stays where it was)
                out._vbzoo_unplaced = True
            return out
        if func is torch.Tensor.to:
            out = func(*args, **kwargs)
            target = kwargs.get("device", args[1] if len(args) > 1 else None)
            if isinstance(target, torch.Tensor):
                target = target.device
            dtypes = [kwargs.get("dtype")] + [a for a in args[1:] if isinstance(a, torch.dtype)]
            explicit = any(d is not None for d in dtypes)
            if _is_sim(target) and not explicit and out.dtype == NARROW:
                out = out.to(WIDE)
            elif out is args[0] and not isinstance(target, (torch.device, str)):
                pass  # a no-op cast (.to(torch.float64) of a float64 tensor) leaves it in place
            elif (isinstance(target, (torch.device, str)) and torch.device(target).type == "cpu"
                  and not _is_sim(target)) or getattr(args[0], "_vbzoo_unplaced", False) \
                    or (WIDE in dtypes and not _is_sim(target)):
                # follows another tensor's device, did before, or is a float64 cast on purpose
                out._vbzoo_unplaced = True
            return out
        if _is_sim(kwargs.get("device")) and kwargs.get("dtype") is None:
            out = super().__torch_function__(func, types, args, kwargs)
            if isinstance(out, torch.Tensor) and out.dtype == NARROW:
                out = out.to(WIDE)
            return out
        return super().__torch_function__(func, types, args, kwargs)
