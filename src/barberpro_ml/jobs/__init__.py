"""Stage 8: the jobs -- what ``barberpro-ml train``, ``pipeline`` and ``score`` run.

One module per job, each with a typed pydantic config (``extra="forbid"``; defaults equal to
the shipped ``configs/<job>.yaml``) and a ``run(config, ...)`` that does the work and returns
what it logged, registered and decided:

- :mod:`~barberpro_ml.jobs.churn`, :mod:`~barberpro_ml.jobs.ltv`,
  :mod:`~barberpro_ml.jobs.recs`, :mod:`~barberpro_ml.jobs.segments`,
  :mod:`~barberpro_ml.jobs.forecast`, :mod:`~barberpro_ml.jobs.provider_departure`,
  :mod:`~barberpro_ml.jobs.pricing`, :mod:`~barberpro_ml.jobs.uplift`: one model family each;
  the shared skeleton (:mod:`~barberpro_ml.jobs.base`) loads the data, starts the run,
  registers, gates and promotes, so a family's module holds only its own features, fit and
  evaluation.
- :mod:`~barberpro_ml.jobs.pipeline`: every family on one data set, one summary.
- :mod:`~barberpro_ml.jobs.score`: profiles of every customer with the served models.

Examples
--------
>>> from barberpro_ml.jobs import load_config
>>> load_config("churn").model_name
'barberpro-churn'
>>> load_config("churn", n_train_cutoffs=2).n_train_cutoffs
2
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from barberpro_ml.errors import NotFoundError
from barberpro_ml.jobs import (
    churn,
    forecast,
    ltv,
    pipeline,
    pricing,
    provider_departure,
    recs,
    score,
    segments,
    uplift,
)
from barberpro_ml.jobs.base import DataSetIdentity, JobResult, TrainingJobConfig

__all__ = [
    "JOBS",
    "DataSetIdentity",
    "JobResult",
    "TrainingJobConfig",
    "churn",
    "forecast",
    "load_config",
    "ltv",
    "pipeline",
    "pricing",
    "provider_departure",
    "recs",
    "score",
    "segments",
    "uplift",
]

JOBS: dict[str, Any] = {"churn": churn, "ltv": ltv, "recs": recs, "segments": segments,
                        "forecast": forecast, "provider_departure": provider_departure,
                        "pricing": pricing, "uplift": uplift, "pipeline": pipeline,
                        "score": score}
"""Job name -> its module (each has ``load_config`` and ``run``)."""


def load_config(job: str, path: str | Path | None = None, **overrides: Any) -> BaseModel:
    """The validated config of ``job``: ``path`` (default: the shipped one) + overrides.

    Raises
    ------
    NotFoundError
        No such job.
    ConfigError
        The file does not validate (one line per problem: file, line, key, expected type).
    """
    if job not in JOBS:
        raise NotFoundError(f"no job {job!r}; jobs: {', '.join(JOBS)}")
    config: BaseModel = JOBS[job].load_config(path, **overrides)
    return config
