"""``/admin``: operations on the running service, for keys with the ``admin`` scope (the
scope is checked where the app includes this router)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from barberpro_ml.scoring.live import LiveScorer, ReloadAttempt

__all__ = ["router"]

router = APIRouter(prefix="/admin", tags=["admin"])


@router.post("/refresh", response_model=ReloadAttempt, responses={
    409: {"description": "The data were given in memory: there is no source to reload."}})
def refresh(request: Request) -> ReloadAttempt:
    """Reload the event data from their source and swap them in (synchronous: the
    answer comes once the new data and their default snapshot are ready; requests are
    served from the old data meanwhile). An error answers with its status; the old data
    keep serving (``/health`` reports the attempt)."""
    live: LiveScorer = request.app.state.live
    return live.refresh_data(raise_errors=True)
