"""Where a profile request's CPU goes, in process (no network, no uvicorn): the parts of the key
path and the middleware, and one profile's CPU in the scorer.

Over a registry and data kept by ``bench_service.py --keep`` (its temporary folder):

1. **scorer**: CPU seconds of ``CustomerScorer.profile`` (all threads of the process), mean over
   ``--profiles`` customers after a warm-up; run it with ``PYTHONPATH`` of two source trees to
   compare them.
2. **app variants** (``httpx.ASGITransport``, the same customers in turn, ``--rounds`` rounds):
   process CPU per request of the bare app (``create_app(middleware=False)``), the full
   middleware with no key store (``auth="off"``), the full app with a key, and with a key but no
   usage row.
3. **key path**: thread CPU and wall time of each ``KeyStore`` call made inside the full app
   (``authenticate``, ``consume``, ``record_usage``).

    python benchmarks/service_costs.py --registry /tmp/bench-service-XXXX [--rounds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", required=True)
    parser.add_argument("--profiles", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--skip-app", action="store_true")
    args = parser.parse_args()
    root = Path(args.registry)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"

    import httpx
    import numpy as np

    import barberpro_ml
    from barberpro_ml.data import MarketplaceData
    from barberpro_ml.scoring import CustomerScorer
    from barberpro_ml.service import KeyStore, create_app

    data = MarketplaceData.load(root / "data")
    scorer = CustomerScorer.from_registry()
    ids = data.customers["customer_id"].to_numpy()
    scorer.snapshot(data)
    for i in ids[:20]:
        scorer.profile(data, int(i))
    cpu = []
    for i in ids[:args.profiles]:
        start = time.process_time()
        scorer.profile(data, int(i))
        cpu.append(time.process_time() - start)
    print(f"{barberpro_ml.__file__}: one profile {np.mean(cpu) * 1e3:.2f} ms CPU (mean of "
          f"{len(cpu)})")
    if args.skip_app:
        return

    folder = Path(tempfile.mkdtemp(prefix="service-costs-"))

    def store() -> tuple[KeyStore, str]:
        keys = KeyStore(f"sqlite:///{folder / secrets.token_hex(4)}.db")
        return keys, keys.create("p", "customers:read", rate_per_s=1e6, burst=10**9).token

    parts: dict[str, list[float]] = {}

    def timed(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **k: Any) -> Any:
            cpu0, wall0 = time.thread_time(), time.perf_counter()
            try:
                return call(*a, **k)
            finally:
                got = parts.setdefault(name, [0.0, 0.0, 0])
                got[0] += time.thread_time() - cpu0
                got[1] += time.perf_counter() - wall0
                got[2] += 1
        return wrapper

    full_keys, full_token = store()
    for name in ("authenticate", "consume", "record_usage"):
        setattr(full_keys, name, timed(name, getattr(full_keys, name)))
    quiet_keys, quiet_token = store()
    quiet_keys.record_usage = lambda *a, **k: None  # type: ignore[method-assign]
    variants = {
        "bare": (create_app(scorer, data, auth="off", middleware=False), {}),
        "middleware, no key store": (create_app(scorer, data, auth="off"), {}),
        "full, with a key": (create_app(scorer, data, keys=full_keys),
                             {"Authorization": f"Bearer {full_token}"}),
        "full, no usage row": (create_app(scorer, data, keys=quiet_keys),
                               {"Authorization": f"Bearer {quiet_token}"}),
    }
    sample = ids[:40]

    async def run() -> None:
        clients = {name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                           base_url="http://bench", headers=headers)
                   for name, (app, headers) in variants.items()}
        spent = dict.fromkeys(variants, 0.0)
        for client in clients.values():
            for i in sample[:10]:
                (await client.get(f"/v1/customers/{int(i)}/profile")).raise_for_status()
        parts.clear()
        for _ in range(args.rounds):
            for name, client in clients.items():
                start = time.process_time()
                for i in sample:
                    (await client.get(f"/v1/customers/{int(i)}/profile")).raise_for_status()
                await asyncio.sleep(0.02)  # the usage row is written after the answer
                spent[name] += time.process_time() - start
        n = args.rounds * len(sample)
        for name, seconds in spent.items():
            print(f"{name:26s} {seconds / n * 1e3:.2f} ms CPU per request")
        for name, (thread_cpu, wall, calls) in parts.items():
            print(f"KeyStore.{name:14s} {thread_cpu / calls * 1e3:.3f} ms thread CPU, "
                  f"{wall / calls * 1e3:.3f} ms wall (mean of {calls})")

    asyncio.run(run())


if __name__ == "__main__":
    main()
