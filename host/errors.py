"""The one error type the command line turns into a one-line message."""


class UserError(Exception):
    """Bad input or a missing resource: shown as one line, exit status 2, no traceback."""
