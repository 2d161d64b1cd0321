"""The layering rules of docs/ARCHITECTURE.md, checked on the source: the GUI and the CLIs
talk to the Session only, util is the ground floor, no import circles, and the Session's public
surface is pinned. A failure names the file, the line and the rule broken."""
import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

# Clients: the GUI, the CLIs, the evaluators and the scripts at the top and in example/. The
# trainers (scripts/train) are not clients, and no other module imports them.
CLIENTS = sorted([*(REPO / 'gui').glob('*.py'),
                  *(p for p in (REPO / 'scripts').rglob('*.py') if 'train' not in p.parts),
                  *REPO.glob('*.py'), *(REPO / 'example').glob('*.py')])
# Model-level tools, files named one by one: the core-import rule is waived for them (they build,
# load or time networks below the Session), but they too use only the Session's public names,
# and no other client imports them (test_clients_do_not_reach_below_through_model_level_tools).
# Each must need the waiver: it imports model/ or the core's internals, or it dispatches to a
# tool that does. The Session-level benchmarks (interaction, store, suite, long_video) are
# clients like any other. The training-free reference propagation is a network
# (model/training_free.py) that the evaluators get from the registry
# (inference_core.networks.training_free_propagation), not a tool they import.
MODEL_LEVEL = (
    'scripts/benchmark/propagation.py',    # times the propagation networks without a Session
    'scripts/benchmark/click.py',          # times the click controller alone
    'scripts/benchmark/__init__.py',       # `python -m scripts.benchmark`: dispatches to both
    'scripts/benchmark/__main__.py',
    'download_model.py',                   # checks a download by a strict load into our network
)
# the only modules of the core a client imports: the Session and the networks registry
PUBLIC_MODULES = {'inference_core.session', 'inference_core.networks'}
# the Session's collaborators: never reached from a client, on any object
COLLABORATORS = {'store', 'engine', 'history', 'scribbler'}
# the Session's public surface: a new public member is a deliberate change (and one more line
# in docs/ARCHITECTURE.md, "Public Session API")
SESSION_PUBLIC = [
    'active_clicks', 'adapt', 'adapted_frames', 'add_box', 'add_object', 'busy', 'can_adapt',
    'can_redo', 'can_undo', 'click', 'close', 'colors', 'edited_frames', 'end_interaction',
    'ensure_objects', 'existing_outputs', 'export', 'export_paths', 'fps', 'frame',
    'frame_confidence', 'frame_names', 'frames_with_masks', 'from_frames', 'get_mask',
    'get_object', 'height', 'interacted_frames', 'label_at', 'load_masks', 'load_warnings',
    'num_frames', 'num_objects', 'objects', 'open', 'orig_height', 'orig_width', 'paint',
    'peak_memory_frames', 'prepare_interaction', 'probabilities', 'propagate',
    'propagate_in_video', 'propagation_record', 'redo', 'release_memory', 'remove_object',
    'reset_adaptation', 'reset_frame', 'restore_work', 'scribble', 'set_labels', 'set_object',
    'set_object_mask', 'source', 'storage', 'subscribe', 'suggest_frame', 'timestamps', 'undo',
    'undo_steps', 'unsubscribe', 'width']


def _session_privates():
    """Private names of the Session: the _methods and self._attributes of its classes
    (inference_core/session*.py)."""
    names = set()
    for path in (REPO / 'inference_core').glob('session*.py'):
        tree = ast.parse(path.read_text(encoding='utf-8'))
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            names |= {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}
            names |= {n.attr for n in ast.walk(cls) if isinstance(n, ast.Attribute)
                      and isinstance(n.value, ast.Name) and n.value.id == 'self'}
    assert {'_pending', '_exclusive', '_prompts', '_engine', '_store', '_undo'} <= names
    return {n for n in names if n.startswith('_') and not n.startswith('__')}


SESSION_PRIVATES = _session_privates()


def _is_session(node, bound):
    """Is this expression a Session, as clients spell it: a name `session` (or one bound to a
    Session in the same scope), `<anything>.session`."""
    if isinstance(node, ast.Name):
        return node.id == 'session' or node.id in bound
    return isinstance(node, ast.Attribute) and node.attr == 'session'


def _scopes(tree):
    """The file's top-level scopes, each a list of nodes: the module-level statements (class
    bodies included), and every function or method not inside another function."""
    module, functions = [], []

    def visit(body):
        for n in body:
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append([n])
            elif isinstance(n, ast.ClassDef):
                visit(n.body)
            else:
                module.append(n)
    visit(tree.body)
    return [module, *functions]


def _session_names(nodes):
    """Names bound to a Session in a scope: `s = self.session`, `s = session`,
    `s = Session.open(...)`, `with Session.from_frames(...) as s`."""
    def makes_session(value):
        if _is_session(value, ()):
            return True
        f = value.func if isinstance(value, ast.Call) else None
        return (isinstance(f, ast.Name) and f.id == 'Session') or (
            isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
            and f.value.id == 'Session')

    bound = set()
    for node in (n for top in nodes for n in ast.walk(top)):
        pairs = []
        if isinstance(node, ast.Assign):
            pairs = [(t, node.value) for t in node.targets]
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            pairs = [(node.optional_vars, node.context_expr)]
        for target, value in pairs:
            if isinstance(target, ast.Name) and makes_session(value):
                bound.add(target.id)
    return bound


def _const_str(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _imports(node):
    """[module] a node imports: import / from-import statements (`from pkg import name` imports
    pkg.name when pkg is the core's package, else pkg), and importlib.import_module / __import__
    calls with a constant name."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and not node.level:
        if node.module in ('inference_core', 'model'):
            return [f'{node.module}.{a.name}' for a in node.names]
        return [node.module]
    if isinstance(node, ast.Call) and node.args and _const_str(node.args[0]):
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ''
        if name in ('import_module', '__import__'):
            return [_const_str(node.args[0])]
    return []


def _import_breaks(mods):
    """The modules among `mods` that a client may not import: any of the core but the Session
    and the networks registry, any of model/."""
    return [m for m in mods if m.split('.')[0] == 'model'
            or (m.split('.')[0] == 'inference_core' and m not in PUBLIC_MODULES)]


def _attributes(node):
    """[(receiver, name)] a node reads or writes: `x.name`, getattr / setattr / hasattr /
    delattr(x, 'name'), x.__dict__['name']."""
    if isinstance(node, ast.Attribute):
        return [(node.value, node.attr)]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) >= 2 \
            and node.func.id in ('getattr', 'setattr', 'hasattr', 'delattr') \
            and _const_str(node.args[1]):
        return [(node.args[0], _const_str(node.args[1]))]
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) \
            and node.value.attr == '__dict__' and _const_str(node.slice):
        return [(node.value.value, _const_str(node.slice))]
    return []


def _violations(path, strict_private=None, model_level=False):
    """Rule breaks in one client file. Everywhere: imports of the core beyond the Session and
    the networks registry (model-level files excepted), the Session's collaborators, names that
    are not the Session's public surface on a Session, the Session's private names; in gui/
    (our own code only) any private attribute of another object."""
    if strict_private is None:
        strict_private = path.parent.name == 'gui'
    tree = ast.parse(path.read_text(encoding='utf-8'), str(path))
    out = []
    for node in ast.walk(tree) if not model_level else ():
        for m in _import_breaks(_imports(node)):
            out.append(f'{node.lineno}: imports {m} (clients import the Session and the '
                       f'networks registry only)')
    for scope in _scopes(tree):
        bound = _session_names(scope)
        for node in (n for top in scope for n in ast.walk(top)):
            for owner, attr in _attributes(node):
                private = attr.startswith('_') and not attr.startswith('__')
                mine = isinstance(owner, ast.Name) and owner.id in ('self', 'cls')
                if attr in COLLABORATORS:
                    out.append(f'{node.lineno}: uses .{attr} (a collaborator of the Session)')
                elif _is_session(owner, bound) and not attr.startswith('__') \
                        and attr not in SESSION_PUBLIC:
                    out.append(f'{node.lineno}: uses {ast.unparse(owner)}.{attr}, not the '
                               f'Session\'s public API')
                elif private and not mine and (strict_private or attr in SESSION_PRIVATES):
                    out.append(f'{node.lineno}: uses the private {ast.unparse(owner)}.{attr}')
    return sorted(set(out), key=lambda v: int(v.split(':')[0]))


def _model_level(path):
    return path.relative_to(REPO).as_posix() in MODEL_LEVEL


@pytest.mark.parametrize('path', CLIENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_clients_use_only_the_public_session(path):
    bad = _violations(path, model_level=_model_level(path))
    assert not bad, f'{path.relative_to(REPO)}:\n  ' + '\n  '.join(bad)


def test_the_checker_catches_each_kind_of_violation(tmp_path):
    src = tmp_path / 'bad.py'
    src.write_text('from inference_core.store import FrameStore\n'
                   'import inference_core.engine\n'
                   'from model.lite_networks import build\n'
                   'n = session.store.num_frames\n'
                   'session._pending = 1\n'
                   'self._ok = 2\n'
                   'model._blocks = 3\n'
                   'window._on_stroke()\n'
                   'from inference_core.session import Session\n'
                   'from inference_core import networks\n'
                   's = Session.open(path)\n'
                   's.networks\n'
                   'win.session.peak_memory_frames\n')
    found = _violations(Path(src), strict_private=False)
    assert [v.split(':')[0] for v in found] == ['1', '2', '3', '4', '5', '12']
    found = _violations(Path(src), strict_private=True)
    assert [v.split(':')[0] for v in found] == ['1', '2', '3', '4', '5', '7', '8', '12']
    assert [v.split(':')[0] for v in _violations(Path(src), model_level=True)] == ['4', '5', '12']


@pytest.mark.parametrize('evasion', [
    "getattr(session, 'engine')",
    "importlib.import_module('inference_core.engine')",
    'from inference_core.interaction import ScribbleController',
    'session.history.pop_undo()',
    'session.scribbler.clear_cache()',
])
def test_the_checker_is_not_fooled(tmp_path, evasion):
    """Ways around a deny-list of names, written into a copy of gui/controller.py: each one is
    reported, at its line."""
    clean = (REPO / 'gui' / 'controller.py').read_text(encoding='utf-8')
    (tmp_path / 'gui').mkdir()
    copy = tmp_path / 'gui' / 'controller.py'
    copy.write_text(clean)
    assert _violations(copy) == []
    copy.write_text(f'{clean}\n\ndef _sneaky(session):\n    import importlib\n    {evasion}\n')
    line = len(clean.splitlines()) + 5
    found = _violations(copy)
    assert found and {int(v.split(':')[0]) for v in found} == {line}, found


def test_the_session_public_surface_is_pinned():
    """The Session's public names (methods, properties) and no public instance attributes:
    adding one is a deliberate change of this list and of docs/ARCHITECTURE.md."""
    import numpy as np
    import torch

    from inference_core.networks import Networks
    from inference_core.session import Session
    from inference_core.store import FrameStore
    assert sorted(n for n in dir(Session) if not n.startswith('_')) == SESSION_PUBLIC
    nets = Networks('bundled', None, None, None, None, torch.device('cpu'))
    with Session(FrameStore(np.zeros((2, 16, 16, 3), np.uint8), storage='memory'), nets) as s:
        assert not [n for n in vars(s) if not n.startswith('_')]


def test_architecture_lists_the_public_session_api():
    """docs/ARCHITECTURE.md's "Public Session API" section names every public member."""
    text = (REPO / 'docs' / 'ARCHITECTURE.md').read_text(encoding='utf-8')
    assert '## Public Session API' in text
    section = text.split('## Public Session API', 1)[1].split('\n## ', 1)[0]
    missing = [n for n in SESSION_PUBLIC if n not in section]
    assert not missing, f'not in the "Public Session API" section: {missing}'


# ------------------------------------------------------------------ layers
PACKAGES = ('gui', 'inference_core', 'model', 'util', 'scripts')


def _module_name(path):
    parts = list(path.relative_to(REPO).with_suffix('').parts)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


PROJECT = {_module_name(p): p
           for p in sorted([*(p for pkg in PACKAGES for p in (REPO / pkg).rglob('*.py')),
                            *REPO.glob('*.py')])}


def _imported(path):
    """{(line, project module)} that a file imports, top-level or inside functions alike (a lazy
    import is a dependency too), importlib.import_module / __import__ with a constant name
    included. `from pkg import sub` depends on pkg.sub, not on pkg's __init__; `from mod import
    name` on mod."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            subs = [f'{node.module}.{a.name}' for a in node.names]
            names = [m for m in subs if m in PROJECT] or [node.module]
        elif isinstance(node, ast.Call):
            names = _imports(node)
        for name in names:
            while name and name not in PROJECT:
                name = name.rpartition('.')[0]
            if name:
                out.add((node.lineno, name))
    return out


def _layer(module):
    return module.split('.')[0] if module.split('.')[0] in PACKAGES else 'top'


# what each layer may import from the project: util is the ground floor
MAY_IMPORT = {'util': {'util'}, 'model': {'model', 'util'},
              'inference_core': {'inference_core', 'model', 'util'}}


@pytest.mark.parametrize('layer', sorted(MAY_IMPORT))
def test_each_layer_imports_only_the_layers_below(layer):
    """util imports only util (+ third-party, stdlib); model nothing of inference_core, gui or
    scripts; inference_core nothing of gui or scripts."""
    bad = [f'{PROJECT[m].relative_to(REPO)}:{line}: imports {dep}'
           for m in PROJECT if _layer(m) == layer
           for line, dep in sorted(_imported(PROJECT[m]))
           if _layer(dep) not in MAY_IMPORT[layer]]
    assert not bad, '\n'.join(bad)


def test_the_floor_check_sees_lazy_imports(tmp_path):
    src = tmp_path / 'mod.py'
    src.write_text('import os\n'
                   'def f():\n'
                   '    from inference_core.store import FrameStore\n'
                   '    import util.errors\n'
                   "    importlib.import_module('model.checkpoint')\n")
    assert sorted(_imported(src)) == [(3, 'inference_core.store'), (4, 'util.errors'),
                                      (5, 'model.checkpoint')]


def _trainer(module):
    return module == 'scripts.train' or module.startswith('scripts.train.')


def _trainer_imports(path):
    return [f'{path.relative_to(REPO)}:{line}: imports {dep} (only scripts/train imports the '
            f'trainers)' for line, dep in sorted(_imported(path)) if _trainer(dep)]


def test_only_the_trainers_import_the_trainers():
    """One way: the trainers (scripts/train) may import the evaluators (scripts.eval_semi_davis
    validates their runs), never the reverse. No module outside scripts/train imports
    scripts.train, lazily or not: what an evaluator shares with training lives beside it
    (scripts/simulated_marks.py) or in util/ (davis_io, davis_split, photo_split)."""
    outside = [p for m, p in PROJECT.items() if not _trainer(m)] + list(CLIENTS)
    bad = sorted({v for p in outside for v in _trainer_imports(p)})
    assert not bad, '\n'.join(bad)


def test_the_trainer_check_sees_every_spelling(tmp_path):
    (tmp_path / 'scripts').mkdir()
    src = tmp_path / 'scripts' / 'ev.py'
    src.write_text('import numpy\n'
                   'from scripts.train import data\n'
                   'def f():\n'
                   '    from scripts.train.static_fg import is_validation_photo\n'
                   "    importlib.import_module('scripts.train.common')\n"
                   '    import scripts.train\n')
    found = [(line, dep) for line, dep in _imported(src) if _trainer(dep)]
    assert sorted(found) == [(2, 'scripts.train.data'), (4, 'scripts.train.static_fg'),
                             (5, 'scripts.train.common'), (6, 'scripts.train')]


def _level_modules():
    return {_module_name(REPO / m) for m in MODEL_LEVEL}


def test_model_level_tools_are_named_and_need_the_waiver():
    """MODEL_LEVEL names client files one by one (no folder) and each needs its waiver: it imports
    model/ or the core beyond the Session and the registry, or it dispatches to a model-level tool.
    A file that no longer does is a client like any other: take it off the list."""
    clients = {p.relative_to(REPO).as_posix() for p in CLIENTS}
    level = _level_modules()
    for rel in MODEL_LEVEL:
        assert rel in clients, f'{rel}: not a client file'
        path = REPO / rel
        direct = any(_import_breaks(_imports(n))
                     for n in ast.walk(ast.parse(path.read_text(encoding='utf-8'))))
        via = any(dep in level and dep != _module_name(path) for _line, dep in _imported(path))
        assert direct or via, f'{rel} reaches nothing below the Session: not model-level'


def test_clients_do_not_reach_below_through_model_level_tools():
    """A client that is not model-level imports no model-level tool (lazily or not): the core's
    internals and model/ are not reached indirectly either."""
    level = _level_modules()
    bad = [f'{p.relative_to(REPO)}:{line}: imports {dep} (a model-level tool)'
           for p in CLIENTS if not _model_level(p)
           for line, dep in sorted(_imported(p)) if dep in level]
    assert not bad, '\n'.join(bad)


def _cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    """No circle of imports among the project's modules (lazy imports included)."""
    graph = {m: {dep for _line, dep in _imported(p) if dep != m} for m, p in PROJECT.items()}
    assert not _cycles(graph)
    assert _cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]


def test_gui_files_stay_small():
    """One job per file: no GUI module grows past ~500 lines."""
    big = {p.name: n for p in (REPO / 'gui').glob('*.py')
           if (n := len(p.read_text(encoding='utf-8').splitlines())) > 520}
    assert not big, f'split these: {big}'
