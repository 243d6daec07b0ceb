"""Signal-to-noise pruning (Blundell et al. 2015, Table 2): exact counts, ties, zeroed means."""

from __future__ import annotations

import pytest
import torch

import guides
import models
from experiments.blundell_pruning import prune_masks, pruned_means


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
