"""One root for Vigil's exceptions, so a caller can tell Vigil's own failures from a library's.

Bad *input* is not an exception: parsers return ``schemas.deadletter.Rejected`` (errors as data).
These are for failures of configuration, environment or state that stop an operation.
"""

from __future__ import annotations


class VigilError(Exception):
    """Base of every exception Vigil raises on purpose."""


class UserError(VigilError):
    """Something a user can fix (a missing path, an empty folder, no stack, a taken port): the CLI
    prints the message as one line, exits non-zero and shows no traceback unless ``--debug``."""
