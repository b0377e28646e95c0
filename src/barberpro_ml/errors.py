"""Narrow error types a user can act on, under one base (mapped once to exit codes in the CLI).

Errors that are bugs (a ``KeyError`` inside the library, say) are not in this family and are
never shown to a user as their mistake.
"""

from __future__ import annotations


class BarberproError(Exception):
    """Base of the errors a user of the library or its command line can act on."""


class NotFoundError(BarberproError, LookupError):
    """Something asked for by name does not exist (the message names it and what does)."""


class VersionNotFoundError(NotFoundError):
    """A registered model or model version that does not exist."""


class UnverifiedChampionError(BarberproError):
    """A model's ``@champion`` did not get there through the gate and ``promote``."""
