"""Moved to util/cpu_threads.py (a machine-level policy, no Session state: the Session and the
interaction benchmark both read it); these names stay importable here only until the running
trainings have finished."""
from util.cpu_threads import (ENV_VAR, check_policy, interaction_threads, machine_load,  # noqa: F401
                              threads_for_interaction, usable_cpus)
