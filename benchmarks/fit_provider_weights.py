"""Derive the provider score's default weights: ``fit_provider_weights`` on a simulation.

Fits the weights and the percentile reference of the provider score on the signal observed
after ``--as-of`` (the shipped ``fit`` settings of ``configs/providers.yaml``: the shrunk rating
of the reviews of the next 180 days) and prints the fit: weights, chosen reference, out-of-bag
and in-sample Spearman with the later signal, each component's Spearman alone. The simulator's
latent quality is not read. The defaults in ``configs/providers.yaml`` are this script's output
on the default simulation:

    PYTHONPATH=src:benchmarks python benchmarks/fit_provider_weights.py
"""

from __future__ import annotations

import argparse
import time

from _common import emit

from barberpro_ml.data import SimulationConfig, simulate
from barberpro_ml.providers import fit_provider_weights, load_score_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--as-of", default="2024-06-30")
    parser.add_argument("--target", choices=["rating", "retention", "both"])
    parser.add_argument("--json")
    args = parser.parse_args()
    data = simulate(SimulationConfig(n_customers=args.customers, seed=args.seed))
    cfg = load_score_config()
    fit = cfg.fit if args.target is None else cfg.fit.model_copy(update={"target": args.target})
    start = time.perf_counter()
    fitted = fit_provider_weights(data, args.as_of, config=cfg, fit=fit)
    emit({"customers": args.customers, "seed": args.seed, **fitted.summary(),
          "seconds": round(time.perf_counter() - start, 1)}, args.json)


if __name__ == "__main__":
    main()
