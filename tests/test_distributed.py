"""Data-parallel SVI (``experiments.engine.distributed``): 2 gloo processes on the CPU.

1. **Scaling.** The gradient of the DDP-averaged loss on R = 2 ranks, each with b rows of its
   ``DistributedSampler`` shard, equals the gradient of the single-process loss on the union
   batch of 2b rows, with the Monte Carlo noise fixed and shared (global latents: one draw per
   site; local latents, the VAE's z: one draw per *global row*, so a row gets the same z noise
   wherever it is evaluated). One pair per family: ``bnn`` + ``mean-field`` and ``svgp`` +
   ``cholesky`` (global latents: the KL counted once; a negative control counts it R times and
   must differ), ``vae`` + ``encoder`` (local latents only). float64, ``rtol=1e-9``.
2. **fit.** A 2-process fit writes one history and one checkpoint (rank 0), evaluates on rank 0
   only, returns rank 0's history on every rank and ends with identical parameters on both; a
   resume from that checkpoint continues on both ranks; a non-finite loss on rank 1 alone stops
   both ranks at the same step with identical parameters, the checkpoint holding the state
   before it.
"""

from __future__ import annotations

import json

import pyro
import pytest
import torch
from torch.utils.data import TensorDataset

import guides
import models
from experiments.engine import distributed
from experiments.engine.checkpoint import load_checkpoint
from experiments.engine.kl_schedule import KLScale
from experiments.engine.loader import make_loader
from experiments.engine.settings import FitConfig, RunOptions
from experiments.engine.state import restore
from experiments.engine.training import data_parallel, fit, setup
from guides.base import elbo_context
from tests.helpers import CASES, FixedNoise

N, B, WORLD = 24, 4, 2  # rows, rows per rank and step, ranks: union batch 8 of 24 (scale 3)
RTOL, ATOL = 1e-9, 1e-11


class ShardNoise(FixedNoise):
    """:class:`~tests.helpers.FixedNoise`, with the noise of a site inside the
    ``"data"`` plate drawn once for all N rows of the plate and indexed by the batch's global
    row numbers ``rows``."""

    def __init__(self, noise: dict, rows: torch.Tensor, seed: int = 0):
        super().__init__(noise, seed)
        self.rows = rows
        self._frame, self._event_dim = None, 0

    def _pyro_sample(self, msg):
        self._frame = next((f for f in msg["cond_indep_stack"] if f.name == "data"), None)
        self._event_dim = len(getattr(msg["fn"], "event_shape", ()))
        super()._pyro_sample(msg)

    def _eps(self, name, shape, like):
        if self._frame is None:
            return super()._eps(name, shape, like)
        dim = len(shape) - self._event_dim + self._frame.dim
        if name not in self.noise:
            full = list(shape)
            full[dim] = self._frame.full_size or self._frame.size  # the global N
            self.noise[name] = torch.randn(full, generator=self.generator, dtype=torch.float64)
        return self.noise[name].index_select(dim, self.rows).to(like.device, like.dtype)


def _pair(case):
    name, model_cfg, guide_name, elbo_name = case
    pyro.set_rng_seed(0)
    model = models.create_model(name, **model_cfg)
    guide = guides.create_guide(guide_name, model)
    data = model.example_data(N, generator=torch.Generator().manual_seed(0))
    model.double()
    guide.double()
    data = tuple(t.double() if t.is_floating_point() else t for t in data)
    state = setup(model, guide, data, FitConfig.from_dict({"batch_size": B, "elbo": elbo_name}),
                                      RunOptions(device="cpu", progress=False))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # away from the start (the SVGP's q(u) = p(u) there: KL and its gradient 0)
        for p in guide.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return state, TensorDataset(*data)


def _loss_and_grads(state, batch, rows, module, kl_scale=1.0):
    with ShardNoise({}, rows), elbo_context(state.guide, state.config.elbo == "meanfield"), \
            KLScale(kl_scale):
        loss = module(*batch)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in state.loss_fn.named_parameters()
             if p.grad is not None}
    return loss.detach(), grads


def _gradient_worker(rank, world, out):
    results = {}
    for case in CASES:
        state, dataset = _pair(case)
        loader = make_loader(dataset, B, state.generator, shard=True, seed=0)
        distributed.set_epoch(loader, 0)
        rows = torch.as_tensor(next(iter(loader.sampler)))  # a BatchSampler
        batch = dataset[rows.tolist()]
        data_parallel(state, batch, torch.device("cpu"))
        loss, grads = _loss_and_grads(state, batch, rows, state.ddp)
        every = distributed.all_gather_object((rows, {n: g.sum().item() for n, g in grads.items()}))
        results[case[0]] = {"loss": distributed.all_reduce_mean_(loss.clone()), "grads": grads,
                            "rows": [r for r, _ in every], "grad_sums": [s for _, s in every],
                            "find_unused": state.ddp.find_unused_parameters}
    torch.save(results, f"{out}/rank{rank}.pt")


@pytest.fixture(scope="module")
def ddp_gradients(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    distributed.spawn_gloo(_gradient_worker, WORLD, str(out))
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_ddp_gradient_equals_union_batch_gradient(case, ddp_gradients):
    res = ddp_gradients[0][case[0]]
    rows = res["rows"]
    assert len(rows) == WORLD and not set(rows[0].tolist()) & set(rows[1].tolist()), \
        "the ranks' shards overlap"
    assert res["grad_sums"][0] == res["grad_sums"][1], "DDP left different gradients on the ranks"
    union = torch.cat(rows)
    state, dataset = _pair(case)
    assert state.model.num_data == N  # the plate's global N, so the union batch is scaled N/(2B)
    loss, grads = _loss_and_grads(state, dataset[union.tolist()], union, state.loss_fn)

    torch.testing.assert_close(res["loss"], loss, rtol=RTOL, atol=ATOL)
    assert grads.keys() == res["grads"].keys() and grads
    for name, g in grads.items():
        torch.testing.assert_close(res["grads"][name], g, rtol=RTOL, atol=ATOL, msg=name)

    if case[0] in ("bnn", "svgp"):  # global latents: counting their KL R times must show
        state2, _ = _pair(case)
        _, wrong = _loss_and_grads(state2, dataset[union.tolist()], union, state2.loss_fn,
                                   kl_scale=WORLD)
        assert any(not torch.allclose(wrong[n], g, rtol=1e-4, atol=1e-8)
                   for n, g in grads.items()), "the KL does not reach the gradient: no check"


# ------------------------------------------------------------------------------------------------
# fit on 2 ranks


def _bnn(seed=0):
    pyro.set_rng_seed(seed)
    model = models.create_model("bnn", in_features=2, widths=(8,))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 2, generator=g)
    return model, guides.create_guide("mean-field", model), (x, x.sum(-1).sin() + 0.1 * torch.randn(
        40, generator=g))


FIT = {"batch_size": 8, "lr": 0.01, "elbo": "meanfield", "checkpoint_every_s": 0}
RUN = {"progress": False, "device": "cpu", "seed": 3}


def _checksum(state):
    return distributed.parameter_checksums(list(state.loss_fn.parameters()))


def _fit_worker(rank, world, out):
    report = {}
    # 1. a fit of 3 epochs, evaluated (on rank 0 only) and written (by rank 0 only)
    model, guide, data = _bnn()
    state = fit(model, guide, data, FitConfig.from_dict({**FIT, "epochs": 3}),
                RunOptions(**RUN, out_dir=f"{out}/a"),
                eval_fn=lambda m, g: {"rank": float(rank)})
    report["history"] = state.history
    report["sums"] = distributed.all_gather_object(_checksum(state))
    # 2. every rank resumes from rank 0's checkpoint and trains to epoch 5
    model, guide, data = _bnn()
    cfg = FitConfig.from_dict({**FIT, "epochs": 5})
    state = restore(setup(model, guide, data, cfg, RunOptions(**RUN, out_dir=f"{out}/a")),
                    f"{out}/a/checkpoint.pt")
    report["restored_epoch"] = state.epoch
    state = fit(model, guide, data, state=state, eval_fn=lambda m, g: {"rank": float(rank)})
    report["resumed_history"] = state.history
    report["resumed_sums"] = distributed.all_gather_object(_checksum(state))
    # 3. a loss that is NaN on rank 1 alone at step 5 (its gradient finite: DDP's averaging
    #    cannot spread it) stops both ranks at that step
    model, guide, data = _bnn()
    state = setup(model, guide, data, FitConfig.from_dict({**FIT, "epochs": 3}),
                                      RunOptions(**RUN, out_dir=f"{out}/nan"))
    elbo = state.loss_fn.elbo
    original = elbo.differentiable_loss

    def poisoned(*args, **kwargs):
        loss = original(*args, **kwargs)
        return loss + float("nan") if rank == 1 and state.step == 5 else loss

    elbo.differentiable_loss = poisoned
    try:
        fit(model, guide, data, state=state)
        report["nan_error"] = None
    except FloatingPointError as exc:
        report["nan_error"] = str(exc)
    report["nan_step"] = state.step
    report["nan_sums"] = distributed.all_gather_object(_checksum(state))
    torch.save(report, f"{out}/rank{rank}.pt")


@pytest.fixture(scope="module")
def ddp_fit(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp_fit")
    distributed.spawn_gloo(_fit_worker, WORLD, str(out))
    return out, [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


def test_two_process_fit_writes_once_on_rank_0_and_resumes(ddp_fit):
    out, (r0, r1) = ddp_fit
    files = sorted(p.name for p in (out / "a").iterdir())
    assert [f for f in files if f != "tensorboard"] == ["checkpoint.pt", "checksums.sha256", "history.csv",
                                                        "history.json"]
    written = json.loads((out / "a" / "history.json").read_text())
    assert [row["epoch"] for row in written] == [1, 2, 3, 4, 5]
    assert all(row["val_rank"] == 0.0 for row in written), "evaluated on a rank other than 0"
    assert r0["history"] == r1["history"] == written[:3], "ranks returned different histories"
    assert r0["resumed_history"] == r1["resumed_history"] == written
    assert r0["restored_epoch"] == r1["restored_epoch"] == 3
    assert torch.equal(*r0["sums"]), "the ranks' parameters differ after a data-parallel fit"
    assert torch.equal(*r0["resumed_sums"])
    assert not torch.equal(r0["sums"][0], r0["resumed_sums"][0])
    assert load_checkpoint(out / "a" / "checkpoint.pt")["epoch"] == 5
    for row in written:
        assert abs(row["elbo"] - (row["log_likelihood"] - row["kl"])) < 1e-6 * max(1, abs(row["elbo"]))


def test_non_finite_loss_on_one_rank_stops_every_rank_at_that_step(ddp_fit):
    out, (r0, r1) = ddp_fit
    for r in (r0, r1):
        assert r["nan_error"] is not None and "step 6" in r["nan_error"], r["nan_error"]
        assert r["nan_step"] == 5
    assert torch.equal(*r0["nan_sums"]), "a one-rank NaN left the ranks' parameters different"
    ckpt = load_checkpoint(out / "nan" / "checkpoint.pt")
    assert ckpt["step"] == 5 and ckpt["epoch"] == 1


# ------------------------------------------------------------------------------------------------
# the command line


def _cli(*args, timeout=300):
    import subprocess
    import sys
    from pathlib import Path

    return subprocess.run([sys.executable, "-m", "experiments", *args], timeout=timeout,
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)


@pytest.mark.experiments
def test_cli_nproc_2_writes_one_run_folder_on_rank_0_and_resumes(tmp_path):
    proc = _cli("run", "blundell-regression", "--smoke", "--nproc", "2", "--no-progress",
                "--device", "cpu", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "blundell-regression").iterdir()
    config = json.loads((run_dir / "config.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (config["processes"], config["backend"]) == (2, "gloo") and "--nproc 2" in \
        config["command"]
    assert metrics["distributed"] == {"processes": 2, "backend": "gloo"}
    assert "2 processes (gloo)" in metrics["hardware"]
    for arm in ("bbb", "dropout", "plain"):
        files = sorted(p.name for p in (run_dir / arm).iterdir() if p.name != "tensorboard")
        assert files == ["checkpoint.pt", "checksums.sha256", "history.csv", "history.json"], files
    assert proc.stdout.count('"status": "ok"') == 1, "a rank other than 0 printed results"
    # a resume with another number of processes would change the global batch: refused
    wrong = _cli("run", "blundell-regression", "--resume", str(run_dir), "--device", "cpu")
    assert wrong.returncode == 2 and "processes: recorded 2, now 1" in wrong.stderr


def test_cli_refuses_an_experiment_that_cannot_run_data_parallel():
    proc = _cli("run", "blundell-bandit", "--smoke", "--nproc", "2")
    assert proc.returncode == 2 and "cannot run data-parallel" in proc.stderr, proc.stderr


@pytest.fixture
def one_gpu_node(monkeypatch):
    """A torchrun worker (local rank given by the test) on a node with one GPU: CUDA reported
    present, the process group and the current-device call recorded instead of made."""
    calls = {"init": [], "set_device": []}
    for k, v in {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("VBZOO_DIST_BACKEND", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: calls["set_device"].append(i))
    monkeypatch.setattr(distributed.dist, "init_process_group",
                        lambda **kw: calls["init"].append(kw["backend"]))
    return calls


@pytest.mark.parametrize("device", ["auto", "cuda", None])
def test_a_cuda_run_with_more_processes_than_gpus_is_refused_before_the_group_forms(
        one_gpu_node, monkeypatch, device):
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(ValueError, match=r"process 1 of this node has no GPU: torchrun started 2 "
                       r"processes per node on a machine with 1 GPU.*at most 1.*--device cpu"):
        distributed.init_from_env(device)
    assert one_gpu_node == {"init": [], "set_device": []}


@pytest.mark.parametrize("local_rank", ["0", "1"])
def test_a_cpu_run_on_a_cuda_machine_uses_gloo_and_touches_no_gpu(one_gpu_node, monkeypatch,
                                                                  local_rank):
    """``--nproc 2 --device cpu`` on a one-GPU machine (the CLI test above, on a GPU node): it
    used to set rank 1's current device to a GPU that does not exist."""
    monkeypatch.setenv("LOCAL_RANK", local_rank)
    assert distributed.init_from_env("cpu")
    assert one_gpu_node == {"init": ["gloo"], "set_device": []}


def test_a_cuda_run_puts_each_rank_on_its_gpu_over_nccl(one_gpu_node, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert distributed.init_from_env("auto")
    assert one_gpu_node == {"init": ["cpu:gloo,cuda:nccl"], "set_device": [0]}
