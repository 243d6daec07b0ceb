"""The engine: one SVI loop (:mod:`.training`), its ELBOs, checkpoints, health checks and
many-process support, and what comes after training (prediction, metrics, deep ensembles).

Models and guides never import from here. Users call the engine through the public names of
:mod:`experiments` (``from experiments import fit, FitConfig, RunOptions, predict``).
"""
