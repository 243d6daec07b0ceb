"""The export recipes of ``python -m experiments export RUN_DIR/ARM``
(:mod:`experiments.harness.export`): for each experiment arm, what the experiment's ``run`` gave
the arm's constructor (input dimension, kernel, likelihood, dtype, ...), its units, data and split,
and its held-out test rows, rebuilt from the run's ``config.json`` (and the data). ``reproduce
--pretrained`` (:mod:`experiments.harness.reproduce_pretrained`) rebuilds the test rows with the
same recipes from a card's ``source``."""

from __future__ import annotations

from .export_recipes_mnist import RECIPES as MNIST_RECIPES
from .export_recipes_uci import RECIPES as UCI_RECIPES


def _experiment_module(name: str):
    """The module of the registered experiment ``name``, found through the registry: an
    experiment script imports the CLI (its ``if __name__ == "__main__"`` block), and the CLI
    imports this module, so importing the script here by name would close an import cycle."""
    import sys

    from experiments.registry import get_experiment

    return sys.modules[get_experiment(name).run.__module__]


def _co2_svgp(cfg: dict, arm: str, data_dir) -> dict:
    """co2's ``svgp`` arm: time in years since ``data.start``, ppm minus the training mean."""
    from experiments import data as zoo_data

    co2_module = _experiment_module("co2")
    SVGP_ARGS, gpml_kernel_spec = co2_module.SVGP_ARGS, co2_module.gpml_kernel_spec
    exp = cfg["config"]
    th = exp["gpml"]
    co2 = zoo_data.load_co2(data_dir=data_dir)
    d = exp["data"]
    keep = co2.t >= d["start"]
    t, ppm = co2.t[keep], co2.ppm[keep]
    train = t < d["train_until"]
    args = {"input_dim": 1, "kernel": gpml_kernel_spec(th), "noise_std": th["theta11"],
            "dtype": "float64"}
    assert set(args) == set(SVGP_ARGS), "co2's SVGP_ARGS changed: update this recipe"
    return {
        "model_args": args, "num_data": int(train.sum()),
        "units": {"task": "regression", "columns": ["year"], "target": "ppm",
                  "x_mean": [float(d["start"])], "x_std": [1.0],
                  "y_mean": float(ppm[train].mean()), "y_std": 1.0},
        "data": {"dataset": "co2 (NOAA GML monthly mean, Mauna Loa)",
                 "split": f"train {d['start']} <= year < {d['train_until']}, test after",
                 "num_train": int(train.sum()), "num_test": int((~train).sum())},
        "test_rows": (t[~train].numpy(), ppm[~train].numpy()), "check_metric": "rmse",
    }


def _blundell(cfg: dict, arm: str, data_dir) -> dict:
    """blundell-regression's arms (``bbb``, ``dropout``, ``plain``): Blundell's toy curve, x and
    y as drawn (no standardisation); the test rows are the run's (seed + 10000)."""
    from experiments import data as zoo_data

    d, seed = cfg["config"]["data"], int(cfg["seed"])
    x, y = zoo_data.blundell_toy(n=d["num_test"], x_range=tuple(d["x_range"]),
                                 noise_std=d["noise_std"], seed=seed + 10_000)
    return {
        "model_args": {"in_features": 1}, "num_data": int(d["num_train"]),
        "units": {"task": "regression", "columns": ["x"], "target": "y", "x_mean": [0.0],
                  "x_std": [1.0], "y_mean": 0.0, "y_std": 1.0},
        "data": {"dataset": "Blundell et al. (2015) toy curve y = x + 0.3 sin(2 pi (x + e)) + "
                            "0.3 sin(4 pi (x + e)) + e (experiments.data.blundell_toy)",
                 "split": f"train: {d['num_train']} draws (seed {seed}), test: {d['num_test']} "
                          f"draws (seed {seed + 10_000}), x uniform on {d['x_range']}, noise sd "
                          f"{d['noise_std']}",
                 "num_train": int(d["num_train"]), "num_test": int(d["num_test"])},
        "test_rows": (x.numpy(), y.numpy()), "check_metric": "rmse",
        "num_samples": int(cfg["config"]["num_samples"]),
    }


def _moons(cfg: dict, arm: str, data_dir) -> dict:
    """svgp-classification's two-moons arm (``moons``, the pair ``moons.svgp``): x as drawn, the
    labels 0/1; the test rows are the run's (seed + 10000)."""
    m, seed = cfg["config"]["moons"], int(cfg["seed"])
    two_moons = _experiment_module("svgp-classification").two_moons
    x, y = two_moons(m["num_test"], m["noise"], seed + 10_000)
    return {
        "model_args": {"input_dim": 2, "likelihood": "bernoulli"}, "num_data": int(m["num_train"]),
        "spec": m["svgp"],
        "units": {"task": "classification", "columns": ["x1", "x2"], "target": "y",
                  "x_mean": [0.0, 0.0], "x_std": [1.0, 1.0], "classes": [0.0, 1.0]},
        "data": {"dataset": "two moons (experiments.svgp_classification.two_moons)",
                 "split": f"train: {m['num_train']} points (seed {seed}), test: {m['num_test']} "
                          f"points (seed {seed + 10_000}), noise sd {m['noise']}",
                 "num_train": int(m["num_train"]), "num_test": int(m["num_test"])},
        "test_rows": (x.numpy(), y.numpy()), "check_metric": "test_ll",
    }


def _mnist_svgp(cfg: dict, arm: str, data_dir) -> dict:
    """svgp-classification's MNIST arm (``mnist-svgp``, the pair ``mnist.svgp``): the user's units
    are the run's PCA features (``pc1..pcD`` of the training subset, as ``_mnist_features`` computes
    them), the labels 0..9; the test rows are the run's test subset."""
    from types import SimpleNamespace

    m, seed = cfg["config"]["mnist"], int(cfg["seed"])
    mod = _experiment_module("svgp-classification")
    x, y, x_te, y_te = mod._mnist_features(SimpleNamespace(**m), seed, data_dir)
    cols = [f"pc{i + 1}" for i in range(int(m["dim"]))]
    return {
        "model_args": {"input_dim": len(cols), "likelihood": "softmax", "num_classes": 10},
        "num_data": int(m["num_train"]), "spec": m["svgp"], "metric_tag": "mnist_svgp",
        "units": {"task": "classification", "columns": cols, "target": "label",
                  "x_mean": [0.0] * len(cols), "x_std": [1.0] * len(cols),
                  "classes": [float(c) for c in range(10)]},
        "data": {"dataset": "MNIST, a random subset, as its top principal components (inputs are "
                            "the PCA features, not pixels)",
                 "split": f"train: {m['num_train']} of the official training set, test: "
                          f"{m['num_test']} of the test set (torch.randperm, seed {seed}); "
                          f"{m['dim']} principal components of the training subset",
                 "num_train": int(m["num_train"]), "num_test": int(m["num_test"])},
        "test_rows": (x_te.numpy(), y_te.numpy()), "check_metric": "test_ll",
        "num_samples": int(m["num_samples"]),
    }


def _images(d: dict, seed: int, data_dir) -> dict:
    """A VAE arm's image recipe: images as the run loads them (``load_images``, binarised with the
    run's seed); the check rows are test images, scored by the seeded importance-weighted bound
    ``nll_5``."""
    import math

    import numpy as np

    from .vae import load_images

    data = load_images(d.get("dataset", "mnist"), d["binarization"], data_dir=data_dir,
                       num_train=d["num_train"], num_test=d["num_test"], seed=seed)
    size = math.prod(data.image_shape)
    return {
        "model_args": {"image_shape": list(data.image_shape)}, "num_data": int(data.num_train),
        "units": {"task": "images", "image_shape": list(data.image_shape),
                  "columns": [f"px{i}" for i in range(size)], "target": None},
        "data": {"dataset": f"{d.get('dataset', 'mnist')} images ({d['binarization']} "
                            "binarisation, experiments.harness.vae.load_images)",
                 "split": f"train: {data.num_train} images, test: {len(data.test)} (shuffled "
                          f"with seed {seed}; binarised with it)",
                 "num_train": int(data.num_train), "num_test": int(len(data.test))},
        "test_rows": (data.test.reshape(len(data.test), -1).numpy(), np.zeros(len(data.test))),
        "check_metric": "nll_5",
    }


def _iwae_vae(cfg: dict, arm: str, data_dir) -> dict:
    """iwae-nll's VAE (arm ``fit``, the pair ``vae``); every metric of the run is the arm's."""
    got = _images(cfg["config"]["data"], int(cfg["seed"]), data_dir)
    return {**got, "spec": cfg["config"]["vae"], "metric_tag": None}


def _kingma_vae(cfg: dict, arm: str, data_dir) -> dict:
    """kingma-fig2's arms ``<dataset>_z<N>`` (the pair ``<dataset>.vae``, ``z_dim`` N)."""
    ds, z = arm.rsplit("_z", 1)
    panel = cfg["config"][ds]
    got = _images({**panel["data"], "dataset": ds}, int(cfg["seed"]), data_dir)
    got["model_args"]["z_dim"] = int(z)
    return {**got, "spec": panel["vae"], "metric_tag": arm}


def _dkl(cfg: dict, arm: str, data_dir) -> dict:
    """dkl-regression's arms: the 1-D toy with a gap, x and y as drawn; the test rows are the
    run's training-region rows (seed + 10000) then its gap rows (seed + 20000)."""
    import numpy as np

    gap_data = _experiment_module("dkl-regression").gap_data
    d, seed = cfg["config"]["data"], int(cfg["seed"])
    shape = (d["num_test"], d["extent"], d["gap"], d["noise_std"])
    x_in, y_in = gap_data(*shape, seed + 10_000)
    x_gap, y_gap = gap_data(*shape, seed + 20_000, "gap")
    return {
        "model_args": {"input_dim": 1} if arm == "svgp" else {"in_features": 1},
        "num_data": int(d["num_train"]),
        "units": {"task": "regression", "columns": ["x"], "target": "y", "x_mean": [0.0],
                  "x_std": [1.0], "y_mean": 0.0, "y_std": 1.0},
        "data": {"dataset": "y = sin(3x) + x/2 + noise, x on [-extent, extent] without the gap "
                            "(experiments.dkl_regression.gap_data)",
                 "split": f"train: {d['num_train']} points (seed {seed}) on [-{d['extent']}, "
                          f"-{d['gap']}] and [{d['gap']}, {d['extent']}]; test: {d['num_test']} "
                          f"there (seed {seed + 10_000}) and {d['num_test']} in the gap (seed "
                          f"{seed + 20_000}); noise sd {d['noise_std']}",
                 "num_train": int(d["num_train"]), "num_test": 2 * int(d["num_test"])},
        "test_rows": (np.concatenate([x_in.numpy(), x_gap.numpy()]),
                      np.concatenate([y_in.numpy(), y_gap.numpy()])),
        "check_metric": "rmse", "num_samples": int(cfg["config"]["num_samples"]),
    }


#: experiment -> arm -> recipe(config.json, arm, data_dir) -> model_args, num_data, units, data,
#: test_rows (x, y in the user's units), check_metric, optionally num_samples (the run's
#: predictive draws), spec (the arm's pair in config.json, where it is not ``config[arm]``),
#: metric_tag (the arm's name in metrics.json, where it is not the arm's), arm_metrics (metrics.json
#: -> the card's metrics, where the arm's are not those named by its tag) and paper (the card's
#: paper numbers, where not the experiment's named by the tag), state_file ((file, zoo kind) in
#: the arm's folder, where the state to export is not its checkpoint.pt). The UCI experiments'
#: and blundell-mnist's arms are matched by a pattern (:mod:`experiments.harness.export_recipes_uci`,
#: :mod:`experiments.harness.export_recipes_mnist`).
RECIPES = {**UCI_RECIPES, **MNIST_RECIPES, "co2": {"svgp": _co2_svgp},
           "blundell-regression": {a: _blundell for a in ("bbb", "dropout", "plain")},
           "svgp-classification": {"moons": _moons, "mnist-svgp": _mnist_svgp},
           "dkl-regression": {a: _dkl for a in ("svgp", "dkl", "dkl_bayes", "bbb")},
           "iwae-nll": {"fit": _iwae_vae},
           "kingma-fig2": {f"{ds}_z{z}": _kingma_vae for ds, zs in (("mnist", (3, 5, 10, 20, 200)),
                                                                     ("frey", (2, 5, 10, 20)))
                           for z in zs}}


__all__ = ["RECIPES"]
