"""The errors d2lv reports to its user.

``d2lv`` turns any of them into one line, ``d2lv <subcommand>: error: ...``, and exit
code 2; anything else is a bug and keeps its traceback. Say in the message what to do.
"""


class D2lvError(Exception):
    """An error in d2lv's input or configuration that the user can fix."""


class InputError(D2lvError, ValueError):
    """A value d2lv cannot use: an option, a configuration key, or the content of an input file.

    A :class:`ValueError` too, for callers that catch bad values the way Python reports them.
    """
