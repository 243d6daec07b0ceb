"""The typed path from the command line to fit: RunContext, PairSpec, train_pair, and --set
values parsed against declared types (experiments/harness/spec.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from experiments.engine.settings import FitConfig
from experiments.harness.spec import (
    RUN_KEYS,
    ConfigError,
    PairSpec,
    RunContext,
    apply_overrides,
    config_dict,
    train_pair,
    validate_config,
)

REPO = Path(__file__).resolve().parents[1]


@dataclass
class _Data:
    num_train: int = 50
    x_range: tuple[float, float] = (0.0, 0.5)


@dataclass
class _Config:
    data: _Data = field(default_factory=_Data)
    bbb: PairSpec = field(default_factory=lambda: PairSpec(
        "bnn", "mean-field", {"widths": [8], "prior": {"kind": "gaussian", "sigma": 1.0}},
        {"init_scale": 0.01}, FitConfig(epochs=2, batch_size=16)))
    predict: dict = field(default_factory=lambda: {"num_samples": 10})


@pytest.mark.parametrize("override, attr, expected", [
    ("bbb.fit.epochs=7", lambda c: c.bbb.fit.epochs, 7),
    ("bbb.fit.lr=1e-2", lambda c: c.bbb.fit.lr, 0.01),
    ("bbb.fit.clip_norm=none", lambda c: c.bbb.fit.clip_norm, None),
    ("bbb.fit.clip_norm=5", lambda c: c.bbb.fit.clip_norm, 5.0),
    ("bbb.model_cfg.widths=[4, 4]", lambda c: c.bbb.model_cfg["widths"], [4, 4]),
    ("bbb.model_cfg.prior.kind=scale-mixture", lambda c: c.bbb.model_cfg["prior"]["kind"],
     "scale-mixture"),
    ("bbb.model_cfg.activation=tanh", lambda c: c.bbb.model_cfg["activation"], "tanh"),
    ("bbb.guide_cfg.local_reparam=true", lambda c: c.bbb.guide_cfg["local_reparam"], True),
    ("data.x_range=[0, 1]", lambda c: c.data.x_range, (0.0, 1.0)),
    ("predict.num_samples=3", lambda c: c.predict["num_samples"], 3),
])
def test_override_is_parsed_against_the_declared_type(override, attr, expected):
    config = _Config()
    new = apply_overrides(config, [override])
    assert attr(new) == expected and type(attr(new)) is type(expected)
    assert config == _Config()  # the default is not touched
    validate_config(new)


@pytest.mark.parametrize("override, message", [
    ("bbb.fit.epochs=abc", "--set bbb.fit.epochs=abc: expected an integer, got 'abc'"),
    ("bbb.fit.epochs=2.5", "--set bbb.fit.epochs=2.5: expected an integer, got '2.5'"),
    ("bbb.fit=3", "bbb.fit is a section (FitConfig); set one of its keys"),
    ("bbb.model_cfg.widths=big", "bbb.model_cfg.widths=big: expected a list of integers"),
    ("bbb.fit.lr=0", "lr=0.0 is invalid: expected a positive float"),
    ("bbb.fit.elbo=foo", "elbo='foo' is invalid: expected one of ('trace', 'meanfield')"),
    ("seed=3", "the seed is the run's, not the config's; use --seed"),
    ("bbb.fit.device=cuda", "use --device"),
    ("bbb.fit.seed=3", "the seed is the run's, not the config's; use --seed"),
    ("bbb.fit.out_dir=x", "use --out"),
    ("bbb.fit.progress=false", "use --no-progress"),
    ("bbb.fit.epochz=3", "unknown key 'epochz' in FitConfig; valid keys: epochs"),
    ("bbb.model_cfg.widthz=3", "unknown key 'widthz'; valid keys: activation"),
    ("predict.num_samplez=3", "unknown key 'num_samplez'; keys there: num_samples"),
    ("bbb.guide_cfg.local_reparam=maybe", "expected true or false"),
    ("data.num_train", "is not of the form key=value"),
])
def test_bad_override_is_one_line_naming_key_and_type(override, message):
    with pytest.raises(ConfigError) as info:
        apply_overrides(_Config(), [override])
    text = str(info.value)
    assert message in text and "\n" not in text


@pytest.mark.parametrize("change, message", [
    ({"model": "nope"}, "bbb.model: unknown model 'nope'"),
    ({"guide": "auto-mvn"}, "bbb.guide: 'auto-mvn' is not a guide of 'bnn'"),
    ({"model_cfg": {"widths": "big"}}, "bbb.model_cfg.widths: expected a list of integers"),
    ({"guide_cfg": {"flipout": 1}}, "bbb.guide_cfg.flipout: expected true or false"),
])
def test_whole_config_is_validated(change, message):
    config = _Config()
    for k, v in change.items():
        setattr(config.bbb, k, v)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_config(config)


def test_config_dict_leaves_run_keys_to_the_context():
    out = config_dict(_Config())
    assert out["bbb"]["fit"]["epochs"] == 2
    assert not {"seed", "device", "out_dir", "progress"} & set(out["bbb"]["fit"])
    json.dumps(out)


def test_run_context_checks_its_values(tmp_path):
    with pytest.raises(ValueError, match="not a torch device"):
        RunContext(device="tpu", out_dir=tmp_path)
    with pytest.raises(ConfigError, match="seed must be an integer"):
        RunContext(seed=-1, out_dir=tmp_path)


def test_train_pair_seeds_module_initialisation(tmp_path):
    """Same context, same spec: the same initial and final parameters, whatever the global random
    stream did before (the networks are built after the context seeds it)."""
    import torch

    spec = _Config().bbb
    x = torch.linspace(-1, 1, 32).unsqueeze(-1)
    y = x[:, 0].sin()

    def once(noise_before: int):
        torch.manual_seed(noise_before)  # what an earlier arm might have left behind
        ctx = RunContext(seed=3, device="cpu", out_dir=tmp_path, progress=False)
        _, guide, state = train_pair(spec, (x, y), ctx, "arm", model_args={"in_features": 1})
        assert state.run.seed == 3 and state.run.out_dir == str(tmp_path / "arm")
        return guide.w0_loc.detach().clone()

    torch.testing.assert_close(once(1), once(2), rtol=0, atol=0)


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "experiments", *args], cwd=REPO,
                          timeout=timeout, capture_output=True, text=True)


def test_failed_run_is_recorded(tmp_path):
    """A run that fails leaves run.log ending with the error and metrics.json with status failed,
    and the report lists it."""
    proc = _cli("run", "blundell-regression", "--smoke", "--no-progress", "--device", "cpu",
                "--out", str(tmp_path), "--set", "data.num_train=0")
    assert proc.returncode != 0
    (run_dir,) = (tmp_path / "blundell-regression").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "failed" and metrics["error"]
    log = (run_dir / "run.log").read_text()
    assert "failed after" in log and metrics["error"].split(":")[0] in log
    proc = _cli("report", str(run_dir), "--report", str(tmp_path / "R.md"))
    assert proc.returncode == 1, proc.stderr[-2000:]  # it lists a failed run; the report is written
    assert "FAILED" in (tmp_path / "R.md").read_text()


def test_run_options_are_one_kind_and_fit_config_the_other():
    """FitConfig holds no run setting; RUN_KEYS (what ``--set`` refuses) are RunOptions' fields;
    a run key given to FitConfig.from_dict is a one-line error naming RunOptions."""
    import dataclasses

    from experiments.engine.settings import RunOptions

    run_fields = {f.name for f in dataclasses.fields(RunOptions)}
    assert run_fields == {"seed", "device", "out_dir", "progress", "desc"}
    assert not run_fields & {f.name for f in dataclasses.fields(FitConfig)}
    assert set(RUN_KEYS) == run_fields
    for key, value in (("progress", False), ("seed", 3), ("device", "cpu"), ("out_dir", "x")):
        with pytest.raises(ValueError) as info:
            FitConfig.from_dict({"epochs": 2, key: value})
        text = str(info.value)
        assert f"{key} is a run option: pass RunOptions({key}={value!r})" in text and "\n" not in text
    assert RunOptions.from_dict({"progress": False}) == RunOptions(progress=False)
    with pytest.raises(ValueError, match="unknown RunOptions key"):
        RunOptions.from_dict({"lr": 1e-3})
