"""Business intelligence: KPIs as a semantic layer, signup cohorts and the acquisition funnel.

Stage after :mod:`~barberpro_ml.evaluation`; imports only from ``data``, ``features``,
``evaluation`` and ``definitions``. Every measure and dimension is declared once in
:mod:`barberpro_ml.analytics.catalogue`; :func:`kpis` evaluates them for any grouping and
``as_of`` (the rules are in :mod:`barberpro_ml.analytics.kpis`).
"""

from barberpro_ml.analytics.catalogue import (
    DIMENSIONS,
    MEASURES,
    TIME_GRAINS,
    Dimension,
    Measure,
    catalogue_markdown,
)
from barberpro_ml.analytics.kpis import kpis

__all__ = [
    "DIMENSIONS",
    "MEASURES",
    "TIME_GRAINS",
    "Dimension",
    "Measure",
    "catalogue_markdown",
    "kpis",
]
