"""The text around the shipped posteriors, rendered from their cards (never retyped): each
posterior's ``card.md`` (:func:`render_card`) and the docs page ``docs/pretrained.md``
(:func:`render_page`; ``python -m experiments.harness.pretrained_docs`` rewrites it, and a test
checks that the page equals the rendering)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parent.parent.parent / "docs" / "pretrained.md"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return "`" + json.dumps(v) + "`"
    return str(v)


def _what(card: dict) -> str:
    p = card["pair"]
    src = f"experiment `{card['experiment']}`, arm `{card['arm']}`" if card.get("arm") \
        else "`python -m experiments fit`"
    return f"{p['model']}/{p['guide']} ({src})"


def render_card(card: dict) -> str:
    """``card.md``: the card as a page."""
    p, t, u = card["pair"], card["training"], card["units"]
    lines = [f"# {card['name']}", "", f"{_what(card)}; card format {card['card_format_version']}.",
             "", "## Pair", "", "| key | value |", "|---|---|"]
    for key in ("model", "guide", "model_cfg", "guide_cfg", "model_args", "num_data"):
        lines.append(f"| {key} | {_fmt(p.get(key))} |")
    lines += ["", f"State: `{card['state']['file']}`, {card['state']['bytes']} bytes, "
              f"{card['dtype']}, sha256 `{card['state']['sha256']}`.", "",
              "## Data and units", ""]
    lines += [f"- {k}: {_fmt(v)}" for k, v in card["data"].items()]
    if u["task"] == "images":
        lines.append(f"- inputs: images of shape {_fmt(u['image_shape'])} as stored (one pixel a "
                     f"column of `{card['check']['file']}`, {u['columns'][0]}..{u['columns'][-1]})")
    else:
        lines.append(f"- inputs {', '.join(u['columns'])} as (v - mean) / std with mean "
                     f"{_fmt(u['x_mean'])}, std {_fmt(u['x_std'])}; target {u['target']} as "
                     f"(y - {u.get('y_mean')!r}) / {u.get('y_std')!r}")
    lines += ["", "## Metrics (the training run's)", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in card["metrics"].items()]
    if card.get("paper"):
        lines += ["", "## The paper's numbers", "", "| metric | paper |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in card["paper"].items()]
    c = card["check"]
    lines += ["", "## Check", "", f"{c['metric']} on the {c['rows']} held-out rows of "
              f"`{c['file']}`: {_fmt(c['value'])} (relative tolerance {c['tolerance']:g})."
              + (f" Float32/64 state before float16: {_fmt(c['value_full_precision'])}."
                 if "value_full_precision" in c else "")
              + (f" Predicted in float64: {_fmt(c['value_float64'])}; with 1, 2 and 4 threads: "
                 + ", ".join(_fmt(v) for v in c.get("values_1_2_4_threads", []))
                 + " (the tolerance is ten times the largest distance, at least 1e-5)."
                 if "value_float64" in c else "")
              + (f" Standard deviation over 5 predictive seeds: {_fmt(c['mc_sd_over_5_seeds'])}."
                 if "mc_sd_over_5_seeds" in c else ""),
              "", "## Training", ""]
    lines += [f"- {k}: {_fmt(v)}" for k, v in t.items()]
    lines += [f"- exported: {_fmt(card['exported'])}", ""]
    return "\n".join(lines)


def shipped_cards() -> list[dict]:
    from .pretrained import SHIPPED, read_card

    return [read_card(p.parent) for p in sorted(SHIPPED.glob("*/card.json"))]


def _size(card: dict) -> str:
    from .pretrained import SHIPPED

    folder = SHIPPED / card["name"]
    total = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    return f"{total / 1e6:.2f} MB"


def _headline(card: dict) -> str:
    m, c = card["metrics"], card["check"]
    keys = [k for k in m if "test_rmse" in k or "test_ll" in k or k.startswith(("rmse_", "ll_"))
            or k.endswith(("accuracy", "nll")) or k in ("rmse", "test_ll")
            or (k.startswith("nll_") and k[4:].isdigit()) or k.startswith(("final_test_elbo",
                                                                              "test_error"))]
    shown = ", ".join(f"{k} {_fmt(m[k])}" for k in keys[:3])
    return f"{shown}; check {c['metric']} {_fmt(c['value'])} on {c['rows']} rows"


def render_page() -> str:
    """``docs/pretrained.md`` from the shipped cards."""
    cards = shipped_cards()
    lines = [
        "# Pretrained posteriors", "",
        "<!-- rendered by `python -m experiments.harness.pretrained_docs` from the cards in "
        "experiments/pretrained/; do not edit -->", "",
        "The zoo ships trained posteriors: the model's hyperparameters and the guide's q, with a "
        "card saying what each is, how it was trained and what it scores. Load one by name:", "",
        "```python", "from experiments import load_pretrained, predict", "",
        f"model, guide = load_pretrained({(cards[0]['name'] if cards else 'NAME')!r})",
        "pred = predict(model, guide, x)   # x in the model's units: see the card's units",
        "```", "",
        "or predict in your own units from the command line (a CSV with the card's input "
        "columns; with the target column, the metrics are printed too; the default `--out` is "
        "`./NAME-predictions.csv`):", "",
        "```", "python -m experiments predict pretrained:NAME --data new.csv [--out predictions.csv]",
        "```", "",
        "`load_pretrained` looks in the zoo's folder `experiments/pretrained/NAME/`, then in "
        "`$VBZOO_CACHE_DIR/pretrained/NAME/`. It checks `posterior.pt` against the sha256 in "
        "`card.json`, reads it with `torch.load(weights_only=True)`, and refuses, in one line, "
        "an unknown name, a corrupted or crafted file, a card of a newer format or a state that "
        "does not fit the pair. A trained run becomes a posterior with "
        "`python -m experiments export RUN_DIR[/ARM] --name NAME [--to FOLDER] [--half]`.", "",
        "**Downloads.** A name on disk nowhere but listed in the index of remote posteriors "
        "(the zoo's `REMOTE` in `experiments/harness/pretrained_download.py`, and "
        "`$VBZOO_CACHE_DIR/pretrained/index.json` where it exists: "
        "`{\"NAME\": {\"url\": \"https://.../NAME/card.json\", \"sha256\": {\"card.json\": "
        "\"...\", \"posterior.pt\": \"...\", \"check.csv\": \"...\"}}}`) is downloaded, as "
        "the data layer downloads its files, into the cache folder `$VBZOO_CACHE_DIR/pretrained/NAME/` "
        "(default `~/.cache/vbzoo/pretrained/NAME/`), then loaded as usual; so is the state file "
        "of a cached card whose `state` gives a `url`. Every file is checked against its sha256 "
        "before it is used, and nothing reaches the cache before all of them pass: a mismatch is "
        "a one-line error naming the expected and the actual sha256. With no network, the error "
        "names the URL: download the files by hand into that folder and load the name again.", "",
        "| name | what | metrics | paper | size | training |", "|---|---|---|---|---|---|",
    ]
    for card in cards:
        t = card["training"]
        paper = "; ".join(f"{k}: {_fmt(v)} (here {_fmt(card['metrics'].get(k, '-'))})"
                          for k, v in card["paper"].items()) or "-"
        cost = f"{_fmt(t.get('wall_time_s'))} s wall for the run, {t.get('hardware')}"
        if t.get("load_average"):
            cost += f", load average {t['load_average']}"
        lines.append(f"| `{card['name']}` | {_what(card)} | {_headline(card)} | {paper} | "
                     f"{_size(card)} | {cost} |")
    lines += ["", "Each card (`card.json`, rendered as `card.md` beside it) also holds the data "
              "and split, every metric of the training run, the command, commit and date.", "",
              "## Reproduce the cards' numbers without training", "",
              "```", "python -m experiments reproduce --pretrained [--smoke] [--out results]", "```",
              "",
              "loads every posterior on the search path (the shipped ones, then the cache's) and "
              "scores it again, with no training: its card's check metric on its `check.csv` rows "
              "and, where the export recipe rebuilds the experiment's test data from the card's "
              "`source` (the run's config and seed), the experiment's own test metrics (co2: "
              "SVGP test RMSE, log likelihood and coverage; blundell-regression: test RMSE, log "
              "likelihood and the band's std ratio; svgp-classification: accuracy, NLL and ECE; "
              "dkl-regression: RMSE and log likelihood in the training region and the gap, and "
              "the band's std ratios; iwae-nll: the test NLL bounds nll_K; kingma-fig2: the final "
              "test ELBO; uci-benchmark: the split's test RMSE and log likelihood; svgp-uci: the "
              "fold's test RMSE, MAE, log likelihood and coverage; blundell-mnist: the test error "
              "of the posterior-mean weights and of the Monte Carlo predictive, and the "
              "validation error). Each value is compared "
              "with the card's within the card's relative tolerance (1e-6 for a closed-form "
              "prediction in float64; in float32 ten times the check's largest distance from its "
              "float64 value and its values with 1, 2 and 4 threads, at least 1e-5; 1e-4 for a "
              "Monte Carlo one, drawn with "
              "the training run's seed); the "
              "VAEs' bounds, which their runs drew unseeded, within 4 Monte Carlo standard errors "
              "of a difference, measured from two seeded estimates. A value outside, or a "
              "posterior that does not load, is a FAILED row. The report, `results/REPORT-pretrained.md` "
              "(`REPORT-pretrained-smoke.md` with `--smoke`, the check rows only), is a table of "
              "posterior, experiment, metric, card value, recomputed value, tolerance and "
              "PASS/FAILED, each row marked \"from pretrained NAME\"; the command exits 1 on any "
              "FAILED row. Without `--smoke` it also draws, for each posterior whose experiment "
              "has a figure of its predictions, that figure from the loaded posterior (co2-svgp: "
              "the SVGP's predictive mean and 2-sd band over the years with the data; "
              "blundell-regression-bbb: the predictive median and interquartile band; "
              "two-moons-svgp: the decision probabilities and boundary; dkl-regression-dkl and "
              "-dkl-bayes: the mean and 2-sd band over the gap; the blundell-mnist net: Figure 3, "
              "the density of its weights), as PNG and PDF in "
              "`results/pretrained-figures/`, each embedded in the report below its posterior's "
              "rows (\"Figure (from pretrained NAME)\"); the others have none. Training curves "
              "(Blundell et al.'s Figure 2, the VAE experiments' ELBO curves) are not held by a "
              "posterior and are not drawn. Everything shipped takes seconds on a 2-core CPU.",
              ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--check"]:
        return 0 if PAGE.read_text(encoding="utf-8") == render_page() else 1
    from experiments.engine.checkpoint import atomic_write_text

    atomic_write_text(PAGE, render_page())
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
