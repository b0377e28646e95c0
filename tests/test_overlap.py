"""Train/test overlap: a test set copied from the training set is refused, honest splits are not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from barberpro_ml.evaluation import (
    EvaluationReport,
    OverlapReport,
    check_overlap,
    evaluate_classifier,
    evaluate_ltv,
    evaluate_recommender,
    evaluate_scores,
)
from barberpro_ml.features.splits import check_time_layout
from barberpro_ml.gates import Claim, ClaimSet, GateSettings, check, load_claims
from barberpro_ml.gates.check import overlap_verdict
from barberpro_ml.models.recs import PopularityRecommender

ROOT = Path(__file__).resolve().parents[1]
TELCO = ROOT / "tests" / "data" / "telco_churn_subset"
CLAIMS_FILE = ROOT / "configs" / "claims.yaml"


def customers_frame(n: int, seed: int, *, first_id: int = 0) -> pd.DataFrame:
    """Feature rows of mixed dtypes (ints, floats with NaN, strings, categoricals)."""
    rng = np.random.default_rng(seed)
    spend = rng.gamma(2.0, 30.0, n).round(2)
    spend[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({
        "visits": rng.integers(0, 20, n),
        "spend": spend,
        "channel": rng.choice(["organic", "paid_social", "referral"], n),
        "tier": pd.Categorical(rng.choice(["low", "mid", "high"], n)),
    }, index=pd.Index(np.arange(first_id, first_id + n), name="customer_id"))


# --------------------------------------------------------------------------- public data set
def test_public_churn_test_file_sampled_from_its_train_file_is_refused() -> None:
    train_path, test_path = TELCO / "train_sample.csv", TELCO / "test_sample.csv"
    # The property the test relies on, re-checked on the committed files: every test line is
    # a training line.
    train_lines = set(train_path.read_text(encoding="utf-8").splitlines()[1:])
    test_lines = test_path.read_text(encoding="utf-8").splitlines()[1:]
    assert test_lines and all(line in train_lines for line in test_lines)

    train = pd.read_csv(train_path, index_col="customerid")
    test = pd.read_csv(test_path, index_col="customerid")
    X_train, y_train = train.drop(columns="churn"), train["churn"]
    X_test, y_test = test.drop(columns="churn"), test["churn"]
    categorical = [c for c in X_train.columns if X_train[c].dtype.kind not in "if"]
    numeric = [c for c in X_train.columns if c not in categorical]
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore"), categorical),
                                (StandardScaler(), numeric)),
        LogisticRegression(max_iter=1000)).fit(X_train, y_train)

    report = evaluate_classifier(model, X_test, y_test, n_bootstrap=200, train=X_train)
    overlap = report.overlap
    assert overlap is not None and overlap.verdict == "leak"
    assert overlap.n_test == len(test_lines)
    assert overlap.test_rows_in_train == len(test_lines)
    assert overlap.test_rows_in_train_fraction == pytest.approx(1.0)
    assert overlap.shared_ids == {"customerid": len(test_lines)}
    assert overlap.excess > 0.95
    assert "not held out" in overlap.reason

    result = check(report, load_claims(CLAIMS_FILE, "churn"))
    row = next(c for c in result.claims if c.claim_id == "test-overlap")
    assert row.verdict == "fail" and row.blocking and not result.passed
    n = len(test_lines)
    assert f"{n} of {n} test rows (100.0%) repeat training rows" in row.reason
    assert any(line.startswith("test-overlap:") for line in result.failures())
    # the report, overlap record included, survives its JSON round trip
    again = type(report).model_validate_json(report.model_dump_json())
    assert again.overlap == overlap


# --------------------------------------------------------------------------- the rule
def test_disjoint_split_reports_no_overlap() -> None:
    frame = customers_frame(2000, seed=1)
    train, test = frame.iloc[:1500], frame.iloc[1500:]
    report = check_overlap(train, test, ["customer_id"])
    assert report.test_rows_in_train == 0 and report.excess == 0.0
    assert report.shared_ids == {"customer_id": 0} and report.test_ids == {"customer_id": 500}
    assert report.verdict == "ok"


def test_same_customers_at_another_cut_off_are_not_an_overlap() -> None:
    # Out-of-time churn frames: the same customers with the very same features (dormant ones
    # do not change) at two cut-offs, indexed (as_of, customer_id) like training_frame's.
    features = customers_frame(300, seed=2)

    def at(as_of: str) -> pd.DataFrame:
        part = features.copy()
        part.index = pd.MultiIndex.from_arrays(
            [np.full(len(part), np.datetime64(as_of, "ns")), part.index],
            names=["as_of", "customer_id"])
        return part

    train = pd.concat([at("2024-01-01"), at("2024-02-01")])
    test = at("2024-05-01")
    report = check_overlap(train, test, ["customer_id"], ["as_of"], horizon_days=90)
    assert report.test_rows_in_train == 0 and report.verdict == "ok"
    assert report.shared_ids == {"customer_id": 300}  # same people, other rows
    assert report.latest_train_label_end == pd.Timestamp("2024-05-01").to_pydatetime()
    assert report.label_window_overlaps_test is False
    # a training label period reaching into the test period is a leak, named as such
    late = check_overlap(pd.concat([train, at("2024-03-01")]), test, ["customer_id"],
                         ["as_of"], horizon_days=90)
    assert late.verdict == "leak" and late.label_window_overlaps_test
    assert "2024-05-30" in late.reason and "2024-05-01" in late.reason
    # ... and time_split refuses that layout before computing anything
    with pytest.raises(ValueError, match=r"2024-03-01.*latest allowed is 2024-02-01"):
        check_time_layout([pd.Timestamp("2024-03-01")], [], pd.Timestamp("2024-05-01"), 90)
    # the evaluation harness records the same thing from the frames alone
    y = pd.Series(np.arange(300) % 3 == 0, index=test.index).astype(int)
    p = np.linspace(0.01, 0.99, 300)
    scored = evaluate_scores(y, p, n_bootstrap=0, X=test, train=train, horizon_days=90)
    assert scored.overlap is not None and scored.overlap.verdict == "ok"
    assert scored.overlap.time_columns == ["as_of"]


def test_identical_empty_histories_of_new_customers_are_not_leakage() -> None:
    # 30% of customers are brand new: every feature zero, the same row apart from the id.
    def population(n: int, seed: int, first_id: int) -> pd.DataFrame:
        frame = customers_frame(n, seed, first_id=first_id)
        new = np.arange(n) < int(0.3 * n)
        frame.loc[new, ["visits", "spend"]] = 0
        frame.loc[new, "channel"] = "organic"
        frame.loc[new, "tier"] = "low"
        return frame

    train, test = population(1000, seed=3, first_id=0), population(400, seed=4, first_id=5000)
    with_ids = check_overlap(train, test, ["customer_id"])
    assert with_ids.test_rows_in_train == 0 and with_ids.verdict == "ok"

    # Without ids the empty rows do repeat training rows, and as often as within training.
    anonymous = check_overlap(train.reset_index(drop=True), test.reset_index(drop=True))
    assert anonymous.test_rows_in_train >= 120
    assert anonymous.chance_rate >= 0.3
    assert anonymous.excess <= 0.01 and anonymous.verdict == "ok"


_frames = st.tuples(st.integers(1, 60), st.integers(1, 60), st.integers(0, 2**31 - 1))


@settings(max_examples=40, deadline=None)
@given(sizes=_frames, k=st.integers(0, 80), with_ids=st.booleans())
def test_adding_k_copies_of_training_rows_adds_exactly_k(sizes: tuple[int, int, int], k: int,
                                                           with_ids: bool) -> None:
    n_train, n_test, seed = sizes
    train = customers_frame(n_train, seed)
    test = customers_frame(n_test, seed + 1, first_id=10_000)
    if not with_ids:
        train, test = train.reset_index(drop=True), test.reset_index(drop=True)
    before = check_overlap(train, test).test_rows_in_train
    rng = np.random.default_rng(seed)
    copies = train.iloc[rng.integers(0, n_train, k)]
    after = check_overlap(train, pd.concat([test, copies])).test_rows_in_train
    assert after == before + k
    if with_ids:
        assert before == 0


def test_equal_values_hash_alike_across_dtypes() -> None:
    train = pd.DataFrame({"a": [1, 2, 3], "b": pd.Categorical(["x", "y", None]),
                          "c": [0.0, np.nan, 1.5]})
    test = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", None], "c": [-0.0, np.nan, 1.5]})
    assert check_overlap(train, test).test_rows_in_train == 3
    assert check_overlap(train, test.assign(c=[0.0, np.nan, 1.6])).test_rows_in_train == 2


def test_errors_name_what_is_wrong() -> None:
    frame = customers_frame(10, seed=5)
    with pytest.raises(ValueError, match=r"train lacks 1 column.*'extra'"):
        check_overlap(frame, frame.assign(extra=1))
    with pytest.raises(ValueError, match=r"id_columns: \['user_id'\]"):
        check_overlap(frame, frame, ["user_id"])
    with pytest.raises(ValueError, match="test has no rows"):
        check_overlap(frame, frame.iloc[:0])
    with pytest.raises(ValueError, match=r"max_excess must be in \[0, 1\)"):
        check_overlap(frame, frame, max_excess=1.0)
    with pytest.raises(ValueError, match="without the evaluated rows' features"):
        evaluate_scores([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], n_bootstrap=0, train=frame)


def test_ltv_and_recommender_evaluations_record_the_overlap() -> None:
    X = customers_frame(200, seed=6)
    y = np.random.default_rng(6).gamma(1.0, 50.0, 200)
    report = evaluate_ltv(y[:100], {"model": y[:100] * 0.9, "naive": np.zeros(100)},
                          n_bootstrap=0, X=X.iloc[:100], train=X)
    assert report.overlap is not None and report.overlap.verdict == "leak"
    assert report.overlap.test_rows_in_train == 100

    rng = np.random.default_rng(7)
    stamps = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, 600), "D")
    events = pd.DataFrame({"user_id": rng.integers(0, 80, 600),
                           "item_id": rng.integers(0, 15, 600), "timestamp": stamps})
    train = events[events["timestamp"] < "2024-10-01"]
    later = events[events["timestamp"] >= "2024-10-01"]
    model = PopularityRecommender().fit(train)
    held_out = evaluate_recommender(model, train, later, k=5, n_bootstrap=0, baseline=None,
                                    exclude_seen=False)
    assert held_out.overlap is not None and held_out.overlap.test_rows_in_train == 0
    copied = evaluate_recommender(model, train, train.iloc[::3], k=5, n_bootstrap=0,
                                  baseline=None, exclude_seen=False)
    assert copied.overlap is not None and copied.overlap.verdict == "leak"


# --------------------------------------------------------------------------- the gate
def _report(overlap: OverlapReport | None, kind: str = "classification",
            family: str = "churn") -> EvaluationReport:
    return EvaluationReport(family=family, kind=kind, n=100, metrics={},  # type: ignore[arg-type]
                            overlap=overlap)


def _with_copies(n_copies: int) -> OverlapReport:
    train = customers_frame(1000, seed=8)
    test = pd.concat([customers_frame(200, seed=9, first_id=5000), train.iloc[:n_copies]])
    return check_overlap(train, test, ["customer_id"])


@pytest.mark.parametrize(("n_copies", "verdict"), [(0, "pass"), (4, "pass"), (30, "fail")])
def test_gate_row_fails_above_the_threshold_and_passes_below(n_copies: int,
                                                              verdict: str) -> None:
    overlap = _with_copies(n_copies)
    assert overlap.test_rows_in_train == n_copies
    limit = 0.05  # 4 of 204 rows is 2.0%, 30 of 230 is 13.0%
    row = overlap_verdict(_report(overlap), GateSettings(max_test_overlap=limit))
    assert row.claim_id == "test-overlap" and row.blocking
    assert row.verdict == verdict
    assert row.observed == pytest.approx(overlap.excess) and row.claimed == limit
    share = n_copies / overlap.n_test
    assert f"{n_copies} of {overlap.n_test} test rows ({share:.1%}) repeat training rows" \
        in row.reason
    # through check(): one extra row, after the claims, with the claims file's setting
    claims = ClaimSet(settings=GateSettings(max_test_overlap=limit), claims=[Claim(
        id="auc", family="churn", metric="roc_auc", claimed=0.5, direction="at_least",
        source="test")])
    result = check(_report(overlap), claims)
    assert [c.claim_id for c in result.claims] == ["auc", "test-overlap"]
    assert result.claims[-1].verdict == verdict


def test_gate_refuses_a_report_without_an_overlap_record() -> None:
    row = overlap_verdict(_report(None))
    assert row.verdict == "fail"
    assert "did not compare the test rows with the training rows" in row.reason
    assert "train=" in row.reason


def test_segmentation_is_in_sample_by_design_and_says_so() -> None:
    frame = customers_frame(50, seed=10)
    row = overlap_verdict(_report(check_overlap(frame, frame), kind="segmentation",
                                  family="segments"))
    assert row.verdict == "not tested" and row.passed
    assert "50 of 50 test rows (100.0%)" in row.reason
    causal = overlap_verdict(_report(None, kind="causal", family="pricing"))
    assert causal.verdict == "not tested" and "cross-fitting" in causal.reason


@pytest.mark.parametrize("kind", ["segmentation", "causal"])
def test_a_report_cannot_claim_another_familys_overlap_exemption(kind: str) -> None:
    # the exemption belongs to the family (gates.catalog: no_holdout), not to the report's kind:
    # a churn report relabelled as a segmentation or a causal estimate is still judged
    frame = customers_frame(50, seed=10)
    leaked = overlap_verdict(_report(check_overlap(frame, frame), kind=kind))
    assert leaked.verdict == "fail" and not leaked.passed
    missing = overlap_verdict(_report(None, kind=kind))
    assert missing.verdict == "fail"


def test_max_test_overlap_setting() -> None:
    assert load_claims(CLAIMS_FILE).settings.max_test_overlap == 0.01
    assert GateSettings().max_test_overlap == 0.01
    for bad in (-0.01, 1.0):
        with pytest.raises(ValueError, match="max_test_overlap"):
            GateSettings(max_test_overlap=bad)
