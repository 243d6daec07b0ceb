"""Export recipe (:mod:`experiments.harness.export_recipes`) and ``reproduce --pretrained`` scorer
(:data:`experiments.harness.reproduce_pretrained.HEADLINES`) of blundell-mnist's Bayes-by-Backprop
arms, whose folders are named ``<arm>-<width>`` (``bbb-mixture-400``, ``bbb-gaussian-400``,
``bbb-mixture-blundell-400``).

The experiment keeps each arm's best-validation state in ``<arm>-<width>/best.pt`` (its fits
write no ``checkpoint.pt``): that is the state exported, the one the run's test error is of. The
user's units are raw pixel values 0..255 (columns ``px0..px783``, row-major 28 x 28, target
``label`` 0..9), the model's those divided by the run's ``pixel_divisor`` (126, as the paper), so
the card's ``x_std`` is the divisor. Reproduce rebuilds the run's test split (``load_split`` of
the card's data options) and scores it as the experiment does: the error of the posterior-mean
weights (``test_error_<arm>_<width>``, and ``val_error_*`` on the validation images) and of the
Monte Carlo predictive with the run's draws and seed (``test_error_mc_*``)."""

from __future__ import annotations

import re

from .export_recipes_uci import ArmPattern, _module

_BBB_ARM = re.compile(r"(?P<arm>bbb-mixture|bbb-mixture-blundell|bbb-gaussian)-(?P<width>[0-9]+)")


def _split(arm: str) -> tuple[str, int, str]:
    """``(arm, width, metric tag)`` of the folder name ``<arm>-<width>``."""
    m = _BBB_ARM.fullmatch(arm)
    return m["arm"], int(m["width"]), f"{m['arm']}_{m['width']}"


def blundell_mnist(cfg: dict, arm: str, data_dir) -> dict:
    """blundell-mnist's ``<bbb arm>-<width>``: the run's test images in raw pixels, the
    best-validation state of ``best.pt``."""
    mod = _module("blundell-mnist")
    name, width, tag = _split(arm)
    exp = cfg["config"]
    dcfg = mod.MnistData(**exp["data"])
    _, _, (x_te, y_te) = mod.load_split(dcfg, data_dir)
    div = float(dcfg.pixel_divisor)
    n_test = len(y_te)
    return {
        "model_args": mod.arch_args(width, int(exp["depth"])), "num_data": int(dcfg.num_train),
        "spec": exp[mod.arm_field(name)], "metric_tag": tag,
        "state_file": ("best.pt", "best"),
        "paper": {f"test_error_{name}_{w}": round(v / 100, 6)
                  for w, v in zip((400, 800, 1200), mod.PAPER_TABLE1.get(name, ()))},
        "units": {"task": "classification", "columns": [f"px{i}" for i in range(784)],
                  "target": "label", "x_mean": [0.0] * 784, "x_std": [div] * 784,
                  "classes": [float(c) for c in range(10)]},
        "data": {"dataset": "MNIST (experiments.data.load_mnist); inputs are the 784 raw pixel "
                            "values 0..255 (row-major 28 x 28), the model sees them divided by "
                            f"{div:g}",
                 "split": f"train: {dcfg.num_train} training images before the last "
                          f"{dcfg.num_val} (validation: the epoch with the lowest validation "
                          f"error was kept); test: the first {n_test} of the 10k test images",
                 "num_train": int(dcfg.num_train), "num_test": int(n_test)},
        "test_rows": ((x_te * div).numpy(), y_te.numpy()), "check_metric": "test_ll",
        "num_samples": int(exp["num_samples"]),
    }


def blundell_mnist_scores(model, guide, card: dict) -> dict:
    """The test error of the posterior-mean weights and of the ``num_samples``-draw Monte Carlo
    predictive (seeded with the run's seed), and the validation error, as blundell-mnist's
    ``train_arm`` scores them."""
    mod = _module("blundell-mnist")
    _, _, tag = _split(card["arm"])
    src = card["source"]
    _, (x_val, y_val), (x_te, y_te) = mod.load_split(mod.MnistData(**src["config"]["data"]))

    def error(x, y):
        return mod.error_rate(mod.mlp_logits(mod.bnn_weights(guide), x), y)

    return {f"test_error_{tag}": error(x_te, y_te), f"val_error_{tag}": error(x_val, y_val),
            f"test_error_mc_{tag}": mod.mc_error(guide, x_te, y_te,
                                                 int(src["config"]["num_samples"]),
                                                 int(src["seed"]))}


#: the recipes, by experiment (:data:`experiments.harness.export_recipes.RECIPES`)
RECIPES = {"blundell-mnist": ArmPattern(_BBB_ARM, blundell_mnist,
                                        "<bbb-mixture|bbb-mixture-blundell|bbb-gaussian>-<width>")}
#: the scorers, by experiment (:data:`experiments.harness.reproduce_pretrained.HEADLINES`)
HEADLINES = {"blundell-mnist": blundell_mnist_scores}

__all__ = ["HEADLINES", "RECIPES"]
