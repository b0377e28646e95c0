"""Narrow error types a user can act on, under one base, each carrying how it is reported.

Every error a user of the library, its command line or its service can fix or must know about
derives from :class:`BarberproError` and says, once, how the command line exits and which HTTP
status the service answers:

=========================  =========  ======  ==============================================
error                      exit code  HTTP    meaning
=========================  =========  ======  ==============================================
:class:`InputError`        2          422     bad input: data, a config, a request, an option
:class:`DataContractError` 2          422     event tables that break the data contract
:class:`ConfigError`       2          422     a job or claims config that does not validate
:class:`NotEnoughDataError` 2         422     valid data, too little of it for the request
:class:`GateRefusedError`  3          409     a blocking gate failed; nothing was promoted
:class:`BindingError`      2          409     a gate result that does not judge this version
:class:`NotFoundError`     4          404     something named does not exist
:class:`ModelUnavailableError` 4      503     no verified champion of a family to serve with
:class:`InfraError`        4          503     a local component (PostgreSQL, MLflow server)
                                              could not be set up, started or stopped
=========================  =========  ======  ==============================================

Exit codes: 0 success, 2 the user's input is wrong, 3 a gate refused, 4 something needed was
not found or could not be started. One exception: :class:`VersionNotFoundError` (a
``--version`` given on the command line that names nothing) is bad input and exits 2, like any
other wrong option value.

Errors that are bugs (a ``KeyError`` or ``ValueError`` inside the library, say) are not in this
family; the command line lets them through with their traceback instead of calling them the
user's mistake.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

__all__ = [
    "BarberproError",
    "BindingError",
    "ConfigError",
    "GateRefusedError",
    "InfraError",
    "InputError",
    "InputNotFoundError",
    "ModelUnavailableError",
    "NotEnoughDataError",
    "NotFoundError",
    "UnverifiedChampionError",
    "VersionNotFoundError",
]


class BarberproError(Exception):
    """Base of the errors a user of the library or its command line can act on."""

    exit_code: ClassVar[int] = 2
    """Exit status of the command line."""
    http_status: ClassVar[int] = 422
    """Status the HTTP service answers with."""


class InputError(BarberproError, ValueError):
    """Input that cannot be used as given (the message names what and where)."""


class ConfigError(InputError):
    """A configuration file or object that does not validate.

    ``problems`` holds one line per problem, each naming the file, the key and what was
    expected; the message is all of them.
    """

    def __init__(self, problems: str | Sequence[str], *, source: str | None = None) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        if len(self.problems) == 1:
            message = head + self.problems[0]
        else:
            message = "\n".join([f"{head}{len(self.problems)} problems",
                                 *(f"  - {p}" for p in self.problems)])
        super().__init__(message)


class InputNotFoundError(InputError, FileNotFoundError):
    """A file or folder named as input does not exist (exit 2: the path given is wrong)."""


class NotEnoughDataError(InputError):
    """The data is valid but too short, too small or too early for what was asked."""


class GateRefusedError(BarberproError):
    """A blocking gate failed: the candidate was not promoted."""

    exit_code = 3
    http_status = 409


class BindingError(BarberproError, ValueError):
    """A gate result that does not judge what is in the registry (another version, an edited
    record, a champion that has moved)."""

    http_status = 409


class NotFoundError(BarberproError, LookupError):
    """Something asked for by name does not exist (the message names it and what does)."""

    exit_code = 4
    http_status = 404


class VersionNotFoundError(NotFoundError):
    """A registered model or model version that does not exist.

    Exits 2, not 4: on the command line it is a wrong ``--model`` / ``--version`` value.
    """

    exit_code = 2


class ModelUnavailableError(BarberproError):
    """No verified champion of a model family to serve or score with."""

    exit_code = 4
    http_status = 503


class UnverifiedChampionError(ModelUnavailableError):
    """A model's ``@champion`` did not get there through the gate and ``promote``."""


class InfraError(BarberproError):
    """A local component (the PostgreSQL cluster, the MLflow server) could not be set up,
    started, reached or stopped; the message names which, why and what to do."""

    exit_code = 4
    http_status = 503
