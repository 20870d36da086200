"""The one error type the user may see: a message in plain words, never a traceback."""


class LocalopenError(Exception):
    """An expected failure with a message meant for people."""
