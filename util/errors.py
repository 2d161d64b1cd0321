"""User-facing errors.

A `UserError` is a mistake in the input (a missing path, a mask of the wrong size ...). Its
message is one line that tells the user what is wrong; CLIs print it without a traceback and
exit non-zero, the GUI shows it in a message box.
"""


class UserError(Exception):
    """Bad input from the user: print str(e), no traceback."""


def run_cli(main):
    """Run `main()` and turn a UserError into `error: ...` on stderr and exit code 2.

    KeyboardInterrupt exits with 130 and a short note instead of a traceback.
    """
    import sys
    try:
        rc = main()
    except UserError as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        sys.exit(130)
    sys.exit(rc or 0)


_WRITE_REASONS = {'EACCES': 'permission denied', 'EPERM': 'permission denied',
                  'EROFS': 'read-only file system', 'ENOSPC': 'no space left on device',
                  'EDQUOT': 'disk quota exceeded', 'EFBIG': 'file too large',
                  'ENOTDIR': 'a part of the path is a file, not a folder',
                  'EEXIST': 'a file is in the way', 'EISDIR': 'a folder is in the way',
                  'ENAMETOOLONG': 'file name too long'}


def os_reason(e):
    """The reason of an OSError in words ('no space left on device', 'permission denied')."""
    import errno
    name = errno.errorcode.get(e.errno, '') if getattr(e, 'errno', None) is not None else ''
    return _WRITE_REASONS.get(name) or getattr(e, 'strerror', None) or str(e) or type(e).__name__


def write_error(e, path=None):
    """A one-line UserError for an OSError `e` raised while writing output: it names `path`
    (default: the file the error names) and the reason in words."""
    reason = os_reason(e)
    where = path if path is not None else e.filename
    return UserError(f'cannot write output {where}: {reason}' if where is not None
                     else f'cannot write output: {reason}')


class writing_output:
    """`with writing_output(path):` turns an OSError inside into write_error(e, path)."""

    def __init__(self, path=None):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, typ, e, tb):
        if typ is not None and issubclass(typ, OSError):
            raise write_error(e, self.path) from None
        return False
