"""Reading the service's JSON in tests: its timestamps are UTC with ``Z``, the data's are naive
UTC."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd


def naive(text: str) -> pd.Timestamp:
    """A timestamp of an answer (``...Z``) as the data contract's naive UTC."""
    stamp = pd.Timestamp(text)
    return stamp.tz_convert(None) if stamp.tzinfo is not None else stamp


def zulu(value: Any) -> Any:
    """``value`` (JSON) with every naive ISO date-time string given the UTC zone ``Z``."""
    if isinstance(value, dict):
        return {k: zulu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [zulu(v) for v in value]
    if isinstance(value, str) and "T" in value:
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            return value
        return value + "Z" if stamp.tzinfo is None else value
    return value
