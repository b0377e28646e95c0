"""What every route shares: the served models and data of a request, and how a cut-off is given.

A request answers from one :class:`~barberpro_ml.scoring.live.Served` (the scorer, the event
data and their default ``as_of``), taken once at its start by :func:`served_now`, so a swap
never changes them under a request in flight.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Request

from barberpro_ml.scoring.live import LiveScorer, Served

__all__ = ["AsOf", "Now", "served_now"]


async def served_now(request: Request) -> Served:
    """The models and data a request answers from: taken once, at its start, so a swap
    never changes them under a request in flight. (``async``: taken on the event loop, with
    no trip through the thread pool; the lock is only ever held for an assignment.)"""
    live: LiveScorer = request.app.state.live
    return live.current


Now = Annotated[Served, Depends(served_now)]
"""The served scorer, data (``now.data``) and default cut-off (``now.default_as_of``)."""

AsOf = Annotated[datetime | None, Query(
    description="Cut-off (ISO 8601, naive UTC); default: the data's last event.")]
"""The ``as_of`` query parameter every route takes."""
