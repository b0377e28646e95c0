"""What several benchmark scripts share: building the data set, and reporting the result."""

from __future__ import annotations

import json
import os
import threading
import time
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


_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as fh:  # noqa: PTH123 - a plain script
        return int(fh.read().split()[1]) * _PAGE


class PeakRss:
    """Peak RSS while the block runs, sampled every ``interval`` seconds by a thread."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRss:
        self.start = self.peak = rss()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())
