"""Cut-off times (``as_of``): how a point in time is given and read, for every stage.

The data contract stores naive UTC timestamps; a cut-off is read by the same rule wherever
it is given (feature builders, SQL reads, the scoring API).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from barberpro_ml.errors import InputError

AsOf = str | dt.datetime | pd.Timestamp | np.datetime64


def to_as_of(value: object, name: str = "as_of", *, to_utc: bool = False) -> pd.Timestamp:
    """Read a cut-off time: a naive UTC timestamp, given as a string, datetime or Timestamp.

    Parameters
    ----------
    value
        The cut-off. Strings are parsed by :class:`pandas.Timestamp` (ISO 8601, with ``Z`` or an
        offset when ``to_utc``).
    name
        Argument name used in error messages.
    to_utc
        Accept a time-zone-aware value and convert it to naive UTC (the same instant). Off by
        default: the feature and label builders take the data contract's naive UTC only, so a
        zone given there by mistake is refused rather than read. The scoring API and the
        service turn it on (``2024-06-30T02:00:00+02:00`` and ``2024-06-30T00:00:00Z`` are both
        ``2024-06-30 00:00:00``). Naive values are returned unchanged either way.

    Returns
    -------
    pandas.Timestamp
        The cut-off in nanosecond resolution, naive (UTC).

    Raises
    ------
    InputError
        (a ``ValueError``) If the value cannot be read, is missing (NaT), or carries a timezone
        without ``to_utc``: the data contract stores naive UTC, and silently dropping a timezone
        would move the cut-off.
        Also if it is outside the range of nanosecond timestamps (1677-09-21 to 2262-04-11).

    Examples
    --------
    >>> to_as_of("2024-06-30 12:00")
    Timestamp('2024-06-30 12:00:00')
    >>> to_as_of("2024-06-30T14:00:00+02:00", to_utc=True)
    Timestamp('2024-06-30 12:00:00')
    """
    if not isinstance(value, str | dt.date | np.datetime64):
        raise InputError(f"{name}: expected a timestamp (str, datetime or Timestamp), "
                         f"got {type(value).__name__} {value!r}")
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: cannot read {value!r} as a timestamp ({exc})") from exc
    if pd.isna(stamp):
        raise InputError(f"{name}: got a missing timestamp (NaT)")
    if stamp.tzinfo is not None:
        if not to_utc:
            raise InputError(
                f"{name}: expected a naive UTC timestamp, got {stamp} with timezone "
                f"{stamp.tzinfo}; convert it with .tz_convert('UTC').tz_localize(None)")
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    if not pd.Timestamp.min <= stamp <= pd.Timestamp.max:
        raise InputError(f"{name}: {stamp} is outside the supported range {pd.Timestamp.min} to "
                         f"{pd.Timestamp.max} (nanosecond timestamps)")
    return stamp.as_unit("ns")
