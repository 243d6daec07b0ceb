"""The timing harness shared by the step benchmarks: methods interleaved round-robin in one
process, so that machine load hits every method alike; ratios of medians are what to read."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

import torch

from experiments.engine.step import train_step


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def adam_step(params: Iterable[torch.nn.Parameter], loss_of: Callable[..., torch.Tensor],
              batches: Callable[[], tuple], lr: float) -> Callable[[], float]:
    """A plain-PyTorch training step for a peer: ``loss_of(*batches())``, ``zero_grad``,
    ``backward``, an Adam step and ``loss.item()``."""
    opt = torch.optim.Adam(params, lr=lr)

    def step() -> float:
        loss = loss_of(*batches())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def graphed_adam_step(params: Iterable[torch.nn.Parameter], loss_of: Callable[..., torch.Tensor],
                      batches: Callable[[], tuple], lr: float,
                      device: torch.device) -> Callable[[], float]:
    """The hand-written step of :func:`adam_step` captured in a CUDA graph: the floor the zoo's
    graphed step is measured against (the same kernels with no launch overhead).

    PyTorch's whole-network capture recipe (``torch.cuda.graphs``): static copies of a batch,
    three warm-up steps on a side stream (Adam's state and cuBLAS workspaces come into being),
    ``zero_grad(set_to_none=True)``, then forward, backward and a fused, capturable Adam step
    captured once; each call copies the next batch into the static inputs, replays, and reads
    ``loss.item()`` like every other row. Random draws in ``loss_of`` advance with each replay
    (the graph registers the default CUDA generator). CUDA only."""
    if device.type != "cuda":
        raise ValueError(f"graphed_adam_step needs a CUDA device, got {device}")
    params = list(params)
    opt = torch.optim.Adam(params, lr=torch.tensor(lr, device=device), capturable=True, fused=True)
    static = tuple(t.clone() for t in batches())
    side = torch.cuda.Stream(device=device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            loss_of(*static).backward()
            opt.step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        loss = loss_of(*static)
        loss.backward()
        opt.step()

    def step() -> float:
        for dst, src in zip(static, batches()):
            dst.copy_(src, non_blocking=True)
        graph.replay()
        return loss.item()

    return step


def zoo_step(state, batches: Callable[[], tuple]) -> Callable[[], float]:
    """The zoo's step on a set-up :class:`~experiments.engine.state.TrainState`, exactly as
    ``fit`` takes it (:func:`~experiments.engine.step.train_step` in fit's
    :func:`~experiments.engine.step.step_mode`, then the loss and log-likelihood added to
    the epoch's sums on the device), and ``loss.item()``, the one host read per step every row
    of a benchmark ends with."""
    from experiments.engine.step import accumulate, step_mode

    device = next(state.loss_fn.parameters()).device
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    params = list(state.loss_fn.parameters())  # fit lists them once, before its first epoch

    def step() -> float:
        # fit's mode: data validated whole before training (no per-batch value checks), no host
        # reads inside the model on CUDA
        with step_mode(state.model, device.type != "cuda", True):
            loss = train_step(state, batches(), params=params)
        accumulate(sums, state, loss)
        return loss.item()

    return step


def graphed_zoo_step(state, batches: Callable[[], tuple]) -> Callable[[], float]:
    """The zoo's step as ``fit`` takes it with ``cuda_graph=True`` (state set up with it): warm-up,
    capture, then one replay per step (:class:`~experiments.engine.cuda_graph.GraphedStep`, which
    adds to the epoch's sums inside the graph), and ``loss.item()``, the same host read per step
    as every other row."""
    from experiments.engine.cuda_graph import GraphedStep, check_graph_pair
    from experiments.engine.step import step_mode

    check_graph_pair(state.model, state.guide)
    device = next(state.loss_fn.parameters()).device
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    graphed = GraphedStep(state, list(state.loss_fn.parameters()), sums, device)

    def step() -> float:
        with step_mode(state.model, False, True):  # as fit steps on CUDA
            return graphed(batches(), 1.0, 1.0).item()

    return step


def load_average() -> float | None:
    """The 1-minute load average (``None`` where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def load_line(before: float | None) -> str:
    """The line every timing prints beside its numbers: the load average when the timing began
    (``before``) and now, and the cores, so that a reader can tell a quiet machine from a busy
    one."""
    after = load_average()
    if before is None or after is None:
        return "load average: not available on this platform"
    return (f"load average (1 min): {before:.2f} when timing began, {after:.2f} when it ended; "
            f"{os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s)")


def interleaved(methods: dict[str, Callable[[], float]], steps: int, repeats: int, warmup: int,
                device: torch.device) -> dict[str, list[float]]:
    """ms/step of each method in each of ``repeats`` rounds: per round, every method runs
    ``warmup`` untimed then ``steps`` timed steps; the starting method rotates from round to round
    so that none always runs first. Prints :func:`load_line` when done."""
    names = list(methods)
    times: dict[str, list[float]] = {n: [] for n in names}
    load = load_average()
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            step = methods[name]
            for _ in range(warmup):
                step()
            sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            sync(device)
            times[name].append(1e3 * (time.perf_counter() - t0) / steps)
    print(load_line(load))
    return times
