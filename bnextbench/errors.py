"""Errors that reach the user as one line and exit code 2, and how they quote what the user gave."""

import reprlib

BRIEF_CHARS = 80
_QUOTE = reprlib.Repr()
_QUOTE.maxlevel, _QUOTE.maxstring, _QUOTE.maxother, _QUOTE.maxlong = 2, 60, 60, 40
_QUOTE.maxtuple = _QUOTE.maxlist = _QUOTE.maxdict = _QUOTE.maxset = _QUOTE.maxfrozenset = 4


class BnextbenchError(ValueError):
    """A problem with user input (a name, a number, a file); its message is the whole story."""


class BnextbenchWarning(UserWarning):
    """Something the user should know that does not stop the work (a damaged cache rebuilt); one line."""


def brief(value: object) -> str:
    """``repr(value)`` cut to at most 80 characters: an error quotes the user's input, never all of it."""
    return clip(_QUOTE.repr(value))


def clip(text: str) -> str:
    """``text`` cut to at most 80 characters (with ``...`` where cut)."""
    return text if len(text) <= BRIEF_CHARS else text[:BRIEF_CHARS - 3] + "..."
