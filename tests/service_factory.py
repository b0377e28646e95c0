"""``uvicorn service_factory:app --factory --workers 2``: the service of the test registry
(``MLFLOW_TRACKING_URI``) over the events in ``BARBERPRO_TEST_DATA``; keys from
``BARBERPRO_SERVICE_DB`` when set, else auth off (loopback)."""

from __future__ import annotations

import os

from fastapi import FastAPI

from barberpro_ml.data import MarketplaceData
from barberpro_ml.scoring import CustomerScorer
from barberpro_ml.service import KeyStore, create_app


def app() -> FastAPI:
    scorer = CustomerScorer.from_registry(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
    db = os.environ.get("BARBERPRO_SERVICE_DB")
    return create_app(scorer, MarketplaceData.load(os.environ["BARBERPRO_TEST_DATA"]),
                      auth="keys" if db else "off", keys=KeyStore(db) if db else None,
                      warm=False)
