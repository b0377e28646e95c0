"""The scorer's snapshot cache policy: entries, memory budget, counts, and what the service
reports of it (``/health``, Prometheus)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from barberpro_ml.scoring import CustomerScorer, snapshot_nbytes
from barberpro_ml.service import create_app


@pytest.fixture(scope="module")
def loaded(scoring_registry: Any) -> CustomerScorer:
    """Loaded once; each test makes a scorer with its own cache from these models."""
    return CustomerScorer.from_registry(tracking_uri=scoring_registry.tracking_uri)


def fresh(loaded: CustomerScorer, **policy: Any) -> CustomerScorer:
    return CustomerScorer(churn=loaded.churn, ltv=loaded.ltv, recs=loaded.recs,
                          segments=loaded.segments, bgnbd=loaded.bgnbd, models=loaded.models,
                          definitions=loaded.definitions, **policy)


def cut_offs(data: Any, n: int) -> list[pd.Timestamp]:
    end = data.observation_end.normalize()
    return [end - pd.Timedelta(days=7 * i) for i in range(n)]


def test_least_recently_used_snapshot_is_evicted(loaded: CustomerScorer,
                                                 scoring_registry: Any) -> None:
    events: list[str] = []
    scorer = fresh(loaded, snapshot_cache=2, on_snapshot_cache=events.append)
    data = scoring_registry.data
    a, b, c = cut_offs(data, 3)
    first_a = scorer.snapshot(data, a)
    scorer.snapshot(data, b)
    assert scorer.snapshot(data, a) is first_a  # kept, and now the most recently used
    scorer.snapshot(data, c)  # evicts b, the least recently used
    assert scorer.snapshot(data, a) is first_a
    scorer.snapshot(data, b)  # rebuilt
    assert events == ["miss", "miss", "hit", "miss", "eviction", "hit", "miss", "eviction"]
    info = scorer.snapshot_cache_info()
    assert (info.entries, info.hits, info.misses, info.evictions) == (2, 2, 4, 2)
    assert info.max_entries == 2 and info.max_mib is None


def test_a_rotation_within_the_cache_builds_each_snapshot_once(loaded: CustomerScorer,
                                                               scoring_registry: Any) -> None:
    data = scoring_registry.data
    rotation = cut_offs(data, 6)
    small, large = fresh(loaded, snapshot_cache=4), fresh(loaded, snapshot_cache=6)
    for _ in range(3):
        for as_of in rotation:
            small.snapshot(data, as_of)
            large.snapshot(data, as_of)
    assert large.snapshot_cache_info().misses == 6  # once each, then hits
    assert large.snapshot_cache_info().hits == 12
    assert small.snapshot_cache_info().misses == 18  # LRU over a longer cycle: never a hit
    assert small.snapshot_cache_info().hits == 0


def test_memory_budget_keeps_what_fits(loaded: CustomerScorer, scoring_registry: Any) -> None:
    data = scoring_registry.data
    a, b, c = cut_offs(data, 3)
    probe = fresh(loaded)
    size_mib = snapshot_nbytes(probe.snapshot(data, a)) / 2**20
    assert size_mib > 0
    scorer = fresh(loaded, snapshot_cache=10, snapshot_cache_mib=2.5 * size_mib)
    for as_of in (a, b, c):
        scorer.snapshot(data, as_of)
    info = scorer.snapshot_cache_info()
    assert info.entries == 2 and info.evictions == 1  # cut-offs a week apart: similar sizes
    assert info.mib <= 2.5 * size_mib
    tiny = fresh(loaded, snapshot_cache_mib=size_mib / 100)
    snap = tiny.snapshot(data, a)
    assert tiny.snapshot(data, a) is snap  # the snapshot just built is always kept
    assert tiny.snapshot_cache_info().entries == 1


def test_snapshot_nbytes_counts_every_frame(loaded: CustomerScorer,
                                            scoring_registry: Any) -> None:
    snap = fresh(loaded).snapshot(scoring_registry.data)
    features = int(snap.features.memory_usage(deep=True).sum())
    assert snapshot_nbytes(snap) > features + sum(a.nbytes for a in snap.aligned.values())


@pytest.mark.parametrize("policy", [{"snapshot_cache": 0}, {"snapshot_cache": 2.5},
                                    {"snapshot_cache": True}, {"snapshot_cache_mib": 0},
                                    {"snapshot_cache_mib": -1.0}])
def test_bad_cache_policy_is_refused(loaded: CustomerScorer, policy: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="snapshot_cache"):
        fresh(loaded, **policy)


def test_replacing_keeps_the_policy(loaded: CustomerScorer) -> None:
    events: list[str] = []
    scorer = fresh(loaded, snapshot_cache=9, snapshot_cache_mib=100.0,
                   on_snapshot_cache=events.append)
    swapped = scorer.replacing({})
    assert (swapped.snapshot_cache, swapped.snapshot_cache_mib) == (9, 100.0)
    assert swapped.on_snapshot_cache == events.append


def test_service_reports_the_cache(loaded: CustomerScorer, scoring_registry: Any) -> None:
    data = scoring_registry.data
    scorer = fresh(loaded, snapshot_cache=3)
    customer = int(data.customers["customer_id"].iloc[0])

    def counted(text: str, event: str) -> float:
        return sum(s.value for family in text_string_to_metric_families(text)
                   for s in family.samples
                   if s.name == "barberpro_snapshot_cache_events_total"
                   and s.labels["event"] == event)

    with TestClient(create_app(scorer, data, auth="off", warm=False)) as client:
        before = client.get("/metrics").text
        for as_of in [*cut_offs(data, 4), *cut_offs(data, 1)]:
            answer = client.get(f"/v1/customers/{customer}/profile",
                                params={"as_of": as_of.isoformat()})
            assert answer.status_code == 200, answer.text
        after = client.get("/metrics").text
        info = scorer.snapshot_cache_info()
        health = client.get("/health").json()["snapshot_cache"]
    # the Prometheus counters are process-wide (other apps in this process count too):
    # compare their growth with the scorer's own counts over the same requests
    assert info.evictions >= 1 and info.misses >= 4
    for event, total in (("hit", info.hits), ("miss", info.misses),
                         ("eviction", info.evictions)):
        assert counted(after, event) - counted(before, event) == total, event
    assert health["max_entries"] == 3 and health["entries"] == 3
    assert health["evictions"] >= info.evictions
    # /health itself read the default cut-off's snapshot once more (a hit or a build)
    assert health["hits"] + health["misses"] == info.hits + info.misses + 1
