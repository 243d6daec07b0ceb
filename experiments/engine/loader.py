"""Where :func:`~experiments.engine.training.fit` trains and on what: the device, the training
set as a ``Dataset``, its minibatches and their move to the device."""

from __future__ import annotations

import itertools

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, TensorDataset

from models.base import ZooModel

from . import distributed


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` (CUDA when available, else the CPU), ``"cpu"`` or ``"cuda[:i]"`` as a
    ``torch.device``.

    :raises ValueError: one line naming the value and what to use instead, for a device torch
        does not know (``"tpu"``), one the zoo does not run on (``"mps"``, ``"meta"``), CUDA on a
        machine without it, or a GPU index beyond the GPUs present.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not a torch device; use 'auto' (CUDA when "
                         "available), 'cpu' or 'cuda[:i]'") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r}: the zoo runs on 'cpu' or 'cuda[:i]' ('auto' picks "
                         "CUDA when available)")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else \
                "a CPU-only build"
            raise ValueError(f"device {device!r} requested but CUDA is not available (torch "
                             f"{torch.__version__}, {built}); use device 'cpu' or 'auto'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} requested but only {torch.cuda.device_count()} "
                             "CUDA device(s) are visible; use 'cuda' or 'cuda:0'")
    return dev


def as_dataset(data) -> Dataset:
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (tuple, list)) and all(torch.is_tensor(t) for t in data):
        n = {len(t) for t in data}
        if len(n) != 1:
            raise ValueError(f"data tensors have different lengths {[len(t) for t in data]}; "
                             "x and y must have one row per example")
        for i, t in enumerate(data):
            if t.is_floating_point() and not torch.isfinite(t).all():
                bad = (~torch.isfinite(t)).reshape(len(t), -1).any(-1).nonzero()[:5, 0].tolist()
                raise ValueError(f"data tensor {i} (of {len(data)}: x, y, ...) holds NaN or inf "
                                 f"in rows {bad}...; drop or impute them before fit()")
        return TensorDataset(*data)
    raise TypeError(f"data must be a torch Dataset or a tuple of tensors (x, y), got {type(data)}")


def make_loader(dataset: Dataset, batch_size: int, generator: torch.Generator,
                shuffle: bool = True, shard: bool = False, seed: int = 0) -> DataLoader:
    """Minibatches of whole index lists (one ``dataset[indices]`` per batch, not B item calls:
    TensorDataset supports it and it is much faster for in-memory data). ``shard``
    (data-parallel): this rank's part of each epoch's permutation (a ``DistributedSampler``
    seeded with ``seed``; :func:`~experiments.engine.training.fit` calls its ``set_epoch``),
    ``batch_size`` rows per rank."""
    if shard:  # [distributed]
        sampler = distributed.sampler(dataset, shuffle, seed)
    else:
        sampler = RandomSampler(dataset, generator=generator) if shuffle else range(len(dataset))
    return DataLoader(dataset, sampler=BatchSampler(sampler, batch_size, drop_last=False),
                      batch_size=None)


def to_device(batch, device, dtype: torch.dtype | None = None):
    """The batch on ``device``; floating tensors also in ``dtype`` (the model's), when given."""
    return tuple(t.to(device, dtype=dtype if dtype is not None and t.is_floating_point()
                      else None, non_blocking=True) for t in batch)


def float_dtype(model) -> torch.dtype | None:
    """The model's floating dtype (that of its first floating parameter or buffer)."""
    for t in itertools.chain(model.parameters(), model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return None


def validate_whole(model, dataset: Dataset) -> bool:
    """Check the whole training set against ``model`` once (:meth:`models.base.ZooModel.
    validate_data` for a TensorDataset; a Dataset vouches for itself with ``validate_for(model)``,
    e.g. dynamic binarisation). ``True``: the model need not check each batch again."""
    if not isinstance(model, ZooModel):
        return False
    if isinstance(dataset, TensorDataset):
        model.validate_data(*dataset.tensors)
        return True
    validate_for = getattr(dataset, "validate_for", None)
    return bool(validate_for(model)) if callable(validate_for) else False
