"""The one exception type for bad user input.

Commands catch :class:`InputError` at the top level and print its message as a single line
(``error: ...``) with exit status 2, so every message must say what is wrong, which file, and how
to fix it.
"""


class InputError(ValueError):
    """Bad input from the user: wrong geometry, missing file, corrupt data, wrong id, ..."""
