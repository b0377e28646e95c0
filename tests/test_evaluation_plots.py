"""Evaluation plots: each function draws a figure; SHAP works with categorical columns;
log_classification_plots writes every picture to the active MLflow run."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from scipy.special import expit

from barberpro_ml.evaluation import evaluate_classifier, plots
from barberpro_ml.models import ChurnClassifier


@pytest.fixture(scope="module")
def churn_data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 1500
    X = pd.DataFrame({
        "visits": rng.poisson(3, n).astype(float),
        "spend": rng.gamma(2, 20, n),
        "channel": pd.Categorical(rng.choice(["organic", "paid", "referral"], n)),
        "neighborhood": rng.choice(["north", "south"], n).astype(object),
    })
    X.loc[rng.random(n) < 0.1, "spend"] = np.nan
    logit = -0.5 - 0.5 * X["visits"] + 1.2 * (X["channel"] == "paid").to_numpy()
    return X, (rng.random(n) < expit(logit.to_numpy(dtype=float))).astype(int)


@pytest.fixture(scope="module", params=["xgboost", "logistic"])
def fitted(request: pytest.FixtureRequest, churn_data: tuple[pd.DataFrame, np.ndarray]
           ) -> ChurnClassifier:
    X, y = churn_data
    return ChurnClassifier(estimator=request.param, n_estimators=40, random_state=0,
                           n_jobs=1).fit(X[:1000], y[:1000])


def _drawn(fig: Any) -> bool:
    return isinstance(fig, Figure) and any(ax.has_data() for ax in fig.axes)


def test_every_curve_plot_draws_a_figure(churn_data: tuple[pd.DataFrame, np.ndarray],
                                         fitted: ChurnClassifier) -> None:
    X, y = churn_data
    p = fitted.predict_proba(X[1000:])[:, 1]
    report = evaluate_classifier(fitted, X[1000:], y[1000:], n_bootstrap=50)
    figures = [
        plots.plot_roc(y[1000:], p, report=report),
        plots.plot_precision_recall(y[1000:], p, report=report),
        plots.plot_calibration(y[1000:], p, report=report),
        plots.plot_lift_gain(y[1000:], p),
        plots.plot_confusion_matrix(y[1000:], p, report.threshold),
    ]
    assert all(_drawn(fig) for fig in figures)
    legend = figures[0].axes[0].get_legend().get_texts()[0].get_text()
    auc = report.metrics["roc_auc"]
    assert f"{auc.value:.3f} [{auc.ci_low:.3f}, {auc.ci_high:.3f}]" in legend


def test_shap_values_with_categorical_columns_add_up_to_the_log_odds(
    churn_data: tuple[pd.DataFrame, np.ndarray], fitted: ChurnClassifier
) -> None:
    X, _ = churn_data
    rows = X[1000:1200]
    explanation = plots.explain_model(fitted, rows)
    assert explanation.values.shape == (200, 4)
    assert list(explanation.feature_names) == list(X.columns)
    total = explanation.values.sum(axis=1) + explanation.base_values
    np.testing.assert_allclose(total, fitted.predict_margin(rows), atol=1e-4)
    assert "channel" in plots.top_features(explanation, 2)
    assert _drawn(plots.plot_shap_summary(explanation))
    dependence = plots.plot_shap_dependence(
        explanation, "channel", categories=fitted.categories_["channel"])
    ticks = [t.get_text() for t in dependence.axes[0].get_xticklabels()]
    assert set(ticks) == {"organic", "paid", "referral"}
    assert _drawn(plots.plot_shap_dependence(explanation, "spend"))
    with pytest.raises(KeyError, match="no feature 'tenure'"):
        plots.plot_shap_dependence(explanation, "tenure")


def test_explain_model_samples_large_tables(churn_data: tuple[pd.DataFrame, np.ndarray],
                                            fitted: ChurnClassifier) -> None:
    X, _ = churn_data
    assert plots.explain_model(fitted, X, max_rows=300).values.shape == (300, 4)


def test_all_plots_are_logged_to_the_active_run(
    churn_data: tuple[pd.DataFrame, np.ndarray], mlflow_store: Any
) -> None:
    import mlflow

    X, y = churn_data
    model = ChurnClassifier(n_estimators=30, random_state=0, n_jobs=1).fit(X[:1000], y[:1000])
    report = evaluate_classifier(model, X[1000:], y[1000:], n_bootstrap=30)
    with pytest.raises(RuntimeError, match="no active MLflow run"):
        plots.log_classification_plots(model, X[1000:], y[1000:], report)
    with mlflow.start_run() as run:
        logged = plots.log_classification_plots(model, X[1000:], y[1000:], report, top_k=2)
    stored = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "plots")}
    assert stored == set(logged)
    assert {"plots/roc.png", "plots/calibration.png", "plots/shap_summary.png",
            "plots/confusion_matrix.png", "plots/lift_gain.png",
            "plots/precision_recall.png"} <= stored
    assert sum(p.startswith("plots/shap_dependence_") for p in stored) == 2
