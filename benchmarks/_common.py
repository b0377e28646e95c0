"""What several benchmark scripts share: building the data set, and reporting the result."""

from __future__ import annotations

import json
from typing import Any

from barberpro_ml.data import MarketplaceData


def marketplace(source: str, customers: int, seed: int) -> MarketplaceData:
    """The benchmark's data: the simulator (``simulate``) or unique synthetic profiles
    (``synthetic``, :func:`bench_features.synthetic`)."""
    if source == "simulate":
        from barberpro_ml.data import SimulationConfig, simulate

        return simulate(SimulationConfig(n_customers=customers, seed=seed))
    from bench_features import synthetic  # benchmarks/ is on sys.path when run as a script

    return synthetic(customers, seed)


def emit(result: dict[str, Any], json_path: str | None) -> None:
    """Print ``result`` as JSON, and also write it to ``json_path`` when given."""
    print(json.dumps(result, indent=2))
    if json_path:
        with open(json_path, "w") as fh:  # noqa: PTH123 - a plain script
            json.dump(result, fh, indent=2)
