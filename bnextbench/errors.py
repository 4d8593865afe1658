"""Errors that reach the user as one line and exit code 2."""


class BnextbenchError(ValueError):
    """A problem with user input (a name, a number, a file); its message is the whole story."""
