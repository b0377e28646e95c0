"""How hard is the churn label on the simulated marketplace? Oracle and recency-rule ROC AUC,
over all customers active at a cut-off and over those not yet (latently) churned.

    python benchmarks/churn_ceiling.py [--customers 20000] [--seed 42] [--as-of 2024-10-02]
"""

from __future__ import annotations

import argparse

import pandas as pd
from sklearn.metrics import roc_auc_score

from barberpro_ml.data import SimulationConfig, oracle_churn_probability, simulate
from barberpro_ml.features import churn_labels, customer_features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--as-of", default="2024-10-02")
    parser.add_argument("--horizon-days", type=int, default=90)
    args = parser.parse_args()
    data = simulate(SimulationConfig(n_customers=args.customers, seed=args.seed))
    assert data.truth is not None
    y = churn_labels(data, args.as_of, args.horizon_days)
    oracle = oracle_churn_probability(data, args.as_of, args.horizon_days).reindex(y.index)
    recency = customer_features(data, args.as_of).loc[y.index, "days_since_last_visit"]
    inactive_at = data.truth.customers.set_index("customer_id")["inactive_at"].reindex(y.index)
    alive = inactive_at.isna() | (inactive_at > pd.Timestamp(args.as_of))
    print(f"active customers at {args.as_of}: {len(y):,}; churn rate {y.mean():.3f}; "
          f"already latently inactive {1 - alive.mean():.3f}")
    for name, mask in (("all active", slice(None)), ("not yet inactive", alive)):
        print(f"{name:>17}: oracle ROC AUC {roc_auc_score(y[mask], oracle[mask]):.3f}, "
              f"recency ROC AUC {roc_auc_score(y[mask], recency[mask]):.3f}")


if __name__ == "__main__":
    main()
