"""rfm_summary: the published CDNOW summary, lifetimes as an oracle, a brute-force reference."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from barberpro_ml.features.rfm import rfm_summary
from requirements import missing

DATA = Path(__file__).parent / "data"
CALIBRATION_END = "1997-09-30"
HOLDOUT_END = "1998-06-30"


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    """The CDNOW 1/10 sample, one row per transaction (copy of the Lifetimes 0.11.3 file)."""
    return pd.read_csv(DATA / "CDNOW_sample.txt", sep=r"\s+", header=None,
                       names=["master_id", "customer_id", "date", "n_cds", "spend"])


@pytest.fixture(scope="module")
def published() -> pd.DataFrame:
    """The published calibration summary with mean repeat spend (zbar), indexed by ID."""
    summary = pd.read_csv(DATA / "cdnow_customers_summary.csv", index_col="ID")
    with_spend = pd.read_csv(DATA / "cdnow_customers_summary_with_transactions.csv",
                             index_col="ID")
    return summary.join(with_spend["zbar"])


def cdnow_summary(cdnow: pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
    options: dict[str, Any] = {"observation_period_end": CALIBRATION_END, "freq": "D",
                               "time_scaler": 7, "datetime_format": "%Y%m%d"}
    options.update(kwargs)
    return rfm_summary(cdnow, "customer_id", "date", "spend", **options)


# --- the published CDNOW summary -----------------------------------------------------------


def test_cdnow_reproduces_the_published_summary(cdnow: pd.DataFrame,
                                                published: pd.DataFrame) -> None:
    ours = cdnow_summary(cdnow)
    assert ours.index.tolist() == published.index.tolist() == list(range(1, 2358))
    np.testing.assert_array_equal(ours["frequency"], published["frequency"])
    # Published to two decimals: every value within half a unit of the last decimal.
    for column in ["recency", "T"]:
        assert np.abs(ours[column] - published[column]).max() <= 0.005 + 1e-9, column
    assert np.abs(ours["monetary_value"] - published["zbar"]).max() <= 0.005 + 1e-9
    assert (ours["frequency"] > 0).sum() == 946  # the repeat customers of the Gamma-Gamma fit
    # Same-day purchases count once: 1 + frequency is the number of distinct purchase days.
    calibration = cdnow[cdnow["date"] <= 19970930]
    distinct_days = len(calibration.drop_duplicates(["customer_id", "date"]))
    assert (ours["frequency"] + 1).sum() == distinct_days < len(calibration)


def test_published_summary_ends_on_september_30_inclusive(cdnow: pd.DataFrame,
                                                          published: pd.DataFrame) -> None:
    # Purchases made on 1997-09-30 are in the published calibration period: ending a day
    # earlier changes frequency for the customers who bought that day.
    day_before = cdnow_summary(cdnow, observation_period_end="1997-09-29")
    bought_on_end = cdnow.loc[cdnow["date"] == 19970930, "customer_id"].unique()
    changed = day_before.index[day_before["frequency"] != published["frequency"]]
    assert set(changed) == set(bought_on_end)


def test_cdnow_calibration_and_holdout(cdnow: pd.DataFrame, published: pd.DataFrame) -> None:
    split = cdnow_summary(cdnow, observation_period_end=HOLDOUT_END,
                          calibration_period_end=CALIBRATION_END)
    calibration_only = cdnow_summary(cdnow)
    pd.testing.assert_frame_equal(split[calibration_only.columns], calibration_only)
    assert list(split.columns) == ["frequency", "recency", "T", "monetary_value",
                                   "frequency_holdout", "monetary_value_holdout",
                                   "duration_holdout"]
    assert (split["duration_holdout"] == 39.0).all()  # weeks 40..78 of Fader, Hardie & Lee
    # Fader, Hardie & Lee (2005): 1,882 repeat transactions in the 39-week holdout.
    assert split["frequency_holdout"].sum() == 1882
    no_holdout = split["frequency_holdout"] == 0
    assert (split.loc[no_holdout, "monetary_value_holdout"] == 0).all()
    assert (split.loc[~no_holdout, "monetary_value_holdout"] > 0).all()


def test_weekly_periods_give_a_different_summary(cdnow: pd.DataFrame,
                                                 published: pd.DataFrame) -> None:
    daily = cdnow_summary(cdnow)
    weekly = cdnow_summary(cdnow, freq="W", time_scaler=1)
    # Calendar weeks (Monday-Sunday) are counted whole: T and recency are integers, and
    # purchases in one week collapse, so frequency can only go down.
    for column in ["recency", "T"]:
        assert (weekly[column] == np.round(weekly[column])).all()
        # Both measure weeks; flooring both ends to a Monday moves each by less than a week.
        assert np.abs(weekly[column] - daily[column]).max() < 1.0
    assert (weekly["frequency"] <= daily["frequency"]).all()
    assert (weekly["frequency"] < published["frequency"]).sum() > 0
    # Customer 1 bought first on Wed 1997-01-01; the end (Tue 1997-09-30) is 39 Mondays later.
    assert weekly.loc[1, "T"] == 39.0
    assert daily.loc[1, "T"] == pytest.approx(272 / 7)


# --- semantics on small hand-made logs -------------------------------------------------------


def log_of(rows: list[tuple[int, str, float]]) -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": [r[0] for r in rows],
        "created_at": pd.to_datetime([r[1] for r in rows], format="ISO8601"),
        "price": [r[2] for r in rows],
    })


def test_purchases_in_one_period_count_once_and_their_amounts_add_up() -> None:
    log = log_of([(1, "2024-01-01 09:00", 20.0), (1, "2024-01-01 17:00", 5.0),
                  (1, "2024-01-03 10:00", 30.0), (1, "2024-01-03 11:00", 10.0)])
    daily = rfm_summary(log, "customer_id", "created_at", "price",
                        observation_period_end="2024-01-10")
    assert daily.loc[1, "frequency"] == 1
    assert daily.loc[1, "monetary_value"] == 40.0  # the repeat day, both purchases summed
    assert daily.loc[1, "recency"] == 2.0
    assert daily.loc[1, "T"] == 9.0
    hourly = rfm_summary(log, "customer_id", "created_at", "price",
                         observation_period_end="2024-01-10", freq="h", time_scaler=24)
    assert hourly.loc[1, "frequency"] == 3
    assert hourly.loc[1, "monetary_value"] == pytest.approx((5.0 + 30.0 + 10.0) / 3)
    assert hourly.loc[1, "recency"] == pytest.approx(50 / 24)


def test_transactions_after_the_end_are_ignored_point_in_time() -> None:
    log = log_of([(1, "2024-01-01", 10.0), (1, "2024-01-05 12:00", 10.0),
                  (2, "2024-01-06", 10.0)])
    summary = rfm_summary(log, "customer_id", "created_at", "price",
                          observation_period_end="2024-01-05")
    # The purchase at 12:00 on the end day happened after the end (midnight): not known yet.
    assert summary.index.tolist() == [1]
    assert summary.loc[1, "frequency"] == 0
    assert summary.loc[1, "T"] == 4.0


def test_customers_first_seen_in_the_holdout_are_not_in_the_output() -> None:
    log = log_of([(1, "2024-01-01", 10.0), (1, "2024-02-01", 7.0), (1, "2024-02-01", 3.0),
                  (2, "2024-02-02", 99.0)])
    split = rfm_summary(log, "customer_id", "created_at", "price",
                        observation_period_end="2024-02-29", calibration_period_end="2024-01-31")
    assert split.index.tolist() == [1]
    assert split.loc[1, "frequency_holdout"] == 1
    assert split.loc[1, "monetary_value_holdout"] == 10.0  # per-period total, then the mean
    assert split.loc[1, "duration_holdout"] == 29.0


def test_without_monetary_column_there_is_no_monetary_output() -> None:
    log = log_of([(1, "2024-01-01", 10.0), (1, "2024-01-02", 10.0)])
    summary = rfm_summary(log, "customer_id", "created_at")
    assert list(summary.columns) == ["frequency", "recency", "T"]
    assert summary.loc[1, "T"] == 1.0  # the end defaults to the latest transaction
    assert summary["frequency"].dtype == np.int64


def test_timezone_aware_timestamps_are_read_as_utc() -> None:
    log = log_of([(1, "2024-01-01 23:30", 1.0), (1, "2024-01-02 00:30", 1.0)])
    aware = log.assign(created_at=log["created_at"].dt.tz_localize("Europe/Paris"))
    summary = rfm_summary(aware, "customer_id", "created_at", "price",
                          observation_period_end="2024-01-02")
    # 23:30 and 00:30 Paris time are 22:30 and 23:30 UTC on January 1st: one day.
    assert summary.loc[1, "frequency"] == 0


# --- errors ----------------------------------------------------------------------------------


def test_missing_columns_are_named() -> None:
    log = log_of([(1, "2024-01-01", 1.0)])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['when', 'amount'\]"):
        rfm_summary(log, "customer_id", "when", "amount")


def test_unparseable_dates_are_counted_and_shown() -> None:
    log = pd.DataFrame({"customer_id": [1, 2, 3], "created_at": ["2024-01-01", "soon", "?"]})
    with pytest.raises(ValueError, match=r"2 value\(s\) could not be parsed.*'soon'"):
        rfm_summary(log, "customer_id", "created_at")


def test_numeric_dates_need_a_format(cdnow: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="datetime_format"):
        rfm_summary(cdnow, "customer_id", "date")


@pytest.mark.parametrize(
    ("frame", "kwargs", "message"),
    [
        (pd.DataFrame({"customer_id": [1, None], "created_at": ["2024-01-01", "2024-01-02"]}),
         {}, "1 missing customer ids"),
        (pd.DataFrame({"customer_id": [1, 2], "created_at": ["2024-01-01", None]}),
         {}, "1 missing timestamps"),
        (pd.DataFrame({"customer_id": [1, 2], "created_at": ["2024-01-01"] * 2,
                       "price": [1.0, "x"]}), {"monetary_value_col": "price"},
         r"1 amount\(s\) are missing, non-numeric"),
        (pd.DataFrame({"customer_id": [1], "created_at": ["2024-01-01"]}),
         {"freq": "2D"}, "time_scaler=2"),
        (pd.DataFrame({"customer_id": [1], "created_at": ["2024-01-01"]}),
         {"freq": "fortnight"}, "not a pandas period alias"),
        (pd.DataFrame({"customer_id": [1], "created_at": ["2024-01-01"]}),
         {"time_scaler": 0}, "time_scaler must be a positive"),
        (pd.DataFrame({"customer_id": [1], "created_at": ["2024-01-05"]}),
         {"observation_period_end": "2024-01-01"}, "no transaction on or before"),
        (pd.DataFrame({"customer_id": [1], "created_at": ["2024-01-01"]}),
         {"observation_period_end": "2024-01-05", "calibration_period_end": "2024-01-05"},
         "later 'D' period"),
        (pd.DataFrame({"customer_id": [1], "created_at": ["2024-01-01"]}),
         {"observation_period_end": "someday"}, "observation_period_end='someday' is not a date"),
    ],
)
def test_bad_input_is_refused_clearly(frame: pd.DataFrame, kwargs: dict[str, Any],
                                      message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rfm_summary(frame, "customer_id", "created_at", **kwargs)


# --- properties against a brute-force reference ----------------------------------------------

BASE = pd.Timestamp("2024-01-01")


def reference_summary(rows: list[tuple[int, pd.Timestamp, float]], end: pd.Timestamp,
                      freq: str, scaler: float,
                      calibration_end: pd.Timestamp | None) -> dict[int, dict[str, float]]:
    """Plain-Python restatement of the definitions, one customer at a time."""

    def period(ts: pd.Timestamp) -> int:
        return int(pd.Period(ts, freq=freq).ordinal)

    summary_end = calibration_end if calibration_end is not None else end
    out: dict[int, dict[str, float]] = {}
    for customer in sorted({c for c, ts, _ in rows if ts <= summary_end}):
        per_period: dict[int, float] = {}
        holdout: dict[int, float] = {}
        for c, ts, amount in rows:
            if c != customer:
                continue
            if ts <= summary_end:
                per_period[period(ts)] = per_period.get(period(ts), 0.0) + amount
            elif calibration_end is not None and ts <= end:
                holdout[period(ts)] = holdout.get(period(ts), 0.0) + amount
        keys = sorted(per_period)
        frequency = len(keys) - 1
        row = {
            "frequency": frequency,
            "recency": (keys[-1] - keys[0]) / scaler,
            "T": (period(summary_end) - keys[0]) / scaler,
            "monetary_value": (sum(per_period[k] for k in keys[1:]) / frequency
                               if frequency else 0.0),
        }
        if calibration_end is not None:
            row["frequency_holdout"] = len(holdout)
            row["monetary_value_holdout"] = (sum(holdout.values()) / len(holdout)
                                             if holdout else 0.0)
            row["duration_holdout"] = (period(end) - period(calibration_end)) / scaler
        out[customer] = row
    return out


transactions = st.lists(
    st.tuples(st.integers(0, 4), st.integers(0, 60 * 24 - 1),
              st.integers(0, 10_000).map(lambda cents: cents / 100)),
    min_size=1, max_size=40,
)


def frame_of(rows: list[tuple[int, pd.Timestamp, float]]) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [r[0] for r in rows],
                         "created_at": pd.to_datetime([r[1] for r in rows], format="ISO8601"),
                         "price": [r[2] for r in rows]})


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    hours = draw(transactions)
    rows = [(c, BASE + pd.Timedelta(hours=h), a) for c, h, a in hours]
    freq, scaler = draw(st.sampled_from([("D", 1.0), ("D", 7.0), ("W", 1.0), ("h", 24.0)]))
    end = BASE + pd.Timedelta(hours=draw(st.integers(0, 60 * 24)))
    calibration_end = None
    if draw(st.booleans()):
        calibration_end = BASE + pd.Timedelta(hours=draw(st.integers(0, 60 * 24)))
        assume(pd.Period(calibration_end, freq=freq) < pd.Period(end, freq=freq))
    summary_end = calibration_end if calibration_end is not None else end
    assume(any(ts <= summary_end for _, ts, _ in rows))
    return {"rows": rows, "freq": freq, "scaler": scaler, "end": end,
            "calibration_end": calibration_end}


def summarise(rows: list[tuple[int, pd.Timestamp, float]], s: dict[str, Any]) -> pd.DataFrame:
    return rfm_summary(frame_of(rows), "customer_id", "created_at", "price",
                       observation_period_end=s["end"], freq=s["freq"],
                       time_scaler=s["scaler"], calibration_period_end=s["calibration_end"])


@settings(max_examples=80, deadline=None)
@given(scenarios())
def test_matches_a_brute_force_reference(s: dict[str, Any]) -> None:
    ours = summarise(s["rows"], s)
    expected = reference_summary(s["rows"], s["end"], s["freq"], s["scaler"],
                                 s["calibration_end"])
    assert ours.index.tolist() == list(expected)
    for customer, row in expected.items():
        for column, value in row.items():
            assert ours.loc[customer, column] == pytest.approx(value, rel=1e-12, abs=1e-12), (
                customer, column)


@settings(max_examples=80, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_properties_hold(s: dict[str, Any], random: Any) -> None:
    ours = summarise(s["rows"], s)
    assert (ours["T"] >= ours["recency"]).all()
    assert (ours["recency"] >= 0).all()
    summary_end = s["calibration_end"] if s["calibration_end"] is not None else s["end"]
    known = [r for r in s["rows"] if r[1] <= summary_end]
    for customer in ours.index:
        days = {ts.normalize() for c, ts, _ in known if c == customer}
        periods = {pd.Period(ts, freq=s["freq"]) for c, ts, _ in known if c == customer}
        assert ours.loc[customer, "frequency"] <= len(periods) - 1
        if s["freq"] in ("D", "W"):
            assert ours.loc[customer, "frequency"] <= len(days) - 1
    # Invariant to the order of the rows.
    shuffled = list(s["rows"])
    random.shuffle(shuffled)
    pd.testing.assert_frame_equal(summarise(shuffled, s), ours)
    # Point in time: events after the end never change the summary.
    later = [(c, s["end"] + pd.Timedelta(minutes=1 + i), 1.0) for i, c in enumerate(range(6))]
    pd.testing.assert_frame_equal(summarise(s["rows"] + later, s), ours)


# --- lifetimes 0.11.3 as an oracle (its utils.py loads without autograd) ---------------------


@pytest.fixture(scope="module")
def lifetimes_utils() -> ModuleType:
    """lifetimes.utils loaded from its file, so the package's autograd import is not needed."""
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        missing("the lifetimes oracle (lifetimes==0.11.3, in '.[dev]')")
    path = Path(next(iter(spec.submodule_search_locations))) / "utils.py"
    module_spec = importlib.util.spec_from_file_location("_lifetimes_utils_oracle", path)
    if module_spec is None or module_spec.loader is None:
        missing(f"lifetimes/utils.py (not found at {path})")
    module = importlib.util.module_from_spec(module_spec)
    with warnings.catch_warnings():
        # It sets pandas' chained_assignment option on import, a deprecated no-op in pandas 3.
        warnings.simplefilter("ignore")
        try:
            module_spec.loader.exec_module(module)
        except Exception as error:  # pragma: no cover - depends on the installed version
            missing(f"a loadable lifetimes/utils.py ({type(error).__name__}: {error})")
    return module


@pytest.fixture(scope="module")
def cdnow_dated(cdnow: pd.DataFrame) -> pd.DataFrame:
    return cdnow.assign(date=pd.to_datetime(cdnow["date"].astype(str), format="%Y%m%d"))


def test_lifetimes_agrees_on_daily_periods(lifetimes_utils: ModuleType,
                                           cdnow_dated: pd.DataFrame) -> None:
    theirs = lifetimes_utils.summary_data_from_transaction_data(
        cdnow_dated, "customer_id", "date", "spend", observation_period_end=CALIBRATION_END,
        freq="D", freq_multiplier=7)
    ours = rfm_summary(cdnow_dated, "customer_id", "date", "spend",
                       observation_period_end=CALIBRATION_END, time_scaler=7)
    pd.testing.assert_frame_equal(ours.astype(float), theirs, check_names=False, rtol=1e-12)

    theirs = lifetimes_utils.calibration_and_holdout_data(
        cdnow_dated, "customer_id", "date", CALIBRATION_END, HOLDOUT_END, freq="D",
        freq_multiplier=7, monetary_value_col="spend")
    ours = rfm_summary(cdnow_dated, "customer_id", "date", "spend",
                       observation_period_end=HOLDOUT_END, time_scaler=7,
                       calibration_period_end=CALIBRATION_END)
    for column in ["frequency", "recency", "T", "monetary_value"]:
        np.testing.assert_allclose(ours[column], theirs[f"{column}_cal"], rtol=1e-12)
    for column in ["frequency_holdout", "duration_holdout"]:
        np.testing.assert_allclose(ours[column], theirs[column], rtol=1e-12)
    # lifetimes averages raw holdout rows, we average per-day totals (pymc-marketing): they
    # agree wherever a customer made at most one holdout purchase per day.
    holdout = cdnow_dated[cdnow_dated["date"] > CALIBRATION_END]
    same_day = holdout[holdout.duplicated(["customer_id", "date"])]["customer_id"].unique()
    assert len(same_day) > 0
    keep = ~ours.index.isin(same_day)
    np.testing.assert_allclose(ours.loc[keep, "monetary_value_holdout"],
                               theirs.loc[keep, "monetary_value_holdout"], rtol=1e-12)


def test_lifetimes_weekly_periods_look_past_the_end(lifetimes_utils: ModuleType,
                                                    cdnow_dated: pd.DataFrame) -> None:
    # With freq="W" lifetimes keeps purchases made after the end but in the end's week
    # (Wed 1997-10-01 to Sun 10-05); we do not. Without those rows the two agree exactly.
    ours = rfm_summary(cdnow_dated, "customer_id", "date", "spend",
                       observation_period_end=CALIBRATION_END, freq="W")
    theirs = lifetimes_utils.summary_data_from_transaction_data(
        cdnow_dated, "customer_id", "date", "spend", observation_period_end=CALIBRATION_END,
        freq="W")
    close = np.isclose(ours.astype(float).to_numpy(), theirs.to_numpy(), rtol=1e-12)
    differs = ours.index[~close.all(axis=1)]
    late = cdnow_dated[(cdnow_dated["date"] > CALIBRATION_END)
                       & (cdnow_dated["date"] <= "1997-10-05")]["customer_id"].unique()
    assert len(differs) > 0
    assert set(differs) <= set(late)
    truncated = cdnow_dated[cdnow_dated["date"] <= CALIBRATION_END]
    theirs_truncated = lifetimes_utils.summary_data_from_transaction_data(
        truncated, "customer_id", "date", "spend", observation_period_end=CALIBRATION_END,
        freq="W")
    pd.testing.assert_frame_equal(ours.astype(float), theirs_truncated, check_names=False)


def test_customer_rfm_counts_completed_visits_in_weeks_as_of_the_cut_off() -> None:
    from barberpro_ml.data import MarketplaceData
    from barberpro_ml.features import customer_rfm

    data = MarketplaceData.load(Path(__file__).resolve().parents[1] / "data" / "sample")
    as_of = pd.Timestamp("2024-06-30")
    rfm = customer_rfm(data, as_of)
    b = data.bookings
    visits = b.loc[(b["status"] == "completed") & (b["scheduled_at"] <= as_of)]
    days = visits.assign(day=visits["scheduled_at"].dt.floor("D")).groupby("customer_id")["day"]
    assert set(rfm.index) == set(days.groups)
    customer = rfm.index[rfm["frequency"].to_numpy().argmax()]
    own = days.get_group(customer)
    assert rfm.loc[customer, "frequency"] == own.nunique() - 1   # repeat visit days
    assert rfm.loc[customer, "T"] == pytest.approx((as_of.floor("D") - own.min()).days / 7)
    assert rfm.loc[customer, "recency"] == pytest.approx((own.max() - own.min()).days / 7)
    assert customer_rfm(data, data.bookings["scheduled_at"].min() - pd.Timedelta(days=1)).empty
