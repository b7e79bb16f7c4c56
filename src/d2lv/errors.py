"""The one base class of the errors d2lv reports to its user.

``d2lv`` turns any of them into one line, ``d2lv <subcommand>: error: ...``, and exit
code 2; anything else is a bug and keeps its traceback. Say in the message what to do.
"""


class D2lvError(Exception):
    """An error in d2lv's input or configuration that the user can fix."""
