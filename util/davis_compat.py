"""Import the optional `davisinteractive` package on current numpy / networkx.

davisinteractive 1.0.4 (the last release) uses aliases that numpy 1.24 and networkx 3.0
removed: np.int / np.float / np.bool / np.object and networkx.from_scipy_sparse_matrix.
`import_davisinteractive()` restores exactly those names (as the builtins / the renamed
function they always meant) and then imports the package. One more difference: the robot draws
its scribbles along `skimage.morphology.medial_axis`, which breaks ties in a random pixel order;
scikit-image up to 0.18 seeded that order (RandomState(0)), later versions draw a fresh one on
every call, so the same prediction got different scribbles and two runs of a protocol differed.
The robot's medial_axis gets a fixed seed again (`_seed_robot_skeleton`). Nothing else is patched.

Install (optional extra):
    pip install -r requirements-extra.txt
    pip install --no-deps --no-build-isolation davisinteractive==1.0.4   # setup.py needs numpy + Cython
"""
import importlib

from util.errors import UserError

INSTALL_HINT = ('pip install -r requirements-extra.txt && '
                'pip install --no-deps --no-build-isolation davisinteractive==1.0.4')


def _patch_numpy():
    import numpy as np
    for name, value in (('int', int), ('float', float), ('bool', bool), ('object', object)):
        # hasattr() on the removed aliases raises/warns on some numpy versions: check __dict__
        if name not in np.__dict__:
            setattr(np, name, value)


def _patch_networkx():
    import networkx as nx
    if not hasattr(nx, 'from_scipy_sparse_matrix') and hasattr(nx, 'from_scipy_sparse_array'):
        nx.from_scipy_sparse_matrix = nx.from_scipy_sparse_array


def _seed_robot_skeleton():
    """Give the robot's medial_axis a fixed tie-breaking seed (see the module docstring)."""
    import inspect
    robot = importlib.import_module('davisinteractive.robot.interactive_robot')
    orig = robot.medial_axis
    if getattr(orig, 'seeded', False):
        return
    params = inspect.signature(orig).parameters
    key = next((k for k in ('rng', 'random_state') if k in params), None)
    if key is None:            # scikit-image <= 0.18: seeded inside
        return

    def medial_axis(image, mask=None, return_distance=False, **kwargs):
        kwargs.setdefault(key, 0)
        return orig(image, mask, return_distance, **kwargs)

    medial_axis.seeded = True
    robot.medial_axis = medial_axis


def available():
    """True when davisinteractive and the packages its robot needs can be imported."""
    try:
        import_davisinteractive(('robot', 'metrics'))
    except UserError:
        return False
    return True


def import_davisinteractive(submodules=('metrics',)):
    """Import davisinteractive (after the compatibility patches) and the given submodules.

    Returns the top-level package. Raises UserError with the install command when it (or
    one of its dependencies, e.g. scikit-learn for the robot) is missing."""
    try:
        _patch_numpy()
        _patch_networkx()
        pkg = importlib.import_module('davisinteractive')
        for sub in submodules:
            importlib.import_module(f'davisinteractive.{sub}')
        if 'robot' in submodules:
            _seed_robot_skeleton()
    except ImportError as e:
        missing = getattr(e, 'name', None) or str(e)
        raise UserError(f'the optional package davisinteractive (or its dependency {missing}) '
                        f'is not installed; install it with: {INSTALL_HINT}') from None
    return pkg


def batched_metrics():
    """(batched_jaccard, batched_f_measure) from davisinteractive.metrics."""
    import_davisinteractive(('metrics',))
    from davisinteractive.metrics import batched_f_measure, batched_jaccard
    return batched_jaccard, batched_f_measure


def scribbles_robot(**kwargs):
    """A davisinteractive InteractiveScribblesRobot (kwargs go to its constructor)."""
    import_davisinteractive(('robot',))
    from davisinteractive.robot import InteractiveScribblesRobot
    return InteractiveScribblesRobot(**kwargs)
