"""Train/test overlap: how many test rows repeat training rows, and how many would by chance.

An evaluation whose test rows are copies of training rows measures memory, not prediction: a
model scored on rows it was fitted on can reach accuracy 1.0. Public churn data sets ship
exactly this split (a "test" file sampled from the "train" file). :func:`check_overlap` counts
the test rows whose **full content** occurs in the training rows and sets that count against
the rate of repeats expected by chance, measured within the training rows themselves.

The rule
--------
1. A row's content is every column of the test frame **and its named index levels** (the churn
   frames are indexed by ``(as_of, customer_id)``): the same customer at two cut-offs of an
   out-of-time split differs in ``as_of`` and is not an overlap, and two new customers with
   identical empty histories differ in ``customer_id``. An unnamed index (the default
   ``RangeIndex`` of a CSV file, say) is a row position, not content, and is left out. Training
   columns the test frame does not have (the label, when the whole training frame is passed)
   are left out too.
2. Each row is hashed with :func:`pandas.util.hash_pandas_object` (64 bits, vectorised; any
   dtype: categoricals hash like their values, missing values hash alike, ``-0.0`` like ``0.0``,
   and ``1`` like ``1.0`` because both frames are put into common dtypes first). Two different
   rows collide with probability about ``n_train * n_test / 2**64``, negligible.
3. ``test_rows_in_train_fraction`` is the share of test rows whose hash occurs in training.
4. ``chance_rate`` is the share of training rows whose content repeats **another** training row
   (a leave-one-out estimate of how often a fresh row from the same population repeats an
   existing one: rows with no identifying column and empty histories repeat a lot, rows that
   carry a customer id hardly ever).
5. ``excess = max(0, fraction - chance_rate)``; the verdict is ``leak`` when the excess is
   above ``max_excess`` (default :data:`DEFAULT_MAX_EXCESS`, one percentage point), or when a
   training row's label period (latest training time + ``horizon_days``) ends after the test
   cut-off (earliest test time).

Why one point: an honest out-of-time split of frames that carry their ids has an excess of
exactly 0, so any threshold above 0 is a tripwire for a pipeline bug rather than a test of
noise; a per-row metric such as accuracy can be moved by at most the leaked share of the rows,
so an excess of 0.01 bounds the inflation of accuracy at one point, while a test set sampled
from the training rows shows an excess near 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_MAX_EXCESS", "OverlapReport", "check_overlap"]

DEFAULT_MAX_EXCESS = 0.01
"""Largest share of test rows repeating training rows, beyond chance, that is not a leak."""

_TIME_NAMES = frozenset({"as_of"})


class OverlapReport(BaseModel):
    """How many test rows repeat training rows, against the rate expected by chance.

    Attributes
    ----------
    n_train, n_test
        Rows compared.
    columns
        The content compared (test columns and named index levels, in order).
    id_columns, time_columns
        The identifying columns (or index levels) named by the caller.
    test_rows_in_train
        Test rows whose full content occurs among the training rows.
    test_rows_in_train_fraction
        ``test_rows_in_train / n_test``.
    shared_ids, test_ids
        Per id column: distinct test ids that also occur in training, and distinct test ids.
    chance_rate
        Share of training rows whose content repeats another training row: the duplicate rate
        expected by chance.
    excess
        ``max(0, test_rows_in_train_fraction - chance_rate)``.
    max_excess
        The tolerance the verdict used.
    latest_train_time, test_cutoff
        Latest time in the training rows and earliest in the test rows (``time_columns``).
    horizon_days, latest_train_label_end
        The label period and the end of the latest training row's label period.
    label_window_overlaps_test
        True when ``latest_train_label_end`` is after ``test_cutoff`` (None when unknown).
    verdict, reason
        ``ok`` or ``leak``, and one line saying why.
    """

    model_config = ConfigDict(frozen=True)

    n_train: int
    n_test: int
    columns: list[str]
    id_columns: list[str] = Field(default_factory=list)
    time_columns: list[str] = Field(default_factory=list)
    test_rows_in_train: int
    test_rows_in_train_fraction: float
    shared_ids: dict[str, int] = Field(default_factory=dict)
    test_ids: dict[str, int] = Field(default_factory=dict)
    chance_rate: float
    excess: float
    max_excess: float = DEFAULT_MAX_EXCESS
    latest_train_time: datetime | None = None
    test_cutoff: datetime | None = None
    horizon_days: int | None = None
    latest_train_label_end: datetime | None = None
    label_window_overlaps_test: bool | None = None
    verdict: Literal["ok", "leak"]
    reason: str

    def describe(self) -> str:
        """The counts in one sentence, e.g. ``412 of 500 test rows (82.4%) repeat training
        rows; 0.3% expected by chance``."""
        return (f"{self.test_rows_in_train:,} of {self.n_test:,} test rows "
                f"({self.test_rows_in_train_fraction:.1%}) repeat training rows; "
                f"{self.chance_rate:.1%} expected by chance")


def _content(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Columns plus named index levels; an unnamed index is a row position and is dropped."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    if frame.columns.duplicated().any():
        dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise ValueError(f"{name}: duplicated column name(s) {dupes}")
    levels = [lvl for lvl in frame.index.names if lvl is not None]
    clash = sorted(str(lvl) for lvl in levels if lvl in frame.columns)
    if clash:
        raise ValueError(f"{name}: {clash} is both an index level and a column; drop one")
    if len(levels) != len(frame.index.names):
        dropped = [i for i, lvl in enumerate(frame.index.names) if lvl is None]
        frame = frame.reset_index(level=dropped, drop=True) if levels else \
            frame.reset_index(drop=True)
    return frame.reset_index() if levels else frame


def _normalised(frame: pd.DataFrame) -> pd.DataFrame:
    """Floats with one NaN and one zero, so that equal values hash alike."""
    out = {}
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_float_dtype(values.dtype) and isinstance(values.dtype, np.dtype):
            arr = values.to_numpy(dtype=np.float64) + 0.0  # -0.0 + 0.0 is 0.0
            arr[np.isnan(arr)] = np.nan  # one NaN bit pattern
            values = pd.Series(arr, index=frame.index)
        out[column] = values
    return pd.DataFrame(out, index=frame.index)


def _check_names(names: Sequence[str], frame: pd.DataFrame, role: str, name: str) -> list[str]:
    if isinstance(names, str):
        names = [names]
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise ValueError(f"{role}: {missing} not among the columns or named index levels of "
                         f"{name} ({[str(c) for c in frame.columns]})")
    return [str(c) for c in names]


def _timestamps(frame: pd.DataFrame, columns: Sequence[str], name: str) -> pd.Series:
    parts = []
    for column in columns:
        try:
            parts.append(pd.to_datetime(frame[column]))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"time column {column!r} of {name} is not a time: {exc}") from None
    return pd.concat(parts, ignore_index=True)


def check_overlap(
    train: pd.DataFrame,
    test: pd.DataFrame,
    id_columns: Sequence[str] = (),
    time_columns: Sequence[str] = (),
    *,
    horizon_days: int | None = None,
    max_excess: float = DEFAULT_MAX_EXCESS,
) -> OverlapReport:
    """Count the test rows that repeat training rows, beyond the rate expected by chance.

    See the module docstring for the rule and the default threshold.

    Parameters
    ----------
    train, test
        The rows a model was fitted on and the rows it is evaluated on. Compared on the test
        frame's columns and named index levels, which ``train`` must all have.
    id_columns
        Entity id columns or index levels (``customer_id``, ``user_id``): reported as
        ``shared_ids``. They are part of the content compared whether named here or not.
    time_columns
        As-of time columns or index levels (``as_of``): the latest training time and the test
        cut-off are recorded, and with ``horizon_days`` the end of the latest training label.
    horizon_days
        Label period length; a training label period ending after the test cut-off is a leak.
    max_excess
        Largest tolerated ``excess`` (share of test rows, in ``[0, 1)``).

    Returns
    -------
    OverlapReport

    Raises
    ------
    ValueError
        An empty frame, a test column (or named index level) missing from ``train``, an
        unknown id or time column, a bad ``max_excess`` or ``horizon_days``.

    Examples
    --------
    >>> train = pd.DataFrame({"visits": [0, 0, 1, 2, 3], "spend": [0.0, 0.0, 10, 20, 35]})
    >>> report = check_overlap(train, train.iloc[2:])
    >>> report.describe(), report.verdict
    ('3 of 3 test rows (100.0%) repeat training rows; 40.0% expected by chance', 'leak')
    >>> check_overlap(train, pd.DataFrame({"visits": [4], "spend": [50.0]})).verdict
    'ok'
    """
    if not 0 <= max_excess < 1:
        raise ValueError(f"max_excess must be in [0, 1), got {max_excess}")
    if horizon_days is not None and (isinstance(horizon_days, bool) or horizon_days < 1):
        raise ValueError(f"horizon_days must be a positive integer, got {horizon_days!r}")
    train_c, test_c = _content(train, "train"), _content(test, "test")
    for name, frame in (("train", train_c), ("test", test_c)):
        if len(frame) == 0:
            raise ValueError(f"check_overlap: {name} has no rows")
    columns = list(test_c.columns)
    missing = [c for c in columns if c not in train_c.columns]
    if missing:
        raise ValueError(
            f"check_overlap: train lacks {len(missing)} column(s) or index level(s) of the test "
            f"rows: {[str(c) for c in missing][:10]}; pass frames of the same features (with "
            "their ids), e.g. X_train and X_test")
    ids = _check_names(id_columns, test_c, "id_columns", "test")
    times = _check_names(time_columns, test_c, "time_columns", "test")

    n_train, n_test = len(train_c), len(test_c)
    # One concatenation gives both parts common dtypes (int 1 and float 1.0 hash alike).
    both = _normalised(pd.concat([train_c[columns], test_c[columns]], ignore_index=True))
    hashes = pd.util.hash_pandas_object(both, index=False).to_numpy()
    h_train = pd.Series(hashes[:n_train])
    h_test = pd.Series(hashes[n_train:])
    in_train = int(h_test.isin(h_train).sum())
    fraction = in_train / n_test
    chance = float(h_train.duplicated(keep=False).mean())
    excess = max(0.0, fraction - chance)

    shared, test_ids = {}, {}
    for column in ids:
        unique = pd.Series(both[column].iloc[n_train:].dropna().unique())
        test_ids[column] = len(unique)
        shared[column] = int(unique.isin(both[column].iloc[:n_train]).sum())

    latest = cutoff = label_end = None
    overlaps: bool | None = None
    if times:
        stamps = _timestamps(train_c, times, "train")
        latest_ts, cutoff_ts = stamps.max(), _timestamps(test_c, times, "test").min()
        latest, cutoff = latest_ts.to_pydatetime(), cutoff_ts.to_pydatetime()
        if horizon_days is not None:
            end_ts = latest_ts + pd.Timedelta(days=horizon_days)
            label_end, overlaps = end_ts.to_pydatetime(), bool(end_ts > cutoff_ts)

    counts = (f"{in_train:,} of {n_test:,} test rows ({fraction:.1%}) repeat training rows; "
              f"{chance:.1%} expected by chance")
    if overlaps:
        verdict: Literal["ok", "leak"] = "leak"
        reason = (f"the latest training row ({latest:%Y-%m-%d}) is labelled until "
                  f"{label_end:%Y-%m-%d} ({horizon_days} days), after the test cut-off "
                  f"{cutoff:%Y-%m-%d}: training labels see the test period; {counts}")
    elif excess > max_excess:
        verdict = "leak"
        reason = (f"{counts}: an excess of {excess:.1%} over the tolerated {max_excess:.1%}; "
                  "the test rows are not held out")
    else:
        verdict = "ok"
        reason = f"{counts}: an excess of {excess:.1%}, within the tolerated {max_excess:.1%}"
    return OverlapReport(
        n_train=n_train, n_test=n_test, columns=[str(c) for c in columns], id_columns=ids,
        time_columns=times, test_rows_in_train=in_train, test_rows_in_train_fraction=fraction,
        shared_ids=shared, test_ids=test_ids, chance_rate=chance, excess=excess,
        max_excess=max_excess, latest_train_time=latest, test_cutoff=cutoff,
        horizon_days=horizon_days, latest_train_label_end=label_end,
        label_window_overlaps_test=overlaps, verdict=verdict, reason=reason,
    )


def identifying_columns(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The id and time columns the evaluation functions record by default.

    Ids: named index levels other than ``as_of``, and columns called ``*_id``
    (``customer_id``, ``user_id``, ``item_id``); times: index levels or columns called
    ``as_of``. They are compared as content either way; this
    only chooses which ones get ``shared_ids`` and the label-window check.
    """
    levels = [str(n) for n in frame.index.names if n is not None]
    names = levels + [str(c) for c in frame.columns]
    times = [n for n in names if n in _TIME_NAMES]
    ids = [n for n in levels if n not in _TIME_NAMES] + \
        [n for n in names[len(levels):] if n.endswith("_id") or n == "id"]
    return ids, times


def overlap_of(train: pd.DataFrame | None, test: object, n_rows: int, *,
               horizon_days: int | None = None) -> OverlapReport | None:
    """The overlap record of an evaluation (None without ``train``).

    :func:`check_overlap` of ``train`` and the evaluated rows ``test`` with the ids and times
    of :func:`identifying_columns`; ``n_rows`` is the number of evaluated rows, which ``test``
    must match.
    """
    if train is None:
        return None
    if test is None:
        raise ValueError("train= was given without the evaluated rows' features (X=); pass "
                         "both to record how many evaluated rows repeat training rows")
    if not isinstance(test, pd.DataFrame):
        raise TypeError(f"the evaluated rows must be a pandas DataFrame to be compared with "
                        f"train=, got {type(test).__name__}")
    if len(test) != n_rows:
        raise ValueError(f"X has {len(test)} rows but the evaluation set has {n_rows}")
    ids, times = identifying_columns(test)
    return check_overlap(train, test, ids, times, horizon_days=horizon_days)
