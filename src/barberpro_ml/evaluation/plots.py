"""Pictures of a binary classifier's evaluation, and logging them to MLflow.

Every function returns a :class:`matplotlib.figure.Figure` built without ``pyplot`` (no global
figure state, no GUI backend needed: saving uses Agg), so they are safe in servers, CI and
notebooks alike. :func:`log_classification_plots` writes them all to the active MLflow run.

SHAP values explain the model's *uncalibrated* log-odds (calibration is a monotone map applied
afterwards, so it changes no ranking of features): TreeSHAP for XGBoost [1]_, the linear
explainer for the logistic baseline; see :meth:`barberpro_ml.models.ChurnClassifier.explain`.

References
----------
.. [1] Lundberg, S. M. et al. (2020). From local explanations to global understanding with
   explainable AI for trees. *Nature Machine Intelligence* 2, 56-67.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from barberpro_ml.evaluation.metrics import check_binary_scores, equal_mass_bins
from barberpro_ml.evaluation.proportions import wilson_interval

if TYPE_CHECKING:
    import shap

    from barberpro_ml.evaluation.classification import ClassificationReport

__all__ = [
    "explain_model",
    "log_classification_plots",
    "plot_calibration",
    "plot_confusion_matrix",
    "plot_lift_gain",
    "plot_precision_recall",
    "plot_roc",
    "plot_shap_dependence",
    "plot_shap_summary",
    "top_features",
]

_MODEL = "#1f77b4"
_BASELINE = "#999999"


def _with_ci(report: ClassificationReport | None, metric: str, value: float) -> str:
    if report is not None and metric in report.metrics:
        m = report.metrics[metric]
        return f"{m.value:.3f} [{m.ci_low:.3f}, {m.ci_high:.3f}]"
    return f"{value:.3f}"


def plot_roc(y: Any, p: Any, *, report: ClassificationReport | None = None) -> Figure:
    """ROC curve with the chance diagonal; the legend shows AUC (and its CI from ``report``)."""
    y01, p_arr = check_binary_scores(y, p)
    fpr, tpr, _ = roc_curve(y01, p_arr)
    auc = float(np.trapezoid(tpr, fpr))
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.plot(fpr, tpr, color=_MODEL, label=f"model, AUC {_with_ci(report, 'roc_auc', auc)}")
    ax.plot([0, 1], [0, 1], ls="--", color=_BASELINE, label="chance, AUC 0.5")
    ax.set(xlabel="false positive rate", ylabel="true positive rate (recall)",
           title="ROC curve", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def plot_precision_recall(y: Any, p: Any, *,
                          report: ClassificationReport | None = None) -> Figure:
    """Precision-recall curve with the churn rate (a random scorer's precision) as baseline."""
    y01, p_arr = check_binary_scores(y, p)
    precision, recall, _ = precision_recall_curve(y01, p_arr)
    ap = float(-np.sum(np.diff(recall) * precision[:-1]))
    rate = float(y01.mean())
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.step(recall, precision, where="post", color=_MODEL,
            label=f"model, AP {_with_ci(report, 'pr_auc', ap)}")
    ax.axhline(rate, ls="--", color=_BASELINE, label=f"churn rate {rate:.3f}")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curve",
           xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def plot_calibration(y: Any, p: Any, *, n_bins: int = 15,
                     report: ClassificationReport | None = None) -> Figure:
    """Reliability diagram on equal-mass bins (those of ``ece``), with the rows behind it.

    Each point is a bin's mean predicted probability against its observed churn rate, with a
    95% Wilson interval [1]_ for the rate (the title gives the rows per bin); the lower panel is
    the histogram of predicted probabilities (log counts), i.e. where the rows are.

    References
    ----------
    .. [1] Wilson, E. B. (1927). Probable inference, the law of succession, and statistical
       inference. *JASA* 22, 209-212.
    """
    y01, p_arr = check_binary_scores(y, p)
    bins, _ = equal_mass_bins(p_arr, n_bins)
    count = np.bincount(bins, minlength=n_bins)
    used = count > 0
    count = count[used]
    mean_p = np.bincount(bins, weights=p_arr, minlength=n_bins)[used] / count
    positives = np.bincount(bins, weights=y01, minlength=n_bins)[used]
    rate = positives / count
    low, high = wilson_interval(positives, count)
    centre, half = (low + high) / 2, (high - low) / 2
    ece = float(np.sum(count * np.abs(rate - mean_p)) / count.sum())
    fig = Figure(figsize=(5, 6.5))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], ls="--", color=_BASELINE, label="perfectly calibrated")
    top.errorbar(mean_p, centre, yerr=half, fmt="none", ecolor=_MODEL, alpha=0.5)
    top.plot(mean_p, rate, "o-", color=_MODEL, label=f"model, ECE {_with_ci(report, 'ece', ece)}")
    top.set(ylabel="observed churn rate", ylim=(0, 1.01),
            title=f"Calibration: {len(count)} equal-mass bins of ~{int(np.median(count))} rows")
    top.legend(loc="upper left")
    bottom.hist(p_arr, bins=50, range=(0, 1), color=_MODEL)
    bottom.set_yscale("log")
    bottom.set(xlabel="predicted probability", ylabel="rows (log)", xlim=(0, 1))
    fig.tight_layout()
    return fig


def plot_lift_gain(y: Any, p: Any) -> Figure:
    """Cumulative gain (share of churners reached vs share contacted) and lift by decile."""
    y01, p_arr = check_binary_scores(y, p)
    order = np.argsort(-p_arr, kind="stable")
    hits = y01[order]
    n = len(hits)
    contacted = np.arange(1, n + 1) / n
    gain = np.cumsum(hits) / max(hits.sum(), 1)
    deciles = np.array_split(hits, 10)
    rate = hits.mean()
    lift = np.array([d.mean() / rate if len(d) and rate > 0 else np.nan for d in deciles])
    fig = Figure(figsize=(10, 4.5))
    left, right = fig.subplots(1, 2)
    left.plot(np.r_[0, contacted], np.r_[0, gain], color=_MODEL, label="model")
    left.plot([0, 1], [0, 1], ls="--", color=_BASELINE, label="random targeting")
    left.plot([0, rate, 1], [0, 1, 1], ls=":", color="#2ca02c", label="perfect")
    left.set(xlabel="share of customers contacted (highest scores first)",
             ylabel="share of churners reached", title="Cumulative gain", xlim=(0, 1),
             ylim=(0, 1.01))
    left.legend(loc="lower right")
    right.bar(np.arange(1, 11), lift, color=_MODEL)
    right.axhline(1.0, ls="--", color=_BASELINE, label="random (lift 1)")
    right.set(xlabel="score decile (1 = highest)", ylabel="lift (decile churn rate / overall)",
              title="Lift by decile", xticks=np.arange(1, 11))
    right.legend(loc="upper right")
    fig.tight_layout()
    return fig


def plot_confusion_matrix(y: Any, p: Any, threshold: float = 0.5) -> Figure:
    """Confusion matrix at ``threshold`` (positive when ``p > threshold``): counts and row %."""
    y01, p_arr = check_binary_scores(y, p)
    predicted = (p_arr > threshold).astype(np.int64)
    matrix = np.bincount(2 * y01 + predicted, minlength=4).reshape(2, 2)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(4.8, 4.2))
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), c in np.ndenumerate(matrix):
        ax.text(j, i, f"{c}\n({share[i, j]:.1%})", ha="center", va="center",
                color="white" if share[i, j] > 0.6 else "black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["stays", "churns"],
           yticklabels=["stayed", "churned"], xlabel="predicted", ylabel="actual",
           title=f"Confusion matrix at threshold {threshold:.3f}")
    fig.colorbar(image, ax=ax, label="share of actual class")
    fig.tight_layout()
    return fig


def explain_model(model: Any, X: Any, *, max_rows: int = 2000, seed: int = 0) -> shap.Explanation:
    """SHAP values for up to ``max_rows`` rows of ``X`` (sampled with ``seed``).

    ``model`` must offer ``explain(X)`` returning a ``shap.Explanation``, as
    :class:`~barberpro_ml.models.ChurnClassifier` does.
    """
    if not hasattr(model, "explain"):
        raise TypeError(
            f"{type(model).__name__} has no explain(X) method; SHAP plots need a model that "
            "explains itself, e.g. barberpro_ml.models.ChurnClassifier"
        )
    n = len(X)
    if n > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))
        X = X.iloc[rows] if hasattr(X, "iloc") else np.asarray(X)[rows]
    return model.explain(X)


def top_features(explanation: shap.Explanation, k: int = 3) -> list[str]:
    """The ``k`` features with the largest mean absolute SHAP value, most important first."""
    importance = np.abs(np.asarray(explanation.values)).mean(axis=0)
    names = list(explanation.feature_names)
    return [names[i] for i in np.argsort(-importance, kind="stable")[:k]]


def plot_shap_summary(explanation: shap.Explanation, *, max_display: int = 12) -> Figure:
    """SHAP beeswarm: one row of dots per feature, coloured by the feature's value."""
    import shap

    rows = min(max_display, len(explanation.feature_names))
    fig = Figure(figsize=(8, 0.45 * rows + 1.8))
    ax = fig.subplots()
    shap.plots.beeswarm(explanation, max_display=max_display, ax=ax, show=False, plot_size=None)
    ax.set_title("SHAP values of the churn log-odds (uncalibrated)")
    fig.tight_layout()
    return fig


def plot_shap_dependence(
    explanation: shap.Explanation, feature: str, *,
    categories: Sequence[Any] | None = None, seed: int = 0,
) -> Figure:
    """SHAP value of one feature against its value.

    Numeric features: a scatter. Categorical features (pass their ``categories``, the levels
    in code order, e.g. ``model.categories_[feature]``): a jittered strip per level, missing
    (and unseen) values as their own level.
    """
    names = list(explanation.feature_names)
    if feature not in names:
        raise KeyError(f"no feature {feature!r} in the explanation; features: {names}")
    j = names.index(feature)
    values = np.asarray(explanation.values)[:, j]
    data = np.asarray(explanation.data, dtype=np.float64)[:, j]
    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    if categories is not None:
        labels = [*map(str, categories), "<missing>"]
        codes = np.where(np.isnan(data), len(categories), data).astype(np.int64)
        jitter = np.random.default_rng(seed).uniform(-0.25, 0.25, size=len(codes))
        ax.scatter(codes + jitter, values, s=8, alpha=0.5, color=_MODEL)
        present = np.unique(codes)
        ax.set_xticks(present, [labels[c] for c in present], rotation=30, ha="right")
    else:
        ax.scatter(data, values, s=8, alpha=0.5, color=_MODEL)
        missing = np.isnan(data)
        if missing.any():
            ax.text(0.01, 0.98, f"{int(missing.sum())} rows missing (not shown)",
                    transform=ax.transAxes, va="top", fontsize=8)
    ax.axhline(0, color=_BASELINE, lw=0.8)
    ax.set(xlabel=feature, ylabel="SHAP value (log-odds)", title=f"SHAP dependence: {feature}")
    fig.tight_layout()
    return fig


def log_classification_plots(
    model: Any,
    X: Any,
    y: Any,
    report: ClassificationReport,
    *,
    artifact_path: str = "plots",
    top_k: int = 3,
    shap_rows: int = 2000,
    seed: int = 0,
) -> list[str]:
    """Draw every plot for ``model`` on ``X, y`` and log it to the active MLflow run.

    Logs ``roc.png``, ``precision_recall.png``, ``calibration.png``, ``lift_gain.png``,
    ``confusion_matrix.png`` (at ``report.threshold``), ``shap_summary.png`` and
    ``shap_dependence_<feature>.png`` for the ``top_k`` features (when the model has
    ``explain``), all under ``artifact_path``.

    Returns
    -------
    list of str
        The artifact paths logged.
    """
    import mlflow

    if mlflow.active_run() is None:
        raise RuntimeError(
            "no active MLflow run: call log_classification_plots inside `with mlflow.start_run():`"
        )
    classes = getattr(model, "classes_", None)
    y_arr = np.asarray(y).reshape(-1)
    y01 = (y_arr == classes[1]).astype(np.int64) if classes is not None else y_arr
    p = np.asarray(model.predict_proba(X))[:, 1]
    figures: dict[str, Figure] = {
        "roc": plot_roc(y01, p, report=report),
        "precision_recall": plot_precision_recall(y01, p, report=report),
        "calibration": plot_calibration(y01, p, n_bins=report.ece_bins, report=report),
        "lift_gain": plot_lift_gain(y01, p),
        "confusion_matrix": plot_confusion_matrix(y01, p, report.threshold),
    }
    if hasattr(model, "explain"):
        explanation = explain_model(model, X, max_rows=shap_rows, seed=seed)
        figures["shap_summary"] = plot_shap_summary(explanation)
        categories = getattr(model, "categories_", {})
        for feature in top_features(explanation, top_k):
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in feature)
            figures[f"shap_dependence_{safe}"] = plot_shap_dependence(
                explanation, feature, categories=categories.get(feature), seed=seed)
    logged = []
    for name, figure in figures.items():
        path = f"{artifact_path}/{name}.png"
        mlflow.log_figure(figure, path)
        logged.append(path)
    return logged
