"""The same pipeline against the production-mode MLflow server and against the embedded store.

Starts the production infra with the project's own code (``barberpro_ml.infra.up``: PostgreSQL
and an ``mlflow server`` with proxied artifacts, in a temporary folder), then runs
``barberpro-ml pipeline --customers N --families F`` alternately against the server
(``MLFLOW_TRACKING_URI=http://127.0.0.1:PORT``) and against a fresh local SQLite store
(``sqlite:///mlflow.db`` in the run's own empty folder), ``--rounds`` times each, A B A B ...,
and prints each run's wall seconds and the median of the paired ratios server / SQLite (pairing
keeps the ratio meaningful when the shared machine's speed drifts). Also prints how long
``infra up`` took (cold: initdb + migrations) and ``infra down``.

Run: ``python benchmarks/bench_production.py [--customers 2000] [--families churn,segments]
[--rounds 3]`` (needs PostgreSQL's server binaries: ``apt-get install -y postgresql``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from barberpro_ml import infra


def run_pipeline(tracking_uri: str, folder: Path, customers: int, families: str) -> float:
    folder.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "barberpro_ml.cli", "pipeline", "--customers",
                           str(customers), "--families", families], cwd=folder, env=env,
                          capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 3):
        raise SystemExit(f"pipeline failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--families", default="churn,segments")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-production-", dir="/tmp"))
    root.chmod(0o755)  # the server may run as the postgres user (when this is root)
    try:
        started = time.perf_counter()
        status = infra.up(root / "infra")
        up_s = time.perf_counter() - started
        assert status.tracking_uri is not None
        print(f"infra up (cold: initdb, databases, MLflow migrations): {up_s:.1f} s; "
              f"{status.tracking_uri}")
        server, local, ratios = [], [], []
        for i in range(args.rounds):
            a = run_pipeline(status.tracking_uri, root / f"server-{i}", args.customers,
                             args.families)
            folder = root / f"sqlite-{i}"
            b = run_pipeline(f"sqlite:///{folder / 'mlflow.db'}", folder, args.customers,
                             args.families)
            server.append(a)
            local.append(b)
            ratios.append(a / b)
            print(f"round {i + 1}: server {a:.1f} s, SQLite {b:.1f} s, ratio {a / b:.2f}")
        print(f"pipeline --customers {args.customers} --families {args.families}: "
              f"server median {statistics.median(server):.1f} s, SQLite median "
              f"{statistics.median(local):.1f} s, paired ratio server/SQLite median "
              f"{statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})")
        started = time.perf_counter()
        infra.down(root / "infra")
        print(f"infra down: {time.perf_counter() - started:.1f} s")
    finally:
        infra.down(root / "infra")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
