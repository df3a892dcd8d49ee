"""The one user-facing error type: the CLI prints its message as one line and exits non-zero."""


class EdgeRetalkError(Exception):
    """A problem with the user's input or environment, explained in one line."""
