"""Signal-to-noise pruning (Blundell et al. 2015, Table 2): exact counts, ties, zeroed means."""

from __future__ import annotations

import pytest
import torch

import guides
import models
from experiments import blundell_mnist as bm
from experiments import blundell_pruning as bp
from experiments.blundell_pruning import prune_masks, pruned_means
from experiments.engine.checkpoint import save_zoo_file
from experiments.harness.spec import ConfigError, apply_overrides, config_dict, validate_config


def _guide(widths=(5,)):
    model = models.create_model("bnn", in_features=3, widths=widths, out_features=2,
                                task="classification")
    guide = guides.create_guide("mean-field", model)
    x, y = model.example_data(4)
    guide(x, y)
    return guide


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.75, 0.95, 0.98, 1.0])
def test_prune_keeps_exactly_the_requested_fraction_with_ties(fraction):
    snr = {"w0": torch.ones(7, 11), "w1": torch.ones(3, 8)}  # every weight tied
    snr["w1"][0, :4] = 0.5
    masks = prune_masks(snr, fraction)
    n = 7 * 11 + 3 * 8
    pruned = sum(int((~m).sum()) for m in masks.values())
    assert pruned == int(fraction * n + 0.5)
    if 0 < pruned:  # the lowest SNR go first
        assert not masks["w1"][0, : min(4, pruned)].any()


def test_pruned_weights_are_zero_and_the_rest_keep_their_means():
    guide = _guide(widths=(6, 4))
    with torch.no_grad():
        for name in guide.signal_to_noise():
            getattr(guide, f"{name}_loc").normal_()
    snr = guide.signal_to_noise()
    means = pruned_means(guide, 0.75)
    flat_snr = torch.cat([snr[n].reshape(-1) for n in snr])
    flat_mu = torch.cat([means[n].reshape(-1) for n in snr])
    loc = torch.cat([getattr(guide, f"{n}_loc").detach().reshape(-1) for n in snr])
    k = int(0.75 * flat_snr.numel() + 0.5)
    assert int((flat_mu == 0).sum()) == k
    zero = flat_mu == 0
    assert flat_snr[zero].max() <= flat_snr[~zero].min()  # the lowest SNR were removed
    assert torch.equal(flat_mu[~zero], loc[~zero])


def test_prune_rejects_bad_fraction():
    with pytest.raises(ValueError, match="fraction"):
        prune_masks({"w0": torch.ones(3)}, 1.5)
    with pytest.raises(ValueError, match="empty"):
        prune_masks({}, 0.5)


def test_configs_are_typed_and_checked_before_a_run():
    cfg = bm.get_config(smoke=True)
    validate_config(cfg)
    assert [a for a, _ in cfg.runs()] == list(bm.ARMS) and cfg.bbb_mixture.fit.epochs == 1
    cfg = apply_overrides(bm.get_config(), ["widths=[400,800]", "bbb_gaussian.fit.epochs=3",
                                            'arms=["bbb-mixture-blundell","bbb-gaussian"]'])
    validate_config(cfg)
    assert cfg.runs() == [("bbb-mixture-blundell", 400), ("bbb-gaussian", 400),
                          ("bbb-gaussian", 800)]  # the pi_i schedule at 400 units only
    assert cfg.bbb_gaussian.fit.epochs == 3 and cfg.bbb_mixture.fit.epochs == 30
    with pytest.raises(ConfigError, match="bbb_mixture.guide='map'"):
        validate_config(apply_overrides(bm.get_config(), ["bbb_mixture.guide=map",
                                                          "bbb_mixture.guide_cfg={}"]))
    with pytest.raises(ConfigError, match="sgd.fit.eval_every=2"):
        validate_config(apply_overrides(bm.get_config(), ["sgd.fit.eval_every=2"]))
    with pytest.raises(ConfigError, match="dropout.model_cfg.widths is set by the experiment"):
        validate_config(apply_overrides(bm.get_config(), ["dropout.model_cfg.widths=[3]"]))
    pcfg = apply_overrides(bp.get_config(), ["train.width=1200", "bbb_mixture.fit.epochs=600"])
    validate_config(pcfg)
    assert pcfg.spec(pcfg.train.arm).fit.epochs == 600 and pcfg.train.width == 1200
    with pytest.raises(ConfigError, match="fractions"):
        validate_config(apply_overrides(bp.get_config(), ["fractions=[0.5,1.5]"]))
    with pytest.raises(ConfigError, match="train.arm"):
        apply_overrides(bp.get_config(), ["train.arm=sgd"])


@pytest.mark.parametrize("legacy", [False, True])
def test_load_guide_rebuilds_the_arm_of_a_checkpoint(tmp_path, legacy):
    spec = bm.default_arm("bbb-gaussian")
    model, guide = bm.build_pair(spec, 8, 1)
    guide(torch.zeros(2, 784), torch.zeros(2, dtype=torch.long))
    with torch.no_grad():
        guide.w0_loc.normal_()
    data = bm.MnistData(num_train=100, num_val=10, num_test=20)
    if legacy:  # a best.pt written before the typed configs held the whole config dict
        record = {"config": {"priors": {"gaussian": spec.model_cfg["prior"]}, "depth": 1,
                             "guide": spec.guide_cfg, "data": config_dict(data)}}
    else:
        record = {"spec": config_dict(spec), "depth": 1, "data": config_dict(data)}
    save_zoo_file(tmp_path / "best.pt", "best",
                  {"arm": "bbb-gaussian", "width": 8, "model": model.state_dict(),
                   "guide": guide.state_dict(), "best_epoch": 1, **record})
    _, loaded, ckpt, loaded_data = bp.load_guide(tmp_path / "best.pt")
    assert loaded_data == data and ckpt["arm"] == "bbb-gaussian"
    assert torch.equal(loaded.w0_loc, guide.w0_loc) and loaded.w0_loc.shape == (8, 785)


def test_exported_pruned_net_reads_back_as_its_pruned_means(tmp_path):
    guide = _guide(widths=(6, 4))
    path = bp.export_pruned(guide, 0.5, tmp_path / "pruned-50.pt", {"experiment": "test"})
    weights = bp.load_pruned(path)
    means = pruned_means(guide, 0.5)
    assert set(weights) == set(means)
    for name, w in means.items():
        assert weights[name].shape == w.shape and weights[name].dtype == torch.float32
        assert torch.equal(weights[name] == 0, w == 0)  # the same weights pruned
        torch.testing.assert_close(weights[name], w.half().float())  # kept ones: float16 means
    with pytest.raises(Exception, match="not a 'best' file"):
        bp.load_guide(path)  # a pruned file is refused where a best.pt is expected
