"""Moved to scripts/simulated_marks.py (the evaluators use it too); these names stay importable
here only until the running trainings have finished."""
from scripts.simulated_marks import click, correction, first_scribbles, perturb_mask, simulate_round, stroke  # noqa: F401
