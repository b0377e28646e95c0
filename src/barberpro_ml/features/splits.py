"""Training frames stacked over cut-offs, and out-of-time train / validation / test splits.

Rows of a training frame are ``(as_of, customer_id)`` pairs: the customer's features at
``as_of`` and their label over ``(as_of, as_of + horizon_days]``. An honest evaluation never
lets a row used for fitting (or for choosing a model) see the period it is evaluated on, so
:func:`time_split` refuses any layout where a training row's label period reaches past the
first validation cut-off, or a training or validation row's label period reaches past the test
cut-off. Random row splits are not offered: rows of the same customer at nearby cut-offs share
most of their history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from barberpro_ml.data import MarketplaceData
from barberpro_ml.errors import InputError
from barberpro_ml.features._common import AsOf, check_horizon, check_windows, to_as_of
from barberpro_ml.features.catalog import DEFAULT_WINDOWS
from barberpro_ml.features.customer import customer_features
from barberpro_ml.features.labels import (
    DEFAULT_ACTIVE_WINDOW_DAYS,
    churn_labels,
    ltv_labels,
    next_service_labels,
)

LabelKind = Literal["churn", "ltv", "next_service"]
LABEL_COLUMNS: dict[str, str] = {"churn": "churned", "ltv": "ltv",
                                 "next_service": "next_service_id"}
"""Name of the label column for each ``label`` kind."""

Part = Literal["train", "validation", "test"]


def _labels(data: MarketplaceData, as_of: pd.Timestamp, horizon_days: int, label: str,
            active_window_days: int) -> pd.Series:
    if label == "churn":
        return churn_labels(data, as_of, horizon_days, active_window_days=active_window_days)
    if label == "ltv":
        return ltv_labels(data, as_of, horizon_days)
    if label == "next_service":
        return next_service_labels(data, as_of, horizon_days)
    raise InputError(f"label: expected one of {sorted(LABEL_COLUMNS)}, got {label!r}")


def _cutoffs(values: Sequence[AsOf], name: str) -> tuple[pd.Timestamp, ...]:
    if isinstance(values, str | pd.Timestamp):
        raise InputError(f"{name}: expected a sequence of cut-offs, got the single value "
                         f"{values!r}; wrap it in a list")
    stamps = [to_as_of(v, name) for v in values]
    if len(set(stamps)) != len(stamps):
        duplicated = sorted({s for s in stamps if stamps.count(s) > 1})
        raise InputError(f"{name}: duplicate cut-offs {[str(s) for s in duplicated]}")
    return tuple(sorted(stamps))


def training_frame(data: MarketplaceData, cutoffs: Sequence[AsOf], horizon_days: int, *,
                   label: LabelKind = "churn", windows: Sequence[int] = DEFAULT_WINDOWS,
                   active_window_days: int = DEFAULT_ACTIVE_WINDOW_DAYS) -> pd.DataFrame:
    """Features and labels at several cut-offs, stacked.

    Parameters
    ----------
    data
        The validated event tables; they must reach the last cut-off plus ``horizon_days``.
    cutoffs
        The ``as_of`` values (naive UTC), at least one, no duplicates; any order.
    horizon_days
        Label period length in days.
    label
        ``"churn"`` (:func:`churn_labels`, rows: customers active at the cut-off), ``"ltv"``
        (:func:`ltv_labels`, rows: every customer signed up) or ``"next_service"``
        (:func:`next_service_labels`, rows: customers with a visit in the period).
    windows
        Look-back windows of :func:`customer_features`.
    active_window_days
        Activity rule of :func:`active_customers` (churn only).

    Returns
    -------
    pandas.DataFrame
        Indexed by a ``(as_of, customer_id)`` MultiIndex, sorted; the columns of
        :func:`customer_features` followed by the label column (``churned``, ``ltv`` or
        ``next_service_id``, see :data:`LABEL_COLUMNS`).

    Raises
    ------
    ValueError
        If a cut-off cannot be labelled (data too short), cut-offs are duplicated or empty, or
        ``label`` is unknown.

    Examples
    --------
    >>> frame = training_frame(data, ["2024-01-31", "2024-02-29"], 90)   # doctest: +SKIP
    >>> frame.xs(pd.Timestamp("2024-01-31"), level="as_of").churned.mean()  # doctest: +SKIP
    """
    stamps = _cutoffs(cutoffs, "cutoffs")
    if not stamps:
        raise InputError("cutoffs: give at least one cut-off")
    horizon = check_horizon(horizon_days)
    ws = check_windows(windows)
    if label not in LABEL_COLUMNS:
        raise InputError(f"label: expected one of {sorted(LABEL_COLUMNS)}, got {label!r}")
    # Every label period is checked before the first feature is computed: a long run should
    # not fail on its last cut-off.
    labels = [_labels(data, stamp, horizon, label, active_window_days) for stamp in stamps]
    parts = []
    for stamp, y in zip(stamps, labels, strict=True):
        features = customer_features(data, stamp, windows=ws).loc[y.index]
        part = features.assign(**{LABEL_COLUMNS[label]: y.to_numpy()})
        part.index = pd.MultiIndex.from_arrays(
            [np.full(len(part), stamp.to_datetime64()), part.index.to_numpy()],
            names=["as_of", "customer_id"])
        parts.append(part)
    return pd.concat(parts)


@dataclass(frozen=True)
class TimeSplit:
    """An out-of-time split: frames from :func:`training_frame` and the cut-offs they used.

    Attributes
    ----------
    train, validation, test
        Training frames (``validation`` may be empty when no validation cut-off was given).
    train_cutoffs, validation_cutoffs
        Sorted cut-offs of each part.
    test_cutoff
        The single test cut-off.
    horizon_days
        Label period length shared by every part.
    label
        Label kind (``churn``, ``ltv``, ``next_service``).
    """

    train: pd.DataFrame = field(repr=False)
    validation: pd.DataFrame = field(repr=False)
    test: pd.DataFrame = field(repr=False)
    train_cutoffs: tuple[pd.Timestamp, ...]
    validation_cutoffs: tuple[pd.Timestamp, ...]
    test_cutoff: pd.Timestamp
    horizon_days: int
    label: str

    @property
    def label_column(self) -> str:
        """Name of the label column in every frame."""
        return LABEL_COLUMNS[self.label]

    def xy(self, part: Part) -> tuple[pd.DataFrame, pd.Series]:
        """Features and labels of one part: ``X, y = split.xy("train")``."""
        if part not in ("train", "validation", "test"):
            raise InputError(f"part: expected 'train', 'validation' or 'test', got {part!r}")
        frame: pd.DataFrame = getattr(self, part)
        return frame.drop(columns=[self.label_column]), frame[self.label_column]


def check_time_layout(train_cutoffs: Sequence[pd.Timestamp],
                      validation_cutoffs: Sequence[pd.Timestamp],
                      test_cutoff: pd.Timestamp, horizon_days: int) -> None:
    """Refuse a layout where a label period overlaps a later part's evaluation period.

    A training row at ``c`` is labelled over ``(c, c + horizon]``; it must end by the first
    validation cut-off (or the test cut-off without validation). A validation row must end by
    the test cut-off.

    Raises
    ------
    ValueError
        Naming the offending cut-offs and the latest cut-off each part may use.
    """
    horizon = pd.Timedelta(days=horizon_days)
    problems = []
    if validation_cutoffs:
        train_limit, limit_name = min(validation_cutoffs), "the first validation cut-off"
        late = [v for v in validation_cutoffs if v + horizon > test_cutoff]
        if late:
            problems.append(
                f"validation cut-offs {[str(v) for v in late]} have label periods ending after "
                f"the test cut-off {test_cutoff}; the latest allowed is {test_cutoff - horizon}")
    else:
        train_limit, limit_name = test_cutoff, "the test cut-off"
    late = [c for c in train_cutoffs if c + horizon > train_limit]
    if late:
        problems.append(
            f"training cut-offs {[str(c) for c in late]} have label periods ending after "
            f"{limit_name} {train_limit}; the latest allowed is {train_limit - horizon}")
    if problems:
        raise InputError(f"time_split: leaky layout with horizon_days={horizon_days}: "
                         + "; ".join(problems))


def time_split(data: MarketplaceData, *, train_cutoffs: Sequence[AsOf], test_cutoff: AsOf,
               horizon_days: int, validation_cutoffs: Sequence[AsOf] = (),
               label: LabelKind = "churn", windows: Sequence[int] = DEFAULT_WINDOWS,
               active_window_days: int = DEFAULT_ACTIVE_WINDOW_DAYS) -> TimeSplit:
    """Out-of-time train / validation / test frames.

    Parameters
    ----------
    data
        The validated event tables; they must reach ``test_cutoff + horizon_days``.
    train_cutoffs
        Cut-offs of the training rows (at least one).
    test_cutoff
        The cut-off of the test rows.
    horizon_days
        Label period length, shared by every part.
    validation_cutoffs
        Cut-offs of the validation rows (may be empty).
    label, windows, active_window_days
        As in :func:`training_frame`.

    Returns
    -------
    TimeSplit
        The three frames and their cut-offs.

    Raises
    ------
    ValueError
        If a training row's label period ``(c, c + horizon]`` ends after the first validation
        cut-off (or, without validation, the test cut-off); if a validation row's ends after
        the test cut-off; if the data do not reach ``test_cutoff + horizon_days``. Checked
        before anything is computed.

    Examples
    --------
    >>> split = time_split(data, train_cutoffs=["2023-09-30", "2023-12-31"],   # doctest: +SKIP
    ...                    validation_cutoffs=["2024-03-31"], test_cutoff="2024-06-30",
    ...                    horizon_days=90)
    >>> X_train, y_train = split.xy("train")                                   # doctest: +SKIP
    """
    train = _cutoffs(train_cutoffs, "train_cutoffs")
    if not train:
        raise InputError("train_cutoffs: give at least one cut-off")
    validation = _cutoffs(validation_cutoffs, "validation_cutoffs")
    test = to_as_of(test_cutoff, "test_cutoff")
    horizon = check_horizon(horizon_days)
    check_time_layout(train, validation, test, horizon)

    def frame(cutoffs: Sequence[pd.Timestamp]) -> pd.DataFrame:
        return training_frame(data, cutoffs, horizon, label=label, windows=windows,
                              active_window_days=active_window_days)

    # The test frame first: it is the one that fails when the data are too short.
    test_frame = frame([test])
    train_frame = frame(train)
    validation_frame = frame(validation) if validation else test_frame.iloc[:0]
    return TimeSplit(train=train_frame, validation=validation_frame, test=test_frame,
                     train_cutoffs=train, validation_cutoffs=validation, test_cutoff=test,
                     horizon_days=horizon, label=label)
