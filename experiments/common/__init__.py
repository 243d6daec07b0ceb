"""Shared infrastructure of the experiments: data, the one SVI loop, metrics, plotting, config,
checkpointing. Models and guides never import from here."""
