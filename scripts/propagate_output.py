"""The output folder of scripts.propagate: your files in it are safe.

The run marker (MARKER) lists every file the tool wrote; --overwrite replaces only those (and
removes the ones the new run no longer writes) plus files of yours with the SAME NAME as an
output; other files are never touched, and inputs are never written over. A finished sequence
folder is renamed into place (or its files merged into an existing folder of yours), so a run
that is interrupted leaves no half-written sequence.
"""
import json
import os
import shutil
import tempfile

from util.errors import UserError

MARKER = 'propagate_run.json'
PARTIAL = '.partial-'


def _inside(path, folder):
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_not_inputs(paths, inputs):
    """Refuse, before anything is written, when an output path is an input file or lies inside
    an input folder (both after resolving links): the frames and masks a run reads are never
    written over, with or without --overwrite."""
    srcs = [(p, os.path.realpath(p), os.path.isdir(p)) for p in dict.fromkeys(inputs)
            if p and os.path.lexists(p)]
    for path in paths:
        real = os.path.realpath(path)
        for shown, src, is_dir in srcs:
            if real == src or (is_dir and real.startswith(src.rstrip(os.sep) + os.sep)):
                what = 'into the input folder' if is_dir and real != src else 'over the input'
                raise UserError(f'the output {path} would be written {what} {shown}; inputs '
                                f'are never replaced, not even with --overwrite: choose another '
                                f'output folder (nothing was written)')


def not_inputs(folder, names, inputs):
    """`names` (under `folder`) without those that are inputs (never removed as old outputs)."""
    keep = set()
    for n in names:
        try:
            check_not_inputs([os.path.join(folder, n)], inputs)
            keep.add(n)
        except UserError:
            pass
    return keep


def read_marker(out):
    try:
        with open(os.path.join(out, MARKER), encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def check_output(out, kind, inputs, overwrite):
    """Validate the output folder; returns the existing marker (resume) or None."""
    for src in inputs:
        if src and os.path.isdir(src) and _inside(out, src):
            raise UserError(f'output folder {out} is inside the input folder {src}; '
                            f'choose a folder outside it')
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f'output path exists and is not a folder: {out}')
    if not os.path.isdir(out):
        return None
    content = [n for n in os.listdir(out) if not n.startswith(PARTIAL)]
    if not content:
        return None
    marker = read_marker(out)
    if overwrite:
        return marker if marker and marker.get('kind') == kind else None
    if marker is None:
        held = [src for src in inputs if src and os.path.lexists(src) and _inside(src, out)]
        if held:
            raise UserError(f'output folder {out} holds the input {held[0]}; choose another '
                            f'output folder (inputs are never written over)')
        raise UserError(f'output folder {out} is not empty and was not written by this tool '
                        f'(use --overwrite to write into it anyway)')
    if marker.get('kind') != kind:
        raise UserError(f'output folder {out} holds a {marker.get("kind")} run, not a {kind} run '
                        f'(choose another folder or use --overwrite)')
    return marker


def plain_names(names):
    """File names from a marker that may be touched: paths inside the folder only (a plain
    name, or a '/'-separated relative path of the --export formats, e.g. soft/cat/00000.png;
    nothing absolute, no '..', no backslash or drive, never the marker or a temp folder)."""
    if not isinstance(names, (list, tuple, set)):
        return set()
    return {n for n in names if isinstance(n, str) and n not in ('', MARKER)
            and not n.startswith(PARTIAL) and '\\' not in n and not os.path.isabs(n)
            and not os.path.splitdrive(n)[0]
            and all(part not in ('', '.', '..') for part in n.split('/'))}


def _blocked_parent(dst, name):
    """The first folder of `name` (a '/'-path) under `dst` that is a link or a file, or None:
    outputs are never written through a link or over a file of the user's."""
    parts = name.split('/')[:-1]
    for i in range(1, len(parts) + 1):
        p = os.path.join(dst, *parts[:i])
        if os.path.islink(p) or (os.path.lexists(p) and not os.path.isdir(p)):
            return p
        if not os.path.lexists(p):
            return None
    return None


def check_clashes(dst, names, owned, overwrite):
    """Without --overwrite, refuse when `dst` holds a file (or folder) of the user's with the
    name of an output: only files this tool wrote (`owned`) are replaced."""
    if os.path.lexists(dst) and not os.path.isdir(dst):
        raise UserError(f'{dst} is a file, not a folder; move it away or choose another output '
                        f'folder')
    if not os.path.isdir(dst):
        return
    for n in names:
        blocked = _blocked_parent(dst, n)
        if blocked:
            raise UserError(f'{blocked} is in the way of the output {n} (a link or a file); '
                            f'move it away or choose another output folder (nothing was changed)')
    if overwrite:
        return
    clash = [n for n in names if n not in owned and os.path.lexists(os.path.join(dst, n))]
    if clash:
        more = f' and {len(clash) - 1} more' if len(clash) > 1 else ''
        raise UserError(f'{os.path.join(dst, clash[0])}{more} were not written by this tool; '
                        f'use --overwrite to replace them (nothing was changed)'
                        if more else
                        f'{os.path.join(dst, clash[0])} was not written by this tool; use '
                        f'--overwrite to replace it (nothing was changed)')


def merge_files(tmp, dst, new, owned):
    """Move the files `new` from `tmp` into the existing folder `dst` (replacing same-named
    ones), then remove the files this tool wrote before (`owned`) that the new run did not.
    Everything else in `dst` stays."""
    for n in new:
        if '/' in n:
            os.makedirs(os.path.dirname(os.path.join(dst, n)), exist_ok=True)
        os.replace(os.path.join(tmp, n), os.path.join(dst, n))
    for n in sorted(plain_names(owned) - set(new)):
        p = os.path.join(dst, n)
        if os.path.isfile(p) or os.path.islink(p):
            try:
                os.remove(p)
            except FileNotFoundError:
                pass
            _remove_empty_parents(dst, n)


def _remove_empty_parents(dst, name):
    """Remove the folders of `name` under dst that the removal of it left empty."""
    parts = name.split('/')[:-1]
    while parts:
        try:
            os.rmdir(os.path.join(dst, *parts))
        except OSError:                  # not empty (files of the user's or ours) or gone
            return
        parts.pop()


def install_dir(tmp, dst, new, owned):
    """Put the finished sequence folder `tmp` at `dst`. A new `dst`, or one holding only files
    of this tool (old outputs), is replaced by renaming (atomic); a `dst` with files of the
    user's gets the new files merged in (see merge_files)."""
    if not os.path.isdir(dst):
        os.replace(tmp, dst)
        return
    ours = set(new) | plain_names(owned)
    if _only_ours(dst, ours):
        _replace_dir(tmp, dst)
    else:
        merge_files(tmp, dst, new, owned)


def _only_ours(dst, ours):
    """True when every file under dst is one of `ours` ('/'-paths) and every folder holds
    some of them (no links, nothing of the user's, not even an empty folder)."""
    folders = {'/'.join(n.split('/')[:i]) for n in ours for i in range(1, n.count('/') + 1)}
    for root, dirs, files in os.walk(dst):
        rel = os.path.relpath(root, dst).replace(os.sep, '/')
        prefix = '' if rel == '.' else rel + '/'
        for d in dirs:
            if os.path.islink(os.path.join(root, d)) or prefix + d not in folders:
                return False
        for f in files:
            if os.path.islink(os.path.join(root, f)) or prefix + f not in ours:
                return False
    return True


def clean_partials(folder, prefix):
    if not os.path.isdir(folder):
        return
    for n in os.listdir(folder):
        if n.startswith(prefix):
            shutil.rmtree(os.path.join(folder, n), ignore_errors=True)


def _replace_dir(tmp, dst):
    """Move the finished folder `tmp` to `dst`; an existing `dst` is replaced (overwrite)."""
    if os.path.isdir(dst):
        old = tempfile.mkdtemp(prefix=PARTIAL + 'old-', dir=os.path.dirname(dst))
        os.rmdir(old)
        os.replace(dst, old)
        os.replace(tmp, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dst)
