"""Moved to model/training_free.py (the evaluators reach it through
inference_core.networks.training_free_propagation); these names stay importable here only until
the running trainings have finished."""
from model.training_free import DilatedLite0, FrozenFeatures, memory_frame, propagate, read_memory  # noqa: F401
