"""Micro-benchmarks of training steps (run as ``python -m experiments.benchmarks.<name>``)."""
