"""The step captured in a CUDA graph (``FitConfig.cuda_graph``): which pairs and settings may be
(:func:`graph_blockers`, :func:`uses_cuda_graph`, :func:`check_graph_pair`) and the captured step
(:class:`GraphedStep`)."""

from __future__ import annotations

import pyro
import torch

from guides.registry import guide_name_of
from models.base import ZooModel
from models.registry import model_name_of

from . import distributed
from .settings import FitConfig
from .state import TrainState
from .step import accumulate, train_step

#: (model, guide) pairs whose step FitConfig.cuda_graph captures: their steps read nothing to the
#: host (tests/test_no_sync.py) and were checked captured against eager (tests/test_gpu.py)
GRAPH_PAIRS = (("bnn", "mean-field"), ("vae", "encoder"), ("svgp", "cholesky"),
               ("mlp", "deterministic"))


def graph_blockers(cfg: FitConfig, model, guide) -> list[str]:
    """Why the step of this pair under ``cfg`` is not captured in a CUDA graph (empty: it is,
    on CUDA): a pair outside :data:`GRAPH_PAIRS`, a model configuration that says it cannot be
    (``ZooModel.capture_blockers``), an optimiser without a capturable fused kernel, or a
    data-parallel run."""
    out = []
    if model is None or guide is None:
        return ["the pair is not known"]
    pair = (model_name_of(model), guide_name_of(guide))
    if pair not in GRAPH_PAIRS:
        out.append(f"the {pair[0]} + {pair[1]} pair is not captured")
    if isinstance(model, ZooModel):
        out += model.capture_blockers()
    if cfg.optimizer not in ("adam", "adamw"):
        out.append(f"optimizer {cfg.optimizer!r} has no capturable fused kernel (adam, adamw)")
    if cfg.fused is False:
        out.append("fused=False")
    if distributed.active():
        out.append("data-parallel steps are not captured")
    return out


def uses_cuda_graph(cfg: FitConfig, device: torch.device, model=None, guide=None) -> bool:
    """Whether the step is captured: on CUDA, with ``cuda_graph=True``, or ``"auto"`` and no
    :func:`graph_blockers`."""
    if device.type != "cuda" or cfg.cuda_graph is False:
        return False
    return cfg.cuda_graph is True or not graph_blockers(cfg, model, guide)


def check_graph_pair(model, guide) -> None:
    """Refuse ``cuda_graph=True`` for a pair outside :data:`GRAPH_PAIRS`, listing them, and for a
    model configuration that says it cannot be captured (``ZooModel.capture_blockers``)."""
    pair = (model_name_of(model), guide_name_of(guide))
    if pair not in GRAPH_PAIRS:
        raise ValueError(f"cuda_graph=True: the {pair[0]} + {pair[1]} pair is not captured (its "
                         "step is not checked free of host reads and shape changes); pairs with "
                         f"CUDA-graph support: {', '.join(' + '.join(p) for p in GRAPH_PAIRS)}. "
                         "Train it with cuda_graph=false")
    blockers = model.capture_blockers() if isinstance(model, ZooModel) else []
    if blockers:
        raise ValueError(f"cuda_graph=True for {pair[0]}: {'; '.join(blockers)}. Or train it "
                         "with cuda_graph=false")


class GraphedStep:
    """:func:`~experiments.engine.step.train_step` captured in a CUDA graph and replayed
    (``FitConfig.cuda_graph``).

    Following PyTorch's whole-network capture recipe (``torch.cuda.graphs``): the first
    :attr:`WARMUP` steps run eagerly on a side stream (they are real training steps on real
    batches, and let lazily created state such as Adam's moments and cuBLAS workspaces exist),
    then the next step is captured and every later step of the same batch shape is a copy of
    the batch into the static inputs, two ``fill_`` of the KL weight and warm-up factor, and one
    replay. Inside the graph: the guide's ``elbo_context``, the loss, backward, clipping, the
    :class:`~experiments.engine.guards.FiniteGate`, the fused capturable optimiser (lr a device tensor, so the
    scheduler's changes reach the replay) and the epoch sums of :func:`~experiments.engine.training.fit`.
    Random draws advance with each replay (the graph registers the default CUDA generator). A batch of another
    shape (the epoch's last, short batch) runs eagerly, outside the graph.
    """

    WARMUP = 3

    def __init__(self, state: TrainState, params: list, sums: torch.Tensor,
                 device: torch.device):
        self.state, self.params, self.sums, self.device = state, params, sums, device
        self.kl = torch.ones((), device=device)
        self.beta = torch.ones((), device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: tuple[torch.Tensor, ...] | None = None
        self.loss: torch.Tensor | None = None
        self.warm = 0
        self.side = torch.cuda.Stream(device=device)

    def _step(self, batch, kl, beta) -> torch.Tensor:
        loss = train_step(self.state, batch, kl_scale=kl, beta=beta, params=self.params)
        accumulate(self.sums, self.state, loss)
        return loss

    def accepts(self, batch) -> bool:
        return self.static is None or all(a.shape == b.shape and a.dtype == b.dtype
                                          for a, b in zip(self.static, batch))

    def __call__(self, batch, kl_scale: float, beta: float) -> torch.Tensor:
        """One step on ``batch`` (accumulated into the sums, as the eager path of fit does)."""
        if self.graph is None and self.warm < self.WARMUP:
            self.static = tuple(t.clone() for t in batch) if self.static is None else self.static
            self.side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self.side):
                loss = self._step(batch, kl_scale, beta)
            torch.cuda.current_stream(self.device).wait_stream(self.side)
            self.warm += 1
            return loss
        if self.graph is None:
            self._capture()
        for static, t in zip(self.static, batch):
            static.copy_(t, non_blocking=True)
        self.kl.fill_(kl_scale)
        self.beta.fill_(beta)
        self.graph.replay()
        self.state.step += 1
        return self.loss

    def _capture(self) -> None:
        torch.cuda.synchronize(self.device)
        for optimizer in self.state.optimizers:
            optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        step = self.state.step
        # Pyro's (and torch's) argument validation reads every check to the host: the eager
        # warm-up steps ran with it when it is on (FitConfig.validate); the captured step has none
        try:
            with pyro.validation_enabled(False), torch.cuda.graph(graph):
                self.loss = self._step(self.static, self.kl, self.beta)
        except RuntimeError as e:  # torch.AcceleratorError is a RuntimeError
            raise RuntimeError(
                f"cuda_graph=True: capturing the {model_name_of(self.state.model)} + "
                f"{guide_name_of(self.state.guide)} step in a CUDA graph failed ({e}). An "
                "operation in the step reads a value to the host or synchronises (the traceback "
                "above names it; torch.cuda.set_sync_debug_mode('error') finds such reads in an "
                "eager step). A failed capture can leave this process's CUDA state unusable: "
                "restart and train with cuda_graph=false") from e
        self.state.step = step  # capture records the step; each replay takes it
        self.graph = graph
