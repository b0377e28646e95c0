"""Business intelligence: KPIs as a semantic layer, signup cohorts and the acquisition funnel.

Stage after :mod:`~barberpro_ml.evaluation`; imports only from ``data``, ``features``,
``evaluation`` and ``definitions``. Every measure and dimension is declared once in
:mod:`barberpro_ml.analytics.catalogue`; :func:`kpis` evaluates them for any grouping and
``as_of`` (the rules are in :mod:`barberpro_ml.analytics.kpis`); :func:`cohorts` and
:func:`funnel` follow customers from their signup (:mod:`barberpro_ml.analytics.cohorts`);
:func:`build_report` puts them on one self-contained HTML page with the forecast and the
models' gate table (:mod:`barberpro_ml.analytics.report`).
"""

from barberpro_ml.analytics.catalogue import (
    DIMENSIONS,
    MEASURES,
    TIME_GRAINS,
    Dimension,
    Measure,
    catalogue_markdown,
)
from barberpro_ml.analytics.cohorts import (
    COHORT_METRIC_DEFINITIONS,
    COHORT_METRICS,
    FUNNEL_STAGE_DEFINITIONS,
    FUNNEL_STAGES,
    cohorts,
    funnel,
    funnel_members,
)
from barberpro_ml.analytics.kpis import kpis
from barberpro_ml.analytics.report import (
    ForecastCoverage,
    ForecastSection,
    build_report,
    render_report,
    report_frames,
    write_report,
)

__all__ = [
    "COHORT_METRICS",
    "COHORT_METRIC_DEFINITIONS",
    "DIMENSIONS",
    "FUNNEL_STAGES",
    "FUNNEL_STAGE_DEFINITIONS",
    "MEASURES",
    "TIME_GRAINS",
    "Dimension",
    "ForecastCoverage",
    "ForecastSection",
    "Measure",
    "build_report",
    "catalogue_markdown",
    "cohorts",
    "funnel",
    "funnel_members",
    "kpis",
    "render_report",
    "report_frames",
    "write_report",
]
