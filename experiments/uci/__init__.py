"""The parts of :mod:`experiments.uci_benchmark` (the UCI regression benchmark, PBP protocol)
outside its config, fits and run: the methods' pair specs and the protocol's sizing and dropout
grid selection (:mod:`.protocol`), and the published numbers, per-split rows, summaries, tables
and figure (:mod:`.results`). (The UCI data themselves are :mod:`experiments.data.uci`.)"""
