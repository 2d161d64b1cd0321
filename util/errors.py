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
