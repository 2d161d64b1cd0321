"""The layering rules of docs/ARCHITECTURE.md, checked on the source: the GUI and the CLIs
talk to the Session only. A failure names the file, the line and the rule broken."""
import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

CLIENTS = sorted([*(REPO / 'gui').glob('*.py'), *(REPO / 'scripts').rglob('*.py'),
                  REPO / 'interactive_gui.py'])
FORBIDDEN_MODULES = ('inference_core.store', 'inference_core.engine', 'inference_core.memory_bank',
                     'inference_core.history')
FORBIDDEN_NAMES = {'util.frames_io': {'open_frames'}}     # opening goes through Session.open
FORBIDDEN_ATTRS = {'store', 'engine'}                     # the Session's internals


def _session_privates():
    """Private names of the Session: the _methods and self._attributes of its class and mixins
    (inference_core/session*.py)."""
    names = set()
    for path in (REPO / 'inference_core').glob('session*.py'):
        tree = ast.parse(path.read_text(encoding='utf-8'))
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            names |= {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}
            names |= {n.attr for n in ast.walk(cls) if isinstance(n, ast.Attribute)
                      and isinstance(n.value, ast.Name) and n.value.id == 'self'}
    assert {'_pending', '_exclusive', '_restore_objects', '_adapted'} <= names
    return {n for n in names if n.startswith('_') and not n.startswith('__')}


SESSION_PRIVATES = _session_privates()


def _violations(path, strict_private=None):
    """Rule breaks in one file. Everywhere: the Session's private names; in gui/ (our own
    code only) any private attribute of another object."""
    if strict_private is None:
        strict_private = path.parent.name == 'gui'
    tree = ast.parse(path.read_text(encoding='utf-8'), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
            names = {}
        elif isinstance(node, ast.ImportFrom) and node.module:
            mods = [node.module]
            names = {node.module: {a.name for a in node.names}}
            mods += [f'{node.module}.{a.name}' for a in node.names]
        else:
            mods, names = [], {}
        for m in mods:
            if m in FORBIDDEN_MODULES:
                out.append(f'{node.lineno}: imports {m}')
        for mod, got in names.items():
            bad = got & FORBIDDEN_NAMES.get(mod, set())
            if bad:
                out.append(f'{node.lineno}: imports {", ".join(sorted(bad))} from {mod}')
        if isinstance(node, ast.Attribute):
            owner = node.value.id if isinstance(node.value, ast.Name) else None
            if node.attr in FORBIDDEN_ATTRS:
                out.append(f'{node.lineno}: uses .{node.attr}')
            elif node.attr.startswith('_') and not node.attr.startswith('__') \
                    and owner not in ('self', 'cls') \
                    and (strict_private or node.attr in SESSION_PRIVATES):
                out.append(f'{node.lineno}: uses the private {ast.unparse(node)}')
    return sorted(out, key=lambda v: int(v.split(':')[0]))


@pytest.mark.parametrize('path', CLIENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_clients_use_only_the_public_session(path):
    bad = _violations(path)
    assert not bad, f'{path.relative_to(REPO)}:\n  ' + '\n  '.join(bad)


def test_the_checker_catches_each_kind_of_violation(tmp_path):
    src = tmp_path / 'bad.py'
    src.write_text('from inference_core.store import FrameStore\n'
                   'import inference_core.engine\n'
                   'from util.frames_io import open_frames\n'
                   'n = session.store.num_frames\n'
                   'session._pending = 1\n'
                   'self._ok = 2\n'
                   'model._blocks = 3\n'
                   'window._on_stroke()\n')
    found = _violations(Path(src), strict_private=False)
    assert [v.split(':')[0] for v in found] == ['1', '2', '3', '4', '5']
    found = _violations(Path(src), strict_private=True)
    assert [v.split(':')[0] for v in found] == ['1', '2', '3', '4', '5', '7', '8']


# ------------------------------------------------------------------ layers
PACKAGES = ('gui', 'inference_core', 'model', 'util', 'scripts')


def _module_name(path):
    parts = list(path.relative_to(REPO).with_suffix('').parts)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


PROJECT = {_module_name(p): p for p in sorted([*(p for pkg in PACKAGES for p in (REPO / pkg).rglob('*.py')),
                                               *REPO.glob('*.py')])}


def _imported(path):
    """{(line, project module)} that a file imports, top-level or inside functions alike (a lazy
    import is a dependency too). `from pkg import sub` depends on pkg.sub, not on pkg's
    __init__; `from mod import name` on mod."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            subs = [f'{node.module}.{a.name}' for a in node.names]
            names = [m for m in subs if m in PROJECT] or [node.module]
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
                   '    import util.errors\n')
    assert sorted(_imported(src)) == [(3, 'inference_core.store'), (4, 'util.errors')]


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
